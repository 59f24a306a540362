"""Object storage (S3 and S3-compatible servers): listing and reading ``s3://bucket/key`` objects,
the LanceDB storage options for a table kept there, and scrubbing secrets from messages.

The endpoint and credentials come from the environment only: the standard ``AWS_*`` variables
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION`` or
``AWS_DEFAULT_REGION``, ``AWS_PROFILE``) and ``AWS_ENDPOINT_URL`` for an S3-compatible server
(MinIO, moto, Ceph...). They are never stored in a table, and ``scrub`` takes them out of
every message mmembed shows.

Listing walks the bucket like a folder tree (``Delimiter='/'``, paginated): one "folder" of
keys is in memory at a time, which is what finding an image's caption sidecars needs, so a
bucket of millions of keys is listed with flat memory. An object is a ``DiscoveredFile`` whose
``mtime_ns`` is its LastModified time and whose ``etag`` is its ETag. Reading needs boto3
(``pip install 'mmembed[s3]'``); a table in object storage needs only LanceDB.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

__all__ = [
    "is_remote", "split_uri", "list_objects", "check_root", "read_and_hash", "read_bytes", "exists", "storage_options", "scrub",
    "short_reason", "S3_EXTRA", "RemoteObject",
]

S3_EXTRA = "pip install 'mmembed[s3]'"
_SECRET_VARS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_ENDPOINT_URL",
                "AWS_ENDPOINT_URL_S3")
_CHUNK = 1 << 20
_PAGE_KEYS = 1000  # keys per listing request (S3's maximum)
_client_lock = threading.Lock()
_clients: dict[tuple[str | None, ...], Any] = {}


def is_remote(path: str | os.PathLike[str]) -> bool:
    """True for an ``s3://`` URI."""
    return isinstance(path, str) and path.startswith("s3://")


def split_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` -> ('bucket', 'some/key'); ConfigError without a bucket."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise ConfigError(f"{uri}: no bucket named; use s3://BUCKET/PREFIX")
    return bucket, key


# ------------------------------------------------------------------ secrets out of messages
def scrub(text: str) -> str:
    """``text`` with the values of the AWS secret variables (and the endpoint) replaced by their
    names: every message mmembed shows about object storage goes through here."""
    for name in _SECRET_VARS:
        value = os.environ.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, f"<{name}>")
    return text


_CODE = re.compile(r"<Code>([A-Za-z]+)</Code>")
_ADVICE = {
    "NoSuchBucket": "the bucket does not exist; check the s3:// URI (and AWS_ENDPOINT_URL)",
    "InvalidAccessKeyId": "the access key is not known to the server; check AWS_ACCESS_KEY_ID",
    "SignatureDoesNotMatch": "the request signature was refused; check AWS_SECRET_ACCESS_KEY",
    "AccessDenied": "access denied; check the credentials' permissions on this bucket",
    "InvalidBucketName": "the bucket name is not valid",
    "ExpiredToken": "the session token expired; renew AWS_SESSION_TOKEN",
    "NoSuchKey": "the object does not exist",
}


def short_reason(exc: BaseException | str) -> str:
    """One short, scrubbed line for an object-storage failure (from boto3 or LanceDB's store):
    the S3 error code with what to check, else the connection problem, else the scrubbed text."""
    text = exc if isinstance(exc, str) else str(exc)
    code = _CODE.search(text)
    if code is None:
        code = re.search(r"\(([A-Za-z]+)\) when calling", text)  # botocore's ClientError
    if code is not None:
        return f"{code.group(1)}: {_ADVICE.get(code.group(1), 'the server refused the request')}"
    lowered = text.lower()
    if "connection refused" in lowered or "could not connect" in lowered or "connecterror" in lowered \
            or "dns error" in lowered or "connect error" in lowered:
        return "cannot connect to the S3 endpoint; check AWS_ENDPOINT_URL (or the network)"
    if ("credentials" in lowered and ("unable to locate" in lowered or "no credentials" in lowered)) \
            or "failedtoloadtoken" in lowered or "failed to load credentials" in lowered \
            or "failed to get aws credentials" in lowered or "credentialsnotloaded" in lowered:
        return "no credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
    if "not a valid uri" in lowered or "relative url without a base" in lowered or "invalid uri" in lowered \
            or "badscheme" in lowered:
        return "AWS_ENDPOINT_URL is not a valid URL; give e.g. http://127.0.0.1:9000"
    return scrub(" ".join(text.split()))[:300]


# ------------------------------------------------------------------ LanceDB on object storage
def storage_options() -> dict[str, str]:
    """LanceDB ``storage_options`` for an ``s3://`` table, from the environment only."""
    env = os.environ
    options: dict[str, str] = {}
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        options["aws_endpoint"] = endpoint
        if endpoint.startswith("http://"):
            options["allow_http"] = "true"
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        options["aws_region"] = region
    for var, key in (("AWS_ACCESS_KEY_ID", "aws_access_key_id"), ("AWS_SECRET_ACCESS_KEY", "aws_secret_access_key"),
                     ("AWS_SESSION_TOKEN", "aws_session_token")):
        if env.get(var):
            options[key] = env[var]
    return options


# ------------------------------------------------------------------ the boto3 client
def _client() -> Any:
    """A boto3 S3 client configured from the environment (boto3 reads ``AWS_*`` and
    ``AWS_ENDPOINT_URL`` itself), one per distinct environment; boto3 clients are thread-safe."""
    key = tuple(os.environ.get(name) for name in (*_SECRET_VARS, "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"))
    with _client_lock:
        found = _clients.get(key)
        if found is not None:
            return found
        try:
            import boto3
            from botocore.config import Config as BotoConfig
        except ImportError:
            raise ConfigError(f"reading s3:// needs boto3; install the extra: {S3_EXTRA}") from None
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        config = BotoConfig(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10, read_timeout=60,
                            max_pool_connections=32)
        try:
            client = boto3.session.Session().client("s3", region_name=region, config=config)
        except Exception as exc:  # noqa: BLE001 - a bad endpoint URL or profile
            raise ConfigError(f"cannot set up the S3 client: {short_reason(exc)}") from None
        _clients.clear()  # only the current environment's client is kept
        _clients[key] = client
        return client


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _as_os_error(exc: BaseException, path: str) -> OSError:
    """A boto3 failure as the OSError a local read would raise (so callers handle both alike)."""
    code = _error_code(exc)
    if code in ("NoSuchKey", "404", "NotFound"):
        return FileNotFoundError(2, "no such object", path)
    if code in ("AccessDenied", "403"):
        return PermissionError(13, "access denied", path)
    return OSError(5, short_reason(exc), path)


# ------------------------------------------------------------------ listing
@dataclass(frozen=True)
class RemoteObject:
    """One listed object: what discovery needs to make a ``DiscoveredFile`` of it."""

    path: str  # s3://bucket/key
    size: int
    mtime_ns: int  # LastModified
    root: str
    name: str  # the last part of the key
    folder_names: frozenset[str]  # the names of the objects in its folder (for its sidecars)
    etag: str | None

def list_objects(root: str, keep: Callable[[str, str, bool], bool]) -> Iterator[RemoteObject]:
    """Every object under ``root`` (a prefix, or one object's URI) that ``keep(rel, name,
    is_folder)`` accepts, folder by folder: a folder's objects sorted by name, then its
    subfolders (``rel`` is lower-cased and relative to ``root``; a rejected folder is not
    entered). ConfigError when nothing at all is there, or the listing fails."""
    bucket, key = split_uri(root)
    client = _client()
    root = f"s3://{bucket}/{key}".rstrip("/") if key else f"s3://{bucket}"
    if key and not key.endswith("/"):
        one = _head(client, bucket, key, root)
        if one is not None:  # one object: its folder is listed only to find its sidecars
            folder, _, name = key.rpartition("/")
            names = frozenset(n for n, _ in _folder(client, bucket, f"{folder}/" if folder else "", root)[0])
            if keep(name.lower(), name.lower(), False):
                yield RemoteObject(root, int(one["ContentLength"]), _ns(one["LastModified"]), root.rpartition("/")[0],
                                   name, names, _etag(one.get("ETag")))
            return
    prefix = f"{key.rstrip('/')}/" if key else ""
    stack = [prefix]
    found_any = False
    while stack:
        folder = stack.pop()
        objects, subfolders = _folder(client, bucket, folder, root)
        found_any = found_any or bool(objects or subfolders)
        names = frozenset(name for name, _ in objects)
        for name, obj in objects:
            if keep((folder[len(prefix):] + name).lower(), name.lower(), False):
                yield RemoteObject(f"s3://{bucket}/{folder}{name}", int(obj["Size"]), _ns(obj["LastModified"]), root,
                                   name, names, _etag(obj.get("ETag")))
        kept = [sub for sub in subfolders
                if keep(sub[len(prefix):].rstrip("/").lower(), sub.rstrip("/").rpartition("/")[2].lower(), True)]
        stack.extend(reversed(kept))
    if not found_any:
        raise ConfigError(f"{root}: no objects under this prefix; check the path")


def check_root(root: str) -> None:
    """Fail early, with ConfigError, when ``root`` cannot be listed or holds no object (before
    a table is created or a model loaded)."""
    bucket, key = split_uri(root)
    try:
        found = _client().list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(f"{root}: cannot list objects: {short_reason(exc)}") from None
    if not found.get("KeyCount"):
        raise ConfigError(f"{root}: no objects under this prefix; check the path")


def _folder(client: Any, bucket: str, prefix: str, root: str) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    """The objects (name, listing entry) and subfolder prefixes of one folder, sorted, every page."""
    objects: list[tuple[str, dict[str, Any]]] = []
    subfolders: list[str] = []
    try:
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix, Delimiter="/", PaginationConfig={"PageSize": _PAGE_KEYS})
        for page in pages:
            for obj in page.get("Contents", ()):
                name = obj["Key"][len(prefix):]
                if name:  # the folder's own marker object ('photos/') is no file
                    objects.append((name, obj))
            subfolders.extend(p["Prefix"] for p in page.get("CommonPrefixes", ()))
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - botocore raises many types
        raise ConfigError(f"{root}: cannot list objects: {short_reason(exc)}") from None
    objects.sort(key=lambda item: item[0])
    subfolders.sort()
    return objects, subfolders


def _head(client: Any, bucket: str, key: str, root: str) -> dict[str, Any] | None:
    try:
        return client.head_object(Bucket=bucket, Key=key)
    except Exception as exc:  # noqa: BLE001
        if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise ConfigError(f"{root}: cannot read object: {short_reason(exc)}") from None


def _ns(when: Any) -> int:
    """LastModified (a datetime) in ns since the epoch."""
    return int(round(when.timestamp() * 1e6)) * 1000


def _etag(raw: str | None) -> str | None:
    return raw.strip('"') if raw else None


# ------------------------------------------------------------------ reading
def read_and_hash(path: str, keep: bool, keep_limit: int, read_chunk: int = _CHUNK) -> tuple[str, bytes | None]:
    """The object's blake2b-128 content hash (as for a local file), streamed, and its bytes when
    ``keep`` and the object is at most ``keep_limit`` bytes. Raises OSError like a local read."""
    bucket, key = split_uri(path)
    digest = hashlib.blake2b(digest_size=16)
    try:
        response = _client().get_object(Bucket=bucket, Key=key)
        body = response["Body"]
        if keep and int(response.get("ContentLength", keep_limit + 1)) <= keep_limit:
            data = body.read()
            digest.update(data)
            return digest.hexdigest(), data
        for chunk in body.iter_chunks(read_chunk):
            digest.update(chunk)
    except ConfigError:
        raise
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise _as_os_error(exc, path) from None
    return digest.hexdigest(), None


def read_bytes(path: str, limit: int | None = None) -> bytes:
    """The object's bytes (at most ``limit + 1`` of them when ``limit`` is given); OSError as a
    local read would raise."""
    bucket, key = split_uri(path)
    try:
        extra = {"Range": f"bytes=0-{limit}"} if limit is not None else {}
        return _client().get_object(Bucket=bucket, Key=key, **extra)["Body"].read()
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise _as_os_error(exc, path) from None


def exists(path: str) -> bool | None:
    """True or False when the server says so; None when it cannot be known (no access, no network)."""
    bucket, key = split_uri(path)
    try:
        _client().head_object(Bucket=bucket, Key=key)
        return True
    except ConfigError:
        return None
    except Exception as exc:  # noqa: BLE001
        return False if _error_code(exc) in ("404", "NoSuchKey", "NotFound") else None
