"""The ``mmembed`` command line, installed as ``mmembed.cli``; a thin layer over ``mmembed.Index``."""

from .main import app, main

__all__ = ["app", "main"]
