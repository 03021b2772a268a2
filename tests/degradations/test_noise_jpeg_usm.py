"""Noise, JPEG, unsharp masking and torch-semantics resize (degradations/{noise,jpeg,usm,resize}.py)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from degradations.jpeg import jpeg
from degradations.noise import _poisson_counts, gaussian_noise, poisson_levels, poisson_noise, rgb_to_gray
from degradations.resize import resize
from degradations.usm import usm_sharp


def grey(h=256, w=256, v=0.5):
    return np.full((h, w, 3), v, np.float32)


def textured(size=128, seed=0):
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.random((size, size, 3)).astype(np.float32), (0, 0), 1.5)
    img = (img - img.min()) / (img.max() - img.min())
    return (np.round(img * 255) / 255).astype(np.float32)


# ---------------------------------------------------------------- Gaussian noise

@pytest.mark.parametrize("sigma", [1.0, 10.0, 30.0])
def test_gaussian_noise_std_is_sigma_over_255(sigma):
    out = gaussian_noise(grey(), sigma, False, np.random.default_rng(0))
    assert out.dtype == np.float32 and out.shape == (256, 256, 3)
    d = out - 0.5
    assert abs(d.std() / (sigma / 255) - 1) < 0.02
    assert abs(d.mean()) < 4 * sigma / 255 / math.sqrt(d.size)


def test_gray_gaussian_noise_is_shared_by_channels_and_colour_noise_is_not():
    g = gaussian_noise(grey(), 20, True, np.random.default_rng(1))
    np.testing.assert_array_equal(g[..., 0], g[..., 1])
    np.testing.assert_array_equal(g[..., 0], g[..., 2])
    c = gaussian_noise(grey(), 20, False, np.random.default_rng(1))
    assert not np.array_equal(c[..., 0], c[..., 1])


def test_noise_is_clipped_not_rounded():
    rng = np.random.default_rng(2)
    for fn, arg in ((gaussian_noise, 30.0), (poisson_noise, 0.5)):
        for v in (0.0, 1.0):
            out = fn(grey(64, 64, v), arg, False, rng)
            assert out.min() >= 0.0 and out.max() <= 1.0
        img = textured(64) * np.float32(0.5) + np.float32(0.25 + 0.1 / 255)  # off the 8-bit grid
        out = fn(img, arg, False, rng)
        assert out.min() >= 0.0 and out.max() <= 1.0
        assert not np.allclose(out * 255, np.round(out * 255))  # clipped, not rounded


# ---------------------------------------------------------------- Poisson noise

@pytest.mark.parametrize("n_levels, vals", [(1, 1), (2, 2), (3, 4), (129, 256), (256, 256), (64, 64)])
def test_poisson_levels_is_next_power_of_two_of_distinct_levels(n_levels, vals):
    levels = np.arange(n_levels, dtype=np.uint8).repeat(3)
    assert poisson_levels(levels) == vals


def _mixed_image(seed=0):
    """Left half mid-grey (level 128), right half 200 distinct levels -> vals = 256."""
    rng = np.random.default_rng(seed)
    img = np.empty((256, 256, 3), np.float32)
    img[:, :128] = 128 / 255
    img[:, 128:] = rng.permutation(np.resize(np.arange(200), 128 * 256 * 3)).reshape(256, 128, 3) / 255
    return img


@pytest.mark.parametrize("scale", [0.5, 1.0, 2.0])
def test_poisson_variance_scales_with_level_over_vals_times_scale_squared(scale):
    img = _mixed_image()
    out = poisson_noise(img, scale, False, np.random.default_rng(3))
    d = (out - img)[:, :128]
    expected_var = (np.float32(128 / 255) * 256) / 256**2 * scale**2
    assert abs(d.var() / expected_var - 1) < 0.03
    assert abs(d.mean()) < 5 * math.sqrt(expected_var / d.size)


def test_poisson_with_few_levels_uses_few_vals():
    """A 2-level image: vals = 2, so the noise is in steps of scale / 2."""
    img = np.zeros((64, 64, 3), np.float32)
    img[::2] = 1.0
    img[1::2] = 0.0
    img[..., :] = np.where(np.arange(64)[:, None, None] % 2 == 0, 0.6, 0.2)  # levels 153 and 51 only
    img = np.round(img * 255) / 255
    out = poisson_noise(img.astype(np.float32), 0.1, False, np.random.default_rng(4))
    steps = (out - img) / 0.1 * 2  # (count - rate) with rate = level / 255 * 2
    rate = img * 2
    np.testing.assert_allclose(np.round(steps + rate), steps + rate, atol=1e-4)


def test_gray_poisson_noise_is_shared_by_channels():
    img = _mixed_image()
    out = poisson_noise(img, 1.0, True, np.random.default_rng(5))
    d = out - img
    inside = (out > 0) & (out < 1)
    both = inside[..., 0] & inside[..., 1] & inside[..., 2]
    np.testing.assert_allclose(d[..., 0][both], d[..., 1][both], atol=1e-6)
    np.testing.assert_allclose(d[..., 0][both], d[..., 2][both], atol=1e-6)


def test_rgb_to_gray_weights():
    px = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]], np.float32)
    np.testing.assert_allclose(rgb_to_gray(px)[0, :, 0], [0.2989, 0.587, 0.114], rtol=1e-6)


@pytest.mark.parametrize("level, vals", [(1, 256), (37, 256), (255, 256), (200, 8), (128, 1)])
def test_poisson_sampler_matches_the_pmf(level, vals):
    n = 200_000
    counts = _poisson_counts(np.full(n, level, np.uint8), vals, np.random.default_rng(level + vals))
    lam = float(np.float32(level) / np.float32(255)) * vals
    assert abs(counts.mean() - lam) < 5 * math.sqrt(lam / n)
    assert abs(counts.var() / lam - 1) < 0.03
    # frequencies of the most likely values vs the exact pmf
    for k in range(max(0, int(lam) - 2), int(lam) + 3):
        p = math.exp(k * math.log(lam) - lam - math.lgamma(k + 1)) if lam > 0 else float(k == 0)
        assert abs((counts == k).mean() - p) < 5 * math.sqrt(p * (1 - p) / n) + 1e-9


def test_poisson_of_black_image_is_black():
    out = poisson_noise(np.zeros((16, 16, 3), np.float32), 2.0, False, np.random.default_rng(0))
    assert not out.any()


# ---------------------------------------------------------------- JPEG

def test_jpeg_error_decreases_with_quality_and_output_is_8bit():
    img = textured()
    errs = []
    for q in (10, 30, 60, 95):
        out = jpeg(img, q)
        assert out.shape == img.shape and out.dtype == np.float32
        np.testing.assert_allclose(out * 255, np.round(out * 255), atol=1e-4)
        errs.append(float(np.mean((out - img) ** 2)))
    assert errs == sorted(errs, reverse=True) and errs[-1] < errs[0] / 4


def test_jpeg_keeps_rgb_order_and_truncates_quality():
    red = np.zeros((32, 32, 3), np.float32)
    red[..., 0] = 1.0
    out = jpeg(red, 90)
    assert out[..., 0].mean() > 0.9 and out[..., 2].mean() < 0.1
    img = textured(64)
    np.testing.assert_array_equal(jpeg(img, 57.9), jpeg(img, 57))


@pytest.mark.parametrize("call", [lambda: jpeg(np.zeros((0, 4, 3), np.float32), 50),
                                  lambda: jpeg(np.zeros((4, 4, 4), np.float32), 50),
                                  lambda: jpeg(np.zeros((4, 4, 3), np.float32), 0)])
def test_jpeg_bad_inputs(call):
    with pytest.raises(ValueError):
        call()


# ---------------------------------------------------------------- USM

def step_image(w=200):
    img = np.full((64, w, 3), 0.3, np.float32)
    img[:, w // 2 :] = 0.7
    return img


def test_usm_increases_edge_contrast_and_leaves_flat_regions():
    img = step_image()
    out = usm_sharp(img)
    assert out.dtype == np.float32 and out.shape == img.shape
    row = out[32, :, 0]
    assert row[95:100].min() < 0.3 - 0.01  # undershoot on the dark side
    assert row[100:105].max() > 0.7 + 0.01  # overshoot on the bright side
    # more than 2 * 25 px from the edge the soft mask is exactly 0: untouched
    np.testing.assert_array_equal(out[:, :45], img[:, :45])
    np.testing.assert_array_equal(out[:, 155:], img[:, 155:])
    # a flat image is a fixed point; below-threshold ramps are too
    np.testing.assert_array_equal(usm_sharp(grey(64, 64, 0.4)), grey(64, 64, 0.4))


def test_usm_matches_the_2d_reference_definition():
    img = textured(96, seed=3)
    g = cv2.getGaussianKernel(51, 0)
    ref_g = np.exp(-((np.arange(51) - 25.0) ** 2) / (2 * 8.0**2))
    np.testing.assert_allclose(g[:, 0], ref_g / ref_g.sum(), rtol=1e-5)  # sigma 0 -> 8 for size 51
    k = g @ g.T

    def f2d(x):
        pad = np.pad(x.astype(np.float64), ((25, 25), (25, 25), (0, 0)), mode="reflect")
        out = np.zeros(x.shape)
        for i in range(51):
            for j in range(51):
                out += k[i, j] * pad[i : i + x.shape[0], j : j + x.shape[1]]
        return out

    res = img - f2d(img)
    soft = f2d((np.abs(res) * 255 > 10).astype(np.float64))
    ref = soft * np.clip(img + 0.5 * res, 0, 1) + (1 - soft) * img
    np.testing.assert_allclose(usm_sharp(img), ref, atol=2e-5)


# ---------------------------------------------------------------- resize (torch semantics)

@pytest.mark.parametrize("mode", ["area", "bilinear", "bicubic"])
def test_resize_matches_torch_interpolate(mode):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    img = textured(80, seed=4)[:, :70]
    t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None]
    for s in (0.15, 0.37, 0.5, 0.83, 0.995, 1.0, 1.007, 1.13, 1.5):
        ref = F.interpolate(t, scale_factor=s, mode=mode)[0].permute(1, 2, 0).numpy()
        out = resize(img, None, mode, scale_factor=s)
        assert out.shape == ref.shape
        np.testing.assert_allclose(out, ref, atol=2e-5, err_msg=f"{mode} scale_factor {s}")
    for hw in ((20, 17), (80, 70), (33, 91)):
        ref = F.interpolate(t, size=hw, mode=mode)[0].permute(1, 2, 0).numpy()
        np.testing.assert_allclose(resize(img, hw, mode), ref, atol=2e-5, err_msg=f"{mode} size {hw}")


def test_resize_bad_arguments():
    img = np.zeros((8, 8, 3), np.float32)
    for call in (lambda: resize(img, (4, 4), "lanczos"), lambda: resize(img, (0, 4), "area"),
                 lambda: resize(img, (5, 5), "area", scale_factor=0.5), lambda: resize(img[:0], (4, 4), "area")):
        with pytest.raises(ValueError):
            call()
