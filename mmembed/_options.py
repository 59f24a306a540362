"""Options dataclasses as keyword arguments: a function that owns its parameters in a dataclass
(``IngestOptions``, ``SearchOptions``) still takes them as plain keywords, and shows them."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import fields
from typing import Any

__all__ = ["takes", "options_from"]


def takes(options_type: type) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Show the fields of ``options_type`` as the method's keyword arguments (``help()``, IDEs,
    ``inspect.signature``), so the dataclass is the one list of them."""

    def decorate(method: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(method)
        own = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        extra = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type)
                 for f in fields(options_type)]
        method.__signature__ = signature.replace(parameters=[*own, *extra])  # type: ignore[attr-defined]
        return method

    return decorate


def options_from(options_type: type, options: Any, given: dict[str, Any]) -> Any:
    """``options`` as given, or an ``options_type`` built from the keyword arguments."""
    if options is not None:
        if given:
            raise TypeError(f"pass options= or keyword arguments, not both (got {sorted(given)})")
        return options
    valid = {f.name for f in fields(options_type)}
    unknown = sorted(set(given) - valid)
    if unknown:
        raise TypeError(f"unknown argument(s) {', '.join(unknown)}; valid: {', '.join(sorted(valid))}")
    return options_type(**given)
