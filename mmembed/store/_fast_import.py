"""``import lancedb`` in a third of the time.

lancedb imports the generated REST client of ``lance_namespace``, whose ~360 API methods are
wrapped in pydantic's ``@validate_call`` at import time. Building those validators is about
0.65 s of a 1.0 s import on a 2-core machine, paid by every ``mmembed ingest`` although a
local table never calls a REST method. While lancedb is first imported, ``validate_call``
builds each validator on the method's first call instead: the same validation, later.
pydantic is restored as soon as the import returns; nothing else is touched.
"""

from __future__ import annotations

import functools
import sys
import threading
from typing import Any

__all__ = ["import_lancedb"]

_lock = threading.Lock()
_imported = False  # set once ``import lancedb`` has returned in this process


def import_lancedb() -> Any:
    """``import lancedb``, with pydantic's ``validate_call`` deferred while it loads."""
    module = sys.modules.get("lancedb")
    if module is not None and _imported:
        return module
    with _lock:  # a module another thread is still importing is in sys.modules too, half built: wait for it
        module = sys.modules.get("lancedb")
        if module is not None and not getattr(getattr(module, "__spec__", None), "_initializing", False):
            _done()
            return module
        try:
            import pydantic
        except ImportError:  # lancedb would fail on its own, with its own message
            pydantic = None
        original = getattr(pydantic, "validate_call", None) if pydantic is not None else None
        if original is not None:
            pydantic.validate_call = _deferred(original)
        try:
            import lancedb
        finally:
            if original is not None:
                pydantic.validate_call = original
        _done()
    return lancedb


def _done() -> None:
    global _imported
    _imported = True


def _deferred(validate_call: Any) -> Any:
    def deferred_validate_call(func: Any = None, /, **options: Any) -> Any:
        def decorate(function: Any) -> Any:
            built: list[Any] = []

            @functools.wraps(function)
            def call(*args: Any, **kwargs: Any) -> Any:
                if not built:
                    built.append(validate_call(function, **options))
                return built[0](*args, **kwargs)

            return call

        return decorate if func is None else decorate(func)

    return deferred_validate_call
