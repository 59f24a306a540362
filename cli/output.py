"""What the CLI writes, made safe for a terminal.

A file name (or a caption, or EXIF text) can hold control characters: ESC sequences that set the
terminal's title, write its clipboard (OSC 52) or clear the screen, 8-bit CSI (U+009B), backspaces
and carriage returns that hide text, bidi overrides that reorder it. Every human line goes through
``shown``, which writes such characters as Python escapes (``\\x1b``, ``\\x9b``, ``\\u202e``), so the
name is seen as it is and nothing reaches the terminal as a command. Output meant for programs keeps
the exact names: ``--paths`` when piped, ``-0`` always; ``--json`` escapes them as JSON does.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import typer

# C0 but tab and line feed, DEL, C1, and the bidi embeddings, overrides and isolates
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"


def shown(text: str) -> str:
    """``text`` with every character that a terminal would act on written as an escape."""
    return _UNSAFE.sub(_escape, text)


def echo(message: str = "", *, err: bool = False) -> None:
    """One human line (or lines) on stdout, or stderr with ``err``, made safe by ``shown``."""
    typer.echo(shown(message), err=err)


def path_line(path: str, *, null: bool = False) -> None:
    """A ``--paths`` line: the exact name when a program reads it, escaped on a terminal (a name
    holding a line break gets a note: it would read as two). ``null``: the exact name ended by a
    NUL byte, for ``xargs -0``."""
    if null:
        sys.stdout.write(path + "\0")
        return
    if "\n" in path or "\r" in path:
        echo(f"note: {path!r} holds a line break; use -0/--null to pipe such names", err=True)
    typer.echo(shown(path) if sys.stdout.isatty() else path)


def one_format(as_json: bool, paths: bool, null: bool) -> None:
    """Refuse more than one of ``--json``, ``--paths`` and ``-0`` (a usage error: exit 2)."""
    formats = [name for name, on in (("--json", as_json), ("--paths", paths), ("-0/--null", null)) if on]
    if len(formats) > 1:
        raise typer.BadParameter(f"{' and '.join(formats)} each choose what is printed; give one of them")


def json_line(obj: Any, **kwargs: Any) -> None:
    """``obj`` as JSON on stdout, with DEL, C1 and bidi controls escaped too (``ensure_ascii=False``
    leaves them raw; JSON reads ``\\u009b`` as the same string)."""
    text = json.dumps(obj, ensure_ascii=False, **kwargs)
    sys.stdout.write(_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n")
