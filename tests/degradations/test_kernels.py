"""Blur kernels, their sampler and the reflect-border filter (degradations/kernels.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from degradations.kernels import (
    KernelParams,
    circular_lowpass,
    filter2d,
    gaussian_aniso,
    generalized_gaussian,
    j1,
    make_kernel,
    pad_kernel,
    plateau,
    sample_kernel_params,
    trim_kernel,
)

KINDS6 = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
PROBS6 = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)


def grid(size):
    ax = np.arange(size) - (size - 1) / 2
    return np.meshgrid(ax, ax)  # xx along columns, yy along rows


@pytest.mark.parametrize("k", [
    gaussian_aniso(21, 2.0, 0.7, 0.4),
    generalized_gaussian(15, 1.5, 2.5, -1.1, 0.6),
    plateau(13, 1.2, 0.5, 2.0, 1.7),
    circular_lowpass(17, 1.1),
    gaussian_aniso(7, 0.2, 0.2, 0.0),
], ids=["aniso", "generalized", "plateau", "sinc", "tiny-sigma"])
def test_kernels_are_normalised_float32_and_point_symmetric(k):
    assert k.dtype == np.float32 and k.ndim == 2 and k.shape[0] == k.shape[1]
    assert abs(float(k.sum(dtype=np.float64)) - 1.0) < 1e-6
    np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-8)


def test_gaussian_matches_its_formula_and_iso_is_separable():
    xx, yy = grid(11)
    sx, sy, th = 2.0, 0.8, 0.7
    c, s = math.cos(th), math.sin(th)
    # coordinates in the rotated frame: covariance R diag(sx^2, sy^2) R^T
    u = c * xx + s * yy
    v = -s * xx + c * yy
    ref = np.exp(-0.5 * (u**2 / sx**2 + v**2 / sy**2))
    np.testing.assert_allclose(gaussian_aniso(11, sx, sy, th), ref / ref.sum(), atol=1e-7)
    g = np.exp(-0.5 * (np.arange(11) - 5.0) ** 2 / 1.3**2)
    np.testing.assert_allclose(gaussian_aniso(11, 1.3, 1.3, 0.0), np.outer(g, g) / np.outer(g, g).sum(), atol=1e-7)


def test_rotation_properties():
    a = gaussian_aniso(15, 2.5, 0.6, 0.0)
    np.testing.assert_allclose(gaussian_aniso(15, 2.5, 0.6, math.pi), a, atol=1e-7)
    np.testing.assert_allclose(gaussian_aniso(15, 2.5, 0.6, math.pi / 2), gaussian_aniso(15, 0.6, 2.5, 0.0), atol=1e-7)
    np.testing.assert_allclose(a.T, gaussian_aniso(15, 0.6, 2.5, 0.0), atol=1e-7)
    # theta = 0: the long axis (sigma_x) runs along columns
    assert a[7, 7 + 4] > a[7 + 4, 7]
    # rotating by +45 degrees puts it on the diagonal y = x (rows grow downwards)
    d = gaussian_aniso(15, 2.5, 0.6, math.pi / 4)
    assert d[7 + 3, 7 + 3] > d[7 - 3, 7 + 3]


def test_generalized_and_plateau_formulas():
    xx, yy = grid(9)
    q = (xx**2 + yy**2) / 1.5**2
    ref = np.exp(-0.5 * q**0.7)
    np.testing.assert_allclose(generalized_gaussian(9, 1.5, 1.5, 0.0, 0.7), ref / ref.sum(), atol=1e-7)
    ref = 1 / (q**1.5 + 1)
    np.testing.assert_allclose(plateau(9, 1.5, 1.5, 0.0, 1.5), ref / ref.sum(), atol=1e-7)
    np.testing.assert_allclose(generalized_gaussian(9, 1.5, 0.9, 0.3, 1.0), gaussian_aniso(9, 1.5, 0.9, 0.3), atol=1e-7)


def test_j1_and_sinc_match_scipy():
    special = pytest.importorskip("scipy.special")
    x = np.linspace(0, 60, 4001)
    np.testing.assert_allclose(j1(x), special.j1(x), atol=1e-13)
    for size, omega in [(7, math.pi / 3), (13, 2.0), (21, math.pi)]:
        xx, yy = grid(size)
        r = np.hypot(xx, yy)
        with np.errstate(divide="ignore", invalid="ignore"):
            ref = omega * special.j1(omega * r) / (2 * np.pi * r)
        ref[size // 2, size // 2] = omega**2 / (4 * np.pi)
        np.testing.assert_allclose(circular_lowpass(size, omega), ref / ref.sum(), atol=1e-7)


def test_sinc_has_negative_lobes_and_pads():
    k = circular_lowpass(21, 1.0)
    assert k.min() < 0
    p = pad_kernel(circular_lowpass(7, 1.0), 21)
    assert p.shape == (21, 21) and abs(p.sum() - 1) < 1e-6
    np.testing.assert_array_equal(p[7:14, 7:14], circular_lowpass(7, 1.0))
    assert not p[:7].any() and not p[:, 14:].any()


@pytest.mark.parametrize("call", [
    lambda: gaussian_aniso(8, 1, 1, 0),
    lambda: gaussian_aniso(7, 0, 1, 0),
    lambda: generalized_gaussian(7, 1, 1, 0, -1),
    lambda: circular_lowpass(7, 0.0),
    lambda: pad_kernel(np.ones((23, 23)), 21),
    lambda: make_kernel(KernelParams("box", 7)),
    lambda: filter2d(np.zeros((8, 8, 3), np.float32), np.ones((4, 4))),
])
def test_bad_kernel_arguments_raise_value_error(call):
    with pytest.raises(ValueError):
        call()


def test_sampler_frequencies_and_ranges():
    rng = np.random.default_rng(123)
    n = 20000
    draws = [sample_kernel_params(rng) for _ in range(n)]
    kinds = np.array([d.kind for d in draws])
    sinc = kinds == "sinc"
    tol = lambda p, m: 4.5 * math.sqrt(p * (1 - p) / m)  # noqa: E731
    assert abs(sinc.mean() - 0.1) < tol(0.1, n)
    m = int((~sinc).sum())
    for kind, p in zip(KINDS6, PROBS6):
        assert abs((kinds == kind).sum() / m - p) < tol(p, m), kind
    sizes = np.array([d.size for d in draws])
    assert set(sizes.tolist()) == set(range(7, 22, 2))
    for s in range(7, 22, 2):
        assert abs((sizes == s).mean() - 1 / 8) < tol(1 / 8, n)
    for d in draws:
        if d.kind == "sinc":
            lo = math.pi / 3 if d.size < 13 else math.pi / 5
            assert lo <= d.omega <= math.pi
            continue
        assert 0.2 <= d.sigma_x <= 3.0 and 0.2 <= d.sigma_y <= 3.0
        if d.kind.endswith("_iso") or d.kind == "iso":
            assert d.sigma_y == d.sigma_x and d.theta == 0.0
        else:
            assert -math.pi <= d.theta <= math.pi
        if d.kind.startswith("generalized"):
            assert 0.5 <= d.beta <= 4.0
        elif d.kind.startswith("plateau"):
            assert 1.0 <= d.beta <= 2.0
        else:
            assert d.beta == 1.0
    # small-size sinc cutoffs never go below pi/3; large ones do
    small = [d.omega for d in draws if d.kind == "sinc" and d.size < 13]
    large = [d.omega for d in draws if d.kind == "sinc" and d.size >= 13]
    assert min(small) >= math.pi / 3 and min(large) < math.pi / 3
    # beta quirks: generalized beta < 1 half the time; plateau beta == 1 exactly half the time
    gb = np.array([d.beta for d in draws if d.kind.startswith("generalized")])
    pb = np.array([d.beta for d in draws if d.kind.startswith("plateau")])
    assert abs((gb < 1).mean() - 0.5) < tol(0.5, gb.size)
    assert abs((pb == 1.0).mean() - 0.5) < tol(0.5, pb.size)


def test_sampler_is_deterministic_per_generator():
    a = [sample_kernel_params(np.random.default_rng(5)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    sig = [sample_kernel_params(np.random.default_rng(i), sigma_range=(0.2, 1.5), sinc_prob=0.0) for i in range(300)]
    assert all(0.2 <= d.sigma_x <= 1.5 for d in sig)


def _reference_filter(img, k):
    """Reflect-101 padding by k // 2 then plain correlation, float64 (torch's filter2D)."""
    p = k.shape[0] // 2
    pad = np.pad(img.astype(np.float64), ((p, p), (p, p), (0, 0)), mode="reflect")
    out = np.zeros(img.shape)
    for i in range(k.shape[0]):
        for j in range(k.shape[1]):
            out += k[i, j] * pad[i : i + img.shape[0], j : j + img.shape[1]]
    return out


@pytest.mark.parametrize("params", [
    KernelParams("iso", 21, 2.5, 2.5, 0.0),          # separable path
    KernelParams("iso", 21, 0.3, 0.3, 0.0),          # trimmed to a few taps
    KernelParams("aniso", 21, 3.0, 0.4, 0.9),        # DFT path
    KernelParams("plateau_aniso", 9, 1.5, 0.8, -0.4, beta=1.5),
    KernelParams("sinc", 17, omega=1.2),
], ids=lambda p: f"{p.kind}-{p.size}")
def test_filter2d_matches_reflect_padded_correlation(params):
    rng = np.random.default_rng(0)
    img = rng.random((37, 45, 3)).astype(np.float32)
    k = pad_kernel(make_kernel(params), 21)
    out = filter2d(img, k)
    assert out.shape == img.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, _reference_filter(img, k.astype(np.float64)), atol=3e-6)


def test_trim_kernel_drops_only_negligible_mass():
    k = pad_kernel(gaussian_aniso(7, 0.4, 0.4, 0.0), 21)
    t = trim_kernel(k)
    assert t.shape[0] < 7 and abs(float(t.sum()) - float(k.sum())) < 1e-8
    p = plateau(21, 1.0, 1.0, 0.0, 1.0)  # heavy tails: kept whole
    assert trim_kernel(p).shape == (21, 21)
