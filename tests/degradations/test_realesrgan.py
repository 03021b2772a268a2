"""Real-ESRGAN x4plus preset: sampler distribution, pipeline shapes, determinism, bad inputs."""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np
import pytest

from degradations import PRESETS, degrade, degrade_pair
from degradations.bench import bench_realesrgan_cpu, synthetic_gt
from degradations.kernels import KernelParams
from degradations.realesrgan import X4PLUS, NoiseDraw, ResizeDraw, apply, paired_random_crop, realesrgan, sample_params
from degradations.seeding import sample_rng


def tol(p, n):
    return 4.5 * math.sqrt(p * (1 - p) / n)


@pytest.fixture(scope="module")
def gt400():
    return synthetic_gt(400, np.random.default_rng(0))


def test_x4plus_config_is_the_official_one():
    c = X4PLUS
    assert c.kernel_sizes == (7, 9, 11, 13, 15, 17, 19, 21)
    assert c.kernel_prob == c.kernel_prob2 == (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    assert (c.sinc_prob, c.sinc_prob2, c.final_sinc_prob) == (0.1, 0.1, 0.8)
    assert (c.blur_sigma, c.blur_sigma2) == ((0.2, 3.0), (0.2, 1.5))
    assert c.betag_range == c.betag_range2 == (0.5, 4.0) and c.betap_range == c.betap_range2 == (1.0, 2.0)
    assert (c.resize_prob, c.resize_range) == ((0.2, 0.7, 0.1), (0.15, 1.5))
    assert (c.resize_prob2, c.resize_range2) == ((0.3, 0.4, 0.3), (0.3, 1.2))
    assert (c.gaussian_noise_prob, c.noise_range, c.poisson_scale_range, c.gray_noise_prob) == (
        0.5, (1.0, 30.0), (0.05, 3.0), 0.4)
    assert (c.gaussian_noise_prob2, c.noise_range2, c.poisson_scale_range2, c.gray_noise_prob2) == (
        0.5, (1.0, 25.0), (0.05, 2.5), 0.4)
    assert c.jpeg_range == c.jpeg_range2 == (30.0, 95.0)
    assert (c.second_blur_prob, c.final_resize_first_prob) == (0.8, 0.5)
    assert (c.usm_weight, c.usm_threshold, c.usm_radius) == (0.5, 10.0, 50)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.sinc_prob = 0.5  # type: ignore[misc]


def test_sample_params_frequencies_and_ranges():
    rng = np.random.default_rng(7)
    n = 6000
    ps = [sample_params(rng) for _ in range(n)]

    def freq(pred):
        return sum(map(pred, ps)) / n

    for attr, probs in (("resize1", (0.2, 0.7, 0.1)), ("resize2", (0.3, 0.4, 0.3))):
        for d, p in zip(("up", "down", "keep"), probs):
            assert abs(freq(lambda q: getattr(q, attr).direction == d) - p) < tol(p, n), (attr, d)
        for m in ("area", "bilinear", "bicubic"):
            assert abs(freq(lambda q: getattr(q, attr).mode == m) - 1 / 3) < tol(1 / 3, n)
    for attr in ("noise1", "noise2"):
        assert abs(freq(lambda q: getattr(q, attr).kind == "gaussian") - 0.5) < tol(0.5, n)
        assert abs(freq(lambda q: getattr(q, attr).gray) - 0.4) < tol(0.4, n)
    assert abs(freq(lambda q: q.second_blur) - 0.8) < tol(0.8, n)
    assert abs(freq(lambda q: q.sinc is not None) - 0.8) < tol(0.8, n)
    assert abs(freq(lambda q: q.final_resize_first) - 0.5) < tol(0.5, n)
    assert abs(freq(lambda q: q.kernel1.kind == "sinc") - 0.1) < tol(0.1, n)
    assert abs(freq(lambda q: q.kernel2.kind == "sinc") - 0.1) < tol(0.1, n)
    for q in ps:
        r1, r2 = q.resize1, q.resize2
        assert {"up": 1.0 <= r1.scale <= 1.5, "down": 0.15 <= r1.scale <= 1.0, "keep": r1.scale == 1.0}[r1.direction]
        assert {"up": 1.0 <= r2.scale <= 1.2, "down": 0.3 <= r2.scale <= 1.0, "keep": r2.scale == 1.0}[r2.direction]
        for nd, (srange, prange) in ((q.noise1, ((1, 30), (0.05, 3))), (q.noise2, ((1, 25), (0.05, 2.5)))):
            if nd.kind == "gaussian":
                assert srange[0] <= nd.sigma <= srange[1]
            else:
                assert prange[0] <= nd.scale <= prange[1]
        assert 30 <= q.jpeg1 <= 95 and 30 <= q.jpeg2 <= 95
        if q.kernel2.kind != "sinc":
            assert q.kernel2.sigma_x <= 1.5 and q.kernel2.sigma_y <= 1.5
        if q.sinc is not None:
            assert q.sinc.kind == "sinc" and math.pi / 3 <= q.sinc.omega <= math.pi and q.sinc.size % 2


def check_output(out, gt_shape, scale=4):
    h, w = gt_shape[:2]
    lq, gt = out["lq"], out["gt"]
    assert lq.shape == (h // scale, w // scale, 3) and gt.shape == gt_shape
    assert lq.dtype == np.float32 and gt.dtype == np.float32
    assert lq.min() >= 0 and lq.max() <= 1 and gt.min() >= 0 and gt.max() <= 1
    np.testing.assert_allclose(lq * 255, np.round(lq * 255), atol=1e-4)


def test_preset_output_shapes_range_and_quantisation(gt400):
    for key in ("a", "b", "c", "d"):
        check_output(realesrgan(gt400, scale=4, rng=sample_rng(0, 0, key)), gt400.shape)


@pytest.mark.parametrize("final_resize_first", [True, False])
@pytest.mark.parametrize("noise", [NoiseDraw("gaussian", sigma=20.0, gray=True), NoiseDraw("poisson", scale=2.0)])
@pytest.mark.parametrize("resize1", [ResizeDraw("down", 0.15, "area"), ResizeDraw("up", 1.5, "bicubic"),
                                     ResizeDraw("keep", 1.0, "bilinear")])
def test_every_branch_runs(final_resize_first, noise, resize1):
    gt = synthetic_gt(96, np.random.default_rng(1))
    p = sample_params(np.random.default_rng(2))
    p = dataclasses.replace(p, final_resize_first=final_resize_first, noise1=noise, noise2=noise, resize1=resize1,
                            second_blur=True, sinc=KernelParams("sinc", 21, omega=1.0))
    check_output(apply(gt, p, scale=4), gt.shape)
    check_output(apply(gt, dataclasses.replace(p, sinc=None, second_blur=False), scale=2), gt.shape, scale=2)


def test_gt_target_is_the_unsharp_masked_gt(gt400):
    from degradations.usm import usm_sharp

    out = realesrgan(gt400, scale=4, rng=sample_rng(0, 0, "x"))
    np.testing.assert_array_equal(out["gt"], usm_sharp(gt400))


def test_same_seed_epoch_key_is_bit_identical_and_keys_differ(gt400):
    a = realesrgan(gt400, scale=4, rng=sample_rng(3, 1, "img_0001"))
    b = realesrgan(gt400, scale=4, rng=sample_rng(3, 1, "img_0001"))
    assert np.array_equal(a["lq"], b["lq"]) and np.array_equal(a["gt"], b["gt"])
    for other in (sample_rng(3, 1, "img_0002"), sample_rng(3, 2, "img_0001"), sample_rng(4, 1, "img_0001")):
        c = realesrgan(gt400, scale=4, rng=other)
        assert c["lq"].shape != a["lq"].shape or not np.array_equal(c["lq"], a["lq"])


def test_apply_is_a_function_of_gt_and_params(gt400):
    p = sample_params(sample_rng(0, 0, "k"))
    old = cv2.getNumThreads()
    try:
        cv2.setNumThreads(1)
        a = apply(gt400, p)
        cv2.setNumThreads(max(old, 2))
        b = apply(gt400, p)
    finally:
        cv2.setNumThreads(old)
    assert np.array_equal(a["lq"], b["lq"])


def test_registry_and_degrade_forms(gt400):
    assert PRESETS["realesrgan"] is realesrgan
    lq = degrade("realesrgan", gt400, scale=4, rng=sample_rng(0, 0, "k"))
    lq2, target = degrade_pair("realesrgan", gt400, scale=4, rng=sample_rng(0, 0, "k"))
    assert isinstance(lq, np.ndarray) and np.array_equal(lq, lq2) and target.shape == gt400.shape
    # array-returning presets: the target is the input GT itself
    gt = synthetic_gt(32, np.random.default_rng(0))
    lq3, t3 = degrade_pair("bicubic", gt, scale=4, rng=np.random.default_rng(0))
    assert t3 is gt and np.array_equal(lq3, degrade("bicubic", gt, scale=4, rng=np.random.default_rng(0)))


BAD = {
    "empty": np.zeros((0, 0, 3), np.float32),
    "one-pixel": np.zeros((1, 1, 3), np.float32),
    "gray-2d": np.zeros((64, 64), np.float32),
    "four-channel": np.zeros((64, 64, 4), np.float32),
    "nan": np.full((64, 64, 3), np.nan, np.float32),
    "uint8": np.zeros((64, 64, 3), np.uint8),
    "not-multiple": np.zeros((66, 64, 3), np.float32),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_inputs_raise_one_line_value_error(name):
    with pytest.raises(ValueError) as e:
        realesrgan(BAD[name], scale=4, rng=np.random.default_rng(0))
    assert "\n" not in str(e.value) and str(e.value)
    with pytest.raises(ValueError):
        degrade_pair("realesrgan", BAD[name], scale=4, rng=np.random.default_rng(0))


def test_paired_random_crop_aligns_lq_and_gt():
    yy, xx = np.mgrid[0:100, 0:80]
    lq = np.stack([yy, xx, yy * 0], -1).astype(np.float32)
    gt = np.repeat(np.repeat(lq, 4, 0), 4, 1)
    seen = set()
    for s in range(20):
        lc, gc = paired_random_crop(lq, gt, 64, 4, np.random.default_rng(s))
        assert lc.shape == (16, 16, 3) and gc.shape == (64, 64, 3)
        np.testing.assert_array_equal(gc[::4, ::4], lc)
        seen.add((int(lc[0, 0, 0]), int(lc[0, 0, 1])))
    assert len(seen) > 10
    for args in ((lq, gt, 66, 4), (lq, gt[:-4], 64, 4), (lq[:8, :8], gt[:32, :32], 64, 4)):
        with pytest.raises(ValueError):
            paired_random_crop(*args, np.random.default_rng(0))


def test_bench_runs():
    assert bench_realesrgan_cpu(gt_size=64, n=2) > 0


# ---------------------------------------------------------------- packing (device: gpu ships params as numbers)


def test_pack_unpack_round_trip_is_exact():
    from degradations.realesrgan import PARAMS_WIDTH, pack_params, unpack_params

    rng = np.random.default_rng(21)
    packed = []
    for _ in range(500):
        p = sample_params(rng)
        v = pack_params(p)
        assert v.shape == (PARAMS_WIDTH,) and v.dtype == np.float64
        assert unpack_params(v) == p  # every field, incl. the 63-bit noise seed
        packed.append(v)
    batch = np.stack(packed)  # what travels in a Ray Data batch
    assert unpack_params(batch[7].astype(np.float64).tolist()) == unpack_params(packed[7])
    big = dataclasses.replace(sample_params(rng), noise_seed=2**63 - 2, sinc=None)
    assert unpack_params(pack_params(big)) == big


def test_pack_rejects_unknown_names_and_unpack_bad_shapes():
    from degradations.realesrgan import pack_params, unpack_params

    p = sample_params(np.random.default_rng(0))
    with pytest.raises(ValueError, match="resize mode 'nearest'"):
        pack_params(dataclasses.replace(p, final_mode="nearest"))
    with pytest.raises(ValueError, match="shape"):
        unpack_params(np.zeros(5))


def test_paired_crop_corner_draws_what_paired_random_crop_draws():
    from degradations.realesrgan import paired_crop_corner

    lq = np.arange(16 * 20, dtype=np.float32).reshape(16, 20, 1)
    gt = np.zeros((64, 80, 1), np.float32)
    a = paired_random_crop(lq, gt, 32, 4, np.random.default_rng(5))[0]
    top, left = paired_crop_corner((16, 20), 32, 4, np.random.default_rng(5))
    assert a[0, 0, 0] == lq[top, left, 0]
