"""Video adapters on small generated datasets with the real directory layouts."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest
from shard_helpers import shard_dataset
from video_helpers import HW, lr, make_gt_lq, make_mp4, make_reds, make_vimeo, tar_members, write_clip

from preprocessing.adapters import ADAPTERS, AdapterError, get_adapter
from preprocessing.crop import sub_image_boxes
from preprocessing.schema import decode_image, decode_json, frame_member
from preprocessing.storage import open_storage
from preprocessing.video_adapters import REDS4


def _items(adapter, root, **params):
    ad = get_adapter(adapter)
    return ad.list_items(open_storage(str(root)), ad.resolve_params(params))


def _samples(dest):
    """{key: {member: bytes}} of every shard of a committed set."""
    manifest = json.loads((dest / "manifest.json").read_text())
    out = {}
    for s in manifest["shards"]:
        for name, data in tar_members(dest / s["name"]).items():
            key, _, member = name.partition(".")
            out.setdefault(key, {})[member] = data
    return manifest, out


def test_video_adapters_are_registered():
    for name in ("reds", "vimeo90k", "vid4", "udm10", "videolq", "video_files"):
        assert ADAPTERS[name].name == name and ADAPTERS[name].clip


@pytest.mark.parametrize("split, expected", [
    ("reds4", ["000", "011"]),
    ("train", ["001", "240", "241"]),
    ("val", ["240", "241"]),
    ("all", ["000", "001", "011", "240", "241"]),
])
def test_reds_splits_merge_val_as_240(tmp_path, split, expected):
    make_reds(tmp_path, n=2)
    items = _items("reds", tmp_path, split=split)
    assert [i.item_id for i in items] == expected
    val = next((i for i in items if i.item_id == "240"), None)
    if val is not None:  # val_sharp/000 became clip 240, its frames still read from val_sharp/000
        assert val.gt_key == "val_sharp/000" and val.lq_key == "val_sharp_bicubic/X4/000"
        assert [m[0] for m in val.members] == ["gt.000.png", "gt.001.png", "lq.000.png", "lq.001.png"]
    assert set(REDS4) == {"000", "011", "015", "020"}


def test_reds_already_merged_train_sharp_clashes_with_val_sharp(tmp_path):
    make_reds(tmp_path, train=("000", "240"), val=("000",), n=1)
    with pytest.raises(AdapterError, match="240"):
        _items("reds", tmp_path, split="all")


def test_reds_rejects_bad_params():
    with pytest.raises(AdapterError, match="split"):
        get_adapter("reds").resolve_params({"split": "test"})
    with pytest.raises(AdapterError, match="lq"):
        get_adapter("reds").resolve_params({"lq": "yes"})
    with pytest.raises(AdapterError, match="divisible"):
        get_adapter("reds").resolve_params({"crop": True, "crop_size": 30})


def test_reds_sub_clips_same_box_on_every_frame(tmp_path):
    clips = make_reds(tmp_path / "raw", train=("000", "002"), val=(), n=3)
    params = {"split": "train", "crop": True, "crop_size": 16, "step": 8}
    manifest, samples = _samples_of(tmp_path, "reds", params)
    boxes = sub_image_boxes(*HW, 16, 8)
    assert sorted(samples) == [f"002_s{i:03d}" for i in range(1, len(boxes) + 1)]
    for i, box in enumerate(boxes, 1):
        s = samples[f"002_s{i:03d}"]
        meta = decode_json(s["json"])
        y, x, h, w = box
        assert meta["box"] == list(box) and meta["lq_box"] == [v // 4 for v in box]
        assert meta["frames"] == 3 and meta["frame_names"] == ["00000000.png", "00000001.png", "00000002.png"]
        assert meta["source"] == "train_sharp/002" and meta["lq_source"] == "train_sharp_bicubic/X4/002"
        assert meta["image_size"] == list(HW) and meta["scale"] == 4 and meta["kinds"] == ["gt", "lq"]
        for t in range(3):
            np.testing.assert_array_equal(decode_image(s[frame_member("gt", t)]), clips["002"][t][y:y + h, x:x + w])
            np.testing.assert_array_equal(decode_image(s[frame_member("lq", t)]),
                                          lr(clips["002"][t], 4)[y // 4:(y + h) // 4, x // 4:(x + w) // 4])
    assert manifest["num_frames"] == 3 * len(boxes)
    assert manifest["clip_fields"] == ["key", "frames", "height", "width", "source"]
    assert manifest["shards"][0]["clips"][0] == ["002_s001", 3, 16, 16, "train_sharp/002"]


def _samples_of(tmp_path, adapter, params, items_per_shard=8):
    dest = tmp_path / "shards"
    shard_dataset(str(tmp_path / "raw"), str(dest), adapter, params, items_per_shard)
    return _samples(dest)


def test_reds_whole_frames_gt_only(tmp_path):
    make_reds(tmp_path / "raw", train=("000", "001"), val=(), n=2)
    _m, samples = _samples_of(tmp_path, "reds", {"split": "reds4", "lq": False})
    assert sorted(samples) == ["000"]
    assert sorted(samples["000"]) == ["gt.000.png", "gt.001.png", "json"]
    meta = decode_json(samples["000"]["json"])
    assert meta["box"] == [0, 0, *HW] and meta["kinds"] == ["gt"] and "lq_source" not in meta
    assert any("sampler" in n for n in meta["notes"])


@pytest.mark.parametrize("lq_dir", ["sequences_BIx4", ""])
def test_vimeo90k_lists_and_lq(tmp_path, lq_dir):
    seqs = make_vimeo(tmp_path / "raw", lq_dir=lq_dir)
    _m, samples = _samples_of(tmp_path, "vimeo90k", {"split": "train", "lq_dir": lq_dir})
    assert sorted(samples) == ["00001_0001", "00001_0002"]
    s = samples["00001_0002"]
    meta = decode_json(s["json"])
    assert meta["frame_names"] == [f"im{t}.png" for t in range(1, 8)]
    np.testing.assert_array_equal(decode_image(s["gt.006.png"]), seqs["00001/0002"][6])
    if lq_dir:
        assert meta["kinds"] == ["gt", "lq"] and "lq.006.png" in s
    else:
        assert meta["kinds"] == ["gt"] and not any(m.startswith("lq.") for m in s)
        assert any("sampler" in n for n in meta["notes"])


def test_vimeo90k_triplet_layout_reads_the_tri_lists(tmp_path):
    seqs = make_vimeo(tmp_path / "raw", train=("00001/0001",), test=("00003/0002", "00003/0003"), lq_dir="",
                      n=3, lists="tri")
    _m, samples = _samples_of(tmp_path, "vimeo90k", {"split": "test", "layout": "triplet"})
    assert sorted(samples) == ["00003_0002", "00003_0003"]
    s = samples["00003_0003"]
    meta = decode_json(s["json"])
    assert meta["frames"] == 3 and meta["frame_names"] == ["im1.png", "im2.png", "im3.png"]
    assert not any("sampler" in n for n in meta.get("notes", []))  # no LQ is synthesised from triplets
    np.testing.assert_array_equal(decode_image(s["gt.001.png"]), seqs["00003/0003"][1])
    with pytest.raises(AdapterError, match="layout must be one of"):
        _items("vimeo90k", tmp_path / "raw", layout="quintuplet")
    with pytest.raises(AdapterError, match="no LR frames"):
        _items("vimeo90k", tmp_path / "raw", layout="triplet", lq_dir="BIx4")
    with pytest.raises(AdapterError, match="tri_trainlist.txt"):
        _items("vimeo90k", tmp_path, layout="triplet")


def test_vimeo90k_test_split_and_missing_list(tmp_path):
    make_vimeo(tmp_path, lq_dir="BDx4")
    assert [i.item_id for i in _items("vimeo90k", tmp_path, split="test", lq_dir="BDx4")] == ["00002_0001"]
    (tmp_path / "sep_testlist.txt").unlink()
    with pytest.raises(AdapterError, match="sep_testlist.txt"):
        _items("vimeo90k", tmp_path, split="test")


@pytest.mark.parametrize("adapter, lq_dir", [("vid4", "BIx4"), ("vid4", "BDx4"), ("udm10", "BDx4")])
def test_vid4_udm10_gt_with_bi_or_bd(tmp_path, adapter, lq_dir):
    clips = make_gt_lq(tmp_path / "raw", n=3)
    _m, samples = _samples_of(tmp_path, adapter, {"lq_dir": lq_dir})
    assert sorted(samples) == ["calendar", "city"]
    meta = decode_json(samples["city"]["json"])
    assert meta["lq_source"] == f"{lq_dir}/city" and meta["frames"] == 3
    np.testing.assert_array_equal(decode_image(samples["city"]["lq.002.png"]), lr(clips["city"][2], 4))


def test_videolq_stores_lq_frames_only(tmp_path):
    clip = write_clip(tmp_path / "raw" / "000", None, 3, 0)
    write_clip(tmp_path / "raw" / "001", None, 2, 1, hw=(20, 24))
    _m, samples = _samples_of(tmp_path, "videolq", {})
    assert sorted(samples["000"]) == ["json", "lq.000.png", "lq.001.png", "lq.002.png"]
    np.testing.assert_array_equal(decode_image(samples["000"]["lq.001.png"]), clip[1])
    meta = decode_json(samples["001"]["json"])
    assert meta["kinds"] == ["lq"] and meta["image_size"] == [20, 24] and meta["source"] == "001"
    assert "notes" not in meta


def test_video_files_fps_time_base_and_clip_len(tmp_path):
    frames = make_mp4(tmp_path / "raw" / "a" / "clip one.mp4", n=7, fps=Fraction(30000, 1001))
    (tmp_path / "raw" / "notes.txt").write_text("not a video, ignored")
    _m, samples = _samples_of(tmp_path, "video_files", {"clip_len": 3})
    assert sorted(samples) == ["a_clip_one_c000", "a_clip_one_c001", "a_clip_one_c002"]
    meta = decode_json(samples["a_clip_one_c001"]["json"])
    assert meta["frames"] == 3 and meta["start_frame"] == 3 and meta["source"] == "a/clip one.mp4"
    assert meta["fps_fraction"] == "30000/1001" and meta["fps"] == pytest.approx(29.97, abs=1e-3)
    assert Fraction(meta["time_base"]) > 0 and meta["frame_names"][0] == "clip one.mp4#3"
    assert decode_json(samples["a_clip_one_c002"]["json"])["frames"] == 1
    got = decode_image(samples["a_clip_one_c001"]["gt.000.png"]).astype(int)
    assert got.shape == (32, 48, 3) and np.abs(got - frames[3]).mean() < 8  # lossy codec, same picture


def test_video_files_quarantines_non_video(tmp_path):
    make_mp4(tmp_path / "raw" / "good.mp4", n=2)
    (tmp_path / "raw" / "bad.mkv").write_bytes(b"this is not a matroska file" * 10)
    (tmp_path / "raw" / "empty.mov").write_bytes(b"")
    manifest = shard_dataset(str(tmp_path / "raw"), str(tmp_path / "shards"), "video_files", {"clip_len": 0})
    assert manifest["num_samples"] == 1 and manifest["quarantined"] == 2
    assert manifest["shards"][0]["clips"] == [["good", 2, 32, 48, "good.mp4"]]  # clip_len 0: whole video
    q = {e["item_id"]: e["reason"] for e in json.loads((tmp_path / "shards/quarantine.json").read_text())["quarantined"]}
    assert q["bad"] == "not a decodable video (Invalid data found when processing input)"
    assert q["empty"] == "empty file"
    assert all("\n" not in r for r in q.values())


def test_vimeo90k_listed_sequence_without_frames_is_quarantined(tmp_path):
    make_vimeo(tmp_path / "raw", train=("00001/0001", "00001/0002"), lq_dir="BIx4")
    for f in (tmp_path / "raw/BIx4/00001/0002").iterdir():
        f.unlink()
    with open(tmp_path / "raw/sep_trainlist.txt", "a") as f:
        f.write("00009/0001\n")
    dest = tmp_path / "shards"
    manifest = shard_dataset(str(tmp_path / "raw"), str(dest), "vimeo90k", {"lq_dir": "BIx4"})
    assert manifest["num_samples"] == 1
    q = {e["item_id"]: e["reason"] for e in json.loads((dest / "quarantine.json").read_text())["quarantined"]}
    assert q == {"00001_0002": "no lq frames for clip sequences/00001/0002",
                 "00009_0001": "no gt frames for clip sequences/00009/0001"}
