"""MATLAB imresize: checked against a slow reference written from the definition.

The reference below works one output pixel at a time in plain Python floats, straight
from the spec (spec/model_zoo.md, "MATLAB imresize"), with its own symmetric-border
mapping; it shares no code with ``degradations.matlab_resize``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from degradations.matlab_resize import _contributions, imresize


def ref_cubic(x: float) -> float:
    a = abs(x)
    if a <= 1:
        return 1.5 * a**3 - 2.5 * a**2 + 1
    if a <= 2:
        return -0.5 * a**3 + 2.5 * a**2 - 4 * a + 2
    return 0.0


def ref_symmetric(i: int, n: int) -> int:
    """1-based index -> 1-based index inside [1, n], mirroring with edge duplication."""
    while i < 1 or i > n:
        i = 1 - i if i < 1 else 2 * n + 1 - i
    return i


def ref_resize_1d(vals: list[float], out_len: int, s: float) -> list[float]:
    n = len(vals)
    width = 4 / s if s < 1 else 4
    out = []
    for x in range(1, out_len + 1):
        u = x / s + 0.5 * (1 - 1 / s)
        left = math.floor(u - width / 2)
        taps = [left + p for p in range(math.ceil(width) + 2)]
        if s < 1:
            ws = [s * ref_cubic(s * (u - t)) for t in taps]
        else:
            ws = [ref_cubic(u - t) for t in taps]
        total = sum(ws)
        out.append(sum(w / total * vals[ref_symmetric(t, n) - 1] for w, t in zip(ws, taps)))
    return out


def ref_imresize(img: np.ndarray, out_h: int, out_w: int, scale: float | None = None) -> np.ndarray:
    """Float64 reference: resize rows and columns, smaller scale first (rows on ties).

    The kernel uses ``scale`` when given (MATLAB's ``imresize(A, scale)``), else the
    per-axis ``out / in`` (``imresize(A, [rows cols])``).
    """
    img = img.astype(np.float64)
    squeeze = img.ndim == 2
    if squeeze:
        img = img[:, :, None]
    h, w, c = img.shape
    sh, sw = (scale, scale) if scale is not None else (out_h / h, out_w / w)
    out = img
    for axis in sorted((0, 1), key=lambda a: (sh, sw)[a]):
        if axis == 0:
            out = np.array(
                [[ref_resize_1d(list(out[:, j, k]), out_h, sh) for k in range(c)] for j in range(out.shape[1])]
            ).transpose(2, 0, 1)
        else:
            out = np.array(
                [[ref_resize_1d(list(out[i, :, k]), out_w, sw) for k in range(c)] for i in range(out.shape[0])]
            ).transpose(0, 2, 1)
    return out[:, :, 0] if squeeze else out


@pytest.mark.parametrize("scale", [1 / 2, 1 / 3, 1 / 4, 2, 3])
@pytest.mark.parametrize("shape", [(13, 17, 3), (9, 10), (7, 5, 1), (12, 16, 3)])
def test_matches_reference_by_scale(scale, shape):
    rng = np.random.default_rng(0)
    img = rng.random(shape)
    out = imresize(img, scale=scale)
    want_h, want_w = math.ceil(scale * shape[0]), math.ceil(scale * shape[1])
    assert out.shape == (want_h, want_w) + shape[2:]
    np.testing.assert_allclose(out, ref_imresize(img, want_h, want_w, scale), rtol=0, atol=1e-12)


@pytest.mark.parametrize("out_shape", [(5, 11), (20, 6), (13, 40), (3, 3)])
def test_matches_reference_by_output_shape(out_shape):
    img = np.random.default_rng(1).random((13, 17, 3))
    out = imresize(img, output_shape=out_shape)
    assert out.shape == out_shape + (3,)
    np.testing.assert_allclose(out, ref_imresize(img, *out_shape), rtol=0, atol=1e-12)


def test_output_size_is_ceil_of_scaled_size():
    img = np.zeros((13, 17, 3))
    assert imresize(img, scale=1 / 4).shape == (4, 5, 3)
    assert imresize(img, scale=1 / 3).shape == (5, 6, 3)
    assert imresize(img, scale=2.5).shape == (33, 43, 3)
    assert imresize(np.zeros((480, 480, 3)), scale=1 / 3).shape == (160, 160, 3)


@pytest.mark.parametrize("scale", [1 / 4, 1 / 3, 1 / 2, 1, 2, 3])
@pytest.mark.parametrize("shape", [(1, 1), (2, 3, 3), (11, 7, 3)])
def test_constant_image_stays_constant(scale, shape):
    out = imresize(np.full(shape, 0.3), scale=scale)
    np.testing.assert_allclose(out, 0.3, rtol=0, atol=1e-14)


def test_scale_one_is_identity():
    img = np.random.default_rng(2).random((6, 9, 3))
    np.testing.assert_array_equal(imresize(img, scale=1), img)
    np.testing.assert_array_equal(imresize(img, output_shape=(6, 9)), img)


def test_downscale_linear_ramp_gives_block_means_in_interior():
    # Column k (1-based) holds value k. For s = 1/4, u = 4x - 1.5, the mean of block x;
    # the antialiased cubic reproduces linear functions away from the border (its
    # taps 4x-9 .. 4x+6 must lie inside [1, 48], i.e. 3 <= x <= 10).
    ramp = np.tile(np.arange(1, 49, dtype=np.float64), (8, 1))
    out = imresize(ramp, scale=1 / 4)
    x = np.arange(3, 11)
    np.testing.assert_allclose(out[:, x - 1], np.tile(4.0 * x - 1.5, (2, 1)), rtol=0, atol=1e-12)


def test_upscale_impulse_gives_hand_computed_cubic_weights():
    # Scale 2: u = x/2 + 0.25, so taps sit at distances +-0.25, +-0.75, +-1.25, +-1.75:
    # cubic(0.25) = 0.8671875, cubic(0.75) = 0.2265625, cubic(1.25) = -0.0703125,
    # cubic(1.75) = -0.0234375 (these sum to exactly 1, so no renormalisation error).
    row = np.zeros((1, 8))
    row[0, 2] = 1.0  # 1-based column 3
    out = imresize(row, scale=2)
    expected = [0, -0.0234375, -0.0703125, 0.2265625, 0.8671875, 0.8671875, 0.2265625,
                -0.0703125, -0.0234375, 0, 0, 0, 0, 0, 0, 0]  # fmt: skip
    assert out.shape == (2, 16)
    np.testing.assert_array_equal(out, np.array([expected, expected]))


def test_symmetric_border_on_downscale():
    # An impulse in the first column leaks into the first output pixel through the mirrored
    # taps too: with s = 1/2, u = 2x - 0.5 and output 1 sees column 1 at distance -0.5 and
    # its mirror image (tap 0) at distance 0.5, each weighted s*cubic(s*0.5).
    row = np.zeros((1, 10))
    row[0, 0] = 1.0
    out = imresize(row, output_shape=(1, 5))
    u = 1.5
    taps = range(math.floor(u - 4), math.floor(u - 4) + 10)
    ws = {t: 0.5 * ref_cubic(0.5 * (u - t)) for t in taps}
    total = sum(ws.values())
    expected = (ws[1] + ws[0]) / total
    assert out[0, 0] == pytest.approx(expected, abs=1e-15)
    assert expected > ws[1] / total  # the mirror matters


def test_zero_tap_columns_are_dropped_and_rows_normalised():
    w_up, i_up = _contributions(8, 16, 2.0)  # taps at distance 2.25 / 2.75 are always zero
    assert w_up.shape == i_up.shape == (16, 4)
    w_dn, i_dn = _contributions(48, 12, 0.25)  # P = 18, outermost taps at |d| = 8.5
    assert w_dn.shape == (12, 16)
    np.testing.assert_allclose(w_dn.sum(axis=1), 1.0, rtol=0, atol=1e-15)
    assert i_dn.min() >= 0 and i_dn.max() < 48


def test_uint8_in_uint8_out_clipped_and_rounded():
    step = np.zeros((6, 8, 3), dtype=np.uint8)
    step[:, 4:] = 255
    as_float = imresize(step.astype(np.float64), scale=3)
    assert as_float.min() < 0 and as_float.max() > 255  # cubic overshoot
    out = imresize(step, scale=3)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.floor(np.clip(as_float, 0, 255) + 0.5).astype(np.uint8))

    img = np.random.default_rng(3).integers(0, 256, (16, 12, 3), dtype=np.uint8)
    ref = ref_imresize(img, 4, 3, 1 / 4)
    out = imresize(img, scale=1 / 4)
    np.testing.assert_array_equal(out, np.floor(np.clip(ref, 0, 255) + 0.5).astype(np.uint8))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_in_same_float_out_unclipped(dtype):
    step = np.zeros((6, 8), dtype=dtype)
    step[:, 4:] = 1
    out = imresize(step, scale=2)
    assert out.dtype == dtype
    assert out.min() < 0 and out.max() > 1


@pytest.mark.parametrize(
    "img, kwargs, match",
    [
        ([[0.0, 1.0]], {"scale": 0.5}, "numpy array"),
        (np.zeros((0, 5)), {"scale": 0.5}, "non-empty"),
        (np.zeros((4, 0, 3)), {"scale": 0.5}, "non-empty"),
        (np.zeros((2, 2, 2, 2)), {"scale": 0.5}, "HxW"),
        (np.zeros((4, 4), dtype=np.int32), {"scale": 0.5}, "dtype"),
        (np.zeros((4, 4), dtype=bool), {"scale": 0.5}, "dtype"),
        (np.zeros((4, 4)), {}, "exactly one"),
        (np.zeros((4, 4)), {"scale": 0.5, "output_shape": (2, 2)}, "exactly one"),
        (np.zeros((4, 4)), {"scale": 0}, "positive"),
        (np.zeros((4, 4)), {"scale": -2.0}, "positive"),
        (np.zeros((4, 4)), {"scale": float("nan")}, "positive"),
        (np.zeros((4, 4)), {"output_shape": (2, 0)}, "output_shape"),
        (np.zeros((4, 4)), {"output_shape": (2,)}, "output_shape"),
        (np.zeros((4, 4)), {"output_shape": (2.0, 2.0)}, "output_shape"),
    ],
)
def test_bad_inputs_raise_value_error(img, kwargs, match):
    with pytest.raises(ValueError, match=match):
        imresize(img, **kwargs)


def test_scale_argument_sets_kernel_even_when_size_is_rounded_up():
    # 9 rows at scale 1/2 -> ceil(4.5) = 5 rows, but the kernel still uses 1/2 (MATLAB),
    # which is not the same resize as asking for 5 rows (factor 5/9).
    img = np.random.default_rng(4).random((9, 10))
    by_scale = imresize(img, scale=0.5)
    by_shape = imresize(img, output_shape=(5, 5))
    assert by_scale.shape == by_shape.shape == (5, 5)
    np.testing.assert_allclose(by_scale, ref_imresize(img, 5, 5, 0.5), rtol=0, atol=1e-12)
    assert not np.allclose(by_scale, by_shape)
