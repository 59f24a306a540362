"""``mmembed serve``."""

from __future__ import annotations

import threading
from typing import Annotated

import typer

from .app import DbOpt, ModelOpt, TableOpt, _errors, _index, app


@app.command()
def serve(
    db: DbOpt = None,
    table: TableOpt = None,
    model: ModelOpt = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on. Anything but 127.0.0.1/localhost shows your photos to other machines.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="Port to listen on (0: any free port).")] = 8765,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the page in your web browser.")] = False,
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

        index = _index(db, table, model, None, None)
        library = Library(index)
        sock = bind(host, port)
        url = url_for(sock, host)
        loopback = is_loopback(host)
        if not loopback:
            typer.echo(f"warning: --host {host} serves your photos to every machine that can reach this one; "
                       "there is no login. Use the default 127.0.0.1 unless you mean it.", err=True)
        application = create_app(library, allowed_hosts=None if loopback else ["*"])
        warm = threading.Thread(target=library.warm_up, daemon=True, name="mmembed-warm-up")
        warm.start()

        def opened() -> None:
            if open_browser:
                import webbrowser

                webbrowser.open(url)

        try:  # Ctrl-C at any point from here stops the server cleanly (exit 0)
            typer.echo(url)
            problem = library.problem()
            if problem:  # the page says so too
                typer.echo(f"note: {problem}", err=True)
            typer.echo(f"Serving table '{index.config.table}' of {index.config.db} (read-only) at {url}; "
                       "Ctrl-C to stop.", err=True)
            run(application, sock, on_started=opened)
        except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after its graceful shutdown
            pass
        # An exit while the warm-up thread is inside onnxruntime or lancedb's native code can
        # abort the process (SIGABRT); let it finish first (it is seconds at most).
        warm.join(timeout=60)
        typer.echo("Stopped.", err=True)
