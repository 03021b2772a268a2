"""S3 storage through a misbehaving network (issue 14, fault 4), without Ray.

A fault proxy (``tests/fault_proxy.py``) sits in front of the session's moto server: resets,
500/503/SlowDown answers, bodies cut off mid-way, added latency. Storage reads and writes must
come through with the same bytes; a gone endpoint must end in one line naming it, after a
bounded number of attempts (``RESTORAY_S3_MAX_ATTEMPTS``).
"""

from __future__ import annotations

import hashlib
import os
import time

import numpy as np
import pyarrow.fs as pafs
import pytest

from fault_proxy import FaultProxy
from preprocessing.storage import StorageError, open_storage, s3_max_attempts


@pytest.fixture
def via_proxy(s3_endpoint, monkeypatch):
    """A started fault proxy in front of moto; boto3/pyarrow clients made now go through it."""
    def start(**kwargs) -> FaultProxy:
        proxy = FaultProxy(s3_endpoint, **kwargs).__enter__()
        started.append(proxy)
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        return proxy

    started: list[FaultProxy] = []
    yield start
    for proxy in started:
        proxy.__exit__(None, None, None)


def test_reads_and_writes_come_through_faults_with_the_same_bytes(s3_bucket, via_proxy):
    proxy = via_proxy(fraction=0.3, seed=1, latency_s=0.002)
    storage = open_storage(f"s3://{s3_bucket}/data")
    blobs = {f"obj{i}.bin": np.random.default_rng(i).bytes(50_000 + 997 * i) for i in range(20)}
    for key, data in blobs.items():
        storage.write_bytes(key, data)
    storage.rename("obj0.bin", "moved/obj0.bin")
    listed = {o.key: o.size for o in storage.list()}
    assert listed == {("moved/obj0.bin" if k == "obj0.bin" else k): len(v) for k, v in blobs.items()}
    for key, data in blobs.items():
        key = "moved/obj0.bin" if key == "obj0.bin" else key
        assert hashlib.sha256(storage.read_bytes(key)).digest() == hashlib.sha256(data).digest()
        assert storage.read_range(key, 1000, 3000) == data[1000:4000]
    # the faults really happened, of every kind
    assert proxy.counts["requests"] > 40
    for kind in ("reset_before", "reset_after", "status_500", "status_503", "slow_down", "truncate"):
        assert proxy.counts[kind] > 0, dict(proxy.counts)


def test_endpoint_down_for_good_stops_in_bounded_time_with_one_line(s3_bucket, via_proxy, monkeypatch):
    proxy = via_proxy()
    monkeypatch.setenv("RESTORAY_S3_MAX_ATTEMPTS", "3")
    assert s3_max_attempts() == 3
    proxy.down = True
    t0 = time.monotonic()
    with pytest.raises(StorageError) as info:
        open_storage(f"s3://{s3_bucket}/shards")
    message = str(info.value)
    assert "\n" not in message and proxy.url in message and "3 attempt" in message
    assert f"s3://{s3_bucket}/shards" in message
    assert time.monotonic() - t0 < 30  # bounded: 3 attempts, short backoff


def test_max_attempts_setting_is_checked(monkeypatch):
    monkeypatch.setenv("RESTORAY_S3_MAX_ATTEMPTS", "zero")
    with pytest.raises(StorageError, match="RESTORAY_S3_MAX_ATTEMPTS='zero'"):
        s3_max_attempts()
    monkeypatch.setenv("RESTORAY_S3_MAX_ATTEMPTS", "5")
    from pipelines.fs import s3_filesystem

    assert s3_max_attempts() == 5 and isinstance(s3_filesystem(), pafs.S3FileSystem)


def test_pickled_pyarrow_filesystem_keeps_its_retry_budget(s3_bucket, via_proxy, monkeypatch):
    """Ray Train ships the checkpoint filesystem to its workers pickled; pyarrow's own pickle
    drops ``retry_strategy`` (3 attempts there). restoray's keeps RESTORAY_S3_MAX_ATTEMPTS."""
    import pickle

    from pipelines.fs import s3_filesystem

    proxy = via_proxy(fraction=1.0, faults=("status_503",))
    monkeypatch.setenv("RESTORAY_S3_MAX_ATTEMPTS", "5")
    shipped = pickle.loads(pickle.dumps(s3_filesystem()))
    before = proxy.counts["requests"]
    with pytest.raises(OSError):
        shipped.open_input_stream(f"{s3_bucket}/missing/object").read()
    assert proxy.counts["requests"] - before == 5
