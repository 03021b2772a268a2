"""Inpainting adapters: places365 and celeba_hq (lists or scans, whole images as gt.png) and
mask_folder (binary 1-channel mask.png, quarantine of unusable masks)."""

import json
import tarfile

import numpy as np
import pytest
from prep_helpers import grey_png, png_bytes, rgb, write
from shard_helpers import shard_dataset

from preprocessing.adapters import ADAPTERS, AdapterError, get_adapter
from preprocessing.schema import decode_grey, decode_image
from preprocessing.storage import open_storage


def items_of(name, root, params=None):
    ad = get_adapter(name)
    return ad.list_items(open_storage(str(root)), ad.resolve_params(params))


def tar_samples(path):
    out = {}
    with tarfile.open(path) as tar:
        for m in tar:
            key, _, suffix = m.name.partition(".")
            out.setdefault(key, {})[suffix] = tar.extractfile(m).read()
    return out


def quarantine(root):
    return {e["item_id"]: e for e in json.loads((root / "quarantine.json").read_text())["quarantined"]}


def make_places(root, with_lists=True):
    imgs = {}
    for rel in ("a/airfield/00000001.jpg", "a/airfield/00000002.jpg", "b/bakery/00000001.jpg"):
        imgs[rel] = rgb(20, 26, seed=len(imgs))
        write(root / "data_large" / rel.replace(".jpg", ".png"), png_bytes(imgs[rel]))
    write(root / "val_large/Places365_val_00000001.png", png_bytes(rgb(18, 24, seed=9)))
    write(root / "val_large/Places365_val_00000002.png", png_bytes(rgb(18, 24, seed=10)))
    if with_lists:  # MMEditing-style lists: relative to data_prefix; official-style: relative to data_large
        write(root / "train_places_img_list_total.txt",
              b"data_large/a/airfield/00000001.png 0\n/b/bakery/00000001.png 3\n\ndata_large/missing.png\n")
        write(root / "meta/val_places_img_list.txt", b"Places365_val_00000002.png\n")
    return imgs


def test_registered():
    assert {"places365", "celeba_hq", "mask_folder"} <= set(ADAPTERS)


def test_places_list_is_source_of_truth_and_missing_listed_file_is_quarantined(tmp_path):
    make_places(tmp_path / "raw")
    items = items_of("places365", tmp_path / "raw")
    assert [(i.item_id, i.gt_key) for i in items] == [
        ("a_airfield_00000001", "data_large/a/airfield/00000001.png"),
        ("b_bakery_00000001", "data_large/b/bakery/00000001.png"),
        ("missing", "data_large/missing.png")]
    manifest = shard_dataset(str(tmp_path / "raw"), str(tmp_path / "out"), "places365")
    assert manifest["num_samples"] == 2 and manifest["quarantined"] == 1
    assert quarantine(tmp_path / "out")["missing"]["reason"].startswith("file not found")
    s = tar_samples(tmp_path / "out/shard-000000.tar")
    assert sorted(s) == ["a_airfield_00000001", "b_bakery_00000001"]
    assert list(s["b_bakery_00000001"]) == ["gt.png", "json"]
    assert (decode_image(s["b_bakery_00000001"]["gt.png"]) == rgb(20, 26, seed=2)).all()


def test_places_val_list_under_meta_and_scan_without_lists(tmp_path):
    make_places(tmp_path)
    assert [i.item_id for i in items_of("places365", tmp_path, {"split": "val"})] == ["Places365_val_00000002"]
    assert len(items_of("places365", tmp_path, {"split": "val", "ann_file": ""})) == 2  # "" always scans
    make_places(tmp_path / "nolists", with_lists=False)
    assert [i.item_id for i in items_of("places365", tmp_path / "nolists")] == [
        "a_airfield_00000001", "a_airfield_00000002", "b_bakery_00000001"]


def test_celeba_hq_splits_and_bad_params(tmp_path):
    for split, folder in (("train", "train_256"), ("val", "test_256")):
        for i in range(2):
            write(tmp_path / folder / f"{split}{i}.png", png_bytes(rgb(16, 16, seed=i)))
    write(tmp_path / "val_celeba_img_list.txt", b"test_256/val1.png\n")
    assert [i.item_id for i in items_of("celeba_hq", tmp_path)] == ["train0", "train1"]
    assert [i.item_id for i in items_of("celeba_hq", tmp_path, {"split": "val"})] == ["val1"]
    with pytest.raises(AdapterError, match="split must be one of"):
        items_of("celeba_hq", tmp_path, {"split": "test"})
    with pytest.raises(AdapterError, match="unknown parameter"):
        items_of("celeba_hq", tmp_path, {"crop": False})
    with pytest.raises(AdapterError, match="does not exist"):
        items_of("celeba_hq", tmp_path, {"ann_file": "nope.txt"})
    with pytest.raises(AdapterError, match="missing or empty"):
        items_of("places365", tmp_path)


def test_mask_folder_stores_binary_grey_masks_and_quarantines_bad_ones(tmp_path):
    raw = tmp_path / "raw"
    good = np.zeros((32, 40), np.uint8)
    good[5:20, 8:30] = 255
    write(raw / "masks/good.png", grey_png(good))
    write(raw / "masks/ones.png", grey_png((good > 0).astype(np.uint8)))  # {0, 1}: accepted, stored 0/255
    soft = good.copy()
    soft[4, 8:30] = 128
    write(raw / "masks/soft.png", grey_png(soft))
    write(raw / "masks/empty.png", grey_png(np.zeros((32, 40), np.uint8)))
    write(raw / "masks/full.png", grey_png(np.full((32, 40), 255, np.uint8)))
    write(raw / "masks/colour.png", png_bytes(rgb(32, 40)))
    manifest = shard_dataset(str(raw), str(tmp_path / "out"), "mask_folder", {"mask_dir": "masks"})
    assert manifest["num_samples"] == 2 and manifest["quarantined"] == 4
    s = tar_samples(tmp_path / "out/shard-000000.tar")
    assert list(s["good"]) == ["mask.png", "json"]
    assert (decode_grey(s["good"]["mask.png"]) == good).all() and (decode_grey(s["ones"]["mask.png"]) == good).all()
    q = quarantine(tmp_path / "out")
    assert q["soft"]["reason"] == "mask: not a binary mask (values 0, 128, 255; expected 0 and 255, or set binarize: true)"
    assert q["empty"]["reason"].startswith("mask: mask has no hole pixel")
    assert q["full"]["reason"].startswith("mask: mask is all hole")
    assert q["colour"]["reason"].startswith("mask: colour image with differing channels")
    assert all("\n" not in e["reason"] for e in q.values())


def test_mask_folder_binarize_invert_and_list(tmp_path):
    raw = tmp_path / "raw"
    m = np.zeros((16, 16), np.uint8)
    m[2:9, 3:12] = 200
    write(raw / "m/a.png", grey_png(m))
    write(raw / "m/b.png", grey_png(m))
    write(raw / "list.txt", b"a.png\n")
    params = {"mask_dir": "m", "binarize": True, "invert": True, "ann_file": "list.txt"}
    assert [i.item_id for i in items_of("mask_folder", raw, params)] == ["a"]
    manifest = shard_dataset(str(raw), str(tmp_path / "out"), "mask_folder", params)
    assert manifest["num_samples"] == 1
    s = tar_samples(tmp_path / "out/shard-000000.tar")["a"]
    assert (decode_grey(s["mask.png"]) == np.where(m > 0, 0, 255)).all()
    assert json.loads(s["json"])["notes"] == ["mask: binarized (> 0 is a hole)", "mask: inverted"]
    with pytest.raises(AdapterError, match="binarize must be true or false"):
        items_of("mask_folder", raw, {"binarize": "yes"})
