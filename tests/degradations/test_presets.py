"""BI / BD presets against direct computations from their definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from degradations import PRESETS, degrade
from degradations.presets import CLIP_PRESETS, IMAGE_PRESETS, degrade_pair
from degradations.matlab_resize import imresize


def near_rounding_boundary(x255: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Where ``x * 255`` is so close to a .5 that float noise may flip the 8-bit level."""
    return np.abs(x255 - np.floor(x255) - 0.5) < eps


def quantised_image(shape, seed=0) -> np.ndarray:
    """A float32 GT like a decoded 8-bit PNG."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, shape) / 255.0).astype(np.float32)


def ref_bd(gt: np.ndarray) -> np.ndarray:
    """BDx4 from its definition, one output pixel at a time (float64, not quantised).

    Kernel: exp(-(dx^2 + dy^2) / (2 * 1.6^2)) sampled at offsets i - 5.5, i = 0..11,
    normalised. Correlation with the kernel's (row 5, col 5) on the output pixel and
    replicated borders; keep rows/cols 1, 5, 9, ...
    """
    offs = np.arange(12) - 5.5
    k = np.exp(-(offs[:, None] ** 2 + offs[None, :] ** 2) / (2 * 1.6**2))
    k /= k.sum()
    h, w, _ = gt.shape
    g = gt.astype(np.float64)
    out = np.zeros((h // 4, w // 4, 3))
    for oy, y in enumerate(range(1, h - 1, 4)):
        for ox, x in enumerate(range(1, w - 1, 4)):
            acc = np.zeros(3)
            for i in range(12):
                for j in range(12):
                    yy = min(max(y + i - 5, 0), h - 1)
                    xx = min(max(x + j - 5, 0), w - 1)
                    acc += k[i, j] * g[yy, xx]
            out[oy, ox] = acc
    return out


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_is_quantised_matlab_downscale(scale):
    gt = quantised_image((12 * scale // 2, 6 * scale, 3), seed=scale)
    lq = degrade("bicubic", gt, scale=scale, rng=np.random.default_rng(0))
    assert lq.shape == (gt.shape[0] // scale, gt.shape[1] // scale, 3)
    assert lq.dtype == np.float32
    # Reference: the resize (checked against its own slow reference in
    # test_matlab_resize.py) in float64, then clip / x255 / round.
    ref255 = np.clip(imresize(gt.astype(np.float64), scale=1 / scale), 0, 1) * 255
    ok = ~near_rounding_boundary(ref255)
    np.testing.assert_array_equal((lq * 255).round()[ok], np.round(ref255)[ok])
    np.testing.assert_allclose(lq * 255, np.round(lq * 255), atol=1e-4)  # on 8-bit levels
    assert lq.min() >= 0 and lq.max() <= 1


def test_bicubic_keeps_constant_and_clips_overshoot():
    gt = np.full((8, 8, 3), 100 / 255, dtype=np.float32)
    lq = degrade("bicubic", gt, scale=4, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(lq, np.float32(100 / 255))
    edge = np.zeros((16, 16, 3), dtype=np.float32)
    edge[:, 8:] = 1.0  # a hard edge rings below 0 / above 1 before clipping
    assert imresize(edge.astype(np.float64), scale=1 / 2).min() < 0
    lq = degrade("bicubic", edge, scale=2, rng=np.random.default_rng(0))
    assert lq.min() == 0 and lq.max() == 1


def test_bd_matches_direct_convolution():
    gt = quantised_image((16, 20, 3), seed=7)
    lq = degrade("bd", gt, scale=4, rng=np.random.default_rng(0))
    assert lq.shape == (4, 5, 3) and lq.dtype == np.float32
    ref255 = ref_bd(gt) * 255
    ok = ~near_rounding_boundary(ref255, eps=1e-4)
    assert ok.mean() > 0.95
    np.testing.assert_array_equal((lq.astype(np.float64) * 255).round()[ok], np.floor(ref255 + 0.5)[ok])


def test_bd_uses_anchor_5_5_and_offset_1_sampling():
    # A single bright pixel at (row 1, col 1) of a dark image: output pixel (0, 0) sits on
    # gt (1, 1) and sees it through kernel entry (5, 5), the largest one.
    gt = np.zeros((8, 8, 3), dtype=np.float32)
    gt[1, 1] = 1.0
    lq = degrade("bd", gt, scale=4, rng=np.random.default_rng(0))
    offs = np.arange(12) - 5.5
    k = np.exp(-(offs[:, None] ** 2 + offs[None, :] ** 2) / (2 * 1.6**2))
    k /= k.sum()
    assert lq[0, 0, 0] == pytest.approx(math.floor(k[5, 5] * 255 + 0.5) / 255)
    # Output (1, 1) sits on gt (5, 5): the bright pixel is 4 rows/cols up-left, entry (1, 1).
    assert lq[1, 1, 0] == pytest.approx(math.floor(k[1, 1] * 255 + 0.5) / 255)


def test_bd_constant_image_stays_constant():
    gt = np.full((12, 8, 3), 37 / 255, dtype=np.float32)
    np.testing.assert_array_equal(degrade("bd", gt, scale=4, rng=np.random.default_rng(0)), np.float32(37 / 255))


@pytest.mark.parametrize("scale", [2, 3, 8])
def test_bd_rejects_other_scales(scale):
    with pytest.raises(ValueError, match="scale 4 only"):
        degrade("bd", np.zeros((24, 24, 3), dtype=np.float32), scale=scale, rng=np.random.default_rng(0))


DETERMINISTIC_PRESETS = {"bicubic", "bd"}  # ignore rng; stochastic presets repeat for the same rng


@pytest.mark.parametrize("name", sorted(IMAGE_PRESETS))
def test_every_preset_output_contract_and_determinism(name):
    gt = np.random.default_rng(1).random((16, 24, 3)).astype(np.float32)
    a = degrade(name, gt, scale=4, rng=np.random.default_rng(0))
    out = PRESETS[name](gt, scale=4, rng=np.random.default_rng(123 if name in DETERMINISTIC_PRESETS else 0))
    b = out["lq"] if isinstance(out, dict) else out  # presets may also return a replacement target
    assert a.shape == (4, 6, 3) and a.dtype == np.float32
    assert np.isfinite(a).all() and a.min() >= 0 and a.max() <= 1
    np.testing.assert_array_equal(a, b)


def test_registry_holds_image_and_clip_presets():
    assert IMAGE_PRESETS | CLIP_PRESETS == set(PRESETS) and not IMAGE_PRESETS & CLIP_PRESETS
    assert CLIP_PRESETS == {"realbasicvsr"}


def test_clip_preset_degrades_a_clip_through_the_registry():
    clip = np.random.default_rng(2).random((3, 32, 32, 3)).astype(np.float32)
    lq, gt = degrade_pair("realbasicvsr", clip, scale=4, rng=np.random.default_rng(0))
    assert lq.shape == (6, 8, 8, 3) and gt.shape == (6, 32, 32, 3)  # mirrored: 2T frames
    again = degrade("realbasicvsr", clip, scale=4, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(again, lq)


def test_image_and_clip_presets_refuse_the_other_kind_in_one_line():
    with pytest.raises(ValueError, match=r"'realbasicvsr' degrades clips: gt must be \[T, H, W, 3\]") as info:
        degrade("realbasicvsr", np.zeros((32, 32, 3), np.float32), scale=4, rng=np.random.default_rng(0))
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="'realesrgan' degrades single images"):
        degrade("realesrgan", np.zeros((2, 32, 32, 3), np.float32), scale=4, rng=np.random.default_rng(0))


def test_unknown_preset_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown degradation preset 'bilinear'.*bd, bicubic"):
        degrade("bilinear", np.zeros((8, 8, 3), dtype=np.float32), scale=4, rng=np.random.default_rng(0))


def _nan_image():
    img = np.zeros((8, 8, 3), dtype=np.float32)
    img[3, 3, 1] = np.nan
    return img


@pytest.mark.parametrize("name", sorted(IMAGE_PRESETS))
@pytest.mark.parametrize(
    "gt, scale, match",
    [
        (np.zeros((0, 0, 3), dtype=np.float32), 4, "multiples of scale"),
        (np.zeros((1, 1, 3), dtype=np.float32), 4, "multiples of scale"),
        (np.zeros((10, 12, 3), dtype=np.float32), 4, "multiples of scale"),
        (np.zeros((8, 8, 2), dtype=np.float32), 4, "HxWx3"),
        (np.zeros((8, 8), dtype=np.float32), 4, "HxWx3"),
        (np.zeros((8, 8, 3), dtype=np.uint8), 4, "dtype"),
        (np.zeros((8, 8, 3), dtype=np.int64), 4, "dtype"),
        (_nan_image(), 4, "NaN"),
        ([[0.0]], 4, "numpy array"),
        (np.zeros((8, 8, 3), dtype=np.float32), 0, "positive int"),
        (np.zeros((8, 8, 3), dtype=np.float32), 4.0, "positive int"),
    ],
)
def test_bad_inputs_raise_one_line_value_error(name, gt, scale, match):
    if name == "bd" and scale != 4:
        match = "scale 4 only"
    with pytest.raises(ValueError, match=match) as info:
        degrade(name, gt, scale=scale, rng=np.random.default_rng(0))
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- blur helpers used by BD


def test_gaussian_kernel2d_even_size_is_centred_between_pixels():
    from degradations.blur import gaussian_kernel2d

    k = gaussian_kernel2d(12, 1.6)
    assert k.shape == (12, 12) and k.sum() == pytest.approx(1.0, abs=1e-15)
    np.testing.assert_allclose(k, k[::-1, ::-1], rtol=0, atol=1e-18)  # symmetric about 5.5
    assert k[5, 5] == k[6, 6] == k.max()
    # Ratio of neighbouring samples along the centre row: offsets 0.5 and 1.5.
    assert k[5, 6] / k[5, 7] == pytest.approx(math.exp((1.5**2 - 0.5**2) / (2 * 1.6**2)))
    with pytest.raises(ValueError, match="sigma"):
        gaussian_kernel2d(5, 0.0)


def test_filter2d_is_correlation_at_the_anchor_with_replicated_border():
    from degradations.blur import filter2d

    rng = np.random.default_rng(8)
    img = rng.random((9, 7, 2))
    kernel = rng.random((3, 4))  # asymmetric: flipping it would show
    out = filter2d(img, kernel, anchor=(1, 2))  # (x, y): column 1, row 2
    ref = np.zeros_like(img)
    for y in range(9):
        for x in range(7):
            for i in range(3):
                for j in range(4):
                    ref[y, x] += kernel[i, j] * img[min(max(y + i - 2, 0), 8), min(max(x + j - 1, 0), 6)]
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-12)
    assert filter2d(img[..., :1], kernel).shape == (9, 7, 1)
