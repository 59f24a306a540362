"""Object storage: a real S3-compatible server (moto's server mode, a subprocess on 127.0.0.1),
images ingested from ``s3://`` into a table kept in ``s3://``, searched, re-ingested after
moves, deletions and changes, served by the web app; credentials never shown."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import FIXTURE_IMAGES, run_cli, shared_path

boto3 = pytest.importorskip("boto3", reason="pip install 'mmembed[s3]'")

KEY_ID = "AKIDMMEMBEDTEST7Q"
SECRET = "sekret-XYZ-never-print-9f3"
COCO = ["000000000139.jpg", "000000000790.jpg", "000000000802.jpg"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_moto(extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """moto's server on a free port of 127.0.0.1; waits (bounded) until it accepts connections."""
    port = _free_port()
    env = {**os.environ, **(extra_env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"moto server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    _stop(proc)
    pytest.fail("moto server did not start within 30 s")


def _stop(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def moto_url():
    proc, url = _start_moto()
    try:
        yield url
    finally:
        _stop(proc)


@pytest.fixture
def s3(moto_url: str, monkeypatch: pytest.MonkeyPatch):
    """The environment pointing at the moto server, a fresh bucket, and a boto3 client."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    client = boto3.client("s3")
    bucket = f"mm-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=bucket)
    return {"client": client, "bucket": bucket, "url": moto_url}


def _upload_photos(client, bucket: str) -> list[str]:
    """fixtures/images and three COCO photos under photos/; returns the keys of the images."""
    keys = []
    for path in sorted(FIXTURE_IMAGES.iterdir()):
        client.put_object(Bucket=bucket, Key=f"photos/{path.name}", Body=path.read_bytes())
        keys.append(f"photos/{path.name}")
    coco = shared_path("data/photos/coco")
    for name in COCO:
        client.put_object(Bucket=bucket, Key=f"photos/coco/{name}", Body=(coco / name).read_bytes())
        keys.append(f"photos/coco/{name}")
    client.put_object(Bucket=bucket, Key="photos/red.txt", Body=b"a bright red square")  # a sidecar
    client.put_object(Bucket=bucket, Key="photos/notes.md", Body=b"not an image")
    return keys


def _no_secret(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text and KEY_ID not in text, text[-2000:]


# ---------------------------------------------------------------- the library, end to end
def test_ingest_from_s3_into_s3_then_moves_deletes_and_changes(s3: dict, tiny_model: str) -> None:
    import mmembed

    client, bucket = s3["client"], s3["bucket"]
    keys = _upload_photos(client, bucket)
    idx = mmembed.Index(f"s3://{bucket}/mm", model=tiny_model, workers=2)
    report = idx.ingest(f"s3://{bucket}/photos")
    assert (report.added, report.skipped) == (len(keys), []), report
    assert report.rows == len(keys)
    rows = {row["path"]: row for row in idx.items()}
    assert set(rows) == {f"s3://{bucket}/{k}" for k in keys}
    red = rows[f"s3://{bucket}/photos/red.jpg"]
    assert (red["text"], red["text_source"]) == ("a bright red square", "sidecar")  # read from the bucket
    etags = {r["path"]: r["etag"] for r in idx.store.read_columns(["path", "etag"]).to_pylist()}
    head = client.head_object(Bucket=bucket, Key="photos/red.jpg")
    assert etags[red["path"]] == head["ETag"].strip('"')
    assert not Path("s3:").exists()  # no local folder was made from the URI

    # search: an image query finds itself; the table is only in the bucket
    hits = idx.search(image=(FIXTURE_IMAGES / "red.jpg").read_bytes(), limit=3, target="image")
    assert hits[0].path == red["path"] and hits[0].score > 0.99
    assert idx.search("a red square", limit=5)
    listed = client.list_objects_v2(Bucket=bucket, Prefix="mm/")
    assert any(o["Key"].endswith(".manifest") or "/_versions/" in o["Key"] for o in listed["Contents"])

    # move one, delete one, change two (one of them within LastModified's second: only the ETag tells)
    green_id = rows[f"s3://{bucket}/photos/green.png"]["id"]
    client.copy_object(Bucket=bucket, Key="photos/moved/green.png", CopySource={"Bucket": bucket, "Key": "photos/green.png"})
    client.delete_object(Bucket=bucket, Key="photos/green.png")
    client.delete_object(Bucket=bucket, Key="photos/yellow.bmp")
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 200, 30)).save(out, "WEBP")
    client.put_object(Bucket=bucket, Key="photos/blue.webp", Body=out.getvalue())
    ppm = (FIXTURE_IMAGES / "orange.ppm").read_bytes()
    flipped = ppm[:-300] + bytes(255 - b for b in ppm[-300:])  # same size, other pixels
    assert len(flipped) == len(ppm)
    client.put_object(Bucket=bucket, Key="photos/orange.ppm", Body=flipped)
    orange = rows[f"s3://{bucket}/photos/orange.ppm"]
    new_mtime = int(client.head_object(Bucket=bucket, Key="photos/orange.ppm")["LastModified"].timestamp() * 1e6) * 1000
    idx.store.update_columns({"id": [orange["id"]], "mtime_ns": [new_mtime]})  # as if rewritten in the same second
    client.put_object(Bucket=bucket, Key="photos/coco/000000000139.txt", Body=b"a living room")  # a new sidecar

    again = idx.ingest(f"s3://{bucket}/photos")
    assert (again.added, again.moved, again.removed, again.updated, again.text_updated, again.skipped) == \
        (0, 1, 1, 2, 1, []), again
    assert again.unchanged == len(keys) - 5
    rows = {row["path"]: row for row in idx.items()}
    assert len(rows) == len(keys) - 1 == again.rows
    assert rows[f"s3://{bucket}/photos/moved/green.png"]["id"] == green_id  # kept its vector by content hash
    assert f"s3://{bucket}/photos/yellow.bmp" not in rows
    assert rows[f"s3://{bucket}/photos/orange.ppm"]["content_hash"] != orange["content_hash"]
    assert rows[f"s3://{bucket}/photos/coco/000000000139.jpg"]["text"] == "a living room"

    third = idx.ingest(f"s3://{bucket}/photos")  # nothing changed: nothing read
    assert (third.unchanged, third.added, third.updated, third.moved, third.removed) == (len(keys) - 1, 0, 0, 0, 0)


def test_a_local_table_of_s3_objects_and_the_failure_memory(s3: dict, tiny_model: str, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Objects indexed into a local table, listed one key per request (pagination); a broken
    object is remembered, not read again."""
    import mmembed
    from mmembed.sources import remote

    monkeypatch.setattr(remote, "_PAGE_KEYS", 1)

    client, bucket = s3["client"], s3["bucket"]
    client.put_object(Bucket=bucket, Key="p/red.jpg", Body=(FIXTURE_IMAGES / "red.jpg").read_bytes())
    client.put_object(Bucket=bucket, Key="p/broken.jpg", Body=b"\xff\xd8\xff not really a jpeg")
    idx = mmembed.Index(str(tmp_path / "db"), model=tiny_model, workers=2)
    first = idx.ingest(f"s3://{bucket}/p/")
    assert first.added == 1 and [s.path for s in first.skipped] == [f"s3://{bucket}/p/broken.jpg"]
    second = idx.ingest(f"s3://{bucket}/p")
    assert second.unchanged == 1 and "unchanged since it failed" in second.skipped[0].reason
    single = idx.ingest(f"s3://{bucket}/p/red.jpg")  # one object as the root
    assert single.unchanged == 1 and single.rows == 1
    client.put_object(Bucket=bucket, Key="p/raw/IMG_1.JPG", Body=(FIXTURE_IMAGES / "red.jpg").read_bytes())
    client.put_object(Bucket=bucket, Key="p/raw/img_1.cr2", Body=b"raw sensor data, never read under the pair rule")
    paired = idx.ingest(f"s3://{bucket}/p")  # a RAW+JPEG pair in a bucket is one photo, as in a folder
    assert paired.added == 1 and len(paired.skipped) == 1  # the broken JPEG only: the RAW was not read
    (row,) = idx.items(where="path LIKE '%IMG_1.JPG'")
    assert row["raw_siblings"] == ["img_1.cr2"] and len(idx.items()) == 2


# ---------------------------------------------------------------- the real CLI and web app
def test_the_cli_and_the_web_app_on_a_table_in_s3(s3: dict, tiny_model: str) -> None:
    from test_serve import get, get_json, start_server, stop_server

    client, bucket = s3["client"], s3["bucket"]
    _upload_photos(client, bucket)
    db = f"s3://{bucket}/mm"
    done = run_cli("ingest", f"s3://{bucket}/photos", "--db", db, "--model", tiny_model, "-q", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["added"] == 20
    outputs = [done.stdout, done.stderr]
    found = run_cli("search", "a red square", "--db", db, "--json", "-n", "3")
    assert found.returncode == 0, found.stderr
    assert all(json.loads(line)["path"].startswith(f"s3://{bucket}/photos/") for line in found.stdout.splitlines())
    info = run_cli("info", "--db", db, "--json")
    assert info.returncode == 0 and json.loads(info.stdout)["rows"] == 20, info.stderr
    fused = run_cli("fusion", "apply", "--fusion", "concat", "-q", "--db", db)
    assert fused.returncode == 0, fused.stderr
    refreshed = run_cli("index", "--refresh", "--db", db)
    assert refreshed.returncode == 0, refreshed.stderr
    assert "keeps no local snapshot" in refreshed.stderr and "snapshot written" not in refreshed.stderr
    outputs += [found.stdout, found.stderr, info.stdout, info.stderr, fused.stdout, fused.stderr,
                refreshed.stdout, refreshed.stderr]

    proc, url, errors = start_server("--db", db)
    try:
        status, page = get_json(url + "api/search?q=red&n=5")
        assert status == 200 and page["hits"], page
        red = next(h for h in get_json(url + "api/items?n=50")[1]["items"] if h["path"].endswith("/red.jpg"))
        status, headers, body = get(url + f"files/{red['id']}")
        assert status == 200 and body == (FIXTURE_IMAGES / "red.jpg").read_bytes()
        status, headers, thumb = get(url + f"thumbs/{red['id']}")
        assert status == 200 and thumb[:2] == b"\xff\xd8"
    finally:
        assert stop_server(proc) == 0, "".join(errors)[-2000:]
    _no_secret(*outputs, "".join(errors))


def test_credentials_never_appear_in_errors(s3: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong endpoint, a missing bucket, bad credentials: one line that says what to check."""
    from concurrent.futures import ThreadPoolExecutor

    bucket = s3["bucket"]
    closed = f"http://127.0.0.1:{_free_port()}"
    strict, strict_url = _start_moto({"INITIAL_NO_AUTH_ACTION_COUNT": "0"})  # checks every signature
    cases = {
        "missing bucket, source": (["ingest", "s3://no-such-bucket-mm/photos", "--db", str(tmp_path / "db")], {}),
        "missing bucket, db": (["info", "--db", "s3://no-such-bucket-mm/mm"], {}),
        "wrong endpoint": (["info", "--db", f"s3://{bucket}/mm"], {"AWS_ENDPOINT_URL": closed}),
        "bad credentials, source": (["ingest", f"s3://{bucket}/photos", "--db", str(tmp_path / "db")],
                                    {"AWS_ENDPOINT_URL": strict_url}),
        "bad credentials, db": (["search", "red", "--db", f"s3://{bucket}/mm"], {"AWS_ENDPOINT_URL": strict_url}),
    }
    try:
        with ThreadPoolExecutor(3) as pool:  # the real CLI, three at a time
            futures = {case: pool.submit(run_cli, *args, env=env, timeout=120) for case, (args, env) in cases.items()}
            results = {case: future.result() for case, future in futures.items()}
    finally:
        _stop(strict)
    expect = {"missing bucket, source": "NoSuchBucket", "missing bucket, db": "NoSuchBucket",
              "wrong endpoint": "AWS_ENDPOINT_URL", "bad credentials, source": "InvalidAccessKeyId",
              "bad credentials, db": "InvalidAccessKeyId"}
    for case, done in results.items():
        assert done.returncode == 1, (case, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and expect[case] in lines[0], (case, done.stderr)
        _no_secret(done.stdout, done.stderr)
        assert strict_url not in done.stderr and closed not in done.stderr  # the endpoint stays in the env


def test_without_the_extra_ingest_names_it(s3: dict, tmp_path: Path) -> None:
    script = ("import sys; sys.modules['boto3'] = None; sys.argv = ['mmembed', 'ingest', 's3://some-bucket/photos', "
              f"'--db', {str(tmp_path / 'db')!r}]; from mmembed.cli import main; main()")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip() == ("Error: reading s3:// needs boto3; install the extra: pip install 'mmembed[s3]'"), done.stderr


def test_a_remote_table_without_credentials_or_with_a_bad_endpoint_is_one_clear_line(tmp_path: Path) -> None:
    """LanceDB's own errors for a table in s3:// (not boto3's) are turned into the same advice."""
    from conftest import mmembed_cmd

    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MMEMBED_"))}
    base.update(AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE=str(tmp_path / "none"),
                AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    cases = [
        ({"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, "no credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        ({"AWS_ENDPOINT_URL": "htp://127.0.0.1:9", "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET},
         "AWS_ENDPOINT_URL is not a valid URL"),
    ]
    for env, expected in cases:
        done = subprocess.run([*mmembed_cmd(), "info", "--db", "s3://bkt/mm"], capture_output=True, text=True,
                              env={**base, **env}, timeout=120)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1 and len(lines) == 1 and expected in lines[0], done.stderr[-1500:]
        _no_secret(done.stdout, done.stderr)
