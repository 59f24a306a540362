"""One frozen config object for an Index.

Precedence for every field: explicit argument > ``MMEMBED_*`` environment variable > default.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, fields, replace
from pathlib import Path

from .errors import ConfigError

__all__ = ["Config", "DEFAULT_MODEL", "DEFAULT_PRETRAINED", "default_db_path", "quick_search_on", "fast_noop_on", "ocr_default_on",
           "mmembed_environment"]

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "laion2b_s34b_b79k"
DEVICES = ("auto", "cpu", "cuda", "mps")


def check_device(device: object) -> None:
    """ConfigError unless ``device`` is one of ``DEVICES`` (``cuda:1`` counts as cuda)."""
    if not isinstance(device, str) or (device != "auto" and device.split(":")[0] not in DEVICES[1:]):
        raise ConfigError(f"device {device!r} is not known; use one of {', '.join(DEVICES)}")


PRECISIONS = ("auto", "fp32", "int8", "bf16", "fp16")


def _user_dir(mac: str, xdg_var: str, xdg_default: str) -> Path:
    """The per-user base folder of one kind (data or cache) on this platform."""
    home = Path.home()
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
    if sys.platform == "darwin":
        return home / "Library" / mac
    return Path(os.environ.get(xdg_var) or home / xdg_default)


def default_db_path() -> str:
    """The per-user data directory that holds the database when no ``--db`` is given."""
    return str(_user_dir("Application Support", "XDG_DATA_HOME", ".local/share") / "mmembed" / "db.lancedb")


def cache_dir() -> str:
    """Where derived files shared by tables live (exported text towers): ``MMEMBED_CACHE``,
    else the per-user cache directory."""
    if os.environ.get("MMEMBED_CACHE"):
        return os.environ["MMEMBED_CACHE"]
    return str(_user_dir("Caches", "XDG_CACHE_HOME", ".cache") / "mmembed")


def quick_search_on() -> bool:
    """Whether searches may answer from the snapshot and exported towers (``MMEMBED_QUICK=0``
    switches that off, to compare with or to rule out the LanceDB path)."""
    return os.environ.get("MMEMBED_QUICK") != "0"


def fast_noop_on() -> bool:
    """Whether an ingest may answer "nothing changed" from its stamp (``MMEMBED_FAST_NOOP=0``
    switches that off: every ingest then opens the table)."""
    return os.environ.get("MMEMBED_FAST_NOOP") != "0"


def ocr_default_on() -> bool:
    """Whether an ingest that is not told ``--ocr/--no-ocr`` reads text when the ocr extra is
    installed (``MMEMBED_OCR=0`` turns that default off; an explicit ``--ocr`` still reads)."""
    return os.environ.get("MMEMBED_OCR") != "0"


def mmembed_environment() -> dict[str, str]:
    """Every ``MMEMBED_*`` variable set here, for processes that must see the same settings
    (the Ray engine's workers)."""
    return {name: value for name, value in os.environ.items() if name.startswith("MMEMBED_")}


def serve_token() -> str | None:
    """The token ``mmembed serve`` asks for (``MMEMBED_TOKEN``; ``--token`` wins), or None."""
    return os.environ.get("MMEMBED_TOKEN")


@dataclass(frozen=True)
class Config:
    """Where the index lives and how it encodes.

    Example::

        Config.resolve(db="./photos.lancedb", model="local-dir:./my-model")
    """

    db: str  # LanceDB URI or local directory
    table: str = "images"  # table name inside the database
    model: str | None = None  # open_clip name, 'local-dir:PATH' or 'hf-hub:ORG/REPO'; None = what the table records
    pretrained: str | None = None  # open_clip pretrained tag for a built-in architecture
    device: str = "auto"  # auto (cuda > mps > cpu), cpu, cuda, cuda:N or mps
    batch_size: int = 32  # images per forward pass
    workers: int = 0  # decode threads; 0 = pick from the CPU count
    max_megapixels: float = 100.0  # images larger than this are skipped, not decoded
    precision: str = "auto"  # auto, fp32, int8, bf16 or fp16: the weights' number format while encoding
    ann_rows: int = 200_000  # tables this big get an ANN index after ingest (see BENCHMARKS.md)
    decode: str = "fast"  # fast: JPEGs decoded at a reduced DCT scale that covers the model input; exact: full size

    _ENV = {
        "db": "MMEMBED_DB",
        "table": "MMEMBED_TABLE",
        "model": "MMEMBED_MODEL",
        "pretrained": "MMEMBED_PRETRAINED",
        "device": "MMEMBED_DEVICE",
        "batch_size": "MMEMBED_BATCH_SIZE",
        "workers": "MMEMBED_WORKERS",
        "max_megapixels": "MMEMBED_MAX_MEGAPIXELS",
        "precision": "MMEMBED_PRECISION",
        "decode": "MMEMBED_DECODE",
        "ann_rows": "MMEMBED_ANN_ROWS",
    }

    def __post_init__(self) -> None:
        if not self.db:
            raise ConfigError("the database location is empty; pass --db PATH or set MMEMBED_DB")
        if not re.fullmatch(r"[A-Za-z0-9_-]+", self.table or "") or "__" in self.table:
            raise ConfigError(
                f"table name {self.table!r} is not valid; use ASCII letters, digits, '-' or single '_'"
            )
        check_device(self.device)
        if self.batch_size < 1:
            raise ConfigError(f"batch size {self.batch_size} must be at least 1")
        if self.workers < 0:
            raise ConfigError(f"workers {self.workers} must be 0 (automatic) or more")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision {self.precision!r} is not known; use one of {', '.join(PRECISIONS)}")
        if self.decode not in ("fast", "exact"):
            raise ConfigError(f"decode {self.decode!r} is not known; use 'fast' or 'exact'")
        if self.max_megapixels <= 0:
            raise ConfigError(f"max megapixels {self.max_megapixels} must be above 0")

    @classmethod
    def resolve(cls, **explicit: object) -> Config:
        """Build a Config from explicit values (None = not given), then env vars, then defaults."""
        names = {f.name: f for f in fields(cls)}
        unknown = set(explicit) - set(names)
        if unknown:
            raise TypeError(
                f"unknown config option(s) {sorted(unknown)}; valid: {sorted(names)}"
            )
        values: dict[str, object] = {}
        for name, f in names.items():
            value = explicit.get(name)
            if value is None and name in cls._ENV:
                env = os.environ.get(cls._ENV[name])
                if env not in (None, ""):
                    value = _parse_env(cls._ENV[name], env, f.type)
            if value is not None:
                values[name] = value
        values.setdefault("db", default_db_path())
        return cls(**values)  # type: ignore[arg-type]

    def absolute(self) -> Config:
        """This config with a local database's path made absolute (``~`` expanded, no ``file://``)."""
        if not self.is_local:
            return self
        return replace(self, db=os.path.abspath(os.path.expanduser(self.db.removeprefix("file://"))))

    @property
    def is_local(self) -> bool:
        """True when the database is a directory on this machine, not a remote URI."""
        return "://" not in self.db or self.db.startswith("file://")


def _parse_env(var: str, raw: str, annotation: object) -> object:
    kind = str(annotation)
    try:
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
    except ValueError:
        raise ConfigError(f"{var}={raw!r} is not a number; fix or unset it") from None
    return raw
