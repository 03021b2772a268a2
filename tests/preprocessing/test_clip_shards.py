"""Clip shards: quarantine per clip, readable by tar and webdataset, local and on S3 (moto)."""

from __future__ import annotations

import json
import subprocess

import boto3
import numpy as np
import pytest
import webdataset as wds
from prep_helpers import png_bytes, rgb, write
from shard_helpers import shard_dataset
from video_helpers import make_mp4, make_reds, write_clip

from preprocessing.schema import decode_image, decode_json, frame_member, parse_frame_member
from preprocessing.shard_index import ShardSet
from preprocessing.shards import read_manifest
from preprocessing.storage import open_storage


def _quarantine(dest) -> dict[str, dict]:
    return {e["item_id"]: e for e in json.loads((dest / "quarantine.json").read_text())["quarantined"]}


def test_bad_clips_are_quarantined_whole_naming_the_frame(tmp_path):
    raw = tmp_path / "raw"
    make_reds(raw, train=("001", "002", "003", "004", "005", "006"), val=(), n=4)
    (raw / "train_sharp/002/00000002.png").unlink()  # gap in the numbering
    (raw / "train_sharp_bicubic/X4/002/00000002.png").unlink()
    write(raw / "train_sharp/003/00000001.png", png_bytes(rgb(40, 48)))  # a frame of another size
    data = (raw / "train_sharp/004/00000003.png").read_bytes()
    write(raw / "train_sharp/004/00000003.png", data[: len(data) // 2])  # truncated PNG
    (raw / "train_sharp_bicubic/X4/005/00000003.png").unlink()  # last LQ frame missing
    write(raw / "train_sharp_bicubic/X4/006/00000000.png", png_bytes(rgb(9, 12)))  # LQ not GT/4
    dest = tmp_path / "shards"
    manifest = shard_dataset(str(raw), str(dest), "reds", {"split": "train"}, items_per_shard=3)

    q = _quarantine(dest)
    assert sorted(q) == ["002", "003", "004", "005", "006"] and manifest["quarantined"] == 5
    assert q["002"]["reason"] == "gt frame 00000002 missing: numbering jumps from 00000001.png to 00000003.png"
    assert q["003"]["reason"] == ("gt frame 00000001.png (index 1) is 40x48, frame 00000000.png is 32x48: "
                                  "frame sizes differ within the clip")
    assert q["004"]["reason"].startswith("gt frame 00000003.png (index 3): truncated PNG")
    assert q["004"]["uri"] == str(raw / "train_sharp/004/00000003.png")
    assert "lq frames do not match gt frames (3 vs 4; unmatched: 00000003)" == q["005"]["reason"]
    assert q["006"]["reason"] == "lq frame 00000000.png is 9x12, x4 != gt frame 00000000.png 32x48"
    assert all("\n" not in e["reason"] for e in q.values())
    # Nothing of a quarantined clip reaches a shard; the good clip is whole.
    names = [n for s in manifest["shards"] for n in _tar_names(dest / s["name"])]
    assert {n.split(".")[0] for n in names} == {"001"} and len(names) == 4 * 2 + 1
    assert manifest["item_ids"] == ["001", "002", "003", "004", "005", "006"]


def _tar_names(path) -> list[str]:
    """Member names as GNU tar lists them."""
    out = subprocess.run(["tar", "-tf", str(path)], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_clip_shards_read_with_tar_and_webdataset(tmp_path):
    clips = make_reds(tmp_path / "raw", train=("000", "007"), val=(), n=5)
    dest = tmp_path / "shards"
    manifest = shard_dataset(str(tmp_path / "raw"), str(dest), "reds", {"split": "all"}, items_per_shard=1)
    assert [s["num_frames"] for s in manifest["shards"]] == [5, 5] and manifest["num_frames"] == 10

    names = _tar_names(dest / "shard-000001.tar")
    assert names == [f"007.gt.{t:03d}.png" for t in range(5)] + [f"007.lq.{t:03d}.png" for t in range(5)] + ["007.json"]
    # webdataset splits a member name at the first dot of the basename: key "007", members "gt.000.png"...
    samples = list(wds.WebDataset([str(dest / s["name"]) for s in manifest["shards"]], shardshuffle=False))
    assert [s["__key__"] for s in samples] == ["000", "007"]
    s = samples[1]
    assert sorted(k for k in s if not k.startswith("__")) == sorted(
        [frame_member(k, t) for k in ("gt", "lq") for t in range(5)] + ["json"])
    assert sorted(parse_frame_member(k) for k in s if parse_frame_member(k)) == [
        (k, t) for k in ("gt", "lq") for t in range(5)]
    for t in range(5):
        np.testing.assert_array_equal(decode_image(s[frame_member("gt", t)]), clips["007"][t])
    assert decode_json(s["json"])["frames"] == 5
    # The lower-level tar iterator groups the same way.
    grouped = list(wds.tariterators.group_by_keys(wds.tariterators.tar_file_expander(
        [{"url": str(dest / "shard-000000.tar"), "stream": open(dest / "shard-000000.tar", "rb")}])))
    assert len(grouped) == 1 and grouped[0]["__key__"] == "000" and "lq.004.png" in grouped[0]


def test_one_frame_of_a_clip_by_ranged_read(tmp_path):
    """A training read fetches only the frames it uses: every frame is its own member with an offset."""
    clips = make_reds(tmp_path / "raw", train=("000",), val=(), n=3)
    dest = tmp_path / "shards"
    shard_dataset(str(tmp_path / "raw"), str(dest), "reds", {"split": "all"})
    key, members = ShardSet(str(dest)).read(0, (frame_member("gt", 2), "json"))
    assert key == "000" and sorted(members) == ["gt.002.png", "json"]
    np.testing.assert_array_equal(decode_image(members["gt.002.png"]), clips["000"][2])


def test_clip_shards_on_s3(tmp_path, s3_bucket):
    make_reds(tmp_path / "raw", train=("000", "001"), val=("000",), n=3)
    make_mp4(tmp_path / "videos" / "v.mp4", n=4)
    (tmp_path / "videos" / "x.mov").write_bytes(b"junk")
    s3 = boto3.client("s3")
    for folder in ("raw", "videos"):
        for path in sorted((tmp_path / folder).rglob("*")):
            if path.is_file():
                s3.put_object(Bucket=s3_bucket, Key=f"{folder}/{path.relative_to(tmp_path / folder).as_posix()}",
                              Body=path.read_bytes())
    dest = f"s3://{s3_bucket}/shards/reds"
    manifest = shard_dataset(f"s3://{s3_bucket}/raw", dest, "reds",
                             {"split": "train", "crop": True, "crop_size": 16, "step": 16})
    assert read_manifest(dest) == manifest
    assert manifest["num_samples"] == 2 * 6 and manifest["num_frames"] == 2 * 6 * 3
    assert {c[0][:3] for s in manifest["shards"] for c in s["clips"]} == {"001", "240"}
    st = open_storage(dest)
    local = tmp_path / "s.tar"
    local.write_bytes(st.read_bytes(manifest["shards"][0]["name"]))
    sample = next(iter(wds.WebDataset(str(local), shardshuffle=False)))
    assert decode_image(sample["lq.002.png"]).shape == (4, 4, 3)

    vdest = f"s3://{s3_bucket}/shards/videos"
    vman = shard_dataset(f"s3://{s3_bucket}/videos", vdest, "video_files", {})
    assert vman["num_samples"] == 1 and vman["quarantined"] == 1
    q = json.loads(open_storage(vdest).read_bytes("quarantine.json"))["quarantined"][0]
    assert q["uri"] == f"s3://{s3_bucket}/videos/x.mov" and q["reason"].startswith("not a decodable video")
    assert vman["shards"][0]["clips"] == [["v_c000", 4, 32, 48, "v.mp4"]]


def test_clip_shard_rerun_reuses_and_detects_a_changed_frame(tmp_path):
    raw = tmp_path / "raw"
    write_clip(raw / "GT" / "walk", raw / "BIx4" / "walk", 3, 0)
    dest = tmp_path / "shards"
    first = shard_dataset(str(raw), str(dest), "vid4", {})
    again = shard_dataset(str(raw), str(dest), "vid4", {})
    assert again["source_fingerprint"] == first["source_fingerprint"]
    write(raw / "BIx4" / "walk" / "00000001.png", png_bytes(rgb(8, 12, seed=9)))
    changed = shard_dataset(str(raw), str(dest), "vid4", {})
    assert changed["source_fingerprint"] != first["source_fingerprint"]
    assert changed["shards"][0]["sha256"] != first["shards"][0]["sha256"]
