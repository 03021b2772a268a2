"""GLEAN's face sets: ``ffhq`` and ``lsun_cat`` (GT/ with the configs' meta_info lists, or every
image under GT/ with ``ann_file: ""``) and ``celeba_hq``'s ``glean_val`` split."""

import pytest
from prep_helpers import png_bytes, rgb, write

from preprocessing.adapters import AdapterError, get_adapter
from preprocessing.storage import open_storage


def items_of(name, root, params=None):
    ad = get_adapter(name)
    return [i.item_id for i in ad.list_items(open_storage(str(root)), ad.resolve_params(params))]


def _faces(root, names):
    for i, n in enumerate(names):
        write(root / "GT" / n, png_bytes(rgb(16, 16, seed=i)))


def test_ffhq_reads_its_list_or_scans_gt(tmp_path):
    _faces(tmp_path, ["00000.png", "00001.png", "00002.png"])
    write(tmp_path / "meta_info_FFHQ_GT.txt", b"00000.png (1024,1024,3)\n00002.png (1024,1024,3)\n")
    assert items_of("ffhq", tmp_path) == ["00000", "00002"]
    assert items_of("ffhq", tmp_path, {"ann_file": ""}) == ["00000", "00001", "00002"]  # FFHQ_CelebAHQ/GT


def test_lsun_cat_splits(tmp_path):
    _faces(tmp_path, ["a.png", "b.png"])
    write(tmp_path / "meta_info_LSUNcat_GT.txt", b"a.png (256,256,3)\n")
    write(tmp_path / "meta_info_Cat100_GT.txt", b"b.png (256,256,3)\n")
    assert items_of("lsun_cat", tmp_path) == ["a"]
    assert items_of("lsun_cat", tmp_path, {"split": "test"}) == ["b"]
    with pytest.raises(AdapterError, match="split must be one of"):
        items_of("lsun_cat", tmp_path, {"split": "val"})


def test_celeba_hq_glean_val_split(tmp_path):
    _faces(tmp_path, ["00001.png", "00002.png"])
    write(tmp_path / "meta_info_CelebAHQ_val100_GT.txt", b"00002.png (1024,1024,3)\n")
    assert items_of("celeba_hq", tmp_path, {"split": "glean_val"}) == ["00002"]
