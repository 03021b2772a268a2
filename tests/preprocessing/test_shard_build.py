"""End-to-end shard building on local folders: contents, quarantine, readability, resume."""

import io
import json
import os
import pickle
import subprocess
import tarfile

import cv2
import numpy as np
import pytest
import webdataset as wds
from PIL import Image
from prep_helpers import make_div2k, png_bytes, rgb, write
from shard_helpers import shard_dataset

import preprocessing.shards as shards
from preprocessing.crop import sub_image_boxes
from preprocessing.schema import decode_image
from preprocessing.shards import (ManifestNotFound, ShardSpec, build_shard, commit_manifest, plan_job,
                                  read_manifest)

CROP = {"crop_size": 32, "step": 16}


def read_samples(path):
    """All samples of a tar via webdataset, as {key: {member: bytes}}."""
    out = {}
    for s in wds.WebDataset(str(path), shardshuffle=False):
        out[s["__key__"]] = {k: v for k, v in s.items() if not k.startswith("__")}
    return out


def all_samples(dest):
    manifest = read_manifest(str(dest))
    samples = {}
    for sh in manifest["shards"]:
        samples.update(read_samples(dest / sh["name"]))
    return manifest, samples


def corrupt_folder(root):
    """Three good images plus five bad ones; returns the good arrays by item id."""
    good = {"img_a": rgb(50, 40, 1), "img_b": rgb(20, 20, 2), "sub/img_c": rgb(64, 33, 3)}
    for name, img in good.items():
        write(root / f"{name}.png", png_bytes(img))
    full = png_bytes(rgb(40, 40, 4))
    write(root / "bad_truncated.png", full[: len(full) // 2])
    write(root / "bad_empty.png", b"")
    write(root / "bad_text.png", b"just some text\n")
    ok, deep = cv2.imencode(".png", np.full((40, 40, 3), 40000, np.uint16))
    write(root / "bad_16bit.png", deep.tobytes())
    la = np.stack([rgb(40, 40)[..., 0], np.full((40, 40), 7, np.uint8)], axis=2)
    buf = io.BytesIO()
    Image.fromarray(la, "LA").save(buf, "PNG")
    write(root / "bad_2channel.png", buf.getvalue())
    return {k.replace("/", "_"): v for k, v in good.items()}


def test_image_folder_quarantines_bad_inputs_and_shards_good(tmp_path):
    good = corrupt_folder(tmp_path / "raw")
    manifest = shard_dataset(str(tmp_path / "raw"), str(tmp_path / "out"), "image_folder", CROP, items_per_shard=3)
    manifest, samples = all_samples(tmp_path / "out")

    expected_keys = {f"{i}_s{n:03d}" for i, img in good.items()
                     for n in range(1, len(sub_image_boxes(*img.shape[:2], 32, 16)) + 1)}
    assert set(samples) == expected_keys
    assert manifest["num_samples"] == len(expected_keys) == sum(s["num_samples"] for s in manifest["shards"])
    # 8 items / 3 per shard; sorted, the first three are all bad -> an empty shard, kept out of "shards"
    assert manifest["quarantined"] == 5 and [s["name"] for s in manifest["shards"]] == [
        "shard-000001.tar", "shard-000002.tar"]
    assert manifest["empty_shards"] == ["shard-000000.tar"] and (tmp_path / "out/shard-000000.tar").exists()
    assert manifest["format"] == "restoray-shards/1" and manifest["adapter"] == "image_folder"
    assert manifest["params"] == {"crop_size": 32, "step": 16, "thresh_size": 0, "crop": True}

    quarantine = json.loads((tmp_path / "out/quarantine.json").read_text())
    reasons = {q["key"]: q["reason"] for q in quarantine["quarantined"]}
    assert quarantine["count"] == 5
    assert "truncated" in reasons["bad_truncated.png"]
    assert reasons["bad_empty.png"] == "empty file"
    assert reasons["bad_text.png"] == "not a decodable image"
    assert reasons["bad_16bit.png"] == "16-bit not supported"
    assert "alpha channel" in reasons["bad_2channel.png"]

    # Pixels: every crop equals the matching region of the source; metadata says where it came from.
    for key, members in samples.items():
        assert set(members) == {"gt.png", "json"}
        meta = json.loads(members["json"])
        y, x, h, w = meta["box"]
        src = good[meta["source"].removesuffix(".png").replace("/", "_")]
        np.testing.assert_array_equal(decode_image(members["gt.png"]), src[y:y + h, x:x + w])
        assert meta["key"] == key and meta["adapter"] == "image_folder"
    # Small image (20x20 < crop 32) kept whole as one sample.
    assert json.loads(samples["img_b_s001"]["json"])["box"] == [0, 0, 20, 20]
    assert not (tmp_path / "out/_tmp").exists()


def test_tar_is_deterministic_and_listable(tmp_path):
    corrupt_folder(tmp_path / "raw")
    m1 = shard_dataset(str(tmp_path / "raw"), str(tmp_path / "o1"), "image_folder", CROP, items_per_shard=4)
    m2 = shard_dataset(str(tmp_path / "raw"), str(tmp_path / "o2"), "image_folder", CROP, items_per_shard=4)
    assert [s["sha256"] for s in m1["shards"]] == [s["sha256"] for s in m2["shards"]]
    assert m1["empty_shards"] == ["shard-000000.tar"]  # the four bad_* files sort first
    names = subprocess.run(["tar", "-tf", str(tmp_path / "o1/shard-000001.tar")], check=True,
                           capture_output=True, text=True).stdout.split()
    assert names[:3] == ["img_a_s001.gt.png", "img_a_s001.json", "img_a_s002.gt.png"]
    with tarfile.open(tmp_path / "o1/shard-000001.tar") as tar:
        assert {(m.mtime, m.uid, m.gid, m.mode) for m in tar.getmembers()} == {(0, 0, 0, 0o644)}


def test_div2k_pairs_crop_aligned(tmp_path):
    gts = make_div2k(tmp_path / "raw", stems=("0001", "0002", "0003", "0004"), hw=(72, 56), scale=2)
    raw = tmp_path / "raw"
    (raw / "DIV2K_train_LR_bicubic/X2/0003x2.png").unlink()  # missing LQ
    write(raw / "DIV2K_train_LR_bicubic/X2/0004x2.png", png_bytes(rgb(35, 28)))  # wrong LQ size
    shard_dataset(str(raw), str(tmp_path / "out"), "div2k", {"scale": 2, **CROP}, items_per_shard=2)
    manifest, samples = all_samples(tmp_path / "out")
    n = len(sub_image_boxes(72, 56, 32, 16))
    assert set(samples) == {f"{s}_s{i:03d}" for s in ("0001", "0002") for i in range(1, n + 1)}
    q = json.loads((tmp_path / "out/quarantine.json").read_text())["quarantined"]
    assert sorted((e["item_id"], e["reason"].split(" ")[0]) for e in q) == [("0003", "no"), ("0004", "LQ")]
    for key, m in samples.items():
        meta = json.loads(m["json"])
        gt, lq = decode_image(m["gt.png"]), decode_image(m["lq.png"])
        y, x, h, w = meta["box"]
        assert meta["lq_box"] == [y // 2, x // 2, h // 2, w // 2] and meta["scale"] == 2
        np.testing.assert_array_equal(gt, gts[key[:4]][y:y + h, x:x + w])
        assert lq.shape == (h // 2, w // 2, 3)
        full_lq = decode_image((raw / meta["lq_source"]).read_bytes())
        np.testing.assert_array_equal(lq, full_lq[y // 2:(y + h) // 2, x // 2:(x + w) // 2])


def test_set5_14_not_cropped(tmp_path):
    raw = tmp_path / "Set5"
    for i, name in enumerate(["baby", "bird", "butterfly"]):
        gt = rgb(24, 36, i)
        write(raw / "GTmod12" / f"{name}.png", png_bytes(gt))
        write(raw / "LRbicx4" / f"{name}.png", png_bytes(cv2.resize(gt, (9, 6), interpolation=cv2.INTER_AREA)))
    shard_dataset(str(raw), str(tmp_path / "out"), "set5_14", {}, items_per_shard=10)
    manifest, samples = all_samples(tmp_path / "out")
    assert sorted(samples) == ["baby", "bird", "butterfly"] and len(manifest["shards"]) == 1
    assert decode_image(samples["bird"]["gt.png"]).shape == (24, 36, 3)
    assert decode_image(samples["bird"]["lq.png"]).shape == (6, 9, 3)


def test_empty_input_and_all_bad_are_clear_errors(tmp_path):
    (tmp_path / "raw").mkdir()
    with pytest.raises(ValueError, match="missing or empty image folder"):
        shard_dataset(str(tmp_path / "raw"), str(tmp_path / "out"), "image_folder", CROP)
    write(tmp_path / "raw/x.png", b"")
    with pytest.raises(ValueError, match="no valid samples"):
        shard_dataset(str(tmp_path / "raw"), str(tmp_path / "out"), "image_folder", CROP)
    assert json.loads((tmp_path / "out/quarantine.json").read_text())["count"] == 1
    assert not (tmp_path / "out/manifest.json").exists()
    with pytest.raises(ValueError, match="does not exist"):
        shard_dataset(str(tmp_path / "missing"), str(tmp_path / "out"), "image_folder", CROP)


def test_spec_and_result_pickle_and_dict_round_trip(tmp_path):
    corrupt_folder(tmp_path / "raw")
    plan = plan_job(str(tmp_path / "raw"), str(tmp_path / "out"), "image_folder", CROP, items_per_shard=5)
    spec = plan.shards[0]
    assert pickle.loads(pickle.dumps(spec)) == spec and ShardSpec.from_dict(spec.to_dict()) == spec
    result = build_shard(spec.to_dict(), plan.source_uri, plan.dest_uri, plan.adapter, plan.params)
    assert shards.ShardResult.from_dict(pickle.loads(pickle.dumps(result.to_dict()))) == result


class CountingLoads:
    def __init__(self, monkeypatch):
        self.keys = []
        real = shards.load_image_with_notes

        def counting(data, name):
            self.keys.append(name)
            return real(data, name)

        monkeypatch.setattr(shards, "load_image_with_notes", counting)


def test_crash_leftovers_not_complete_and_rerun_skips_finished(tmp_path, monkeypatch):
    raw, out = tmp_path / "raw", tmp_path / "out"
    for i in range(6):
        write(raw / f"im{i}.png", png_bytes(rgb(40, 40, i)))
    plan = plan_job(str(raw), str(out), "image_folder", CROP, items_per_shard=2)
    assert len(plan.shards) == 3

    # "Crash": shard 0 finished; shard 1's tar only reached _tmp/; shard 2's tar was renamed
    # into place but its part record was never written; no manifest.
    build_shard(plan.shards[0], plan.source_uri, plan.dest_uri, plan.adapter, plan.params)
    write(out / "_tmp/shard-000001.tar.deadbeef", b"partial garbage")
    r2 = build_shard(plan.shards[2], plan.source_uri, plan.dest_uri, plan.adapter, plan.params)
    (out / "_parts/shard-000002.json").unlink()
    with pytest.raises(ManifestNotFound, match="the shard job did not finish"):
        read_manifest(str(out))
    mtime0 = (out / "shard-000000.tar").stat().st_mtime_ns

    counter = CountingLoads(monkeypatch)
    manifest = shard_dataset(str(raw), str(out), "image_folder", CROP, items_per_shard=2)
    assert sorted(counter.keys) == ["im2.png", "im3.png", "im4.png", "im5.png"]  # shard 0 skipped
    assert (out / "shard-000000.tar").stat().st_mtime_ns == mtime0
    assert manifest["shards"][2]["sha256"] == r2.sha256  # rebuilt, byte-identical
    assert manifest["num_samples"] == 6 * 4 and read_manifest(str(out)) == manifest
    assert sorted(p.name for p in (out / "_parts").iterdir()) == [f"shard-00000{i}.json" for i in range(3)]
    assert not (out / "_tmp").exists()

    # Unchanged re-run: nothing decoded at all.
    counter.keys.clear()
    shard_dataset(str(raw), str(out), "image_folder", CROP, items_per_shard=2)
    assert counter.keys == []

    # A corrupted finished tar (same size) fails the sha256 check and is rebuilt.
    data = bytearray((out / "shard-000001.tar").read_bytes())
    data[600] ^= 0xFF
    (out / "shard-000001.tar").write_bytes(bytes(data))
    counter.keys.clear()
    shard_dataset(str(raw), str(out), "image_folder", CROP, items_per_shard=2)
    assert sorted(counter.keys) == ["im2.png", "im3.png"]


def test_changed_source_or_plan_retires_manifest_and_stale_shards(tmp_path, monkeypatch):
    raw, out = tmp_path / "raw", tmp_path / "out"
    for i in range(6):
        write(raw / f"im{i}.png", png_bytes(rgb(40, 40, i)))
    m1 = shard_dataset(str(raw), str(out), "image_folder", CROP, items_per_shard=2)

    # One source file changes: the old manifest is retired at planning time, only its shard is rebuilt.
    write(raw / "im5.png", png_bytes(rgb(40, 40, 99)))
    os.utime(raw / "im5.png", ns=(1, 1))
    plan = plan_job(str(raw), str(out), "image_folder", CROP, items_per_shard=2)
    assert plan.fingerprint != m1["source_fingerprint"] and not (out / "manifest.json").exists()
    counter = CountingLoads(monkeypatch)
    m2 = shard_dataset(str(raw), str(out), "image_folder", CROP, items_per_shard=2)
    assert sorted(counter.keys) == ["im4.png", "im5.png"]
    assert m2["shards"][:2] == m1["shards"][:2] and m2["shards"][2] != m1["shards"][2]

    # Fewer, larger shards: leftovers of the old plan are removed before the manifest is written.
    m3 = shard_dataset(str(raw), str(out), "image_folder", CROP, items_per_shard=4)
    assert [s["name"] for s in m3["shards"]] == ["shard-000000.tar", "shard-000001.tar"]
    assert sorted(p.name for p in out.glob("shard-*.tar")) == ["shard-000000.tar", "shard-000001.tar"]
    assert sorted(p.name for p in (out / "_parts").iterdir()) == ["shard-000000.json", "shard-000001.json"]


def test_commit_refuses_missing_shard(tmp_path):
    for i in range(4):
        write(tmp_path / "raw" / f"im{i}.png", png_bytes(rgb(20, 20, i)))
    plan = plan_job(str(tmp_path / "raw"), str(tmp_path / "out"), "image_folder", CROP, items_per_shard=2)
    results = [build_shard(s, plan.source_uri, plan.dest_uri, plan.adapter, plan.params) for s in plan.shards]
    (tmp_path / "out/shard-000001.tar").unlink()
    with pytest.raises(ValueError, match="missing or has the wrong size"):
        commit_manifest(plan.dest_uri, results, adapter=plan.adapter, params=plan.params,
                        source_uri=plan.source_uri, source_fingerprint=plan.fingerprint)
    with pytest.raises(ValueError, match="expected 3 shard results"):
        commit_manifest(plan.dest_uri, results, adapter=plan.adapter, params=plan.params,
                        source_uri=plan.source_uri, source_fingerprint=plan.fingerprint, expected_shards=3)
