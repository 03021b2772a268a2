"""The ``cufed`` adapter: CUFED training pairs (input/ + ref/ by file name) and CUFED5 groups
(<id>_0 GT, <id>_<level> reference), whole images as gt.png + ref.png of their own sizes; a GT
without its reference is quarantined, named."""

import json
import tarfile

import pytest
from prep_helpers import png_bytes, rgb, write
from shard_helpers import shard_dataset

from preprocessing.adapters import AdapterError, get_adapter
from preprocessing.schema import decode_image
from preprocessing.storage import open_storage


def _samples(path):
    out = {}
    with tarfile.open(path) as tar:
        for m in tar:
            key, _, suffix = m.name.partition(".")
            out.setdefault(key, {})[suffix] = tar.extractfile(m).read()
    return out


def test_cufed_train_pairs_and_missing_reference_quarantined(tmp_path):
    raw = tmp_path / "raw"
    for i, stem in enumerate(("000000", "000001", "000002")):
        write(raw / "input" / f"{stem}.png", png_bytes(rgb(16, 16, seed=i)))
        if stem != "000002":
            write(raw / "ref" / f"{stem}.png", png_bytes(rgb(16, 20, seed=10 + i)))
    manifest = shard_dataset(str(raw), str(tmp_path / "out"), "cufed")
    assert manifest["num_samples"] == 2 and manifest["quarantined"] == 1
    q = json.loads((tmp_path / "out/quarantine.json").read_text())["quarantined"][0]
    assert q["item_id"] == "000002" and q["reason"] == "no ref file found for input/000002.png"
    s = _samples(tmp_path / "out/shard-000000.tar")
    assert sorted(s) == ["000000", "000001"] and sorted(s["000001"]) == ["gt.png", "json", "ref.png"]
    assert (decode_image(s["000001"]["gt.png"]) == rgb(16, 16, seed=1)).all()
    assert (decode_image(s["000001"]["ref.png"]) == rgb(16, 20, seed=11)).all()


def test_cufed5_reference_level_is_a_parameter(tmp_path):
    raw = tmp_path / "CUFED5"
    for gid in ("000", "001"):
        for level in range(6):
            write(raw / f"{gid}_{level}.png", png_bytes(rgb(12 + level, 16, seed=int(gid) * 10 + level)))
    ad = get_adapter("cufed")
    items = ad.list_items(open_storage(str(raw)), ad.resolve_params({"split": "test", "ref_level": 3}))
    assert [(i.item_id, dict((n, k) for n, k, _ in i.members)) for i in items] == [
        ("000", {"gt.png": "000_0.png", "ref.png": "000_3.png"}),
        ("001", {"gt.png": "001_0.png", "ref.png": "001_3.png"})]
    shard_dataset(str(raw), str(tmp_path / "out"), "cufed", {"split": "test", "ref_level": 5})
    s = _samples(tmp_path / "out/shard-000000.tar")
    assert (decode_image(s["001"]["ref.png"]) == rgb(17, 16, seed=15)).all()


@pytest.mark.parametrize("params, match", [({"ref_level": 6}, "ref_level must be an integer 1-5"),
                                           ({"split": "val"}, "split must be one of")])
def test_bad_parameters(params, match):
    with pytest.raises(AdapterError, match=match):
        get_adapter("cufed").resolve_params(params)
