"""Adapters: which files become items, parameter checks, missing-folder errors."""

import pytest
from prep_helpers import make_div2k, png_bytes, rgb, write

from preprocessing.adapters import ADAPTERS, AdapterError, SourceItem, get_adapter
from preprocessing.storage import open_storage
from preprocessing.validate import CorruptInput


def items_of(name, root, params=None):
    ad = get_adapter(name)
    return ad.list_items(open_storage(str(root)), ad.resolve_params(params))


def test_registry_is_a_plain_dict():
    assert sorted(ADAPTERS) == ["celeba_hq", "comp1k", "div2k", "ffhq", "image_folder", "lsun_cat", "mask_folder",
                               "matting_folder",
                               "places365", "reds", "set5_14", "udm10", "vid4", "video_files", "videolq",
                               "vimeo90k"]
    with pytest.raises(AdapterError, match="unknown adapter"):
        get_adapter("nope")


def test_image_folder_recursive_extensions_and_ids(tmp_path):
    for rel in ["b.png", "a.JPG", "sub/c d.e.webp", "x.png", "x.bmp", "notes.txt", "deep/er/z.jpeg"]:
        write(tmp_path / rel, b"whatever")
    items = items_of("image_folder", tmp_path)
    assert [(i.item_id, i.gt_key) for i in items] == [
        ("a", "a.JPG"), ("b", "b.png"), ("deep_er_z", "deep/er/z.jpeg"), ("sub_c_d_e", "sub/c d.e.webp"),
        ("x_bmp", "x.bmp"), ("x_png", "x.png"),
    ]
    assert all(i.lq_key is None and i.gt_fingerprint for i in items)


def test_image_folder_errors(tmp_path):
    with pytest.raises(AdapterError, match="no images"):
        write(tmp_path / "readme.txt", b"hi")
        items_of("image_folder", tmp_path)
    with pytest.raises(AdapterError, match="unknown parameter"):
        get_adapter("image_folder").resolve_params({"crop_sise": 3})
    with pytest.raises(AdapterError, match="crop_size must be a positive integer"):
        get_adapter("image_folder").resolve_params({"crop_size": 0})


def test_div2k_pairs_by_stem(tmp_path):
    make_div2k(tmp_path, stems=("0001", "0002", "0003"), scale=2)
    (tmp_path / "DIV2K_train_LR_bicubic/X2/0003x2.png").unlink()  # GT without LQ -> quarantined later
    items = items_of("div2k", tmp_path, {"scale": 2, "crop_size": 32, "step": 16})
    assert [(i.item_id, i.gt_key, i.lq_key) for i in items] == [
        ("0001", "DIV2K_train_HR/0001.png", "DIV2K_train_LR_bicubic/X2/0001x2.png"),
        ("0002", "DIV2K_train_HR/0002.png", "DIV2K_train_LR_bicubic/X2/0002x2.png"),
        ("0003", "DIV2K_train_HR/0003.png", None),
    ]


def test_div2k_custom_dirs_and_param_checks(tmp_path):
    write(tmp_path / "hr/0801.png", png_bytes(rgb(8, 8)))
    write(tmp_path / "lr_x4/0801.png", png_bytes(rgb(2, 2)))
    items = items_of("div2k", tmp_path, {"gt_dir": "hr", "lq_dir": "lr_x{scale}", "crop_size": 8, "step": 4})
    assert items == [SourceItem("0801", "hr/0801.png", "lr_x4/0801.png", items[0].gt_fingerprint,
                                items[0].lq_fingerprint)]
    with pytest.raises(AdapterError, match="not divisible by scale"):
        get_adapter("div2k").resolve_params({"crop_size": 30, "scale": 4})


def test_div2k_missing_folder_names_path(tmp_path):
    write(tmp_path / "DIV2K_train_HR/0001.png", b"x")
    with pytest.raises(AdapterError, match=r"missing or empty LQ folder .*DIV2K_train_LR_bicubic/X4"):
        items_of("div2k", tmp_path)
    with pytest.raises(AdapterError, match=r"missing or empty GT folder .*nothere"):
        items_of("div2k", tmp_path, {"gt_dir": "nothere"})


def test_div2k_crops_align_and_size_check(tmp_path):
    ad = get_adapter("div2k")
    params = ad.resolve_params({"scale": 2, "crop_size": 32, "step": 16})
    item = SourceItem("0001", "g", "l")
    crops = ad.crops(item, (72, 56), (36, 28), params)
    assert [c.key for c in crops][:2] == ["0001_s001", "0001_s002"]
    assert all(c.lq_box == tuple(v // 2 for v in c.box) for c in crops)
    with pytest.raises(CorruptInput, match="LQ size"):
        ad.crops(item, (72, 56), (36, 27), params)


def test_set5_14_layout(tmp_path):
    for name in ("baby", "bird"):
        write(tmp_path / "GTmod12" / f"{name}.png", b"x")
        write(tmp_path / "LRbicx4" / f"{name}.png", b"x")
    items = items_of("set5_14", tmp_path)
    assert [(i.item_id, i.gt_key, i.lq_key) for i in items] == [
        ("baby", "GTmod12/baby.png", "LRbicx4/baby.png"), ("bird", "GTmod12/bird.png", "LRbicx4/bird.png")]
    crops = get_adapter("set5_14").crops(items[0], (24, 36), (6, 9), get_adapter("set5_14").resolve_params({}))
    assert [(c.key, c.box, c.lq_box) for c in crops] == [("baby", (0, 0, 24, 36), (0, 0, 6, 9))]
    with pytest.raises(AdapterError, match="LRbicx3"):
        items_of("set5_14", tmp_path, {"scale": 3})
    with pytest.raises(AdapterError, match="unknown parameter"):
        get_adapter("set5_14").resolve_params({"crop_size": 48})
