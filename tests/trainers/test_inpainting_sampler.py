"""The inpainting sampler: shapes and value conventions per mask type, seeding, the fixed
validation sample, mask-set augmentation and bad inputs."""

from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from degradations.seeding import sample_rng
from preprocessing.schema import encode_png, encode_png_grey
from preprocessing.shard_index import ShardSet
from shard_helpers import shard_dataset
from trainers.samplers.inpainting import InpaintingDataConfig, InpaintingSampler, color_jitter, ColorJitterConfig


def smooth_rgb(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(h // 16, 2), max(w // 16, 2), 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def blob_mask(h, w, seed) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = np.zeros((h, w), np.uint8)
    y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
    m[y:y + h // 3, x:x + w // 4] = 255
    return m


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """(image members, mask-set URI, empty-mask-set URI)."""
    root = tmp_path_factory.mktemp("inpainting")
    for i, (h, w) in enumerate([(420, 520), (300, 260), (512, 512)]):  # one smaller than the 384 crop
        write(root / f"raw_img/im{i}.png", encode_png(smooth_rgb(h, w, i)))
    for i, (h, w) in enumerate([(64, 64), (48, 80), (64, 64)]):  # sizes differ from the output: resized
        write(root / f"raw_masks/m{i}.png", encode_png_grey(blob_mask(h, w, i)))
    write(root / "raw_empty/e0.png", encode_png_grey(np.zeros((32, 32), np.uint8)))
    shard_dataset(str(root / "raw_img"), str(root / "img"), "image_folder", {"crop": False})
    shard_dataset(str(root / "raw_masks"), str(root / "masks"), "mask_folder")
    shard_dataset(str(root / "raw_empty"), str(root / "empty"), "mask_folder", {"allow_empty": True})
    s = ShardSet(str(root / "img"))
    members = []
    for i in range(len(s)):
        key, d = s.read(i)
        members.append({**d, "__key__": key})
    return members, str(root / "masks"), str(root / "empty")


def sampler(**cfg) -> InpaintingSampler:
    return InpaintingSampler(InpaintingDataConfig(**cfg))


def check_sample(out, size=(256, 256), bbox=False):
    assert set(out) == ({"gt", "mask", "mask_bbox"} if bbox else {"gt", "mask"})
    assert out["gt"].shape == (*size, 3) and out["gt"].dtype == np.uint8
    assert out["mask"].shape == (*size, 1) and out["mask"].dtype == np.uint8
    assert set(np.unique(out["mask"])) <= {0, 255}  # 255 = hole; to_batch makes it {0., 1.}
    if bbox:
        assert out["mask_bbox"].dtype == np.int32 and out["mask_bbox"].shape == (4,)


def test_bbox_mask_follows_the_zoo_bounds(data):
    members, _, _ = data
    s = sampler(mask={"type": "bbox"})
    for i in range(12):
        out = s.train(members[i % 3], sample_rng(0, 0, str(i)))
        check_sample(out, bbox=True)
        top, left, h, w = out["mask_bbox"].tolist()
        assert 108 <= h <= 128 and 108 <= w <= 128 and top >= 20 and left >= 20
        assert top + h <= 256 - 20 - 1 and left + w <= 236
        m = out["mask"][:, :, 0] > 0
        assert m.sum() == h * w and m[top:top + h, left:left + w].all()


def test_irregular_mask_area_ratio_and_brush_nonempty(data):
    members, _, _ = data
    irr, brush = sampler(mask={"type": "irregular"}), sampler(mask={"type": "brush"})
    for i in range(8):
        out = irr.train(members[i % 3], sample_rng(1, 0, str(i)))
        check_sample(out)
        assert 0.15 < (out["mask"] > 0).mean() < 0.65
        out = brush.train(members[i % 3], sample_rng(1, 0, str(i)))
        check_sample(out)
        assert out["mask"].any() and not out["mask"].all()


def test_crop_then_resize_matches_the_zoo_pipeline(data):
    """crop: random = Crop 384 (x drawn, then y; smaller images taken whole) + bilinear Resize 256,
    after the mask's draws."""
    from degradations.masks import random_bbox
    from preprocessing.schema import decode_image

    members, _, _ = data
    s = sampler()
    for m in members:
        img = decode_image(m["gt.png"])
        out = s.train(m, sample_rng(3, 1, m["__key__"]))
        rng = sample_rng(3, 1, m["__key__"])
        random_bbox((256, 256), 128, 40, 20, rng=rng)
        h, w = img.shape[:2]
        ch, cw = min(h, 384), min(w, 384)
        x = int(rng.integers(0, w - cw + 1))
        y = int(rng.integers(0, h - ch + 1))
        want = cv2.resize(img[y:y + ch, x:x + cw], (256, 256), interpolation=cv2.INTER_LINEAR)
        assert (out["gt"] == want).all()


def test_same_seed_same_sample_different_epoch_differs(data):
    members, masks, _ = data
    for mask in ({"type": "bbox"}, {"type": "irregular"}, {"type": "brush"},
                 {"type": "set", "set": masks, "rotation": (0, 45)}):
        s = sampler(mask=mask, flip_prob=0.5)
        a = s.train(members[0], sample_rng(7, 2, members[0]["__key__"]))
        b = pickle.loads(pickle.dumps(s)).train(members[0], sample_rng(7, 2, members[0]["__key__"]))
        assert all((a[k] == b[k]).all() for k in a)
        others = [s.train(members[0], sample_rng(7, e, members[0]["__key__"])) for e in range(3, 7)]
        assert any((o["mask"] != a["mask"]).any() or (o["gt"] != a["gt"]).any() for o in others)


@pytest.mark.parametrize("mask", ["bbox", "irregular", "brush", "set"])
def test_validation_sample_is_a_function_of_the_key_only(data, mask):
    members, masks, _ = data
    cfg = {"type": mask, "set": masks, "rotation": (0, 45)} if mask == "set" else {"type": mask}
    s = sampler(mask=cfg, flip_prob=0.5, color_jitter={})
    for m in members:
        a = s.val(m, np.random.default_rng(1))
        b = sampler(mask=cfg, flip_prob=0.5, color_jitter={}).val(m, sample_rng(99, 5, "whatever"))
        check_sample(a, bbox=mask == "bbox")
        assert set(a) == set(b) and all((a[k] == b[k]).all() for k in a)
    va = [s.val(m)["mask"] for m in members]
    assert any((va[0] != v).any() for v in va[1:]) or mask == "set"  # keys differ -> holes differ
    other_seed = sampler(mask=cfg, val_seed=1)
    assert any((other_seed.val(m)["mask"] != s.val(m)["mask"]).any() for m in members)


def test_validation_set_mask_is_the_stored_mask_unaugmented(data):
    members, masks, _ = data
    stored = []
    s = ShardSet(masks)
    for i in range(len(s)):
        from preprocessing.schema import decode_grey

        m = (decode_grey(s.read(i)[1]["mask.png"]) > 0).astype(np.uint8)
        stored.append(cv2.resize(m, (256, 256), interpolation=cv2.INTER_NEAREST))
    smp = sampler(mask={"type": "set", "set": masks, "rotation": (0, 45)})
    for m in members:
        out = smp.val(m)["mask"][:, :, 0]
        assert any((out == st * 255).all() for st in stored)


def test_set_mask_augmentation_flip_and_rotation(data):
    """Flip (shared with the image) and clockwise rotation as mmcv.imrotate, after the nearest resize."""
    members, masks, _ = data
    key = members[0]["__key__"]
    kw = dict(mask={"type": "set", "set": masks, "rotation": (30.0, 30.0)})
    plain = sampler(flip_prob=1e-12, **kw).train(members[0], sample_rng(0, 0, key))  # draws, never flips
    flipped = sampler(flip_prob=1.0, **kw).train(members[0], sample_rng(0, 0, key))
    assert (flipped["gt"] == plain["gt"][:, ::-1]).all()
    unrot = sampler(flip_prob=1e-12, mask={"type": "set", "set": masks}).train(members[0], sample_rng(0, 0, key))
    mat = cv2.getRotationMatrix2D((127.5, 127.5), -30.0, 1.0)
    unrot01 = (unrot["mask"][:, :, 0] > 0).astype(np.uint8)  # the reference rotates the 0/1 mask
    want = cv2.warpAffine(unrot01, mat, (256, 256), flags=cv2.INTER_LINEAR, borderValue=0)
    assert (plain["mask"][:, :, 0] == want * 255).all() and (plain["mask"] != unrot["mask"]).any()
    rot_flip = cv2.warpAffine(np.ascontiguousarray(unrot01[:, ::-1]), mat, (256, 256),
                              flags=cv2.INTER_LINEAR, borderValue=0)
    assert (flipped["mask"][:, :, 0] == rot_flip * 255).all()


def test_aot_like_config(data):
    members, masks, _ = data
    s = sampler(size=(512, 512), crop="random_resized", flip_prob=0.5, color_jitter={},
                mask={"type": "set", "set": masks, "rotation": (0, 45)})
    for i, m in enumerate(members):
        out = s.train(m, sample_rng(0, 0, str(i)))
        check_sample(out, size=(512, 512))
        assert out["mask"].any()
        check_sample(s.val(m), size=(512, 512))


def test_color_jitter_identity_and_range():
    img = smooth_rgb(32, 32, 0)
    none = ColorJitterConfig(brightness=0, contrast=0, saturation=0, hue=0)
    assert (color_jitter(img, none, np.random.default_rng(0)) == img).all()
    out = color_jitter(img, ColorJitterConfig(), np.random.default_rng(0))
    assert out.shape == img.shape and out.dtype == np.uint8 and (out != img).any()


def test_empty_masks_are_redrawn_then_a_one_line_error(data):
    members, masks, empty = data
    s = sampler(mask={"type": "set", "set": empty})
    with pytest.raises(ValueError, match=r"^mask set .*: mask 0 has no hole pixel after augmentation") as e:
        s.train(members[0], sample_rng(0, 0, "k"))
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="validation mask 0 .* has no hole pixel"):
        s.val(members[0])
    ok = sampler(mask={"type": "set", "set": empty, "allow_empty": True}).train(members[0], sample_rng(0, 0, "k"))
    assert not ok["mask"].any()


def test_bad_inputs(data, tmp_path):
    members, _, _ = data
    with pytest.raises(ValueError, match=r"sample x: inpainting needs a gt.png member, got \['fg.png'\]"):
        sampler().train({"fg.png": b"", "__key__": "x"}, np.random.default_rng(0))
    with pytest.raises(ValueError, match="sample x: gt.png: cannot decode"):
        sampler().train({"gt.png": b"garbage", "__key__": "x"}, np.random.default_rng(0))
    with pytest.raises(ValueError, match="needs the sample key"):
        sampler().val({"gt.png": members[0]["gt.png"]})
    with pytest.raises(ValueError, match="mask set .*(does not exist|no manifest)"):
        sampler(mask={"type": "set", "set": str(tmp_path / "nothing")}).train(members[0], np.random.default_rng(0))


@pytest.mark.parametrize("cfg,where", [
    ({"mask": {"type": "bbox", "max_bbox_shape": (300, 300)}}, "mask"),
    ({"val_mask": {"type": "bbox", "min_margin": 100}}, "val_mask"),
    ({"mask": {"type": "irregular", "area_ratio_range": (0.7, 0.2)}}, "area_ratio_range"),
    ({"mask": {"type": "holes"}}, "mask"),
    ({"mask": {"type": "set"}}, "set"),
    ({"mask": {"type": "bbox", "nope": 1}}, "nope"),
    ({"crop": "centre"}, "crop"),
    ({"flip_prob": 2}, "flip_prob"),
    ({"color_jitter": {"hue": 0.7}}, "hue"),
])
def test_config_errors_name_the_field(cfg, where):
    with pytest.raises(ValidationError, match=where):
        InpaintingDataConfig(**cfg)


def test_val_crop_center_and_a_separate_val_mask_set(data, tmp_path):
    from preprocessing.schema import decode_image

    members, masks, _ = data
    s = sampler(val_crop="center", mask={"type": "irregular"},
                val_mask={"type": "set", "set": masks})
    for m in members:
        img = decode_image(m["gt.png"])
        h, w = img.shape[:2]
        ch, cw = min(h, 384), min(w, 384)
        y, x = (h - ch) // 2, (w - cw) // 2
        want = cv2.resize(np.ascontiguousarray(img[y:y + ch, x:x + cw]), (256, 256), interpolation=cv2.INTER_LINEAR)
        out = s.val(m)
        assert (out["gt"] == want).all()
        assert out["mask"].any() and set(out) == {"gt", "mask"}
    # the training mask is still the generated one
    assert 0.15 < (s.train(members[0], np.random.default_rng(0))["mask"] > 0).mean() < 0.65


def test_to_batch_makes_the_batch_schema(data):
    """The stream's to_batch: gt float [B,3,H,W] in [0,1], mask float [B,1,H,W] in {0,1}, mask_bbox int [B,4]."""
    import torch

    from trainers.tasks.common import to_batch

    members, _, _ = data
    rows = [sampler().train(m, np.random.default_rng(i)) for i, m in enumerate(members)]
    batch = to_batch({k: np.stack([r[k] for r in rows]) for k in rows[0]})
    assert batch["gt"].shape == (3, 3, 256, 256) and batch["gt"].dtype == torch.float32
    assert batch["mask"].shape == (3, 1, 256, 256) and set(batch["mask"].unique().tolist()) == {0.0, 1.0}
    assert batch["mask_bbox"].shape == (3, 4) and batch["mask_bbox"].dtype == torch.int32
    top, left, h, w = batch["mask_bbox"][0].tolist()
    assert batch["mask"][0, 0, top:top + h, left:left + w].all() and batch["mask"][0].sum() == h * w
