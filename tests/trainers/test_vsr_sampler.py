"""The clip sampler: mmedit parity of the training pipeline, crop/flip shared by every frame,
paired alignment, the presets, reverse / mirror, determinism and the error cases."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from preprocessing.schema import encode_json, encode_png, frame_member
from trainers.samplers.sr import SRDataConfig
from trainers.samplers.vsr import VSRDataConfig, VSRSampler, segment_indices

GOLDEN = Path(__file__).resolve().parents[1] / "data/golden/vsr_sampler.npz"


class LegacyDraws:
    """A generator whose draws are the global-``np.random`` calls mmedit's pipeline makes."""

    def __init__(self, seed: int):
        self.state = np.random.RandomState(seed)

    def integers(self, low, high=None):
        return self.state.randint(low, high)

    def random(self, size=None):
        return self.state.random_sample(size)


def clip(gt, lq=None, key="clip", scale=4, frames=None) -> dict:
    members = {frame_member("gt", t): encode_png(np.ascontiguousarray(f)) for t, f in enumerate(gt)}
    if lq is not None:
        members |= {frame_member("lq", t): encode_png(np.ascontiguousarray(f)) for t, f in enumerate(lq)}
    members["json"] = encode_json({"frames": len(gt) if frames is None else frames, "scale": scale})
    members["__key__"] = key
    return members


def coordinate_clip(t: int, h: int, w: int) -> np.ndarray:
    """Frame ``t``: R = row, G = column, B = 10 t (so a crop's pixels say where and when they were)."""
    yy, xx = np.mgrid[:h, :w]
    return np.stack([np.stack([yy, xx, np.full_like(yy, 10 * i)], -1) for i in range(t)]).astype(np.uint8)


def area_down(frames: np.ndarray, s: int) -> np.ndarray:
    t, h, w, c = frames.shape
    return frames.reshape(t, h // s, s, w // s, s, c).mean(axis=(2, 4)).round().astype(np.uint8)


def sampler(**kw) -> VSRSampler:
    return VSRSampler(VSRDataConfig(**kw))


# ---------------------------------------------------------------- parity with mmedit 0.16.1


@pytest.mark.parametrize("case", ["paired", "gt_only"])
def test_training_clip_matches_mmedit_pipeline_draw_for_draw(case):
    z = np.load(GOLDEN)
    gt, lq = z["clip/gt"], z["clip/lq"]
    if case == "paired":
        s = sampler(gt_size=16, num_input_frames=4, interval_list=[1, 2], random_reverse=True, mirror=True,
                    degradation={"preset": "paired"})
        members = clip(gt, lq)
    else:  # RealBasicVSR's crop / flips / mirror, compared before its degradation
        s = sampler(gt_size=16, num_input_frames=4, mirror=True, degradation={"preset": "bicubic"})
        members = clip(gt)
    seeds = sorted({int(k.split("/")[1]) for k in z.files if k.startswith(case + "/")})
    assert len(seeds) == 8
    for seed in seeds:
        out = s.train(members, LegacyDraws(seed))
        np.testing.assert_array_equal(out["gt"], z[f"{case}/{seed}/gt"], err_msg=f"{case} seed {seed}")
        if case == "paired":
            np.testing.assert_array_equal(out["lq"], z[f"{case}/{seed}/lq"], err_msg=f"{case} seed {seed}")
        # the window itself, through the same draws
        idx = z[f"{case}/{seed}/indices"].tolist()
        draws = LegacyDraws(seed)
        window = segment_indices(10, 4, [1, 2] if case == "paired" else [1], draws)
        if case == "paired" and draws.random() < 0.5:
            window = window[::-1]
        assert window == idx


def test_segment_indices_follow_mmedits_condition():
    rng = np.random.default_rng(0)
    assert segment_indices(8, 4, [2], rng) == [0, 2, 4, 6]  # T == n * interval: only start 0
    assert segment_indices(7, None, [1], rng) == list(range(7))  # null: the whole clip (Vimeo-90K)
    with pytest.raises(ValueError, match="clip c: 7 frames are too few for num_input_frames 4 at interval 2"):
        segment_indices(7, 4, [2], rng, "c")  # the last index (6) would fit, mmedit refuses all the same
    starts = {segment_indices(10, 3, [1], rng)[0] for _ in range(200)}
    assert starts == set(range(8))


# ---------------------------------------------------------------- spatial and temporal augmentation


def test_every_frame_gets_the_same_crop_and_flips():
    s = sampler(gt_size=16, num_input_frames=5, random_reverse=True, degradation={"preset": "bicubic"})
    members = clip(coordinate_clip(12, 40, 48))
    layouts, orders = set(), set()
    for seed in range(24):
        gt = s.train(members, np.random.default_rng(seed))["gt"].astype(int)
        assert gt.shape == (5, 16, 16, 3)
        for f in gt[1:]:
            np.testing.assert_array_equal(f[..., :2], gt[0, ..., :2])  # same box, same flips
        times = gt[:, 0, 0, 2] // 10
        assert (gt[..., 2] == 10 * times[:, None, None]).all()
        steps = set(np.diff(times).tolist())
        assert steps in ({1}, {-1})
        orders.add(steps.pop())
        rows, cols = gt[0, ..., 0], gt[0, ..., 1]
        # a dihedral image of a contiguous 16x16 window: R and G each change along one axis by +-1
        row_axis = 0 if (np.diff(rows, axis=1) == 0).all() else 1
        assert (np.abs(np.diff(rows, axis=row_axis)) == 1).all()
        assert (np.abs(np.diff(cols, axis=1 - row_axis)) == 1).all()
        layouts.add((row_axis, int(np.sign(np.diff(rows, axis=row_axis)[0, 0])),
                     int(np.sign(np.diff(cols, axis=1 - row_axis)[0, 0]))))
    assert orders == {1, -1}  # reversal happens, both ways
    assert len(layouts) >= 6  # flips and transposes vary between samples


def test_paired_crop_is_scale_aligned():
    rng = np.random.default_rng(3)
    gt = cv2.GaussianBlur(rng.integers(0, 256, (6, 32, 48, 3), dtype=np.uint8).reshape(6 * 32, 48, 3),
                          (0, 0), 2).reshape(6, 32, 48, 3)
    members = clip(gt, area_down(gt, 4))
    s = sampler(gt_size=16, num_input_frames=3, interval_list=[1, 2], degradation={"preset": "paired"})
    for seed in range(10):
        out = s.train(members, np.random.default_rng(seed))
        assert out["lq"].shape == (3, 4, 4, 3) and out["gt"].shape == (3, 16, 16, 3)
        diff = np.abs(out["lq"].astype(int) - area_down(out["gt"], 4).astype(int))
        assert diff.max() <= 1  # the LQ frame is the x4 box average of its GT crop


def test_mirror_appends_the_reversed_clip():
    gt = coordinate_clip(6, 32, 32)
    out = sampler(gt_size=16, num_input_frames=None, mirror=True).train(clip(gt), np.random.default_rng(1))
    assert out["gt"].shape == (12, 16, 16, 3) and out["lq"].shape == (12, 4, 4, 3)
    for k in ("lq", "gt"):
        np.testing.assert_array_equal(out[k][6:], out[k][:6][::-1])
    assert (out["gt"][:6, 0, 0, 2] // 10).tolist() == list(range(6))


@pytest.mark.parametrize("preset", ["bicubic", "bd"])
def test_classic_presets_degrade_every_frame(preset):
    from degradations.presets import degrade

    gt = coordinate_clip(5, 32, 32)
    s = sampler(gt_size=16, num_input_frames=5, degradation={"preset": preset})
    out = s.train(clip(gt), np.random.default_rng(0))
    for lq, g in zip(out["lq"], out["gt"]):
        ref = degrade(preset, g.astype(np.float32) / 255, scale=4, rng=np.random.default_rng(0))
        np.testing.assert_array_equal(lq, np.round(ref * 255).astype(np.uint8))


def test_realbasicvsr_on_a_seven_frame_clip():
    gt = np.random.default_rng(0).integers(0, 256, (7, 48, 48, 3), dtype=np.uint8)  # edges: USM has work
    members = clip(gt)
    s = sampler(gt_size=32, num_input_frames=None, mirror=True, degradation={"preset": "realbasicvsr"})
    out = s.train(members, np.random.default_rng(7))
    assert {k: v.shape for k, v in out.items()} == {"lq": (14, 8, 8, 3), "gt": (14, 32, 32, 3),
                                                    "gt_usm": (14, 32, 32, 3)}
    assert all(v.dtype == np.uint8 for v in out.values())
    np.testing.assert_array_equal(out["gt"][7:], out["gt"][:7][::-1])
    np.testing.assert_array_equal(out["gt_usm"][7:], out["gt_usm"][:7][::-1])
    assert not np.array_equal(out["gt_usm"], out["gt"])  # sharpened target
    again = s.train(members, np.random.default_rng(7))
    for k in out:
        np.testing.assert_array_equal(out[k], again[k])
    other = s.train(members, np.random.default_rng(8))
    assert not np.array_equal(out["lq"], other["lq"])
    plain = sampler(gt_size=32, num_input_frames=None, degradation={"preset": "realbasicvsr"})
    assert plain.train(members, np.random.default_rng(7))["lq"].shape == (7, 8, 8, 3)


def test_realbasicvsr_sample_is_the_presets_output():
    from degradations.realbasicvsr import realbasicvsr_clip

    gt = np.random.default_rng(1).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    s = sampler(gt_size=None, num_input_frames=None, use_hflip=False, use_rot=False, mirror=True,
                degradation={"preset": "realbasicvsr"})
    out = s.train(clip(gt), np.random.default_rng(3))
    rng = np.random.default_rng(3)
    rng.integers(0, 1), rng.integers(0, 1), rng.random(3)  # the window and flip draws
    ref = realbasicvsr_clip(gt.astype(np.float32) / 255, scale=4, rng=rng)
    np.testing.assert_array_equal(out["lq"], np.round(ref["lq"] * 255).astype(np.uint8))
    np.testing.assert_array_equal(out["gt_usm"], np.clip(np.round(ref["gt"] * 255), 0, 255).astype(np.uint8))


def test_same_seed_same_clip():
    members = clip(coordinate_clip(10, 40, 40))
    s = sampler(gt_size=16, num_input_frames=4, interval_list=[1, 2], random_reverse=True)
    a, b = (s.train(members, np.random.default_rng(42)) for _ in range(2))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


# ---------------------------------------------------------------- validation


def test_val_takes_all_frames_paired_or_degraded():
    gt = coordinate_clip(6, 32, 40)
    lq = area_down(gt, 4)
    s = sampler(degradation={"preset": "paired"})
    out = s.val(clip(gt, lq), np.random.default_rng(0))
    np.testing.assert_array_equal(out["lq"], lq)
    np.testing.assert_array_equal(out["gt"], gt)
    out = s.val(clip(gt[:, :30, :38]), np.random.default_rng(0))  # no lq frames: bicubic, mod-crop
    assert out["lq"].shape == (6, 7, 9, 3) and out["gt"].shape == (6, 28, 36, 3)
    windowed = sampler(val_num_input_frames=2, val_gt_size=16).val(clip(gt, lq), np.random.default_rng(0))
    assert (windowed["gt"][:, 0, 0, 2] // 10).tolist() == [2, 3]  # centred window
    np.testing.assert_array_equal(windowed["gt"], gt[2:4, 8:24, 12:28])  # centred box
    np.testing.assert_array_equal(windowed["lq"], lq[2:4, 2:6, 3:7])


def test_val_realbasicvsr_is_unmirrored_and_seeded():
    gt = coordinate_clip(3, 32, 32)
    s = sampler(mirror=True, degradation={"preset": "realbasicvsr"})
    a, b = (s.val(clip(gt), np.random.default_rng(5)) for _ in range(2))
    assert a["lq"].shape == (3, 8, 8, 3) and a["gt"].shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(a["lq"], b["lq"])


# ---------------------------------------------------------------- errors


def test_missing_frame_names_the_clip_and_frame():
    members = clip(coordinate_clip(6, 16, 16), key="reds_000")
    del members[frame_member("gt", 4)]
    with pytest.raises(ValueError, match=r"^clip reds_000: frame 4 is missing \(no gt.004.png member\)$"):
        sampler(gt_size=None, num_input_frames=None).train(members, np.random.default_rng(0))
    with pytest.raises(ValueError, match="clip reds_000: frame 4 is missing"):
        sampler().val(members, np.random.default_rng(0))
    gt = coordinate_clip(3, 16, 16)
    paired = clip(gt, area_down(gt, 4), key="p")
    del paired[frame_member("lq", 1)]
    with pytest.raises(ValueError, match=r"clip p: frame 1 is missing \(no lq.001.png member\)"):
        sampler(gt_size=None, num_input_frames=None, degradation={"preset": "paired"}).train(
            paired, np.random.default_rng(0))


def test_bad_clips_are_one_line_errors():
    rng = np.random.default_rng(0)
    short = clip(coordinate_clip(3, 16, 16), key="short")
    with pytest.raises(ValueError, match="^clip short: 3 frames are too few for num_input_frames 5 at interval 1$"):
        sampler(num_input_frames=5).train(short, rng)
    with pytest.raises(ValueError, match="clip short: 3 frames are too few for val_num_input_frames 4"):
        sampler(val_num_input_frames=4).val(short, rng)
    gt = coordinate_clip(3, 16, 16)
    with pytest.raises(ValueError, match=r"clip p: GT frames 16x16 are not 4x the LQ frames 3x3"):
        sampler(num_input_frames=3, gt_size=8, degradation={"preset": "paired"}).train(
            clip(gt, area_down(gt[:, :12, :12], 4), key="p"), rng)
    with pytest.raises(ValueError, match="clip p: its lq frames are x2, the config's scale is 4"):
        sampler(num_input_frames=3, degradation={"preset": "paired"}).train(
            clip(gt, area_down(gt, 4), key="p", scale=2), rng)
    with pytest.raises(ValueError, match=r"LQ frames 4x4 are smaller than the LQ patch 8x8"):
        sampler(num_input_frames=3, gt_size=32, degradation={"preset": "paired"}).train(
            clip(gt, area_down(gt, 4), key="p"), rng)
    odd = clip(gt)
    odd[frame_member("gt", 1)] = encode_png(np.zeros((8, 16, 3), np.uint8))
    with pytest.raises(ValueError, match=r"clip clip: gt.001.png is \(8, 16\), frame 0 is \(16, 16\)"):
        sampler(num_input_frames=3, gt_size=8).train(odd, rng)
    with pytest.raises(ValueError, match="clip empty: no gt frame members"):
        sampler().train({"__key__": "empty"}, rng)


def test_config_checks():
    assert VSRDataConfig(degradation={"preset": "realbasicvsr"}).degradation.preset == "realbasicvsr"
    with pytest.raises(ValidationError, match="realesrgan degrades single images; a video task takes one of"):
        VSRDataConfig(degradation={"preset": "realesrgan"})
    with pytest.raises(ValidationError, match="realbasicvsr degrades clips and needs a video task"):
        SRDataConfig(degradation={"preset": "realbasicvsr"})  # image configs still refuse clip presets
    with pytest.raises(ValidationError, match="gt_size 250 is not divisible by scale 4"):
        VSRDataConfig(gt_size=250)
    with pytest.raises(ValidationError, match="interval_list entries must be >= 1"):
        VSRDataConfig(interval_list=[1, 0])
    with pytest.raises(ValidationError, match="bd preset is defined for scale 4 only"):
        VSRDataConfig(scale=2, gt_size=64, degradation={"preset": "bd"})
    with pytest.raises(ValidationError, match="device: gpu needs a preset with a batched torch path"):
        VSRDataConfig(degradation={"preset": "realbasicvsr", "device": "gpu"})
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        VSRDataConfig(frames=3)
