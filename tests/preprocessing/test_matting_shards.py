"""Matting adapters (comp1k, matting_folder) and shards of named members (fg, alpha, merged, trimap, bg)."""

import json
import struct
import tarfile

import numpy as np
import pytest
from prep_helpers import comp1k_annotations, grey_png, make_comp1k, png_bytes, rgb, soft_alpha, write
from shard_helpers import shard_dataset

from preprocessing.adapters import AdapterError, SourceItem, get_adapter
from preprocessing.schema import decode_grey, decode_image
from preprocessing.shards import plan_job, read_manifest
from preprocessing.storage import open_storage
from preprocessing.validate import CorruptInput, load_grey_with_notes

ADOBE = "Test_set/Adobe-licensed images"


def items_of(name, root, params=None):
    ad = get_adapter(name)
    return ad.list_items(open_storage(str(root)), ad.resolve_params(params))


def members_of(item):
    return {n: k for n, k, _ in item.members}


def tar_samples(path):
    """{key: {suffix: bytes}} of a tar, in member order."""
    out = {}
    with tarfile.open(path) as tar:
        for m in tar:
            key, _, suffix = m.name.partition(".")
            out.setdefault(key, {})[suffix] = tar.extractfile(m).read()
    return out


def png_channels(data: bytes) -> int:
    color_type = struct.unpack(">B", data[25:26])[0]
    return {0: 1, 2: 3, 4: 2, 6: 4, 3: 1}[color_type]


@pytest.mark.parametrize("prefix", ["", "Combined_Dataset/"])
def test_comp1k_train_scans_both_groups(tmp_path, prefix):
    make_comp1k(tmp_path, prefix=prefix)
    items = items_of("comp1k", tmp_path)
    assert [i.item_id for i in items] == ["a1", "a2", "o1"]
    assert members_of(items[2]) == {"fg.png": f"{prefix}Training_set/Other/fg/o1.png",
                                    "alpha.png": f"{prefix}Training_set/Other/alpha/o1.png"}
    assert all(i.gt_key.endswith(f"/fg/{i.item_id}.png") and all(fp for _, _, fp in i.members) for i in items)


def test_comp1k_same_name_in_both_groups_gets_qualified_keys(tmp_path):
    make_comp1k(tmp_path, train=(("Adobe-licensed images", ("x", "y")), ("Other", ("x",))))
    assert [i.item_id for i in items_of("comp1k", tmp_path)] == ["Adobe-licensed_images_x", "Other_x", "y"]


def test_comp1k_annotation_files_are_the_source_of_truth(tmp_path):
    data = make_comp1k(tmp_path)
    comp1k_annotations(tmp_path, data)
    write(tmp_path / "Training_set/Other/fg/not_listed.png", png_bytes(rgb(40, 48)))
    train = items_of("comp1k", tmp_path)
    assert [i.item_id for i in train] == ["a1", "a2", "o1"]  # repeats dropped, unlisted file ignored
    assert [i.item_id for i in items_of("comp1k", tmp_path, {"ann_file": ""})] == ["a1", "a2", "not_listed", "o1"]
    test = items_of("comp1k", tmp_path, {"split": "test"})
    assert [i.item_id for i in test] == ["t1_0", "t1_1", "t2_0", "t2_1"]
    assert members_of(test[1]) == {
        "merged.png": "Test_set/merged/t1_1.png", "alpha.png": f"{ADOBE}/alpha/t1.png",
        "trimap.png": f"{ADOBE}/trimaps/t1_1.png", "fg.png": f"{ADOBE}/fg/t1.png", "bg.png": "Test_set/bg/t1_1.png"}
    with pytest.raises(AdapterError, match="annotation file .*nope.json does not exist"):
        items_of("comp1k", tmp_path, {"ann_file": "nope.json"})
    write(tmp_path / "bad.json", b"{not json")
    with pytest.raises(AdapterError, match="bad.json is not valid JSON"):
        items_of("comp1k", tmp_path, {"ann_file": "bad.json"})


def test_comp1k_test_scan_pairs_composites_with_their_sources(tmp_path):
    make_comp1k(tmp_path)
    (tmp_path / "Test_set/bg/t2_1.png").unlink()  # optional: sample kept without bg
    (tmp_path / ADOBE / "trimaps/t1_0.png").unlink()  # required: kept with no key -> quarantined
    test = items_of("comp1k", tmp_path, {"split": "test"})
    assert [i.item_id for i in test] == ["t1_0", "t1_1", "t2_0", "t2_1"]
    assert members_of(test[0])["trimap.png"] is None
    assert "bg.png" not in members_of(test[3]) and members_of(test[2])["bg.png"] == "Test_set/bg/t2_0.png"
    assert members_of(test[3])["alpha.png"] == f"{ADOBE}/alpha/t2.png"


def test_comp1k_param_and_layout_errors(tmp_path):
    with pytest.raises(AdapterError, match="split must be one of"):
        get_adapter("comp1k").resolve_params({"split": "val"})
    with pytest.raises(AdapterError, match="unknown parameter"):
        get_adapter("comp1k").resolve_params({"root": "x"})
    write(tmp_path / "readme.txt", b"x")
    with pytest.raises(AdapterError, match="no Training_set/ or Test_set/ folder"):
        items_of("comp1k", tmp_path)
    write(tmp_path / "Training_set/Other/fg/x.png", png_bytes(rgb(4, 4)))
    with pytest.raises(AdapterError, match=r"missing or empty composite .*Test_set/merged"):
        items_of("comp1k", tmp_path, {"split": "test"})


def test_matting_folder_train_and_test(tmp_path):
    for stem in ("a", "sub/b"):
        write(tmp_path / f"fg/{stem}.jpg", png_bytes(rgb(10, 12)))
        write(tmp_path / f"alpha/{stem}.png", grey_png(soft_alpha(10, 12)))
        write(tmp_path / f"merged/{stem}.png", png_bytes(rgb(10, 12)))
        write(tmp_path / f"trimap/{stem}.png", grey_png(soft_alpha(10, 12)))
    write(tmp_path / "fg/c.png", png_bytes(rgb(10, 12)))  # no alpha: kept, quarantined at build
    train = items_of("matting_folder", tmp_path)
    assert [(i.item_id, members_of(i)) for i in train] == [
        ("a", {"fg.png": "fg/a.jpg", "alpha.png": "alpha/a.png"}),
        ("c", {"fg.png": "fg/c.png", "alpha.png": None}),
        ("sub_b", {"fg.png": "fg/sub/b.jpg", "alpha.png": "alpha/sub/b.png"}),
    ]
    test = items_of("matting_folder", tmp_path, {"split": "test"})
    assert members_of(test[0]) == {"merged.png": "merged/a.png", "alpha.png": "alpha/a.png",
                                   "trimap.png": "trimap/a.png", "fg.png": "fg/a.jpg"}  # no bg/ folder
    with pytest.raises(AdapterError, match=r"missing or empty trimap folder .*tri"):
        items_of("matting_folder", tmp_path, {"split": "test", "trimap_dir": "tri"})


def test_item_dict_round_trip_keeps_old_form_for_gt_items():
    old = SourceItem("0001", "a.png", None, "fp")
    assert "members" not in old.to_dict() and SourceItem.from_dict(old.to_dict()) == old
    item = SourceItem("x", "fg/x.png", None, "f1", "", (("fg.png", "fg/x.png", "f1"), ("alpha.png", None, "")))
    d = json.loads(json.dumps(item.to_dict()))
    assert SourceItem.from_dict(d) == item


def test_train_shards_round_trip_grey_alpha(tmp_path):
    data = make_comp1k(tmp_path / "raw")
    manifest = shard_dataset(str(tmp_path / "raw"), str(tmp_path / "out"), "comp1k", items_per_shard=2)
    assert manifest["num_samples"] == 3 and manifest["quarantined"] == 0
    samples = {**tar_samples(tmp_path / "out/shard-000000.tar"), **tar_samples(tmp_path / "out/shard-000001.tar")}
    assert list(samples["a1"]) == ["fg.png", "alpha.png", "json"]
    for key, group in (("a1", "Adobe-licensed images"), ("o1", "Other")):
        s = samples[key]
        assert png_channels(s["alpha.png"]) == 1 and png_channels(s["fg.png"]) == 3
        alpha = decode_grey(s["alpha.png"])
        assert alpha.shape == (40, 48) and alpha.dtype == np.uint8
        assert (alpha == data[f"Training_set/{group}/alpha/{key}.png"]).all()
        assert (decode_image(s["fg.png"]) == data[f"Training_set/{group}/fg/{key}.png"]).all()
        meta = json.loads(s["json"])
        assert meta["members"] == {"fg.png": f"Training_set/{group}/fg/{key}.png",
                                   "alpha.png": f"Training_set/{group}/alpha/{key}.png"}
        assert meta["image_size"] == [40, 48] and meta["adapter"] == "comp1k"
    # A re-run reuses every shard.
    again = shard_dataset(str(tmp_path / "raw"), str(tmp_path / "out"), "comp1k", items_per_shard=2)
    assert again["shards"] == manifest["shards"]


def test_test_shards_hold_all_members_and_quarantine_names_the_file(tmp_path):
    data = make_comp1k(tmp_path / "raw", test=("t1",), n_bg=3)
    (tmp_path / "raw" / ADOBE / "trimaps/t1_2.png").unlink()
    write(tmp_path / "raw/Test_set/merged/t1_1.png", png_bytes(rgb(40, 47)))  # size differs from alpha
    manifest = shard_dataset(str(tmp_path / "raw"), str(tmp_path / "out"), "comp1k", {"split": "test"})
    assert manifest["num_samples"] == 1 and manifest["quarantined"] == 2
    s = tar_samples(tmp_path / "out/shard-000000.tar")["t1_0"]
    assert list(s) == ["merged.png", "alpha.png", "trimap.png", "fg.png", "bg.png", "json"]
    assert (decode_grey(s["trimap.png"]) == data[f"{ADOBE}/trimaps/t1_0.png"]).all()
    assert (decode_image(s["merged.png"]) == data["Test_set/merged/t1_0.png"]).all()
    q = {e["item_id"]: e for e in json.loads((tmp_path / "out/quarantine.json").read_text())["quarantined"]}
    assert q["t1_1"]["reason"] == "alpha size 40x48 differs from merged size 40x47 (Test_set/merged/t1_1.png)"
    assert q["t1_1"]["uri"].endswith(f"{ADOBE}/alpha/t1.png")
    assert q["t1_2"]["reason"] == "no trimap file found for Test_set/merged/t1_2.png"


def test_colour_alpha_is_quarantined_grey_rgb_alpha_accepted(tmp_path):
    raw = tmp_path / "raw"
    for stem in ("good", "rgbgrey", "colour", "small"):
        write(raw / f"fg/{stem}.png", png_bytes(rgb(16, 16)))
    a = soft_alpha(16, 16)
    write(raw / "alpha/good.png", grey_png(a))
    write(raw / "alpha/rgbgrey.png", png_bytes(np.repeat(a[..., None], 3, axis=2)))
    write(raw / "alpha/colour.png", png_bytes(rgb(16, 16)))
    write(raw / "alpha/small.png", grey_png(soft_alpha(16, 15)))
    manifest = shard_dataset(str(raw), str(tmp_path / "out"), "matting_folder")
    assert manifest["num_samples"] == 2
    samples = tar_samples(tmp_path / "out/shard-000000.tar")
    assert (decode_grey(samples["rgbgrey"]["alpha.png"]) == a).all()
    assert json.loads(samples["rgbgrey"]["json"])["notes"] == ["alpha: rgb->gray"]
    q = {e["item_id"]: e for e in json.loads((tmp_path / "out/quarantine.json").read_text())["quarantined"]}
    assert q["colour"]["reason"].startswith("alpha: colour image with differing channels (RGB)")
    assert q["colour"]["key"] == "alpha/colour.png"
    assert q["small"]["reason"] == "alpha size 16x15 differs from fg size 16x16 (fg/small.png)"
    assert all("\n" not in e["reason"] for e in q.values())


def test_load_grey_policy():
    a = soft_alpha(8, 9)
    img, notes = load_grey_with_notes(grey_png(a), "x")
    assert img.shape == (8, 9) and (img == a).all() and notes == []
    with pytest.raises(CorruptInput, match="colour image with differing channels"):
        load_grey_with_notes(png_bytes(rgb(8, 9)), "x")
    with pytest.raises(CorruptInput, match="empty file"):
        load_grey_with_notes(b"", "x")


def test_plan_fingerprint_changes_with_member_files(tmp_path):
    make_comp1k(tmp_path / "raw")
    fp1 = plan_job(str(tmp_path / "raw"), str(tmp_path / "out"), "comp1k").fingerprint
    write(tmp_path / "raw/Training_set/Other/alpha/o1.png", grey_png(soft_alpha(40, 48, seed=5)))
    assert plan_job(str(tmp_path / "raw"), str(tmp_path / "out"), "comp1k").fingerprint != fp1


def test_comp1k_test_split_from_s3(tmp_path, s3_bucket):
    from test_storage_backends import upload_tree

    data = make_comp1k(tmp_path / "raw", train=(), test=("t1",), n_bg=2)
    comp1k_annotations(tmp_path / "raw", data)
    upload_tree(tmp_path / "raw", s3_bucket, "comp1k")
    dest = f"s3://{s3_bucket}/shards/comp1k/test"
    manifest = shard_dataset(f"s3://{s3_bucket}/comp1k", dest, "comp1k", {"split": "test"})
    assert manifest["num_samples"] == 2 and read_manifest(dest) == manifest
    (tmp_path / "t.tar").write_bytes(open_storage(dest).read_bytes("shard-000000.tar"))
    s = tar_samples(tmp_path / "t.tar")["t1_1"]
    assert (decode_grey(s["alpha.png"]) == data[f"{ADOBE}/alpha/t1.png"]).all()
    assert (decode_image(s["bg.png"]) == data["Test_set/bg/t1_1.png"]).all()


def test_colour_members_drop_an_alpha_channel_like_the_reference(tmp_path):
    """A cut-out foreground saved as RGBA keeps its colour (cv2/PIL readers drop the channel);
    GT images of the other adapters still reject transparency."""
    from PIL import Image
    import io

    fg = rgb(12, 10)
    rgba = np.dstack([fg, soft_alpha(12, 10)])
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    write(tmp_path / "raw/fg/x.png", buf.getvalue())
    write(tmp_path / "raw/alpha/x.png", grey_png(soft_alpha(12, 10)))
    manifest = shard_dataset(str(tmp_path / "raw"), str(tmp_path / "out"), "matting_folder")
    assert manifest["num_samples"] == 1
    s = tar_samples(tmp_path / "out/shard-000000.tar")["x"]
    assert (decode_image(s["fg.png"]) == fg).all()
    assert json.loads(s["json"])["notes"] == ["fg: dropped alpha channel"]


def test_png_compression_level_changes_bytes_not_pixels(tmp_path):
    data = make_comp1k(tmp_path / "raw", train=(("Other", ("o1",)),), test=())
    with pytest.raises(AdapterError, match="png_compression must be an integer 0-9"):
        get_adapter("comp1k").resolve_params({"png_compression": 10})
    sizes = {}
    for level in (0, 3):
        shard_dataset(str(tmp_path / "raw"), str(tmp_path / f"out{level}"), "comp1k", {"png_compression": level})
        s = tar_samples(tmp_path / f"out{level}/shard-000000.tar")["o1"]
        assert (decode_image(s["fg.png"]) == data["Training_set/Other/fg/o1.png"]).all()
        assert (decode_grey(s["alpha.png"]) == data["Training_set/Other/alpha/o1.png"]).all()
        sizes[level] = len(s["alpha.png"])  # the random fg does not compress; the matte does
    assert sizes[0] > sizes[3]
