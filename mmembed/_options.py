"""Options dataclasses as keyword arguments: a function that owns its parameters in a dataclass
(``IngestOptions``, ``SearchOptions``) still takes them as plain keywords, and shows them;
and the checks those dataclasses make of what people pass (a lone string is one item)."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterable
from dataclasses import fields
from typing import Any

__all__ = ["takes", "options_from", "items", "checked"]


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


def items(value: Any, name: str, error: type[Exception], kinds: tuple[type, ...] = (str,)) -> tuple[Any, ...]:
    """A sequence argument as a tuple; a single ``str`` (or path) is one item, as in
    sentence-transformers' ``encode``, never a sequence of characters."""
    if value is None:
        return ()
    if isinstance(value, (str, os.PathLike)) or not isinstance(value, Iterable):
        value = (value,)
    out = tuple(value)
    for item in out:
        if not isinstance(item, kinds):
            raise error(f"{name} takes {_names(kinds)} (or a list of them), not {type(item).__name__} {item!r:.60}")
    return out


def checked(value: Any, name: str, error: type[Exception], kinds: tuple[type, ...], *, optional: bool = False) -> Any:
    """``value`` when it is one of ``kinds`` (a bool is no number here), else ``error`` naming ``name``."""
    if value is None and optional:
        return None
    number = float in kinds or int in kinds
    if not isinstance(value, kinds) or (number and isinstance(value, bool) and bool not in kinds):
        raise error(f"{name} must be {_names(kinds)}{' or None' if optional else ''}, "
                    f"not {type(value).__name__} {value!r:.60}")
    return value


def _names(kinds: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "True or False",
             os.PathLike: "a path"}
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in kinds))
