"""pyarrow filesystems for local paths and ``s3://`` URIs (any S3-compatible endpoint).

Ray Data and the shard readers stream through pyarrow. Endpoint and region come from
``preprocessing.storage`` (``AWS_ENDPOINT_URL_S3`` over ``AWS_ENDPOINT_URL``, as boto3 reads
them), so pyarrow and boto3 always talk to the same server, AWS, MinIO, Ceph or a moto server
on loopback. Both make at most ``RESTORAY_S3_MAX_ATTEMPTS`` attempts per request
(``preprocessing.storage.s3_max_attempts``). pyarrow does not pickle its retry strategy: a
plain filesystem shipped to a Ray worker (Ray Train's checkpoint storage) falls back to pyarrow's
own default (3 attempts) there; :class:`RetryingS3FileSystem` pickles it along.
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

import pyarrow.fs as pafs

from preprocessing.storage import S3Storage, s3_endpoint, s3_max_attempts, s3_region


class RetryingS3FileSystem(pafs.S3FileSystem):
    """``pyarrow.fs.S3FileSystem`` whose pickle keeps its retry budget: pyarrow's own reduces to
    the constructor options without ``retry_strategy``, so Ray Train's checkpoint uploads in the
    workers would make 3 attempts whatever ``RESTORAY_S3_MAX_ATTEMPTS`` says."""

    def __init__(self, max_attempts: int, **kwargs):
        super().__init__(retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=max_attempts), **kwargs)
        self.max_attempts, self._kwargs = max_attempts, kwargs

    def __reduce__(self):
        return (_rebuild_s3_filesystem, (self.max_attempts, self._kwargs))


def _rebuild_s3_filesystem(max_attempts: int, kwargs: dict) -> RetryingS3FileSystem:
    return RetryingS3FileSystem(max_attempts, **kwargs)


def s3_filesystem() -> RetryingS3FileSystem:
    endpoint = s3_endpoint()
    kwargs = {"region": s3_region(), "connect_timeout": 10.0, "request_timeout": 60.0}
    if endpoint:
        parsed = urlparse(endpoint)
        kwargs["endpoint_override"] = parsed.netloc or parsed.path
        kwargs["scheme"] = parsed.scheme or "https"
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        kwargs["access_key"] = os.environ["AWS_ACCESS_KEY_ID"]
        kwargs["secret_key"] = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
        if os.environ.get("AWS_SESSION_TOKEN"):
            kwargs["session_token"] = os.environ["AWS_SESSION_TOKEN"]
    return RetryingS3FileSystem(s3_max_attempts(), **kwargs)


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a local path or ``s3://bucket/key``."""
    if uri.startswith("s3://"):
        return s3_filesystem(), uri[len("s3://"):].rstrip("/")
    return pafs.LocalFileSystem(), os.path.abspath(uri)


def join(uri: str, name: str) -> str:
    return uri.rstrip("/") + "/" + name


def read_object(uri: str) -> bytes:
    """A whole object's bytes: a local file, or an S3 object through boto3 (``S3Storage``: a body
    cut off mid-transfer is fetched again, within ``RESTORAY_S3_MAX_ATTEMPTS``)."""
    if uri.startswith("s3://"):
        root, _, name = uri.rpartition("/")
        return S3Storage(root).read_bytes(name)
    with open(os.path.abspath(uri), "rb") as f:
        return f.read()
