"""Issue 27 at small sizes: a partitioned snapshot (coarse IVF partitions beside the exact
vectors) answers as exact search does, and a damaged or stale partition file is found out,
falls back and heals. The speeds at 1M rows are shown by benchmarks/million.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

DIM = 64


def clustered(rows: int, seed: int, centres: int = 300) -> np.ndarray:
    """Rows that cluster like photo bursts: a centre plus noise (cosine to it ~0.8-0.9)."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((centres, DIM)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    noise = rng.standard_normal((rows, DIM)).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    out = base[rng.integers(0, centres, rows)] + rng.uniform(0.4, 0.7, (rows, 1)).astype(np.float32) * noise
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def make_store(db: Path, matrix: np.ndarray, name: str = "images"):
    import pyarrow as pa

    from mmembed.models.fusion import FusionConfig
    from mmembed.store import Store, TableMeta

    store = Store(str(db), name)
    store.create(TableMeta("local-dir:/nowhere", None, "f" * 16, DIM, FusionConfig().to_dict()), DIM, replace=True)
    schema = store.table.schema
    n = len(matrix)
    flat = pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel()), DIM)
    ids = [f"{i:012x}" for i in range(n)]
    data = {"id": ids, "path": [f"/bench/{i:08d}.jpg" for i in range(n)], "size": pa.array(np.full(n, 1000), pa.int64()),
            "mtime_ns": pa.array(np.zeros(n, np.int64)), "content_hash": ids, "image_vector": flat, "fused_vector": flat}
    store.add(pa.Table.from_pydict({f.name: data.get(f.name, pa.nulls(n, f.type)) for f in schema}, schema=schema))
    return store


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A 20k-row clustered table with a partitioned snapshot (partitions from 5,000 rows here)."""
    from mmembed.store import snapshot

    db = tmp_path_factory.mktemp("million") / "db.lancedb"
    matrix = clustered(20_000, seed=3)
    store = make_store(db, matrix)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(snapshot, "IVF_MIN_ROWS", 5_000)
        assert store.write_snapshot()
    return db, matrix


def _queries(matrix: np.ndarray, count: int = 40) -> np.ndarray:
    rng = np.random.default_rng(11)
    q = matrix[rng.integers(0, len(matrix), count)] + 0.6 * rng.standard_normal((count, DIM)).astype(np.float32) / 8
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def test_partitions_give_the_exact_hits_on_20k_rows(table: tuple[Path, np.ndarray]) -> None:
    from mmembed.store.snapshot import Snapshot

    db, matrix = table
    snap = Snapshot.open(str(db), "images")
    assert snap is not None and snap.partitioned("image")
    ivf = snap.info["ivf"]
    assert ivf["partitions"] == 141 and 1 <= ivf["nprobe"] < ivf["partitions"] // 2  # reads a few of them
    read = []
    for q in _queries(matrix):
        exact = np.argsort(-(matrix @ q), kind="stable")[:10]
        rows = snap.nearest(q, target="image", limit=10)
        assert [r["path"] for r in rows] == [f"/bench/{i:08d}.jpg" for i in exact]
        assert np.allclose([r["score"] for r in rows], (matrix @ q)[exact], atol=1e-5)  # exact scores
        positions, _ = snap._probe(snap._array("image"), q, 10)
        read.append(len(positions))
    assert max(read) < len(matrix) / 4  # the rows read: the probed partitions only


def test_a_scan_read_in_blocks_gives_the_map_s_scores(table: tuple[Path, np.ndarray],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The block-wise ``pread`` scan (every scan of more than SCAN_MIN_ROWS rows) scores each row as
    the memory map would, over the probed partitions and over the whole file, across threads; a
    one-shot search (the CLI's) streams, a long-lived one reads through the map."""
    from mmembed.retrieval.quick import QuickSearch

    from mmembed.store import snapshot
    from mmembed.store.snapshot import Snapshot, scan

    db, matrix = table
    monkeypatch.setattr(snapshot, "SCAN_MIN_ROWS", 100)
    monkeypatch.setattr(snapshot, "SCAN_BLOCK_BYTES", 300 * DIM * 4)  # 300-row blocks: many, with a short last one
    snap = Snapshot.open(str(db), "images", stream=True)
    mapped = snap._array("image")
    q = _queries(matrix, 1)[0]
    assert np.allclose(scan(mapped, q), np.asarray(mapped) @ q, atol=1e-6)
    spans = [(0, 7), (450, 1_999), (19_000, 20_000)]
    assert np.allclose(scan(mapped, q, spans), np.concatenate([np.asarray(mapped[a:b]) @ q for a, b in spans]),
                       atol=1e-6)
    assert np.array_equal(scan(mapped, q, spans, stream=False),
                          np.concatenate([np.asarray(mapped[a:b]) @ q for a, b in spans]))
    for q in _queries(matrix, 10):
        exact = np.argsort(-(matrix @ q), kind="stable")[:10]
        assert [r["path"] for r in snap.nearest(q, target="image", limit=10)] == [f"/bench/{i:08d}.jpg" for i in exact]
    assert QuickSearch(str(db), "images", one_shot=True).snapshot().stream
    assert not QuickSearch(str(db), "images").snapshot().stream


def _file_pages_kb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("RssFile:"))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RssFile from Linux's /proc")
def test_a_scan_keeps_the_file_out_of_resident_memory_and_finds_a_short_file(tmp_path: Path) -> None:
    """A full scan of a 64 MB vector file leaves its pages in the page cache, not mapped into this
    process (the memory map held all of them: 2 GB at 1M rows); a file cut short after it was
    opened is reported as damaged, not read past its end."""
    from mmembed.store.snapshot import SnapshotDamaged, scan

    path = tmp_path / "image.npy"
    rows = np.random.default_rng(2).standard_normal((32_768, 512)).astype(np.float32)
    np.save(path, rows)
    q = rows[5] / np.linalg.norm(rows[5])
    mapped = np.load(path, mmap_mode="r")
    before = _file_pages_kb()
    scores = scan(mapped, q, stream=True)
    assert _file_pages_kb() - before < 8 * 1024  # KB: far below the 64 MB the map would hold
    assert int(np.argmax(scores)) == 5 and np.allclose(scores, rows @ q, atol=1e-5)
    np.asarray(mapped[:16_384]) @ q  # the memory map itself does map the pages it reads: the probe can fail
    assert _file_pages_kb() - before > 24 * 1024
    del mapped
    mapped = np.load(path, mmap_mode="r")
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size - 4096)
    with pytest.raises(SnapshotDamaged, match="ends before row"):
        scan(mapped, q)


def _peak_kb_since_reset() -> int:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM, the process's peak resident memory, to what it holds now
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def _peak_kb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="reads the peak from Linux's /proc")
def test_reordering_the_snapshot_s_vectors_keeps_both_files_out_of_resident_memory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The partitioned snapshot's vector files are put in partition order block by block, read and
    written without a memory map (maps of both files held both: 4.4 GB at 1M 512-d rows); the
    rows then are where the order says, for a random order and for one sorted by partition."""
    from mmembed.store import snapshot

    monkeypatch.setattr(snapshot, "_REORDER_BYTES", 8 << 20)  # 8 MB blocks of a 64 MB file
    rng = np.random.default_rng(4)
    rows = rng.standard_normal((32_768, 512)).astype(np.float32)
    np.save(tmp_path / "image.npy", rows)
    order = rng.permutation(len(rows))
    start = _peak_kb_since_reset()
    snapshot._permute_array(str(tmp_path), "image", order)
    assert _peak_kb() - start < 40 * 1024  # KB: one block and the pages it read, not 2 x 64 MB
    assert np.array_equal(np.load(tmp_path / "image.npy"), rows[order])
    by_partition = np.argsort(rng.integers(0, 50, len(rows)), kind="stable")  # as _partition orders them
    snapshot._permute_array(str(tmp_path), "image", by_partition)
    assert np.array_equal(np.load(tmp_path / "image.npy"), rows[order][by_partition])


def test_a_limit_beyond_the_probed_partitions_reads_more_of_them(table: tuple[Path, np.ndarray]) -> None:
    from mmembed.store.snapshot import Snapshot

    db, matrix = table
    snap = Snapshot.open(str(db), "images")
    q = _queries(matrix, 1)[0]
    rows = snap.nearest(q, target="image", limit=3000)
    exact = np.argsort(-(matrix @ q), kind="stable")[:3000]
    assert len(rows) == 3000
    assert len({r["path"] for r in rows[:100]} & {f"/bench/{i:08d}.jpg" for i in exact[:100]}) >= 95


@pytest.mark.parametrize("damage", ["garbage", "stale"])
def test_a_damaged_or_stale_partition_file_falls_back_and_heals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               damage: str) -> None:
    from mmembed.retrieval.quick import QuickSearch
    from mmembed.store import snapshot
    from mmembed.store.snapshot import Snapshot, SnapshotDamaged

    monkeypatch.setattr(snapshot, "IVF_MIN_ROWS", 1_000)
    first = make_store(tmp_path / "a.lancedb", clustered(3_000, seed=5))
    assert first.write_snapshot()
    store = make_store(tmp_path / "b.lancedb", clustered(3_000, seed=6))
    assert store.write_snapshot()
    folder = Path(tmp_path / "b.lancedb", "images.mmembed")
    assert json.loads((folder / "snapshot.json").read_text())["ivf"]["partitions"] == 55
    if damage == "garbage":
        (folder / "ivf_offsets.npy").write_bytes(b"\x93NUMPY garbage")
    else:  # the same shapes, from another snapshot
        shutil.copy(Path(tmp_path / "a.lancedb", "images.mmembed", "ivf_centroids.npy"), folder / "ivf_centroids.npy")
    with pytest.raises(SnapshotDamaged):
        Snapshot.open(str(tmp_path / "b.lancedb"), "images")
    assert QuickSearch(str(tmp_path / "b.lancedb"), "images").snapshot() is None  # the LanceDB path answers
    store.write_snapshot()  # what the next ingest (Derived.refresh) does
    healed = Snapshot.open(str(tmp_path / "b.lancedb"), "images")
    assert healed is not None and healed.partitioned("image")


def test_a_table_below_the_threshold_keeps_the_unpartitioned_snapshot(tmp_path: Path) -> None:
    from mmembed.store.snapshot import Snapshot

    store = make_store(tmp_path / "db.lancedb", clustered(2_000, seed=7))
    assert store.write_snapshot()
    snap = Snapshot.open(str(tmp_path / "db.lancedb"), "images")
    assert snap is not None and not snap.partitioned("image") and "ivf" not in snap.info
    assert not Path(tmp_path / "db.lancedb", "images.mmembed", "ivf_centroids.npy").exists()


def test_dupes_candidates_propose_the_near_copies_the_full_pass_proposes() -> None:
    """The ANN candidate stage of ``dupes`` (partitions, each photo against the nearest few)
    proposes every near copy (cosine >= 0.9) that the all-pairs pass proposes, on 6k rows."""
    from mmembed.retrieval import dupes

    matrix = clustered(6_000, seed=9, centres=1_000)
    rng = np.random.default_rng(2)
    source = rng.choice(5_800, 200, replace=False)
    copies = matrix[source] + 0.02 * rng.standard_normal((200, DIM)).astype(np.float32)
    matrix[5_800:] = copies / np.linalg.norm(copies, axis=1, keepdims=True)
    full = dupes._all_pairs(matrix, 0.5, None).take_pairs()
    ann = dupes._candidate_pairs(matrix, 0.5, None).take_pairs()
    close = {(i, j) for i, j, s in full if s >= 0.9}
    assert {(int(a), 5_800 + k) for k, a in enumerate(source)} <= close  # the planted copies are proposed
    assert close <= {(i, j) for i, j, _ in ann}
    assert len(ann) >= 0.9 * len(full)


def test_dupes_on_columns_and_half_floats_groups_as_on_dicts_and_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``Index.duplicates`` hands a large table (rows as a pyarrow table, vectors as float16,
    the ANN candidate stage) groups exactly as row dicts and float32 vectors do, and proposes the
    same close pairs."""
    import pyarrow as pa

    from mmembed.retrieval import dupes
    from mmembed.store.items import PhotoRows

    matrix = clustered(6_000, seed=5, centres=1_000)
    rows = [{"id": f"{i:012x}", "path": f"/nowhere/{i:05d}.jpg", "size": None, "width": 10 + i % 7, "height": 10,
             "content_hash": f"h{i}", "taken_ns": None, "mtime_ns": i} for i in range(6_000)]
    for k in range(300):  # exact copies: 300 pairs, and 3 rows without a hash
        rows[5_600 + k]["content_hash"] = rows[3 * k]["content_hash"]
    for i, empty in ((5_990, ""), (5_991, None), (5_992, "")):
        rows[i]["content_hash"] = empty
    monkeypatch.setattr(dupes, "ANN_ROWS", 1_000)
    as_dicts = dupes.find_duplicates(rows, matrix, mode="near")
    as_columns = dupes.find_duplicates(PhotoRows(pa.Table.from_pylist(rows)), matrix.astype(np.float16), mode="near")
    assert len(as_dicts) == 300
    assert [g.to_dict() for g in as_columns] == [g.to_dict() for g in as_dicts]
    close = lambda pairs: {(i, j) for i, j, s in pairs if s >= 0.9}  # noqa: E731
    full = dupes._candidate_pairs(matrix, 0.5, None).take_pairs()
    half = dupes._candidate_pairs(matrix.astype(np.float16), 0.5, None).take_pairs()
    assert close(full) and close(half) == close(full)
    # the vector stage made first (Index.duplicates lets the vectors go before the pairs are made)
    staged = dupes.find_duplicates(PhotoRows(pa.Table.from_pylist(rows)), None, mode="near",
                                   nearest=dupes.nearest_photos(matrix.astype(np.float16)))
    assert [g.to_dict() for g in staged] == [g.to_dict() for g in as_dicts]


def test_many_commits_keep_lancedb_metadata_cache_within_its_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each commit of an ingest is a version whose manifest lists every fragment, and LanceDB kept
    every one it saw (its default cache is 1 GB): 400 commits held 100 MB. The store's session
    bounds that cache (``METADATA_CACHE_BYTES``, lowered here so that 60 commits overflow it)."""
    import pyarrow as pa

    from mmembed.store import table as table_module

    monkeypatch.setattr(table_module, "METADATA_CACHE_BYTES", 256 << 10)
    store = make_store(tmp_path / "db.lancedb", clustered(64, seed=1))
    batch = store.table.to_arrow()
    for k in range(60):
        store.add(batch.set_column(0, "id", pa.array([f"{k:04d}{i:08x}" for i in range(len(batch))])))
        assert store.count() == 64 * (k + 2)  # a read between commits, as ingest makes
    assert store.session is not None and 0 < store.session.size_bytes <= 256 << 10


def test_planned_files_come_back_as_they_went_in_and_are_held_without_an_object_each() -> None:
    """A plan holds its files as a blob of paths and arrays (``TaskList``), not five Python objects
    a file: 100k of those left ~29 MB of half-empty pymalloc arenas behind once they were read
    (BENCHMARKS.md). Every field comes back as it went in, any path included, and ``drain``
    empties the list."""
    import sys

    from mmembed.ingest.prepare import Row, Task, TaskList
    from mmembed.sources.discovery import DiscoveredFile

    old = Row("r1", "/p/b.jpg", 3, 4, "hash", None, None, None)
    files = [DiscoveredFile("/p/a\udcff-é-写真.jpg", 1, 2, "/p"),  # a name that is not UTF-8 on disk
             DiscoveredFile("/p/b.jpg", 3, 4, "/p", ("b.txt",), ("b.CR2",)),
             DiscoveredFile("s3://bucket/c.jpg", 5, 6, "s3://bucket", etag='"e1"')]
    tasks = TaskList()
    for i, file in enumerate(files):
        tasks.append(Task(file, old if i == 1 else None))
    assert len(tasks) == 3 and [t.file for t in tasks] == files
    assert tasks[1].existing == old and tasks[0].existing is None and tasks[-1].file == files[2]
    with pytest.raises(IndexError):
        tasks[3]
    assert [t.file for t in tasks.drain()] == files and len(tasks) == 0

    many = TaskList()
    before = sys.getallocatedblocks()
    for i in range(20_000):
        many.append(Task(DiscoveredFile(f"/photos/2024/{i // 500:03d}/IMG_{i:06d}.jpg", 10_000 + i, 1_700_000_000_000_000_000 + i, "/photos"), None))
    held = sys.getallocatedblocks() - before
    assert held < 2_000, f"{held} Python objects held for 20,000 planned files"  # a list of Tasks: ~100,000
    assert many[12_345].file.path == "/photos/2024/024/IMG_012345.jpg" and many[12_345].file.size == 22_345


@pytest.mark.parametrize("preset", [None, "3"])
def test_a_local_store_reads_one_fragment_ahead_unless_the_user_said_otherwise(tmp_path: Path, preset: str | None) -> None:
    """Lance fixes its fragment read-ahead at the first scan of a process, so the store sets it
    before lancedb is imported: one fragment on a local disk (compacting a 100k ingest's fragments
    peaked ~35 MB lower; BENCHMARKS.md), the user's own value when there is one. Run in a
    fresh process, as the setting is the process's."""
    import os
    import subprocess
    import sys

    script = (
        "import os, sys\n"
        "from mmembed.store import Store\n"
        "assert 'lancedb' not in sys.modules\n"
        "store = Store(sys.argv[1], 'images'); store.db\n"
        "print(os.environ.get('LANCE_DEFAULT_FRAGMENT_READAHEAD'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "LANCE_DEFAULT_FRAGMENT_READAHEAD"}
    if preset is not None:
        env["LANCE_DEFAULT_FRAGMENT_READAHEAD"] = preset
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "db.lancedb")], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (preset or "1")


def test_whether_any_row_has_text_is_found_in_the_last_fragment_and_follows_the_version(tmp_path: Path) -> None:
    """``search_stats`` asks whether some row has text (the scan stops at the first), not how
    many (a scan of the whole text-vector column): it must still see a lone row at the end."""
    import pyarrow as pa

    matrix = clustered(3_000, seed=5)
    store = make_store(tmp_path / "db.lancedb", matrix[:1_000])
    for part in (matrix[1_000:2_000], matrix[2_000:]):  # three fragments
        more = make_store(tmp_path / "more.lancedb", part)
        rows = more.read_columns([f.name for f in more.table.schema])
        offset = store.count()
        ids = pa.array([f"{i + offset:012x}" for i in range(len(part))])
        store.add(rows.set_column(rows.schema.get_field_index("id"), "id", ids))
    assert store.count() == 3_000 and store.table.stats()["fragment_stats"]["num_fragments"] == 3
    assert store.search_stats() == (3_000, False)
    assert not store.any_where("text_vector IS NOT NULL") and store.any_where("text_vector IS NULL")
    last = f"{2_999:012x}"
    store.update_columns({"id": [last], "text_vector": [matrix[-1].tolist()]})
    assert store.count_where("text_vector IS NOT NULL") == 1
    assert store.any_where("text_vector IS NOT NULL") and store.search_stats() == (3_000, True)
    assert not store.any_where(f"text_vector IS NOT NULL AND id != '{last}'")
