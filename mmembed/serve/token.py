"""The token a server off the loopback asks for (``mmembed serve --host 0.0.0.0``).

Every request must carry it, else only a small login page answers (JSON 401 under ``/api/``):
``Authorization: Bearer TOKEN`` (scripts), the cookie the page keeps, or ``?token=TOKEN`` on a
GET, which sets that cookie (HttpOnly, SameSite=Strict) and redirects to the same URL without
it, so the token leaves the address bar and the history. ``POST /login`` (the login page's
form) does the same from a pasted token. Tokens are compared in constant time and never
written into a response, a message or a log line.
"""

from __future__ import annotations

import html
import hmac
import secrets
import urllib.parse
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

__all__ = ["TokenGate", "new_token", "LOGIN_PATH"]

LOGIN_PATH = "/login"
LOGIN_STYLE = "/static/login.css"  # served without the token: the login page's looks, nothing of the library
_MAX_FORM = 4096  # bytes of a login form
_COOKIE_AGE = 30 * 24 * 3600
NEEDS_TOKEN = ("this server needs its token: send the header 'Authorization: Bearer TOKEN' "
               "(the token printed when it started, or its --token / MMEMBED_TOKEN)")
_LOGIN = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mmembed: token needed</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/static/login.css"></head>
<body><main>
<h1>mmembed</h1>
<p>{message}</p>
<form method="post" action="/login">
<input type="hidden" name="next" value="{next}">
<label>Token <input type="password" name="token" autocomplete="current-password" required autofocus></label>
<button type="submit">Open</button>
</form>
<p><small>The token is printed when <code>mmembed serve</code> starts (or given with <code>--token</code> /
<code>MMEMBED_TOKEN</code>).</small></p>
</main></body></html>
"""
ASK = "This server is shared beyond this machine: paste its token to see the photos."
WRONG = "That token is not this server's; paste the one it printed when it started."


def new_token() -> str:
    """A fresh random token (URL-safe, 256 bits)."""
    return secrets.token_urlsafe(32)


def _same(given: str | None, token: bytes) -> bool:
    return given is not None and hmac.compare_digest(given.encode("utf-8", "replace"), token)


class TokenGate:
    """Pure ASGI middleware: answers nothing but the login page without the token."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.token = token.encode("utf-8")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        if scope["path"] == LOGIN_STYLE and request.method in ("GET", "HEAD"):  # the login page's looks: no data
            await self.app(scope, receive, send)
            return
        if scope["path"] == LOGIN_PATH and request.method == "POST":
            response = await self._login(request)
        elif "token" in request.query_params and request.method in ("GET", "HEAD"):
            response = self._from_query(request)
        elif self._carries_token(request):
            await self.app(scope, receive, send)
            return
        else:
            response = _refused(request, ASK)
        await response(scope, receive, send)

    def _carries_token(self, request: Request) -> bool:
        auth = request.headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and _same(value.strip(), self.token):
            return True
        return _same(request.cookies.get(cookie_name(request)), self.token)

    def _from_query(self, request: Request) -> Response:
        if not _same(request.query_params.get("token"), self.token):
            return _refused(request, WRONG)
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        target = request.url.path + ("?" + urllib.parse.urlencode(rest) if rest else "")
        return self._with_cookie(RedirectResponse(target, status_code=303), request)

    async def _login(self, request: Request) -> Response:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > _MAX_FORM:
                return _login_page(WRONG, 413)
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        given, back = form.get("token", [""])[0], _local(form.get("next", ["/"])[0])
        if not _same(given.strip(), self.token):
            return _login_page(WRONG, 401, back)
        return self._with_cookie(RedirectResponse(back, status_code=303), request)

    def _with_cookie(self, response: Response, request: Request) -> Response:
        response.set_cookie(cookie_name(request), self.token.decode("utf-8"), max_age=_COOKIE_AGE, path="/",
                            httponly=True, samesite="strict")
        response.headers["Cache-Control"] = "no-store"
        return response


def cookie_name(request: Request) -> str:
    """One cookie per port: cookies ignore the port, and two servers on one host have two tokens."""
    server = request.scope.get("server") or ("", 0)
    return f"mmembed_token_{server[1]}"


def _local(target: str) -> str:
    """Where to go after the login: a path on this server (never another site's address), else /."""
    parts = urllib.parse.urlsplit(target)
    ok = (target.startswith("/") and not target.startswith("//") and "\\" not in target and not parts.scheme
          and not parts.netloc and not any(ord(c) < 33 or ord(c) == 127 for c in target))  # "/\t/evil" reads as //evil
    return target if ok and target != LOGIN_PATH else "/"


def _refused(request: Request, message: str) -> Response:
    if request.url.path.startswith("/api/") and request.url.path != "/api/docs":  # the docs are a page
        words = "the token is wrong; " + NEEDS_TOKEN.split(": ", 1)[1] if message == WRONG else NEEDS_TOKEN
        return JSONResponse({"error": words}, status_code=401,
                            headers={"WWW-Authenticate": 'Bearer realm="mmembed"', "Cache-Control": "no-store"})
    rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]  # a stale ?token= is not kept
    here = request.url.path + ("?" + urllib.parse.urlencode(rest) if rest else "")
    page = request.method in ("GET", "HEAD") and request.url.path in ("/", "/api/docs")  # a page, not a picture
    return _login_page(message, 401, here if page else "/")


def _login_page(message: str, status: int, back: str = "/") -> Response:
    page = _LOGIN.format(message=html.escape(message, quote=False), next=html.escape(_local(back), quote=True))
    return HTMLResponse(page, status_code=status,
                        headers={"WWW-Authenticate": 'Bearer realm="mmembed"', "Cache-Control": "no-store"})
