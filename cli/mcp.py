"""``mmembed mcp``: the read-only MCP server for assistants (``serve/mcp.py``)."""

from __future__ import annotations

import threading
from typing import Annotated

import typer

from .app import DbOpt, ModelOpt, TableOpt, _errors, _index, app
from .output import echo


@app.command()
def mcp(
    db: DbOpt = None,
    table: TableOpt = None,
    model: ModelOpt = None,
    http: Annotated[bool, typer.Option("--http", help="Serve streamable HTTP on 127.0.0.1 (at /mcp) instead of stdio.")] = False,
    port: Annotated[int, typer.Option("--port", "-p", help="Port for --http (0: any free port).")] = 8766,
) -> None:
    """Let an AI assistant search your photos: a read-only Model Context Protocol server.

    Speaks MCP on stdin/stdout (what an assistant's config runs); --http serves it on
    http://127.0.0.1:PORT/mcp instead. Tools: search, similar, get_item, get_picture, info.
    Nothing is written; only files that are rows of the table, unchanged since indexed, are read.
    Needs the mcp extra: pip install 'mmembed[mcp]'.

    \b
    Example: mmembed mcp --db ~/photos.lancedb
    HTTP:    mmembed mcp --db ~/photos.lancedb --http --port 8766
    """
    with _errors():
        _require_mcp()
        from mmembed.serve.library import Library
        from mmembed.serve.mcp import create_server, run_http
        from mmembed.serve.server import bind, url_for

        index = _index(db, table, model, None, None)
        library = Library(index)
        server = create_server(library)
        warm = threading.Thread(target=library.warm_up, daemon=True, name="mmembed-warm-up")
        warm.start()
        sock = bind("127.0.0.1", port) if http else None
        try:
            if sock is None:
                echo(f"mmembed MCP server on stdio for table '{index.config.table}' of {index.config.db} "
                           "(read-only)", err=True)
                server.run()  # stdout is the protocol: nothing else may be printed there
            else:
                url = url_for(sock, "127.0.0.1") + "mcp"
                echo(url)
                echo(f"Serving MCP for table '{index.config.table}' of {index.config.db} (read-only) at {url}; "
                           "Ctrl-C to stop.", err=True)
                run_http(server, sock)
        except KeyboardInterrupt:
            pass
        warm.join(timeout=60)  # an exit inside onnxruntime's or lancedb's native code can abort


def _require_mcp() -> None:
    """ConfigError naming the extra when the MCP SDK (2.x: ``mcp.server.mcpserver``) is missing."""
    from mmembed.errors import ConfigError

    try:
        import mcp.server.mcpserver  # noqa: F401
    except ImportError:
        raise ConfigError("mmembed mcp needs the MCP SDK, mcp 2.x; install the mcp extra: "
                          "pip install 'mmembed[mcp]'") from None
