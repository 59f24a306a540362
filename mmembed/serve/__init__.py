"""serve/: seeing the photos. A local, read-only web app over a table (``mmembed serve``) and
self-contained HTML galleries of results (``mmembed search --html``).

The web app needs the ``serve`` extra (starlette, uvicorn); galleries need nothing more.
"""

from __future__ import annotations

__all__ = ["require_web_extra"]


def require_web_extra() -> None:
    """Raise ConfigError naming the extra to install when starlette or uvicorn is missing."""
    from importlib.util import find_spec

    from ..errors import ConfigError

    missing = [name for name in ("starlette", "uvicorn") if find_spec(name) is None]
    if missing:
        raise ConfigError(f"mmembed serve needs {' and '.join(missing)}; install the web extra: "
                          "pip install 'mmembed[serve]'")
