"""RealBasicVSR clip degradation: the random-walk sampler, the pipeline and its inputs."""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np
import pytest

from degradations import realbasicvsr as rbv
from degradations.kernels import make_kernel
from degradations.usm import usm_sharp
from degradations.video_bench import synthetic_clip

CFG = rbv.REALBASICVSR


def walk_ok(values, lo, hi, step, tol=1e-9):
    v = np.asarray(values, dtype=np.float64)
    return bool(np.all(v >= lo - tol) and np.all(v <= hi + tol) and np.all(np.abs(np.diff(v)) <= step + tol))


# --------------------------------------------------------------------------- sampler


def check_blur(p: rbv.BlurParams, cfg: rbv.BlurConfig, n: int) -> None:
    if not p.applied:
        return
    assert len(p.kernels) == n
    k0 = p.kernels[0]
    assert k0.kind in cfg.kinds and k0.size in cfg.sizes
    assert all(k.kind == k0.kind and k.size == k0.size for k in p.kernels)  # fixed per clip
    if k0.kind == "sinc":
        lo, hi = cfg.omega or ((math.pi / 3, math.pi) if k0.size < 13 else (math.pi / 5, math.pi))
        assert walk_ok([k.omega for k in p.kernels], lo, hi, cfg.omega_step)
        return
    assert walk_ok([k.sigma_x for k in p.kernels], *cfg.sigma, cfg.sigma_step)
    if k0.kind.endswith("aniso"):
        assert walk_ok([k.sigma_y for k in p.kernels], *cfg.sigma, cfg.sigma_step)
        assert walk_ok([k.theta for k in p.kernels], *cfg.rotation, cfg.rotation_step)
    else:
        assert all(k.sigma_y == k.sigma_x and k.theta == 0 for k in p.kernels)
    if k0.kind.startswith("generalized"):
        assert walk_ok([k.beta for k in p.kernels], *cfg.betag, cfg.betag_step)
    if k0.kind.startswith("plateau"):
        assert walk_ok([k.beta for k in p.kernels], *cfg.betap, cfg.betap_step)


def check_order(p: rbv.OrderParams, blur, resize, noise, jpeg, n) -> None:
    check_blur(p.blur, blur, n)
    r = p.resize
    assert r.interp in resize.interps and r.direction in ("up", "down", "keep")
    assert walk_ok(r.scales, *resize.scale, resize.step)
    first = r.scales[0]
    assert {"up": 1 <= first <= resize.scale[1], "down": resize.scale[0] <= first <= 1, "keep": first == 1}[r.direction]
    z = p.noise
    assert z.kind in ("gaussian", "poisson") and isinstance(z.gray, bool)
    lo, hi = noise.gaussian_sigma if z.kind == "gaussian" else noise.poisson_scale
    step = noise.gaussian_sigma_step if z.kind == "gaussian" else noise.poisson_scale_step
    assert walk_ok(z.levels, lo, hi, step) and len(z.levels) == n
    q = p.jpeg.qualities
    assert len(q) == n and all(isinstance(x, int) for x in q)
    assert walk_ok(q, *jpeg.quality, jpeg.step + 0.5)  # +-3 then rounded to an int


@pytest.mark.parametrize("seed", range(30))
def test_sampler_fixes_discrete_choices_and_walks_continuous_ones(seed):
    n = 30
    p = rbv.sample_clip_params(np.random.default_rng(seed), n)
    assert p.num_frames == n and p.mirror
    check_order(p.first, CFG.blur1, CFG.resize1, CFG.noise1, CFG.jpeg1, n)
    check_order(p.second, CFG.blur2, CFG.resize2, CFG.noise2, CFG.jpeg2, n)
    assert p.first.blur.applied  # first-order blur has p = 1
    for v in (p.first.video, p.final.video):
        assert v.codec in CFG.video1.codecs and 10_000 <= v.bitrate <= 100_000
    assert p.second.video is None
    check_blur(p.final.sinc, CFG.sinc_final, n)
    if p.final.sinc.applied:
        assert p.final.sinc.kernels[0].kind == "sinc"
    assert p.final.interp in CFG.final_interps


def test_sampler_frequencies_match_the_config():
    rng = np.random.default_rng(0)
    m = 3000
    params = [rbv.sample_clip_params(rng, 1) for _ in range(m)]

    def close(count, p, label):
        sd = math.sqrt(m * p * (1 - p))
        assert abs(count - m * p) <= 4.5 * sd + 1, (label, count, m * p)

    kinds = [p.first.blur.kernels[0].kind for p in params]
    for kind, prob in zip(CFG.blur1.kinds, CFG.blur1.kind_probs):
        close(kinds.count(kind), prob, kind)
    close(sum(p.second.blur.applied for p in params), 0.8, "blur2")
    close(sum(p.final.sinc.applied for p in params), 0.8, "final sinc")
    close(sum(p.final.video_first for p in params), 0.5, "order")
    for direction, prob in zip(("up", "down", "keep"), CFG.resize1.mode_probs):
        close(sum(p.first.resize.direction == direction for p in params), prob, "resize1 " + direction)
    for direction, prob in zip(("up", "down", "keep"), CFG.resize2.mode_probs):
        close(sum(p.second.resize.direction == direction for p in params), prob, "resize2 " + direction)
    close(sum(p.first.noise.kind == "gaussian" for p in params), 0.5, "gaussian")
    close(sum(p.first.noise.gray for p in params), 0.4, "gray")
    for codec in CFG.video1.codecs:
        close(sum(p.first.video.codec == codec for p in params), 1 / 3, codec)
    sizes = [p.first.blur.kernels[0].size for p in params]
    for size in CFG.blur1.sizes:
        close(sizes.count(size), 1 / len(CFG.blur1.sizes), f"size {size}")


def test_sampler_is_a_function_of_the_generator():
    a = rbv.sample_clip_params(np.random.default_rng(7), 30)
    b = rbv.sample_clip_params(np.random.default_rng(7), 30)
    c = rbv.sample_clip_params(np.random.default_rng(8), 30)
    assert a == b and a != c


# --------------------------------------------------------------------------- ops


def test_blur_matches_filter2d():
    """The separable fast path agrees with cv2.filter2D to well under one 8-bit level."""
    rng = np.random.default_rng(0)
    img = rng.random((48, 40, 3), dtype=np.float32)
    for _ in range(60):
        p = rbv.sample_clip_params(rng, 1)
        for bp in (p.first.blur, p.second.blur, p.final.sinc):
            if bp.applied:
                k = make_kernel(bp.kernels[0])
                np.testing.assert_allclose(rbv._blur(img, k), cv2.filter2D(img, -1, k), atol=2e-4)


def test_resize_walk_gives_per_frame_even_sizes():
    frames = [np.zeros((100, 60, 3), np.float32) + i / 10 for i in range(4)]
    scales = (0.5, 0.515, 0.53, 0.2)
    out = rbv._apply_resize(frames, rbv.ResizeParams("down", "area", scales))
    assert [f.shape for f in out] == [(50, 30, 3), (50, 30, 3), (52, 30, 3), (20, 12, 3)]
    again = rbv._apply_resize(out, rbv.ResizeParams("up", "bicubic", (1.1, 1.1, 1.1, 1.1)))
    assert [f.shape[:2] for f in again] == [(54, 32), (54, 32), (56, 32), (22, 12)]  # each from its own size


# --------------------------------------------------------------------------- pipeline


@pytest.fixture(scope="module")
def clip256():
    return synthetic_clip(15, 256, seed=3)


def test_clip_shapes_mirror_and_quantisation(clip256):
    out = rbv.realbasicvsr_clip(clip256, scale=4, rng=np.random.default_rng(0))
    lq, gt = out["lq"], out["gt"]
    assert lq.shape == (30, 64, 64, 3) and gt.shape == (30, 256, 256, 3)
    assert lq.dtype == np.float32 and gt.dtype == np.float32
    assert lq.min() >= 0 and lq.max() <= 1
    np.testing.assert_allclose(lq * 255, np.round(lq * 255), atol=1e-3)
    np.testing.assert_array_equal(gt[0], usm_sharp(clip256[0], 0.5, 10, 51))
    np.testing.assert_array_equal(gt[29 - 4], gt[4])  # mirrored GT
    # the mirrored half is degraded with its own parameters
    assert any(not np.array_equal(lq[t], lq[29 - t]) for t in range(15))


def test_clip_is_deterministic_per_seed():
    clip = synthetic_clip(6, 64, seed=1)
    a = rbv.realbasicvsr_clip(clip, scale=4, rng=np.random.default_rng(5))
    b = rbv.realbasicvsr_clip(clip, scale=4, rng=np.random.default_rng(5))
    c = rbv.realbasicvsr_clip(clip, scale=4, rng=np.random.default_rng(6))
    np.testing.assert_array_equal(a["lq"], b["lq"])
    assert a["lq"].shape == (12, 16, 16, 3)
    assert not np.array_equal(a["lq"], c["lq"])


@pytest.mark.parametrize("seed", range(6))
def test_many_parameter_draws_run(seed):
    clip = synthetic_clip(4, 96, seed=seed)
    out = rbv.realbasicvsr_clip(clip, scale=4, rng=np.random.default_rng(100 + seed))
    assert out["lq"].shape == (8, 24, 24, 3) and np.isfinite(out["lq"]).all()


def test_plumbing_without_random_degradations():
    """All stochastic ops off: LQ = quantised bilinear resize of the USM GT."""
    off_blur = rbv.BlurConfig(prob=0.0)
    keep = rbv.ResizeConfig(mode_probs=(0.0, 0.0, 1.0), step=0.0)
    cfg = dataclasses.replace(
        CFG,
        blur1=off_blur,
        blur2=off_blur,
        resize1=keep,
        resize2=keep,
        noise1=rbv.NoiseConfig(prob=0.0),
        noise2=rbv.NoiseConfig(prob=0.0),
        jpeg1=rbv.JpegConfig(prob=0.0),
        jpeg2=rbv.JpegConfig(prob=0.0),
        video1=rbv.VideoConfig(prob=0.0),
        video_final=rbv.VideoConfig(prob=0.0),
        final_interps=("bilinear",),
        final_interp_probs=(1.0,),
        sinc_final=rbv.BlurConfig(prob=0.0, kinds=("sinc",), kind_probs=(1.0,)),
    )
    clip = synthetic_clip(3, 64, seed=2)
    out = rbv.realbasicvsr_clip(clip, scale=2, rng=np.random.default_rng(0), cfg=cfg)
    for t in range(3):
        usm = usm_sharp(clip[t], 0.5, 10, 51)
        want = np.clip(np.rint(cv2.resize(usm, (32, 32), interpolation=cv2.INTER_LINEAR) * 255), 0, 255) / 255
        np.testing.assert_allclose(out["lq"][t], want, atol=1e-6)
        np.testing.assert_allclose(out["lq"][5 - t], want, atol=1e-6)


@pytest.mark.parametrize("video_first", [True, False])
def test_final_stage_in_either_order(video_first):
    cfg = dataclasses.replace(CFG, video_first_prob=1.0 if video_first else 0.0)
    params = rbv.sample_clip_params(np.random.default_rng(1), 8, cfg)
    assert params.final.video_first is video_first
    out = rbv.apply_clip(synthetic_clip(4, 64), params, scale=4)
    assert [f.shape for f in out["lq"]] == [(16, 16, 3)] * 8


# --------------------------------------------------------------------------- bad inputs


def frames(n=2, shape=(16, 16, 3), dtype=np.float32):
    return [np.zeros(shape, dtype) for _ in range(n)]


@pytest.mark.parametrize(
    "gt, scale, match",
    [
        ([], 4, "non-empty"),
        (frames(1, (16, 16)), 4, "HxWx3"),
        (frames(1, (16, 16, 4)), 4, "HxWx3"),
        (frames(1, (16, 16, 3), np.uint8), 4, "float"),
        ([np.zeros((16, 16, 3), np.float32), np.zeros((16, 20, 3), np.float32)], 4, "one size"),
        ([np.full((16, 16, 3), np.nan, np.float32)], 4, "NaN"),
        (frames(1, (18, 16, 3)), 4, "multiples of scale"),
        (frames(1), 0, "scale"),
    ],
)
def test_bad_inputs_raise_one_line_value_error(gt, scale, match):
    with pytest.raises(ValueError, match=match) as info:
        rbv.realbasicvsr_clip(gt, scale=scale, rng=np.random.default_rng(0))
    assert "\n" not in str(info.value)


def test_params_for_another_clip_length_are_rejected():
    params = rbv.sample_clip_params(np.random.default_rng(0), 10)
    with pytest.raises(ValueError, match="frames"):
        rbv.apply_clip(frames(4), params, scale=4)


def test_sampler_rejects_bad_frame_count():
    with pytest.raises(ValueError, match="num_frames"):
        rbv.sample_clip_params(np.random.default_rng(0), 0)
