"""serve/: seeing the photos. A local, read-only web app over a table (``mmembed serve``) and
self-contained HTML galleries of results (``mmembed search --html``).

The web app needs the ``serve`` extra (starlette, uvicorn); galleries need nothing more.
"""

from __future__ import annotations

__all__ = ["require_web_extra"]


def require_web_extra() -> None:
    """Raise ConfigError naming the extra to install when starlette or uvicorn is missing."""
    import importlib

    from ..errors import ConfigError

    missing = []
    for name in ("starlette", "uvicorn"):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ConfigError(f"mmembed serve needs {' and '.join(missing)}; install the web extra: "
                          "pip install 'mmembed[serve]'")
