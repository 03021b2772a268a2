"""Shared pytest fixtures.

S3: ``s3_endpoint`` starts one real moto S3 server (``python -m moto.server``)
on a free loopback port for the whole session and points boto3 at it through
environment variables; ``s3_bucket`` gives each test a fresh, empty bucket.
Code under test needs nothing special: any boto3 client (and pyarrow's S3
file system with ``endpoint_override``) created while these fixtures are
active talks to the moto server.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

_S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
_S3_ENV_CLEARED = ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL_S3")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    """URL of a moto S3 server (``http://127.0.0.1:<port>``) running for the session.

    Sets ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID=testing``,
    ``AWS_SECRET_ACCESS_KEY=testing`` and ``AWS_DEFAULT_REGION=us-east-1``
    (also ``AWS_REGION``) in ``os.environ`` for the rest of the session, so
    subprocesses and Ray workers started afterwards inherit them; clears
    profile/session-token variables that could redirect boto3. Restores the
    old environment and stops the server at session end.
    """
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    # The server logs every request to stderr: a file, not a pipe nobody reads -- once the pipe's
    # 64 KiB buffer filled (a few hundred requests: clip shards, ranged reads) the server blocked on
    # its next log line and every later S3 call timed out.
    log = tempfile.NamedTemporaryFile(prefix="moto-server-", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port), "-H", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None:
                err = Path(log.name).read_text(errors="replace")[-2000:]
                pytest.fail(f"moto server exited with {proc.returncode}: {err}")
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"moto server did not answer on {url} within 30 s")
            time.sleep(0.1)

    saved = {k: os.environ.get(k) for k in (*_S3_ENV, *_S3_ENV_CLEARED, "AWS_ENDPOINT_URL")}
    os.environ.update(_S3_ENV)
    os.environ["AWS_ENDPOINT_URL"] = url
    for k in _S3_ENV_CLEARED:
        os.environ.pop(k, None)
    try:
        yield url
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        os.unlink(log.name)


@pytest.fixture
def s3_bucket(s3_endpoint):
    """Name of a fresh, empty bucket on the moto server (``s3://<name>/...``)."""
    import boto3

    name = f"test-{uuid.uuid4().hex[:16]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name
