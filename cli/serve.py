"""``mmembed serve``."""

from __future__ import annotations

import threading
import urllib.parse
from typing import Annotated, Optional

import typer

from .app import DbOpt, ModelOpt, TableOpt, _errors, _index, app
from .output import echo


@app.command()
def serve(
    db: DbOpt = None,
    table: TableOpt = None,
    model: ModelOpt = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on. Anything but 127.0.0.1/localhost shows your photos to other machines, behind a token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="Port to listen on (0: any free port).")] = 8765,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the page in your web browser.")] = False,
    token: Annotated[Optional[str], typer.Option("--token", help="The token every request must carry (the page asks for it once; scripts send 'Authorization: Bearer TOKEN') [env: MMEMBED_TOKEN; default: none on 127.0.0.1, a new random one printed once for any other --host].", show_default=False)] = None,
) -> None:
    """See and search your photos in a web browser: a local, read-only web app.

    Prints the URL, then serves until Ctrl-C. Needs the web extra: pip install 'mmembed[serve]'.

    Example: mmembed serve --db ./photos.lancedb --open
    """
    from mmembed.serve import require_web_extra

    with _errors():
        require_web_extra()
        from mmembed.serve.app import create_app
        from mmembed.serve.library import Library
        from mmembed.serve.server import bind, is_loopback, run, url_for

        index = _index(db, table, model, None, None, must_exist=False)  # the page says there is none
        library = Library(index)
        loopback = is_loopback(host)
        token, made = _token(token, loopback)
        sock = bind(host, port)
        url = url_for(sock, host)
        if not loopback:
            echo(f"warning: --host {host} serves your photos to every machine that can reach this one "
                       "(to whoever has the token). Use the default 127.0.0.1 unless you mean it.", err=True)
        application = create_app(library, allowed_hosts=None if loopback else ["*"], token=token)
        warm = threading.Thread(target=library.warm_up, daemon=True, name="mmembed-warm-up")
        warm.start()

        def opened() -> None:
            if open_browser:
                import webbrowser

                webbrowser.open(url + (f"?token={urllib.parse.quote(token, safe='')}" if token else ""))

        try:  # Ctrl-C at any point from here stops the server cleanly (exit 0)
            echo(url)
            if made:  # printed this once, never again (nor logged: uvicorn's access log is off)
                echo("Open this URL once (its token is new each start; or pass --token / MMEMBED_TOKEN; "
                           "scripts send 'Authorization: Bearer TOKEN'):", err=True)
                echo(f"{url}?token={token}", err=True)
            elif token:
                echo("The page asks for the token given (--token / MMEMBED_TOKEN) once; "
                           "scripts send 'Authorization: Bearer TOKEN'.", err=True)
            problem = library.problem()
            if problem:  # the page says so too
                echo(f"note: {problem}", err=True)
            echo(f"Serving table '{index.config.table}' of {index.config.db} (read-only) at {url}; "
                       "Ctrl-C to stop.", err=True)
            run(application, sock, on_started=opened)
        except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after its graceful shutdown
            pass
        # An exit while the warm-up thread is inside onnxruntime or lancedb's native code can
        # abort the process (SIGABRT); let it finish first (it is seconds at most).
        warm.join(timeout=60)
        echo("Stopped.", err=True)


def _token(given: str | None, loopback: bool) -> tuple[str | None, bool]:
    """The token to ask for and whether it was made here: --token, else MMEMBED_TOKEN, else a new
    one off the loopback (127.0.0.1, ::1 and localhost need none unless one is given)."""
    from mmembed.config import serve_token
    from mmembed.errors import ConfigError
    from mmembed.serve.token import new_token

    if given is None:
        given = serve_token()
    if given is not None:
        if not given.strip() or given != given.strip():
            raise ConfigError("the token (--token or MMEMBED_TOKEN) is empty or has spaces around it; "
                              "give a long random string, or none to have one made")
        return given, False
    return (None, False) if loopback else (new_token(), True)
