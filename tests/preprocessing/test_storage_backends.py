"""Storage on a local folder and on a real moto S3 server; full S3 -> S3 shard round trip."""

import json
import pickle

import boto3
import pytest
import webdataset as wds
from prep_helpers import make_div2k, png_bytes, rgb, write

from preprocessing.schema import decode_image
from preprocessing.shards import ManifestNotFound, read_manifest
from shard_helpers import shard_dataset
from preprocessing.storage import StorageError, open_storage


def exercise(st):
    """The same contract checks for every backend."""
    st.write_bytes("b/two.bin", b"22")
    st.write_bytes("a.txt", b"1")
    st.write_bytes("b/c/three", b"333")
    st.write_bytes("bc/four", b"4444")
    assert [o.key for o in st.list()] == ["a.txt", "b/c/three", "b/two.bin", "bc/four"]
    assert [o.key for o in st.list("b/")] == ["b/c/three", "b/two.bin"]
    assert [o.key for o in st.list("b")] == ["b/c/three", "b/two.bin", "bc/four"]
    assert [(o.size, bool(o.fingerprint)) for o in st.list("b/c")] == [(3, True)]
    assert st.read_bytes("b/two.bin") == b"22" and st.exists("a.txt") and not st.exists("zzz")
    fp = st.info("a.txt").fingerprint
    st.write_bytes("a.txt", b"changed")
    assert st.read_bytes("a.txt") == b"changed" and st.info("a.txt").fingerprint != fp
    st.rename("b/two.bin", "moved/two.bin")
    assert not st.exists("b/two.bin") and st.read_bytes("moved/two.bin") == b"22"
    st.delete("a.txt")
    st.delete("a.txt")  # idempotent
    assert not st.exists("a.txt")
    with pytest.raises(FileNotFoundError):
        st.read_bytes("nope")
    with pytest.raises(ValueError):
        st.read_bytes("../escape")
    assert st.delete_prefix("b/") == 1 and [o.key for o in st.list()] == ["bc/four", "moved/two.bin"]
    clone = pickle.loads(pickle.dumps(st))
    assert clone.read_bytes("bc/four") == b"4444"


def test_local_storage(tmp_path):
    with pytest.raises(StorageError, match=str(tmp_path / "missing")):
        open_storage(str(tmp_path / "missing"))
    st = open_storage(str(tmp_path / "root"), create=True)
    exercise(st)
    assert st.uri("x/y.png") == str(tmp_path / "root/x/y.png")
    assert open_storage(f"file://{tmp_path}/root").list("bc/")[0].key == "bc/four"


def test_s3_storage(s3_bucket):
    st = open_storage(f"s3://{s3_bucket}/some/prefix/")
    assert st.uri("k/v.png") == f"s3://{s3_bucket}/some/prefix/k/v.png"
    exercise(st)
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert all(k.startswith("some/prefix/") for k in keys)


def test_s3_missing_bucket_is_one_line_error(s3_endpoint):
    with pytest.raises(StorageError, match="bucket does not exist: s3://no-such-bucket") as exc:
        open_storage("s3://no-such-bucket/data")
    assert "\n" not in str(exc.value)


def upload_tree(local_root, bucket, prefix):
    s3 = boto3.client("s3")
    for path in sorted(local_root.rglob("*")):
        if path.is_file():
            s3.put_object(Bucket=bucket, Key=f"{prefix}/{path.relative_to(local_root).as_posix()}",
                          Body=path.read_bytes())


def test_s3_round_trip_div2k(tmp_path, s3_bucket, monkeypatch):
    gts = make_div2k(tmp_path / "raw", stems=("0001", "0002", "0003"), hw=(48, 40), scale=2)
    write(tmp_path / "raw/DIV2K_train_HR/0004.png", b"\x89PNG truncated")
    write(tmp_path / "raw/DIV2K_train_LR_bicubic/X2/0004x2.png", png_bytes(rgb(24, 20)))
    upload_tree(tmp_path / "raw", s3_bucket, "raw/div2k")
    src, dest = f"s3://{s3_bucket}/raw/div2k", f"s3://{s3_bucket}/shards/div2k/train"
    params = {"scale": 2, "crop_size": 32, "step": 16}

    with pytest.raises(ManifestNotFound, match=f"no manifest.json at {dest}"):
        read_manifest(dest)
    manifest = shard_dataset(src, dest, "div2k", params, items_per_shard=2)
    assert read_manifest(dest) == manifest
    assert manifest["source"] == src and manifest["quarantined"] == 1
    assert [s["name"] for s in manifest["shards"]] == ["shard-000000.tar", "shard-000001.tar"]

    st = open_storage(dest)
    assert [o.key for o in st.list()] == ["_parts/shard-000000.json", "_parts/shard-000001.json",
                                          "_versions/manifest-v000001.json", "manifest.json",
                                          "quarantine.json", "shard-000000.tar", "shard-000001.tar"]
    q = json.loads(st.read_bytes("quarantine.json"))
    assert q["quarantined"][0]["uri"] == f"{src}/DIV2K_train_HR/0004.png"
    keys = []
    for sh in manifest["shards"]:
        local = tmp_path / sh["name"]
        local.write_bytes(st.read_bytes(sh["name"]))
        for s in wds.WebDataset(str(local), shardshuffle=False):
            meta = json.loads(s["json"])
            y, x, h, w = meta["box"]
            assert (decode_image(s["gt.png"]) == gts[s["__key__"][:4]][y:y + h, x:x + w]).all()
            assert decode_image(s["lq.png"]).shape == (h // 2, w // 2, 3)
            keys.append(s["__key__"])
    assert len(keys) == manifest["num_samples"] == 3 * 4 and len(set(keys)) == len(keys)

    # Re-run against S3: every shard is reused (nothing is decoded) and the manifest is rewritten.
    import preprocessing.shards as shards

    monkeypatch.setattr(shards, "load_image_with_notes", lambda *a: pytest.fail("decoded on re-run"))
    again = shard_dataset(src, dest, "div2k", params, items_per_shard=2)
    assert again["shards"] == manifest["shards"]


def test_s3_client_is_made_once_per_endpoint_and_setting(s3_bucket, monkeypatch):
    """Every S3Storage and read_object of a process share one boto3 client per endpoint, retry
    budget and credentials (making one costs ~40 ms of CPU: per shard read it cost more than
    decoding the images); a changed setting gets a client of its own."""
    from pipelines.fs import read_object

    a, b = open_storage(f"s3://{s3_bucket}/x"), open_storage(f"s3://{s3_bucket}/y")
    a.write_bytes("k", b"v")
    assert a.client is b.client and read_object(f"s3://{s3_bucket}/x/k") == b"v"
    assert pickle.loads(pickle.dumps(a)).client is a.client
    monkeypatch.setenv("RESTORAY_S3_MAX_ATTEMPTS", "2")
    c = open_storage(f"s3://{s3_bucket}/x")
    assert c.client is not a.client and c.client.meta.config.retries["total_max_attempts"] == 2
    assert c.read_bytes("k") == b"v"
