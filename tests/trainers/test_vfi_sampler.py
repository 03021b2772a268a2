"""The frame-interpolation sampler: mmedit parity of the CAIN / FLAVR training pipelines (goldens
made by mmedit 0.16.1 itself), triplet / septuplet frame selection, the members it reads, the
augmentation's determinism, and the numpy ColorJitter against Pillow (torchvision's PIL backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance
from pydantic import ValidationError

from preprocessing.schema import encode_json, encode_png, frame_member
from trainers.samplers import color_jitter as cj
from trainers.samplers.vfi import VFIDataConfig, VFISampler

GOLDEN = Path(__file__).resolve().parents[1] / "data/golden/vfi_sampler.npz"
CASES = {"triplet": ([0, 2], 1, 0.05, 0.05), "septuplet": ([0, 2, 4, 6], 3, 0.05, 0.05),
         "strong": ([0, 2], 1, 0.6, 0.4)}


class MmeditDraws:
    """A generator whose draws are the global-``np.random`` calls mmedit's pipeline makes (the
    golden script routes ColorJitter's ``random.randint`` seed through ``np.random`` too)."""

    def __init__(self, seed: int):
        self.state = np.random.RandomState(seed)

    def integers(self, low, high=None):
        return self.state.randint(low, high)

    def random(self, size=None):
        return self.state.random_sample(size)


def clip_members(frames, key="clip", json=True) -> dict:
    members = {frame_member("gt", t): encode_png(np.ascontiguousarray(f)) for t, f in enumerate(frames)}
    if json:
        members["json"] = encode_json({"frames": len(frames)})
    return members | {"__key__": key}


def time_coded(n: int, h: int = 20, w: int = 28) -> np.ndarray:
    """Frame t: R = row, G = column, B = 30 t (a crop's pixels say where and when they were)."""
    yy, xx = np.mgrid[:h, :w]
    return np.stack([np.stack([yy, xx, np.full_like(yy, 30 * t)], -1) for t in range(n)]).astype(np.uint8)


# ---------------------------------------------------------------- parity with mmedit 0.16.1


@pytest.mark.parametrize("case", sorted(CASES))
def test_training_sample_matches_mmedits_pipeline_draw_for_draw(case):
    z = np.load(GOLDEN)
    inputs, target, jitter, hue = CASES[case]
    sampler = VFISampler(VFIDataConfig(input_frames=inputs, target_frame=target, crop_size=16,
                                       color_jitter={"brightness": jitter, "contrast": jitter,
                                                     "saturation": jitter, "hue": hue}))
    clip = z[f"{case}/clip"]
    members = clip_members(clip)
    seeds = sorted({int(k.split("/")[1]) for k in z.files if k.startswith(case + "/") and k != f"{case}/clip"})
    assert len(seeds) == 6
    jittered = 0
    for seed in seeds:
        out = sampler.train(members, MmeditDraws(seed))
        np.testing.assert_array_equal(out["inputs"], z[f"{case}/{seed}/inputs"], err_msg=f"{case} seed {seed}")
        np.testing.assert_array_equal(out["gt"], z[f"{case}/{seed}/target"], err_msg=f"{case} seed {seed}")
        jittered += not any(np.array_equal(out["gt"], clip[target][y:y + 16, x:x + 16])
                            for y in range(clip.shape[1] - 15) for x in range(clip.shape[2] - 15))
    assert jittered == len(seeds)  # the goldens hold jittered colours, not plain crops


# ---------------------------------------------------------------- frame selection and members


@pytest.mark.parametrize("n, inputs, target", [(3, [0, 2], 1), (7, [0, 2, 4, 6], 3)])
def test_triplet_and_septuplet_pick_their_inputs_and_middle_frame(n, inputs, target):
    clip = time_coded(n)
    sampler = VFISampler(VFIDataConfig(input_frames=inputs, target_frame=target, crop_size=None, use_hflip=False,
                                       use_vflip=False, color_jitter=None, reverse_ratio=0.0))
    members = clip_members(clip)
    for out in (sampler.train(members, np.random.default_rng(0)), sampler.val(members, np.random.default_rng(0))):
        assert out["inputs"].dtype == np.uint8 and out["inputs"].shape == (len(inputs), 20, 28, 3)
        assert out["inputs"][:, 0, 0, 2].tolist() == [30 * t for t in inputs]
        np.testing.assert_array_equal(out["gt"], clip[target])
    wanted = sampler.train_members({k: b"" for k in members} | {"json": members["json"]}, np.random.default_rng(0))
    assert wanted == ["json", *(frame_member("gt", t) for t in sorted([*inputs, target]))]
    # the stream fetches only those members: training works on them alone
    only = {k: members[k] for k in wanted} | {"__key__": "clip"}
    np.testing.assert_array_equal(sampler.train(only, np.random.default_rng(0))["gt"], clip[target])


def test_crop_flip_and_reverse_move_every_frame_together():
    clip = time_coded(3, 24, 30)
    sampler = VFISampler(VFIDataConfig(crop_size=16, color_jitter=None))
    members = clip_members(clip)
    seen = set()
    for seed in range(24):
        out = sampler.train(members, np.random.default_rng(seed))
        frames = [*out["inputs"], out["gt"]]
        for f in frames:  # one box, one flip state for all three frames
            np.testing.assert_array_equal(f[..., :2], frames[0][..., :2])
        assert out["gt"][0, 0, 2] == 30 and out["gt"].shape == (16, 16, 3)
        order = tuple(int(f[0, 0, 2]) for f in out["inputs"])
        rows, cols = out["gt"][:, 0, 0].astype(int), out["gt"][0, :, 1].astype(int)
        seen.add((order, int(np.sign(rows[-1] - rows[0])), int(np.sign(cols[-1] - cols[0]))))
    assert {s[0] for s in seen} == {(0, 60), (60, 0)}  # temporal reverse of the inputs
    assert {s[1:] for s in seen} == {(1, 1), (1, -1), (-1, 1), (-1, -1)}  # both flips


def test_training_sample_is_a_function_of_the_generator():
    clip = np.random.default_rng(3).integers(0, 256, (3, 40, 40, 3), dtype=np.uint8)
    sampler = VFISampler(VFIDataConfig(crop_size=32))
    members = clip_members(clip)
    a = sampler.train(members, np.random.default_rng(11))
    b = sampler.train(members, np.random.default_rng(11))
    c = sampler.train(members, np.random.default_rng(12))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["gt"], c["gt"])


def test_frames_smaller_than_the_crop_keep_their_size_as_mmedits_fixed_crop():
    out = VFISampler(VFIDataConfig(crop_size=32)).train(clip_members(time_coded(3, 20, 40)), np.random.default_rng(1))
    assert out["inputs"].shape == (2, 20, 32, 3) and out["gt"].shape == (20, 32, 3)


def test_bad_configs_and_clips_are_one_line_errors():
    with pytest.raises(ValidationError, match="between input frames"):
        VFIDataConfig(input_frames=[0, 2], target_frame=3)
    with pytest.raises(ValidationError, match="distinct increasing"):
        VFIDataConfig(input_frames=[2, 0], target_frame=1)
    with pytest.raises(ValidationError, match="hue"):
        VFIDataConfig(color_jitter={"hue": 0.6})
    sampler = VFISampler(VFIDataConfig(input_frames=[0, 2, 4, 6], target_frame=3))
    with pytest.raises(ValueError, match=r"^clip short: 3 frames, but .* need 7$"):
        sampler.train(clip_members(time_coded(3), key="short"), np.random.default_rng(0))
    members = clip_members(time_coded(7), key="gap")
    del members[frame_member("gt", 4)]
    with pytest.raises(ValueError, match="frame 4 is missing"):
        sampler.val(members, np.random.default_rng(0))


# ---------------------------------------------------------------- ColorJitter against Pillow


def _image(seed: int, h=24, w=31) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    img[:3] = 128                 # grey
    img[3:5] = [255, 0, 0]        # saturated primaries
    img[5:7] = [0, 255, 255]
    img[7, :] = [255, 255, 255]
    return img


@pytest.mark.parametrize("factor", [0.0, 0.5, 0.95, 0.9999, 1.0, 1.04, 1.3, 2.5])
def test_brightness_contrast_saturation_equal_pillows_enhancers(factor):
    img = _image(int(factor * 100))
    pil = Image.fromarray(img)
    for ours, enhancer in ((cj.adjust_brightness, ImageEnhance.Brightness), (cj.adjust_contrast, ImageEnhance.Contrast),
                           (cj.adjust_saturation, ImageEnhance.Color)):
        np.testing.assert_array_equal(ours(img, factor), np.asarray(enhancer(pil).enhance(factor)), err_msg=ours.__name__)


def test_hsv_conversions_equal_pillows_on_every_code():
    cube = np.stack(np.meshgrid(np.arange(0, 256, 3), np.arange(256), np.arange(0, 256, 5), indexing="ij"), -1)
    cube = cube.reshape(1, -1, 3).astype(np.uint8)
    np.testing.assert_array_equal(cj.rgb_to_hsv(cube), np.asarray(Image.fromarray(cube).convert("HSV")))
    hs = np.stack(np.meshgrid(np.arange(256), np.arange(256), indexing="ij"), -1).reshape(-1, 2)
    for v in (0, 1, 127, 128, 254, 255):
        hsv = np.concatenate([hs, np.full((len(hs), 1), v)], 1).astype(np.uint8)[None]
        np.testing.assert_array_equal(cj.hsv_to_rgb(hsv), np.asarray(Image.fromarray(hsv, "HSV").convert("RGB")))


@pytest.mark.parametrize("factor", [-0.5, -0.05, -0.004, 0.0, 0.02, 0.05, 0.37])
def test_hue_equals_torchvisions_pil_adjust_hue(factor):
    """torchvision's ``_functional_pil.adjust_hue``: H of Pillow's HSV plus ``uint8(int32(f * 255))``, wrapping."""
    img = _image(7)
    h, s, v = Image.fromarray(img).convert("HSV").split()
    shifted = np.array(h, dtype=np.uint8)
    shifted += np.int32(factor * 255).astype(np.uint8)
    ref = Image.merge("HSV", (Image.fromarray(shifted, "L"), s, v)).convert("RGB")
    np.testing.assert_array_equal(cj.adjust_hue(img, factor), np.asarray(ref))


def test_jitter_params_follow_torchvisions_ranges_and_order():
    seen_orders = set()
    for seed in range(40):
        p = cj.jitter_params(seed, 0.05, 0.05, 0.05, 0.05)
        assert sorted(p.order) == [0, 1, 2, 3]
        seen_orders.add(p.order)
        assert all(0.95 <= f <= 1.05 for f in (p.brightness, p.contrast, p.saturation)) and -0.05 <= p.hue <= 0.05
        assert cj.jitter_params(seed, 0.05, 0.05, 0.05, 0.05) == p
    assert len(seen_orders) > 5
    off = cj.jitter_params(3, brightness=0.0, contrast=2.0, saturation=0.0, hue=0.0)
    assert off.brightness is off.saturation is off.hue is None and 0.0 <= off.contrast <= 3.0  # clamped at 0
    img = _image(2)
    np.testing.assert_array_equal(cj.apply_jitter(img, cj.jitter_params(5)), img)  # all off: unchanged
