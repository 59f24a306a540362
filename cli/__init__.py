"""The ``mmembed`` command line, installed as ``mmembed.cli``; a thin layer over ``mmembed.Index``."""

from .main import app, main
from . import fusion as _fusion  # noqa: F401  (registers `fusion` and `eval`)

__all__ = ["app", "main"]
