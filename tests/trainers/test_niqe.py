"""NIQE: hand-derived sub-function values, a transcription of the MATLAB release, MMEditing parity."""

from __future__ import annotations

import math
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import pytest

from degradations.matlab_resize import imresize
from trainers.metrics import to_y
from trainers.niqe import (
    BLOCK,
    aggd_fit,
    block_features,
    half_scale,
    image_features,
    luma,
    mscn,
    mvg_distance,
    niqe,
    pristine_model,
)

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "data" / "golden" / "metrics.npz"


def gaussian_samples(n=200_000, seed=0, left=1.0, right=1.0):
    """An AGGD sample of shape 2: half-normals of deviation ``left`` / ``right``, each side
    drawn with probability proportional to its deviation (the AGGD's side masses)."""
    rng = np.random.default_rng(seed)
    x = np.abs(rng.normal(size=n))
    neg = rng.random(n) < left / (left + right)
    return np.where(neg, -left * x, right * x)


def photo(seed=0, shape=(200, 296, 3)):
    """A textured RGB uint8 test image with no flat areas (smooth waves plus mild noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    base = 128 + 60 * np.sin(xx / 9.0 + seed) * np.cos(yy / 13.0) + 30 * np.sin((xx + yy) / 5.0)
    img = base[..., None] * np.array([1.0, 0.8, 0.6]) + 20 + rng.normal(0, 6, shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- pristine model


def test_pristine_model_is_packaged_and_well_formed():
    model = pristine_model()
    assert model.mu.shape == (36,) and model.cov.shape == (36, 36) and model.window.shape == (7, 7)
    np.testing.assert_allclose(model.cov, model.cov.T, rtol=0, atol=1e-12)
    assert np.all(np.linalg.eigvalsh(model.cov) > -1e-9)


def test_package_data_declared_for_the_params_file():
    """A regular (non-editable) install must ship trainers/data/niqe_pris_params.npz."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = cfg["tool"]["setuptools"]["package-data"]["trainers"]
    assert any(fnmatch("data/niqe_pris_params.npz", p) for p in patterns)
    assert (ROOT / "trainers" / "data" / "niqe_pris_params.npz").is_file()


# ---------------------------------------------------------------- AGGD fit (hand-derived)


def test_aggd_of_symmetric_gaussian_has_shape_two():
    # A Gaussian is the GGD with alpha = 2; its scale is beta = sigma * sqrt(2).
    x = 3.0 * gaussian_samples()
    alpha, b_l, b_r = aggd_fit(x)
    assert alpha == pytest.approx(2.0, abs=0.03)
    assert b_l == pytest.approx(3.0 * math.sqrt(2), rel=0.02)
    assert b_r == pytest.approx(3.0 * math.sqrt(2), rel=0.02)


def test_aggd_of_laplacian_has_shape_one():
    # Laplace(b) is the GGD with alpha = 1 and beta = b.
    x = np.random.default_rng(1).laplace(scale=0.5, size=200_000)
    alpha, b_l, b_r = aggd_fit(x)
    assert alpha == pytest.approx(1.0, abs=0.03)
    assert (b_l, b_r) == pytest.approx((0.5, 0.5), rel=0.03)


def test_aggd_asymmetric_scales_follow_the_one_sided_deviations():
    # Two half-Gaussians with deviations 1 and 2: shape 2, scales sqrt(2) * (1, 2).
    alpha, b_l, b_r = aggd_fit(gaussian_samples(left=1.0, right=2.0))
    assert alpha == pytest.approx(2.0, abs=0.03)
    assert (b_l, b_r) == pytest.approx((math.sqrt(2), 2 * math.sqrt(2)), rel=0.02)


def test_aggd_two_point_sample_picks_the_grid_end():
    # For +-1: E|x|^2 / E[x^2] = 1 and no asymmetry; the GGD ratio only tends to 1 as
    # alpha -> inf, so the nearest grid shape is the last, 10. Scales: sqrt(G(.1) / G(.3)).
    alpha, b_l, b_r = aggd_fit(np.array([-1.0, 1.0, 1.0, -1.0]))
    assert alpha == pytest.approx(10.0, abs=1e-9)
    want = math.sqrt(math.gamma(0.1) / math.gamma(0.3))
    assert (b_l, b_r) == pytest.approx((want, want), rel=1e-12)


def test_aggd_of_zeros_is_grid_start_with_nan_scales():
    alpha, b_l, b_r = aggd_fit(np.zeros(100, dtype=np.float32))
    assert alpha == pytest.approx(0.2, abs=1e-12) and math.isnan(b_l) and math.isnan(b_r)


def test_block_features_of_gaussian_noise():
    block = np.random.default_rng(2).normal(size=(BLOCK, BLOCK))
    f = block_features(block)
    assert f.shape == (18,)
    assert f[0] == pytest.approx(2.0, abs=0.15)  # the coefficients: Gaussian
    # Products of independent neighbours: symmetric, peaked (shape well below 1), mean ~0.
    for k in range(4):
        alpha, mean, b_l, b_r = f[2 + 4 * k : 6 + 4 * k]
        assert alpha < 1.0 and abs(mean) < 0.05 and b_l == pytest.approx(b_r, rel=0.15)


# ---------------------------------------------------------------- MSCN, resize, blocks


def test_mscn_of_a_constant_image_is_zero():
    coeffs, sigma = mscn(np.full((20, 30), 77.0), pristine_model().window)
    np.testing.assert_allclose(coeffs, 0, atol=1e-12)
    np.testing.assert_allclose(sigma, 0, atol=1e-5)


def test_half_scale_taps_are_matlab_antialiased_cubic():
    # Keys cubic (a = -0.5) at distances 0.25, 0.75, 1.25, 1.75, halved: the weights of
    # MATLAB's imresize(., 0.5) for an interior pixel.
    def cubic(t):
        t = abs(t)
        return 1.5 * t**3 - 2.5 * t**2 + 1 if t <= 1 else -0.5 * t**3 + 2.5 * t**2 - 4 * t + 2

    impulse = np.zeros((1, 32), dtype=np.float32)
    impulse[0, 16] = 1.0
    out = half_scale(np.repeat(impulse, 4, axis=0))[0]
    # Output j reads inputs 2j-3 .. 2j+4, so input 16 appears in outputs 6..9.
    want = [0.5 * cubic(0.5 * (16 - (2 * j + 0.5))) for j in (6, 7, 8, 9)]
    np.testing.assert_array_equal(out[6:10], want)
    # Each input pixel spreads a total weight of 1/2 (the scale) over the output.
    assert out[6:10].sum() == 0.5 and np.count_nonzero(out) == 4


@pytest.mark.parametrize("shape", [(96, 96), (101, 77), (192, 288)])
def test_half_scale_is_matlab_imresize_to_float32_rounding(shape):
    img = np.random.default_rng(3).random(shape).astype(np.float32)
    out = half_scale(img)
    assert out.shape == (math.ceil(shape[0] / 2), math.ceil(shape[1] / 2)) and out.dtype == np.float64
    np.testing.assert_allclose(out, imresize(img.astype(np.float64), 0.5), rtol=0, atol=5e-7)


def test_half_scale_of_a_constant_is_exact():
    np.testing.assert_array_equal(half_scale(np.full((10, 13), 0.5, dtype=np.float32)), 0.5)


@pytest.mark.parametrize(
    "shape, blocks", [((96, 96), 1), ((191, 191), 1), ((192, 96), 2), ((200, 300), 6), ((300, 200), 6)]
)
def test_block_count_is_whole_blocks_from_the_top_left(shape, blocks):
    img = np.round(np.random.default_rng(4).random(shape) * 255).astype(np.float32)
    assert image_features(img, pristine_model().window).shape == (blocks, 36)


def test_blocks_are_listed_column_by_column():
    img = np.round(np.random.default_rng(5).random((192, 192)) * 255).astype(np.float32)
    img[96:, :96] = np.round(img[96:, :96] / 4)  # a distinct lower-left block
    window = pristine_model().window
    feats = image_features(img, window)
    lower_left, _ = mscn(img, window)
    np.testing.assert_array_equal(feats[1, :18], block_features(lower_left[96:192, :96]))


# ---------------------------------------------------------------- pooling and distance


def test_distance_of_the_pristine_mean_is_zero():
    model = pristine_model()
    assert mvg_distance(np.tile(model.mu, (3, 1)), model) == pytest.approx(0.0, abs=1e-9)


def test_single_block_uses_zero_covariance():
    model = pristine_model()
    f = model.mu + 0.1
    want = math.sqrt(np.full(36, -0.1) @ np.linalg.pinv(model.cov / 2) @ np.full(36, -0.1))
    assert mvg_distance(f[None, :], model) == pytest.approx(want, rel=1e-12)


def test_nan_blocks_count_in_the_mean_but_not_the_covariance():
    model = pristine_model()
    rng = np.random.default_rng(6)
    complete = model.mu + rng.normal(0, 0.05, (4, 36))
    partial = complete[0].copy()
    partial[5] = np.nan
    partial[7] = 100.0
    got = mvg_distance(np.vstack([complete, partial]), model)
    mu = np.nanmean(np.vstack([complete, partial]), axis=0)
    d = model.mu - mu
    want = math.sqrt(d @ np.linalg.pinv((model.cov + np.cov(complete, rowvar=False)) / 2) @ d)
    assert got == pytest.approx(want, rel=1e-12)


# ---------------------------------------------------------------- Y and arguments


def test_luma_is_bt601_y_to_float32_rounding():
    img = np.random.default_rng(7).integers(0, 256, (30, 40, 3)).astype(np.uint8)
    y = luma(img)
    assert y.dtype == np.float32 and y.shape == (30, 40)
    np.testing.assert_allclose(y, to_y(img), rtol=0, atol=3e-5)
    np.testing.assert_allclose(luma(np.full((2, 2, 3), 255, np.uint8)), 235.0, atol=3e-5)


def test_luma_gray_is_cv2_weights():
    img = np.random.default_rng(8).integers(0, 256, (30, 40, 3)).astype(np.uint8)
    want = img.astype(np.float64) @ [0.299, 0.587, 0.114]
    np.testing.assert_allclose(luma(img, "gray"), want, rtol=0, atol=1e-3)


def test_niqe_gray_input_equals_rgb_with_that_luma():
    img = photo(seed=1)
    assert niqe(np.round(luma(img)), crop_border=2) == niqe(img, crop_border=2)


@pytest.mark.parametrize("shape, crop", [((95, 200, 3), 0), ((200, 95), 0), ((100, 300, 3), 3)])
def test_niqe_smaller_than_a_block_raises(shape, crop):
    with pytest.raises(ValueError, match=r"^niqe needs at least 96x96 pixels after cropping, got \d+x\d+$"):
        niqe(np.zeros(shape, np.uint8), crop_border=crop)


@pytest.mark.parametrize(
    "img, kwargs, match",
    [
        (np.zeros((100, 100, 4)), {}, "HxWx3 RGB or HxW gray"),
        (np.zeros((100, 100, 3)), {"convert_to": "ycbcr"}, "convert_to"),
        (np.zeros((100, 100, 3)), {"crop_border": -1}, "non-negative"),
        (np.full((100, 100, 3), 128, np.uint8), {}, "no 96x96 block has finite features"),
    ],
)
def test_niqe_bad_input_raises(img, kwargs, match):
    with pytest.raises(ValueError, match=match):
        niqe(img, **kwargs)


def test_niqe_orders_noisy_above_clean():
    clean = photo(seed=2)
    noisy = np.clip(clean + np.random.default_rng(9).normal(0, 25, clean.shape), 0, 255).astype(np.uint8)
    assert niqe(noisy) > niqe(clean)


# ---------------------------------------------------------------- the MATLAB release, transcribed
# Mittal, Soundararajan, Bovik, niqe_release (2012): computequality.m, computefeature.m and
# estimateaggdparam.m, written out independently here in double precision with MATLAB's
# building blocks: fspecial, imfilter 'replicate' (correlation), blkproc (column-major
# blocks), circshift, imresize (degradations.matlab_resize, itself checked against MATLAB),
# nanmean, nancov, pinv.

GAM = np.linspace(0.2, 10, 9801)  # gam = 0.2:0.001:10
R_GAM = np.array([math.gamma(2 / g) ** 2 / (math.gamma(1 / g) * math.gamma(3 / g)) for g in GAM])


def fspecial_gaussian(size: int, sigma: float) -> np.ndarray:
    r = (size - 1) / 2
    x, y = np.meshgrid(np.arange(-r, r + 1), np.arange(-r, r + 1))
    h = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    h[h < np.finfo(float).eps * h.max()] = 0
    return h / h.sum()


def imfilter_replicate(im: np.ndarray, w: np.ndarray) -> np.ndarray:
    r = w.shape[0] // 2
    pad = np.pad(im, r, mode="edge")
    out = np.zeros_like(im)
    for i in range(w.shape[0]):
        for j in range(w.shape[1]):
            out += w[i, j] * pad[i : i + im.shape[0], j : j + im.shape[1]]
    return out


def estimateaggdparam(vec: np.ndarray) -> tuple[float, float, float]:
    leftstd = math.sqrt(np.mean(vec[vec < 0] ** 2))
    rightstd = math.sqrt(np.mean(vec[vec > 0] ** 2))
    gammahat = leftstd / rightstd
    rhat = np.mean(np.abs(vec)) ** 2 / np.mean(vec**2)
    rhatnorm = rhat * (gammahat**3 + 1) * (gammahat + 1) / (gammahat**2 + 1) ** 2
    alpha = GAM[np.argmin((R_GAM - rhatnorm) ** 2)]
    s = math.sqrt(math.gamma(1 / alpha) / math.gamma(3 / alpha))
    return alpha, leftstd * s, rightstd * s


def computefeature(structdis: np.ndarray) -> list[float]:
    alpha, betal, betar = estimateaggdparam(structdis.ravel(order="F"))
    feat = [alpha, (betal + betar) / 2]
    for shift in [(0, 1), (1, 0), (1, 1), (-1, 1)]:  # shifts = [0 1; 1 0; 1 1; -1 1]
        pair = structdis.ravel(order="F") * np.roll(structdis, shift, axis=(0, 1)).ravel(order="F")
        alpha, betal, betar = estimateaggdparam(pair)
        meanparam = (betar - betal) * (math.gamma(2 / alpha) / math.gamma(1 / alpha))
        feat += [alpha, meanparam, betal, betar]
    return feat


def computequality(im: np.ndarray, mu_prisparam: np.ndarray, cov_prisparam: np.ndarray) -> float:
    rows, cols = im.shape[0] // 96, im.shape[1] // 96
    im = im[: rows * 96, : cols * 96]
    window = fspecial_gaussian(7, 7 / 6)
    feat = []
    for itr_scale in (1, 2):
        mu = imfilter_replicate(im, window)
        sigma = np.sqrt(np.abs(imfilter_replicate(im * im, window) - mu * mu))
        structdis = (im - mu) / (sigma + 1)
        b = 96 // itr_scale
        feat.append([computefeature(structdis[r * b : (r + 1) * b, c * b : (c + 1) * b])
                     for c in range(cols) for r in range(rows)])
        im = imresize(im, 0.5)
    distparam = np.hstack([np.array(f) for f in feat])
    mu_distparam = np.nanmean(distparam, axis=0)
    cov_distparam = np.cov(distparam[~np.isnan(distparam).any(axis=1)], rowvar=False)
    invcov_param = np.linalg.pinv((cov_prisparam + cov_distparam) / 2)
    d = mu_prisparam - mu_distparam
    return math.sqrt(d @ invcov_param @ d)


def test_params_window_is_matlab_fspecial():
    np.testing.assert_allclose(pristine_model().window, fspecial_gaussian(7, 7 / 6), rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    "seed, shape, crop, rel",
    [(0, (200, 296, 3), 0, 1e-5), (3, (300, 210, 3), 4, 2e-5), (6, (250, 250, 3), 2, 1e-5), (4, (200, 200), 0, 3e-4)],
)
def test_niqe_agrees_with_matlab_transcription(seed, shape, crop, rel):
    """mmedit runs scale 1 and the half-scale resize in float32, MATLAB in double. On
    textured images that moves scores by ~1e-6 relative; on pure noise a shape estimate
    or two lands on the next grid point (1e-4). On flat areas they part for real: there
    the coefficients are rounding noise (the golden astronaut crop: 2.7 %), which is why
    ``niqe`` follows mmedit's arithmetic and not this double-precision version."""
    rng = np.random.default_rng(seed)
    img = photo(seed, shape) if len(shape) == 3 else rng.integers(0, 256, shape).astype(np.uint8)
    y = np.floor(to_y(img) + 0.5) if img.ndim == 3 else img.astype(np.float64)  # MATLAB's uint8 Y
    if crop:
        y = y[crop:-crop, crop:-crop]
    model = pristine_model()
    want = computequality(y, model.mu, model.cov)
    assert niqe(img, crop_border=crop) == pytest.approx(want, rel=rel)


# ---------------------------------------------------------------- MMEditing 0.16.1 parity


def golden_cases() -> list[tuple[str, str, int]]:
    with np.load(GOLDEN) as g:
        return [(str(name), conv, j) for name in g["niqe_names"] for conv in ("y", "gray")
                for j in range(2) if f"niqe_{name}_{conv}" in g.files]


@pytest.fixture(scope="module")
def golden():
    """mmedit's niqe of photos (one with flat areas, one with a flat block), a gradient and
    gray noise at crop_border 0 and 4 (tests/golden/make_metric_goldens.py)."""
    with np.load(GOLDEN) as g:
        return {k: g[k] for k in g.files}


@pytest.mark.parametrize("name, convert_to, j", golden_cases())
def test_niqe_matches_mmedit(golden, name, convert_to, j):
    # Bit-identical in practice; the margin only allows for another BLAS in pinv.
    got = niqe(golden[f"niqe_{name}_img"], crop_border=int(golden["crop_border"][j]), convert_to=convert_to)
    assert got == pytest.approx(golden[f"niqe_{name}_{convert_to}"][j], rel=1e-9)
