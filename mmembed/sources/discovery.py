"""File discovery: ``walk()`` finds candidate image and video files (and their caption sidecars)
under one or more roots, each once, reporting what it cannot read instead of stopping.
A RAW+JPEG pair is one photo: by default the JPEG is yielded, naming the RAW as its sibling."""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

from ..errors import ConfigError
from ..text.sidecars import find_sidecars
from .files import not_regular
from .raw import RAW_EXTENSIONS, RAW_PAIRS, is_raw_path, raw_partners
from .video import VIDEO_EXTENSIONS

__all__ = ["IMAGE_EXTENSIONS", "DiscoveredFile", "walk", "is_image_path", "is_media_path", "printable_path"]

# Matched case-insensitively. JPEG XL is listed so that a .jxl file gets a clear
# "install the plugin" reason instead of vanishing silently.
IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .jfif .png .apng .webp .gif .bmp .dib .tif .tiff "
    ".jp2 .j2k .j2c .jpc .jpf .jpx .pbm .pgm .ppm .pnm .pfm "
    ".heic .heif .hif .avif .jxl".split()
) | RAW_EXTENSIONS


@dataclass(frozen=True, slots=True)
class DiscoveredFile:
    """A candidate image file found by ``walk``: absolute path (or ``s3://`` URI) plus what
    ``stat`` (or the object listing) said."""

    path: str
    size: int
    mtime_ns: int
    root: str = ""  # the walked root it was found under
    sidecars: tuple[str, ...] = ()  # names of its caption sidecars in the same folder, by precedence
    raw_siblings: tuple[str, ...] = ()  # a JPEG/HEIC's RAW files of the same shot (same folder, same stem)
    etag: str | None = None  # an object's ETag (object storage); None for a local file


def is_image_path(path: str) -> bool:
    """True when the file name ends in an image extension we try to decode."""
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def is_media_path(path: str) -> bool:
    """True when the file name ends in an image or a video extension (a candidate to index)."""
    ext = os.path.splitext(path)[1].lower()
    return ext in IMAGE_EXTENSIONS or ext in VIDEO_EXTENSIONS


def _matches(rel: str, name: str, patterns: Iterable[str]) -> bool:
    return any(
        fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p) for p in patterns
    )


def walk(
    roots: Iterable[str | os.PathLike[str]],
    *,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    hidden: bool = False,
    follow_symlinks: bool = False,
    raw_pairs: str = "jpeg",
    on_error: Callable[[str, str], None] | None = None,
) -> Iterator[DiscoveredFile]:
    """Yield every candidate image file under ``roots``, each absolute path once, sorted per folder.

    ``include``/``exclude`` are shell globs matched against the path relative to its root
    and against the bare file name (case-insensitively). Hidden files and folders (leading
    dot) are skipped unless ``hidden``, and so is any LanceDB database (a ``--db`` kept inside the
    photo folder, with its thumbnails). Symlinked folders are followed only with
    ``follow_symlinks``, and never twice, so link loops end. Problems that are not fatal
    (an unreadable folder, a broken link) go to ``on_error(path, reason)``.

    A RAW file beside a JPEG/HEIC of the same stem (``IMG_1.CR2`` and ``IMG_1.JPG``, stems
    compared case-insensitively, both walked) is one photo: with ``raw_pairs="jpeg"`` only the
    JPEG is yielded, its ``raw_siblings`` naming the RAW; ``"keep-both"`` yields both (the
    JPEG still names its sibling). A RAW given as a root itself is always yielded.
    """
    if raw_pairs not in RAW_PAIRS:
        raise ConfigError(f"--raw-pairs {raw_pairs!r} is not one of {', '.join(RAW_PAIRS)}")
    include = [p.lower() for p in include]
    exclude = [p.lower() for p in exclude]
    report = on_error or (lambda path, reason: None)
    seen_files: set[str] = set()
    for root in roots:
        if isinstance(root, str) and root.startswith("s3://"):
            for found in _walk_remote(root, include, exclude, hidden, report, raw_pairs):
                if found.path not in seen_files:
                    seen_files.add(found.path)
                    yield found
            continue
        root_path = os.path.realpath(os.fspath(root))
        try:
            st = os.stat(root_path)
        except FileNotFoundError:
            raise ConfigError(f"{root_path}: no such file or folder; check the path") from None
        except PermissionError:
            raise ConfigError(f"{root_path}: permission denied; check its permissions") from None
        if stat.S_ISDIR(st.st_mode):
            rules = _Rules(root_path, include, exclude, hidden, follow_symlinks, report, raw_pairs)
            for found in _walk_dir(rules, {(st.st_dev, st.st_ino)}):
                if found.path not in seen_files:
                    seen_files.add(found.path)
                    yield found
        elif root_path not in seen_files:
            seen_files.add(root_path)
            if not_regular(st.st_mode):  # a named pipe would block the reader, a device never end
                report(os.fspath(root), not_regular(st.st_mode) or "")
            elif is_media_path(root_path):
                folder, name = os.path.split(root_path)
                try:
                    names = frozenset(os.listdir(folder))
                except OSError:
                    names = frozenset()
                siblings = raw_partners([name, *(n for n in names if is_raw_path(n))]).get(name, ())
                yield DiscoveredFile(root_path, st.st_size, st.st_mtime_ns, folder, tuple(find_sidecars(name, names)),
                                     siblings)
            else:
                report(root_path, "not an image file name; supported: " + _short_ext_list())


def _walk_remote(root: str, include: list[str], exclude: list[str], hidden: bool,
                 report: Callable[[str, str], None], raw_pairs: str = "jpeg") -> Iterator[DiscoveredFile]:
    """``walk`` over an ``s3://`` prefix (``sources.remote``): the same filters and RAW+JPEG pair
    rule, one "folder" of keys at a time, ETags kept."""
    from .remote import list_objects

    def keep(rel: str, name: str, is_folder: bool) -> bool:
        if not hidden and name.startswith("."):
            return False
        if exclude and _matches(rel, name, exclude):
            return False
        if is_folder:
            return True
        if include and not _matches(rel, name, include):
            return False
        return is_media_path(name)

    folder, batch = "", []
    for obj in list_objects(root, keep):  # a folder's objects come together
        if os.path.splitext(obj.name)[1].lower() in VIDEO_EXTENSIONS:
            report(obj.path, "videos in object storage are not indexed yet; index a local copy")
            continue
        here = obj.path.rpartition("/")[0]
        if here != folder and batch:
            yield from _pair_raws(batch, raw_pairs)
            batch = []
        folder = here
        batch.append(DiscoveredFile(obj.path, obj.size, obj.mtime_ns, obj.root,
                                    tuple(find_sidecars(obj.name, obj.folder_names)), etag=obj.etag))
    yield from _pair_raws(batch, raw_pairs)


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def printable_path(path: str) -> str:
    """A path safe to print and store: undecodable bytes become U+FFFD."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _short_ext_list() -> str:
    return ("jpg png webp gif bmp tiff jp2 pnm heic avif jxl, RAW (dng cr2 cr3 nef arw orf rw2 raf pef srw), "
            "videos (mp4 mov m4v webm mkv avi)")


@dataclass(frozen=True)
class _Rules:
    """What one walk of one root keeps."""

    root: str
    include: list[str]
    exclude: list[str]
    hidden: bool
    follow_symlinks: bool
    report: Callable[[str, str], None]
    raw_pairs: str = "jpeg"  # see walk()


def _walk_dir(rules: _Rules, visited: set[tuple[int, int]]) -> Iterator[DiscoveredFile]:
    """Depth first, files of a folder before its subfolders, both sorted by name. Iterative
    (an explicit stack), so a tree of any depth is walked: recursion stopped at ~990 levels.
    Symlinked folders (``follow_symlinks``) come after the whole real tree, so that a link to a
    folder inside it finds that folder walked already and each file keeps its own path."""
    stack: list[tuple[str, os.DirEntry[str] | None]] = [(rules.root, None)]
    links: list[tuple[str, os.DirEntry[str] | None]] = []
    while stack or links:
        path, entry = stack.pop() if stack else links.pop(0)
        if entry is not None:  # a subfolder: entered once, even when reached twice or by a loop
            try:
                st = entry.stat(follow_symlinks=True)
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key in visited:
                continue
            visited.add(key)
        subdirs: list[os.DirEntry[str]] = []
        yield from _folder_files(rules, path, subdirs)
        stack.extend((sub.path, sub) for sub in reversed(subdirs) if not sub.is_symlink())
        links.extend((sub.path, sub) for sub in subdirs if sub.is_symlink())


def _is_database(entries: list[os.DirEntry[str]]) -> bool:
    """Whether a folder is a LanceDB database: it holds a table folder (``NAME.lance``). A ``--db``
    inside the photo folder holds the web app's thumbnails (``NAME.thumbs``), which would otherwise
    be indexed as copies of every photo shown."""
    for entry in entries:
        if entry.name.endswith(".lance"):
            try:
                if entry.is_dir(follow_symlinks=False):
                    return True
            except OSError:
                continue
    return False


def _folder_files(rules: _Rules, folder: str, subdirs: list[os.DirEntry[str]]) -> Iterator[DiscoveredFile]:
    """The candidate files of one folder; its subfolders to walk are appended to ``subdirs``."""
    root, include, exclude, report = rules.root, rules.include, rules.exclude, rules.report
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except PermissionError:
        report(folder, "folder not readable (permission denied); check its permissions")
        return
    except OSError as exc:
        report(folder, f"folder not readable ({exc.strerror or exc})")
        return
    if _is_database(entries):
        return  # a LanceDB database (ours, with its thumbnail cache, or another's): not photos
    names = frozenset(e.name for e in entries)
    found: list[DiscoveredFile] = []
    for entry in entries:
        name = entry.name
        if not rules.hidden and name.startswith("."):
            continue
        if not _utf8(name):
            report(printable_path(entry.path), "file name is not valid UTF-8; rename the file to index it")
            continue
        rel = os.path.relpath(entry.path, root).replace(os.sep, "/").lower()
        lname = name.lower()
        try:
            is_dir = entry.is_dir()  # follows links
        except OSError:
            is_dir = False
        if is_dir and entry.is_symlink() and not rules.follow_symlinks:
            continue  # symlinked folder: followed only when asked
        if is_dir:
            if exclude and _matches(rel, lname, exclude):
                continue
            subdirs.append(entry)
            continue
        if not is_media_path(name):
            continue
        if exclude and _matches(rel, lname, exclude):
            continue
        if include and not _matches(rel, lname, include):
            continue
        try:
            st = entry.stat(follow_symlinks=True)
        except FileNotFoundError:
            report(entry.path, "broken symlink (its target does not exist)")
            continue
        except OSError as exc:
            report(entry.path, f"cannot stat file ({exc.strerror or exc})")
            continue
        if not_regular(st.st_mode):
            report(entry.path, not_regular(st.st_mode) or "")
            continue
        found.append(DiscoveredFile(entry.path, st.st_size, st.st_mtime_ns, root, tuple(find_sidecars(name, names))))
    yield from _pair_raws(found, rules.raw_pairs)


def _pair_raws(found: list[DiscoveredFile], raw_pairs: str) -> Iterator[DiscoveredFile]:
    """One folder's files with the RAW+JPEG pair rule applied (see ``walk``)."""
    partners = raw_partners(os.path.basename(f.path) for f in found)
    if not partners:
        yield from found
        return
    paired = {raw for raws in partners.values() for raw in raws}
    for file in found:
        name = os.path.basename(file.path)
        if name in partners:
            yield replace(file, raw_siblings=partners[name])
        elif name not in paired or raw_pairs == "keep-both":
            yield file
