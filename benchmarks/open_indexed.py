"""The cost of checking a file against its row before serving it (``sources.indexed.open_indexed``).

    python benchmarks/open_indexed.py [--repeat 5]

For files of typical sizes (a phone JPEG, a camera RAW, a short and a long video), written to a
temporary folder: the time to open and read the whole file (what ``/files`` sends) with plain
``open``, with ``open_indexed`` checking size and mtime only, with the content hash checked the
first time (the hash is read from the same descriptor), and again (a file already checked is not
hashed again while its inode, size, mtime and ctime stay). Prints one JSON object; ms, median.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import tempfile
import sys
import time
from pathlib import Path

from mmembed.sources import indexed

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.throughput import _cpu_name  # noqa: E402

SIZES = {"jpeg_5mb": 5, "raw_25mb": 25, "video_100mb": 100, "video_250mb": 250}


def _time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    out: dict[str, object] = {"cpu": _cpu_name(), "python": platform.python_version()}
    with tempfile.TemporaryDirectory() as folder:
        for name, mb in SIZES.items():
            path = os.path.join(folder, name)
            data = os.urandom(mb * 2**20)
            with open(path, "wb") as f:
                f.write(data)
            digest = hashlib.blake2b(data, digest_size=16).hexdigest()
            del data
            st = os.stat(path)

            def plain() -> None:
                with open(path, "rb") as f:
                    f.read()

            def checked(content_hash: str | None, fresh: bool) -> None:
                if fresh:
                    indexed._VERIFIED.clear()
                with indexed.open_indexed(path, size=st.st_size, mtime_ns=st.st_mtime_ns,
                                          content_hash=content_hash) as f:
                    f.read()

            plain()  # in the page cache, as a served file usually is
            out[name] = {"plain_open_read": _time(plain, args.repeat),
                         "size_mtime_only": _time(lambda: checked(None, False), args.repeat),
                         "hash_first_time": _time(lambda: checked(digest, True), args.repeat),
                         "hash_again": _time(lambda: checked(digest, False), args.repeat)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
