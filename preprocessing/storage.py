"""Byte storage behind one small interface: a local folder or an S3 prefix.

Shard jobs read raw datasets and write shards through :class:`Storage`, so the
same code runs against a laptop folder and an S3-compatible object store. A
Storage is built from a URI string (``/data/div2k``, ``file:///data/div2k`` or
``s3://bucket/prefix``) and is cheap to pickle: the boto3 client is created
lazily, in the process that first uses it, which is what Ray tasks need.

Keys are relative POSIX paths under the root (``DIV2K_train_HR/0001.png``).
S3 endpoint and credentials come from the usual environment variables
(``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3``, ``AWS_ACCESS_KEY_ID``, ...);
the region defaults to us-east-1 when none is set.

Retries. Object stores fail transiently (resets, 500/503 ``SlowDown``, cut-off bodies).
Every S3 client of restoray -- boto3 here, pyarrow in ``pipelines/fs.py`` -- makes at most
``RESTORAY_S3_MAX_ATTEMPTS`` attempts per request (default 8; botocore's "standard" mode:
exponential backoff with jitter, capped at 20 s). A body cut off while it is read (which
botocore does not retry itself) is re-fetched here within the same budget. When every
attempt fails to reach the endpoint, :class:`StorageError` names it in one line.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "s3_endpoint",
    "s3_region",
    "s3_max_attempts",
    "ObjectInfo",
    "Storage",
    "LocalStorage",
    "S3Storage",
    "StorageError",
    "open_storage",
    "normalize_uri",
]


def s3_endpoint() -> str | None:
    """The S3 endpoint every S3 client of restoray uses (boto3 here, pyarrow in ``pipelines/fs.py``).

    boto3's own rule: the S3-specific ``AWS_ENDPOINT_URL_S3`` wins over the global
    ``AWS_ENDPOINT_URL``; None means AWS itself.
    """
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def s3_max_attempts() -> int:
    """``RESTORAY_S3_MAX_ATTEMPTS`` (default 8): attempts per S3 request, first try included.

    One setting for boto3 and pyarrow alike; it travels to Ray workers with the job
    (``pipelines/cluster.py``).
    """
    raw = os.environ.get("RESTORAY_S3_MAX_ATTEMPTS", "8")
    try:
        value = int(raw)
    except ValueError:
        raise StorageError(f"RESTORAY_S3_MAX_ATTEMPTS={raw!r}: expected a whole number >= 1") from None
    if value < 1:
        raise StorageError(f"RESTORAY_S3_MAX_ATTEMPTS={raw!r}: expected a whole number >= 1")
    return value


def backoff_s(attempt: int) -> float:
    """Seconds to wait before retry ``attempt`` (1-based): full jitter, 0.1 s doubling, 20 s cap."""
    return random.uniform(0, min(20.0, 0.1 * 2 ** attempt))


def s3_region() -> str:
    """``AWS_REGION``, else ``AWS_DEFAULT_REGION``, else us-east-1 (custom endpoints ignore it)."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


class StorageError(ValueError):
    """A storage root cannot be used (missing folder, missing bucket, bad URI)."""


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object: relative key, size in bytes and a change fingerprint.

    The fingerprint is the S3 ETag, or ``<mtime_ns>-<size>`` for local files;
    it changes when the content is rewritten, which is all plan fingerprints need.
    """

    key: str
    size: int
    fingerprint: str


def _check_key(key: str) -> str:
    """Rejects keys that would escape the root or are not relative POSIX paths."""
    if not key or key.startswith("/") or "\\" in key:
        raise ValueError(f"bad storage key {key!r}: must be a relative posix path")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise ValueError(f"bad storage key {key!r}: empty, '.' or '..' component")
    return key


def _check_range(offset: int, size: int) -> None:
    if offset < 0 or size < 0:
        raise ValueError(f"bad byte range: offset {offset}, size {size} (both must be >= 0)")


def normalize_uri(uri: str) -> str:
    """Returns a URI that means the same thing in any process and working directory.

    Local paths become absolute (Ray workers change directory, so a relative
    path resolved inside a task would point somewhere else); ``file://`` is
    stripped; S3 URIs lose trailing slashes.
    """
    uri = str(uri)
    if uri.startswith("s3://"):
        return "s3://" + uri[len("s3://"):].rstrip("/")
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    if "://" in uri:
        raise StorageError(f"unsupported storage URI {uri!r}: use a local path or s3://bucket/prefix")
    return str(Path(uri).expanduser().absolute())


class Storage:
    """Interface shared by local and S3 storage. Construct with :func:`open_storage`."""

    root_uri: str

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        """All objects whose key starts with ``prefix`` (string prefix), recursive, sorted by key."""
        raise NotImplementedError

    def info(self, key: str) -> ObjectInfo | None:
        """The object's ObjectInfo, or None when it does not exist."""
        raise NotImplementedError

    def read_bytes(self, key: str) -> bytes:
        """The object's content; FileNotFoundError naming the URI when it is missing."""
        raise NotImplementedError

    def read_range(self, key: str, offset: int, size: int) -> bytes:
        """``size`` bytes of the object from byte ``offset`` (fewer only past its end).

        A local seek or one S3 ranged GET: readers take one tar member out of a shard
        without downloading the shard. FileNotFoundError naming the URI when it is missing.
        """
        raise NotImplementedError

    def write_fileobj(self, key: str, fileobj: BinaryIO) -> None:
        """Stores the rest of ``fileobj`` under ``key``, replacing any old object atomically."""
        raise NotImplementedError

    def write_bytes(self, key: str, data: bytes) -> None:
        """Stores ``data`` under ``key``, replacing any old object atomically."""
        self.write_fileobj(key, io.BytesIO(data))

    def exists(self, key: str) -> bool:
        return self.info(key) is not None

    def rename(self, src_key: str, dst_key: str) -> None:
        """Moves an object, replacing ``dst_key`` (atomic locally; copy+delete on S3)."""
        raise NotImplementedError

    def delete(self, key: str) -> None:
        """Removes an object; a missing object is not an error."""
        raise NotImplementedError

    def delete_prefix(self, prefix: str) -> int:
        """Removes every object under ``prefix``; returns how many were removed."""
        objects = self.list(prefix)
        for obj in objects:
            self.delete(obj.key)
        return len(objects)

    def uri(self, key: str = "") -> str:
        """The full URI of ``key`` (the root itself for an empty key)."""
        raise NotImplementedError

    def check(self, create: bool = False) -> "Storage":
        """Raises StorageError unless the root exists (``create`` makes a missing local root)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.root_uri!r})"


class LocalStorage(Storage):
    """A folder on a local (or network-mounted) file system."""

    def __init__(self, root: str):
        self.root_uri = normalize_uri(root)
        self.root = Path(self.root_uri)

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def uri(self, key: str = "") -> str:
        return str(self._path(key)) if key else self.root_uri

    def check(self, create: bool = False) -> "LocalStorage":
        if create:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(f"cannot create output folder {self.root_uri}: {exc.strerror}") from exc
        if not self.root.is_dir():
            raise StorageError(f"folder does not exist: {self.root_uri}")
        return self

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        # Walk only the deepest folder the prefix names, then filter by string prefix,
        # so "a/b" matches "a/b.png" and "a/bc/x.png" exactly like an S3 listing.
        base = self.root / prefix.rpartition("/")[0] if "/" in prefix else self.root
        out = []
        for dirpath, _dirnames, filenames in os.walk(base):
            for name in filenames:
                path = Path(dirpath, name)
                key = path.relative_to(self.root).as_posix()
                if not key.startswith(prefix):
                    continue
                try:
                    st = path.stat()
                except FileNotFoundError:  # removed while listing
                    continue
                out.append(ObjectInfo(key, st.st_size, f"{st.st_mtime_ns}-{st.st_size}"))
        out.sort(key=lambda o: o.key)
        return out

    def info(self, key: str) -> ObjectInfo | None:
        try:
            st = self._path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return ObjectInfo(key, st.st_size, f"{st.st_mtime_ns}-{st.st_size}")

    def read_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def read_range(self, key: str, offset: int, size: int) -> bytes:
        _check_range(offset, size)
        with open(self._path(key), "rb") as f:
            f.seek(offset)
            return f.read(size)

    def write_fileobj(self, key: str, fileobj: BinaryIO) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                shutil.copyfileobj(fileobj, f, 1 << 20)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def rename(self, src_key: str, dst_key: str) -> None:
        dst = self._path(dst_key)
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._path(src_key), dst)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> int:
        n = super().delete_prefix(prefix)
        # Drop folders the prefix named and that are now empty (e.g. "_tmp/").
        if prefix.endswith("/"):
            folder = self.root / prefix.rstrip("/")
            for dirpath, _dirs, _files in sorted(os.walk(folder), reverse=True):
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass
        return n


class _ShortBody(ConnectionError):
    """An S3 body that ended before its Content-Length."""


def _transient(exc: BaseException) -> bool:
    """True for failures a retry may cure: dropped connections, timeouts, cut-off bodies."""
    from botocore.exceptions import (ConnectionError as BotoConnectionError, HTTPClientError, IncompleteReadError,
                                     ReadTimeoutError, ResponseStreamingError)
    from urllib3.exceptions import HTTPError as Urllib3Error

    return isinstance(exc, (_ShortBody, BotoConnectionError, HTTPClientError, IncompleteReadError, ReadTimeoutError,
                            ResponseStreamingError, Urllib3Error, ConnectionError, TimeoutError))


def _server_failure(exc: BaseException) -> bool:
    """A 5xx/throttling answer that botocore's own retries did not get past."""
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return False
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return status >= 500 or exc.response.get("Error", {}).get("Code") in ("SlowDown", "Throttling", "RequestTimeout")


_S3_CLIENTS: dict[tuple, object] = {}
_S3_CLIENTS_LOCK = threading.Lock()
_CREDENTIAL_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")


def s3_client():
    """The process's boto3 S3 client for the current endpoint, region, retry budget and
    credentials, made once and shared.

    Why shared: making a client loads botocore's service models (~40 ms of CPU each time), and
    every ``read_object`` of a training read task, every ``S3Storage`` of a shard task made its
    own -- over S3 that cost more CPU per sample than decoding the image. boto3 clients are
    thread-safe once made; making one is not, hence the lock. Keyed by the process id too, so a
    forked child never reuses its parent's open connections.
    """
    endpoint, region, attempts = s3_endpoint(), s3_region(), s3_max_attempts()
    creds = hashlib.sha256("\0".join(os.environ.get(v, "") for v in _CREDENTIAL_VARS).encode()).hexdigest()
    key = (os.getpid(), endpoint, region, attempts, creds)
    with _S3_CLIENTS_LOCK:
        client = _S3_CLIENTS.get(key)
        if client is None:
            import boto3
            from botocore.config import Config

            config = Config(
                # total_: botocore's plain max_attempts counts retries only (one attempt more)
                retries={"total_max_attempts": attempts, "mode": "standard"},
                connect_timeout=10, read_timeout=60,
                # Custom endpoints (MinIO, moto, Ceph) rarely do virtual-host buckets.
                s3={"addressing_style": "path"} if endpoint else {},
            )
            client = _S3_CLIENTS[key] = boto3.session.Session().client(
                "s3", endpoint_url=endpoint, region_name=region, config=config)
        return client


class S3Storage(Storage):
    """A prefix in an S3-compatible bucket, accessed with boto3."""

    def __init__(self, uri: str):
        self.root_uri = normalize_uri(uri)
        rest = self.root_uri[len("s3://"):]
        self.bucket, _, prefix = rest.partition("/")
        if not self.bucket:
            raise StorageError(f"bad S3 URI {uri!r}: expected s3://bucket/prefix")
        prefix = prefix.strip("/")
        self.prefix = f"{prefix}/" if prefix else ""
        self._client = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_client"] = None  # boto3 clients do not pickle; rebuilt on first use
        return state

    @property
    def client(self):
        if self._client is None:
            self._client = s3_client()
        return self._client

    def _full(self, key: str) -> str:
        return self.prefix + _check_key(key)

    def uri(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{self._full(key)}" if key else self.root_uri

    def _error_code(self, exc) -> str:
        return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))

    def _unreachable(self, exc: BaseException, attempts: int | None = None) -> StorageError:
        """One line naming the endpoint a request kept failing against."""
        attempts = attempts or s3_max_attempts()
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        endpoint = s3_endpoint() or "AWS S3"
        return StorageError(f"S3 endpoint {endpoint} failed {attempts} attempt(s) (RESTORAY_S3_MAX_ATTEMPTS) "
                            f"for {self.root_uri}: {reason}")

    def _guard(self, call):
        """Runs ``call``; a connection or server failure left after the retries becomes StorageError."""
        try:
            return call()
        except StorageError:
            raise
        except Exception as exc:  # noqa: BLE001 - sorted below
            if _transient(exc) or _server_failure(exc):
                raise self._unreachable(exc) from exc
            raise

    def _raise_missing_bucket(self, exc) -> None:
        if self._error_code(exc) in ("NoSuchBucket", "404", "NotFound", "403", "AccessDenied"):
            what = "does not exist" if self._error_code(exc) in ("NoSuchBucket", "404", "NotFound") else "is not accessible"
            raise StorageError(f"bucket {what}: s3://{self.bucket} (for {self.root_uri})") from exc

    def check(self, create: bool = False) -> "S3Storage":
        return self._guard(self._check)

    def _check(self) -> "S3Storage":
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            self._raise_missing_bucket(exc)
            raise
        return self

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        return self._guard(lambda: self._list(prefix))

    def _list(self, prefix: str) -> list[ObjectInfo]:
        from botocore.exceptions import ClientError

        out = []
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for obj in page.get("Contents", []):
                    key = obj["Key"][len(self.prefix):]
                    if key and not key.endswith("/"):  # skip "folder" marker objects
                        out.append(ObjectInfo(key, int(obj["Size"]), obj["ETag"].strip('"')))
        except ClientError as exc:
            self._raise_missing_bucket(exc)
            raise
        out.sort(key=lambda o: o.key)
        return out

    def info(self, key: str) -> ObjectInfo | None:
        return self._guard(lambda: self._info(key))

    def _info(self, key: str) -> ObjectInfo | None:
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._full(key))
        except ClientError as exc:
            if self._error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            self._raise_missing_bucket(exc)
            raise
        return ObjectInfo(key, int(head["ContentLength"]), head["ETag"].strip('"'))

    def _get(self, key: str, **kwargs) -> bytes:
        """One GET, body included, retried when the body is cut off or the connection drops.

        botocore retries a request until its headers arrive; a body that ends early (a reset
        mid-transfer, a proxy cutting it) surfaces only in ``read()``. Both share one budget of
        :func:`s3_max_attempts` attempts.
        """
        from botocore.exceptions import ClientError

        attempts = s3_max_attempts()
        for attempt in range(1, attempts + 1):
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=self._full(key), **kwargs)
                body = response["Body"].read()
                if len(body) != int(response.get("ContentLength", len(body))):
                    raise _ShortBody(f"{len(body)} of {response['ContentLength']} bytes")
                return body
            except ClientError as exc:
                if self._error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                    raise FileNotFoundError(f"no such object: {self.uri(key)}") from exc
                if self._error_code(exc) == "InvalidRange":  # offset at or past the end
                    return b""
                self._raise_missing_bucket(exc)
                raise
            except Exception as exc:  # noqa: BLE001 - sorted by _transient
                if not _transient(exc):
                    raise
                if attempt == attempts:
                    raise self._unreachable(exc, attempts) from exc
                time.sleep(backoff_s(attempt))
        raise AssertionError("unreachable")

    def read_bytes(self, key: str) -> bytes:
        return self._guard(lambda: self._get(key))

    def read_range(self, key: str, offset: int, size: int) -> bytes:
        _check_range(offset, size)
        if size == 0:
            return b""
        return self._guard(lambda: self._get(key, Range=f"bytes={offset}-{offset + size - 1}"))

    def write_fileobj(self, key: str, fileobj: BinaryIO) -> None:
        # upload_fileobj switches to multipart for large shards; S3 PUTs are atomic.
        self._guard(lambda: self.client.upload_fileobj(fileobj, self.bucket, self._full(key)))

    def rename(self, src_key: str, dst_key: str) -> None:
        # Managed copy handles objects over 5 GB; the delete comes only after the copy succeeded.
        self._guard(lambda: self.client.copy({"Bucket": self.bucket, "Key": self._full(src_key)}, self.bucket,
                                             self._full(dst_key)))
        self.delete(src_key)

    def delete(self, key: str) -> None:
        self._guard(lambda: self.client.delete_object(Bucket=self.bucket, Key=self._full(key)))


def open_storage(uri: str, create: bool = False) -> Storage:
    """Opens a storage root and checks that it exists.

    Args:
        uri: local path, ``file://`` path or ``s3://bucket/prefix``.
        create: make a missing local folder (for outputs). S3 buckets are never
            created: a missing bucket is a deployment error, not something to paper over.

    Raises:
        StorageError: the folder or bucket does not exist (message names the URI).
    """
    uri = normalize_uri(uri)
    storage: Storage = S3Storage(uri) if uri.startswith("s3://") else LocalStorage(uri)
    return storage.check(create=create)
