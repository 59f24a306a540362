"""The ``mmembed`` command line, installed as ``mmembed.cli``; a thin layer over ``mmembed.Index``.

One module per command group; importing them registers their commands on ``app`` in the
order ``mmembed --help`` lists them.
"""

from .app import app, main

# isort: off  (the order of these imports is the order of the commands in --help)
from . import ingest as _ingest  # noqa: F401, E402
from . import watch as _watch  # noqa: F401, E402
from . import search as _search  # noqa: F401, E402
from . import admin as _admin  # noqa: F401, E402  (index, info, embed)
from . import fusion as _fusion  # noqa: F401, E402  (fusion train|apply, eval)
from . import organize as _organize  # noqa: F401, E402  (dupes, tag)
from . import ocr as _ocr  # noqa: F401, E402  (ocr)
from . import serve as _serve  # noqa: F401, E402
from . import mcp as _mcp  # noqa: F401, E402
from . import models as _models  # noqa: F401, E402  (models: the families on the fast path)
# isort: on

__all__ = ["app", "main"]
