"""celeba_hq with a ``landmarks`` file (DIC's face SR training set): both file formats, the
``landmarks.json`` member, shard rebuilds when landmarks change, and one-line errors."""

from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest
from prep_helpers import png_bytes, rgb, write
from shard_helpers import shard_dataset

from preprocessing.adapters import AdapterError, get_adapter, parse_landmarks
from preprocessing.schema import LANDMARKS
from preprocessing.storage import open_storage


def _points(seed: int, n: int = 68) -> list[list[float]]:
    return np.random.default_rng(seed).uniform(0, 30, (n, 2)).round(2).tolist()


def _faces(root, names=("a.png", "b.png")):
    for i, name in enumerate(names):
        write(root / "train" / name, png_bytes(rgb(32, 32, seed=i)))
    write(root / "train" / "unlisted.png", png_bytes(rgb(32, 32, seed=7)))


def _items(root, params):
    ad = get_adapter("celeba_hq")
    return ad.list_items(open_storage(str(root)), ad.resolve_params(params))


PARAMS = {"image_dir": "train", "landmarks": "landmarks.json"}


def test_json_landmarks_list_the_samples_and_travel_as_a_member(tmp_path):
    src, dest = tmp_path / "raw", tmp_path / "shards"
    _faces(src)
    table = {"a.png": _points(0), "b.png": _points(1)}
    write(src / "landmarks.json", json.dumps(table).encode())
    assert [i.item_id for i in _items(src, PARAMS)] == ["a", "b"]  # unlisted.png is not a sample
    manifest = shard_dataset(str(src), str(dest), "celeba_hq", PARAMS)
    assert manifest["num_samples"] == 2
    with tarfile.open(dest / manifest["shards"][0]["name"]) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar}
    got = json.loads(members[f"a.{LANDMARKS}"])
    assert got["image_size"] == [32, 32]
    np.testing.assert_allclose(got["points"], table["a.png"], rtol=1e-6)


def test_mmedit_npy_annotation_is_read(tmp_path):
    _faces(tmp_path)
    rows = np.array([{"gt_path": "b.png", "bbox": [0, 0, 32, 32], "shape": [32, 32],
                      "landmark": np.asarray(_points(2), np.float32)}], dtype=object)
    np.save(tmp_path / "train_info_list_256.npy", rows, allow_pickle=True)
    items = _items(tmp_path, {"image_dir": "train", "landmarks": "train_info_list_256.npy"})
    assert [i.item_id for i in items] == ["b"]
    assert items[0].lq_fingerprint.startswith("landmarks:")


def test_changed_landmarks_change_the_item_fingerprint(tmp_path):
    _faces(tmp_path)
    write(tmp_path / "landmarks.json", json.dumps({"a.png": _points(0)}).encode())
    before = _items(tmp_path, PARAMS)[0].lq_fingerprint
    write(tmp_path / "landmarks.json", json.dumps({"a.png": _points(5)}).encode())
    assert _items(tmp_path, PARAMS)[0].lq_fingerprint != before


def test_a_shard_task_rereads_a_landmark_file_that_changed_after_its_first_read(tmp_path):
    src = tmp_path / "raw"
    _faces(src)
    write(src / "landmarks.json", json.dumps({"a.png": _points(0)}).encode())
    shard_dataset(str(src), str(tmp_path / "one"), "celeba_hq", PARAMS)  # caches the table
    write(src / "landmarks.json", json.dumps({"a.png": _points(4)}).encode())
    manifest = shard_dataset(str(src), str(tmp_path / "two"), "celeba_hq", PARAMS)
    with tarfile.open(tmp_path / "two" / manifest["shards"][0]["name"]) as tar:
        got = json.loads(tar.extractfile(f"a.{LANDMARKS}").read())
    np.testing.assert_allclose(got["points"], _points(4), rtol=1e-6)


@pytest.mark.parametrize("table, message", [
    ({"a.png": _points(0), "b.png": _points(1, n=67)},
     r"^celeba_hq: landmarks file .*landmarks.json: image b.png has 67 points, expected 68$"),
    ({"a.png": [[1.0, 2.0, 3.0]] * 68}, r"image a.png: expected 68 \[x, y\] pairs, got an array of shape \[68, 3\]"),
    ({"a.png": [[1.0, float("nan")]] * 68}, r"image a.png has non-finite coordinates"),
    ([1, 2], r"must map image paths to point lists"),
    ({}, r"names no images"),
])
def test_bad_landmark_files_are_one_line_errors(tmp_path, table, message):
    _faces(tmp_path)
    write(tmp_path / "landmarks.json", json.dumps(table).encode())
    with pytest.raises(AdapterError, match=message) as err:
        _items(tmp_path, PARAMS)
    assert "\n" not in str(err.value)


def test_missing_or_unreadable_files_and_bad_params(tmp_path):
    _faces(tmp_path)
    with pytest.raises(AdapterError, match=r"landmarks file .*nope.json does not exist"):
        _items(tmp_path, {"image_dir": "train", "landmarks": "nope.json"})
    with pytest.raises(AdapterError, match=r"is not JSON"):
        parse_landmarks(b"\xff\x00", "x.json", "celeba_hq")
    with pytest.raises(AdapterError, match=r"not MMEditing's list of"):
        parse_landmarks(b"garbage", "x.npy", "celeba_hq")
    with pytest.raises(AdapterError, match=r"landmarks must be a file path"):
        _items(tmp_path, {"landmarks": 3})


def test_without_landmarks_celeba_hq_is_unchanged(tmp_path):
    write(tmp_path / "train_256" / "x.png", png_bytes(rgb(8, 8)))
    items = _items(tmp_path, {})
    assert [(i.item_id, i.lq_fingerprint) for i in items] == [("x", "")]
