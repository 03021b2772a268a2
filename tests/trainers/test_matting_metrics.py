"""Matting metrics (SAD, MSE, GRAD, CONN) and pred-alpha processing: MMEditing 0.16.1 goldens,
hand-computed cases, and scipy as an independent Gaussian-derivative filter."""

from __future__ import annotations

import time
from pathlib import Path
from unittest import mock

import cv2
import numpy as np
import pytest
from scipy import ndimage

from trainers import matting_metrics as mm
from trainers.matting_metrics import (
    connectivity_error,
    gaussian_gradient_kernel,
    gaussian_gradient_magnitude,
    gradient_error,
    matting_scores,
    mse,
    prepare_pred_alpha,
    sad,
)

GOLDEN = np.load(Path(__file__).parents[1] / "data" / "golden" / "matting_metrics.npz")
CASES = [str(c) for c in GOLDEN["cases"]]
KEYS = ("sad", "mse", "grad", "conn")
# SAD and MSE are float64 sums of exact k/255 terms: they agree with the reference to the last
# bit today; 1e-12 only allows a different summation order in another numpy. GRAD and CONN
# sum float32 terms (OpenCV filtering for GRAD): bit-identical here too, 1e-6 (a few float32
# ulps) allows another numpy/OpenCV build's SIMD order, and is orders of magnitude below what a
# wrong threshold, border mode or kernel would change (the mutation tests below show >1e-2).
RTOL = {"sad": 1e-12, "mse": 1e-12, "grad": 1e-6, "conn": 1e-6}


def case(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return GOLDEN[f"{name}.pred01"], GOLDEN[f"{name}.gt"], GOLDEN[f"{name}.trimap"]


# ---------------------------------------------------------------- MMEditing goldens


@pytest.mark.parametrize("name", CASES)
def test_golden_case(name):
    pred01, gt, trimap = case(name)
    np.testing.assert_array_equal(prepare_pred_alpha(pred01, trimap), GOLDEN[f"{name}.pred_u8"])
    scores = matting_scores(pred01, gt, trimap)
    assert list(scores) == list(KEYS)
    for key, ref in zip(KEYS, GOLDEN[f"{name}.scores"]):
        assert isinstance(scores[key], float)
        assert scores[key] == pytest.approx(ref, rel=RTOL[key], abs=1e-15), key


def test_golden_grad_kernel():
    np.testing.assert_allclose(gaussian_gradient_kernel(1.4), GOLDEN["grad_kernel_x"], rtol=0, atol=1e-15)


def test_golden_conn_case_pins_the_thresholds():
    """Thresholding one uint8 level higher moves the conn_levels figure: the case has pixels on them."""
    _, gt, trimap = case("conn_levels")
    pred = GOLDEN["conn_levels.pred_u8"]
    with mock.patch.object(mm, "CONN_LEVELS", mm.CONN_LEVELS + 1):
        shifted = connectivity_error(pred, gt, trimap)
    assert abs(shifted - GOLDEN["conn_levels.scores"][3]) > 1e-3


def test_golden_conn_tie_takes_the_first_component():
    """On equal sizes the first component in raster order is 'largest'; the last would differ."""

    def last_largest(mask):
        _, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=4)
        sizes = stats[1:, cv2.CC_STAT_AREA]
        if sizes.size == 0:
            return np.zeros(mask.shape, bool)
        return labels == len(sizes) - int(np.argmax(sizes[::-1]))

    _, gt, trimap = case("conn_tie")
    pred = GOLDEN["conn_tie.pred_u8"]
    with mock.patch.object(mm, "_largest_component", last_largest):
        other = connectivity_error(pred, gt, trimap)
    assert abs(other - GOLDEN["conn_tie.scores"][3]) > 1e-3


def test_golden_half_round_pins_round_half_to_even():
    pred01, _, trimap = case("half_round")
    half_up = np.floor(np.clip(pred01, 0, 1) * np.float32(255) + np.float32(0.5)).astype(np.uint8)
    assert (half_up != GOLDEN["half_round.pred_u8"]).any()


@pytest.mark.parametrize("name", ["smooth", "conn_levels", "out_of_range"])
def test_grad_conn_divide_a_float32_sum_in_float64(name):
    """The zoo figures (numpy 1.x) divided the float32 sum by 1000 in float64, not float32."""
    pred01, gt, trimap = case(name)
    scores = matting_scores(pred01, gt, trimap)
    for key in ("grad", "conn"):
        total = np.float32(scores[key] * 1000)
        assert float(total) / 1000 == scores[key]
        assert float(total / np.float32(1000)) != scores[key]


# ---------------------------------------------------------------- pred-alpha processing


def test_prepare_clips_forces_then_rounds():
    pred01 = np.array([[-0.3, 1.4, 0.2], [0.5, 0.7, 0.1001]], np.float32)
    trimap = np.array([[128, 128, 0], [255, 128, 128]], np.uint8)
    out = prepare_pred_alpha(pred01, trimap)
    assert out.dtype == np.uint8
    # clip: -0.3 -> 0, 1.4 -> 1 (255); trimap 0 / 255 override 0.2 and 0.5;
    # float32(0.7) * 255 is exactly 178.5 in float32 -> 178 (half to even); 0.1001 * 255 = 25.53 -> 26
    np.testing.assert_array_equal(out, [[0, 255, 0], [255, 178, 26]])
    assert out[1, 0] == 255 and out[0, 2] == 0  # forced by the trimap whatever the prediction


def test_prepare_rounds_float32_ties_to_even():
    k = np.arange(255)
    x = ((k + 0.5) / 255).astype(np.float32)
    product = x * np.float32(255)
    ties = product == (k + 0.5).astype(np.float32)
    assert ties.sum() > 20  # plenty of exact float32 ties
    out = prepare_pred_alpha(x[None, :], np.full((1, 255), 128, np.uint8))[0]
    np.testing.assert_array_equal(out[ties], np.round(k[ties] + 0.5))
    assert (out[ties] % 2 == 0).all()


def test_prepare_works_in_float32_like_the_network_output():
    x = np.linspace(0, 1, 1001)  # float64 input is first taken to float32
    trimap = np.full((1, x.size), 128, np.uint8)
    np.testing.assert_array_equal(
        prepare_pred_alpha(x[None], trimap), prepare_pred_alpha(x[None].astype(np.float32), trimap)
    )


def test_batch_float_alpha_converts_back_to_uint8_exactly():
    k = np.arange(256, dtype=np.uint8)
    as_batch = k.astype(np.float32) / 255
    np.testing.assert_array_equal(np.round(as_batch * 255).astype(np.uint8), k)


# ---------------------------------------------------------------- SAD / MSE by hand


def test_sad_mse_by_hand():
    gt = np.array([[0, 255], [128, 64]], np.uint8)
    trimap = np.array([[0, 255], [128, 128]], np.uint8)
    pred = np.array([[0, 255], [100, 64]], np.uint8)
    assert sad(pred, gt, trimap) == pytest.approx(28 / 255 / 1000, rel=1e-15)
    assert mse(pred, gt, trimap) == pytest.approx((28 / 255) ** 2 / 2, rel=1e-15)


def test_sad_and_mse_numerator_cover_the_whole_image():
    """A ground truth that disagrees with its trimap counts too (MSE still divides by #unknown)."""
    gt = np.array([[10, 250], [128, 64]], np.uint8)
    trimap = np.array([[0, 255], [128, 128]], np.uint8)
    pred = np.array([[0, 255], [128, 64]], np.uint8)
    assert sad(pred, gt, trimap) == pytest.approx(15 / 255 / 1000, rel=1e-15)
    assert mse(pred, gt, trimap) == pytest.approx((100 + 25) / 255**2 / 2, rel=1e-15)


def test_sad_mse_match_plain_numpy_on_random_mattes():
    rng = np.random.default_rng(3)
    gt = rng.integers(0, 256, (37, 53), dtype=np.uint8)
    trimap = rng.choice(np.array([0, 128, 255], np.uint8), gt.shape)
    pred = prepare_pred_alpha(rng.random(gt.shape), trimap)
    d = pred.astype(np.float64) - gt
    assert sad(pred, gt, trimap) == pytest.approx(np.abs(d).sum() / 255 / 1000, rel=1e-12)
    assert mse(pred, gt, trimap) == pytest.approx((d**2).sum() / 255**2 / (trimap == 128).sum(), rel=1e-12)


def test_mse_without_unknown_pixels_is_zero_like_the_reference():
    gt = np.array([[0, 255], [30, 255]], np.uint8)
    trimap = np.array([[0, 255], [0, 255]], np.uint8)
    pred = np.array([[0, 255], [0, 255]], np.uint8)
    assert mse(pred, gt, trimap) == 0.0
    assert sad(pred, gt, trimap) > 0  # the disagreeing ground truth still shows in SAD


# ---------------------------------------------------------------- CONN by hand


def island(bridge: int, pred_island: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 3x3 solid block (trimap 255), then an unknown bridge pixel and an unknown island pixel
    (gt 255) to its right: the island leaves the largest component when the bridge falls below
    the threshold."""
    gt = np.zeros((5, 7), np.uint8)
    gt[1:4, 0:3] = 255
    gt[2, 3], gt[2, 4] = bridge, 255
    pred = gt.copy()
    pred[2, 4] = pred_island
    trimap = np.zeros_like(gt)
    trimap[1:4, 0:3] = 255
    trimap[2, 3] = trimap[2, 4] = 128
    return pred, gt, trimap


@pytest.mark.parametrize(
    "bridge, pred_island, expected",
    [
        # bridge 77/255 = 0.302 falls out at t = 0.4: level 0.3; gt phi = 1 - (1 - 0.3) = 0.3,
        # pred d = 0.4 - 0.3 < 0.15 so pred phi = 1: error 0.7
        (77, 102, 0.7),
        # bridge 26/255 = 0.102 falls out at t = 0.2: level 0.1; pred d = 0.3 >= 0.15, phi 0.7; gt phi 0.1
        (26, 102, 0.6),
        # bridge 25/255 = 0.098 is below 0.1 from the start: level 0; pred phi 0.6, gt phi 0
        (25, 102, 0.6),
        # bridge 128/255 = 0.502 falls out at t = 0.6, the island (0.6 in pred) is still there:
        # level 0.5; pred d = 0.1 so phi 1, gt phi 0.5
        (128, 153, 0.5),
        # same bridge, but the predicted island (0.4) itself leaves the intersection at t = 0.5
        # first: level 0.4; pred d = 0 so phi 1, gt phi 0.4
        (128, 102, 0.6),
    ],
)
def test_conn_island_leaves_at_a_known_threshold(bridge, pred_island, expected):
    pred, gt, trimap = island(bridge, pred_island)
    # the bridge itself: d = bridge/255 - level < 0.15, phi 1 in both: no error
    assert connectivity_error(pred, gt, trimap) == pytest.approx(expected / 1000, rel=1e-6)


def test_conn_levels_table_matches_float_thresholds():
    thresholds = np.arange(0, 1.1, 0.1)[1:]
    assert mm.CONN_LEVELS.tolist() == [26, 51, 77, 102, 128, 153, 179, 204, 230, 255]
    a32 = np.arange(256, dtype=np.float32) / np.float32(255)
    for t, k in zip(thresholds, mm.CONN_LEVELS):
        u8_mask = np.arange(256) >= k
        np.testing.assert_array_equal(a32.astype(np.float64) >= t, u8_mask)
        np.testing.assert_array_equal(a32 >= np.float32(t), u8_mask)


def test_largest_component_is_4_connected_and_first_on_ties():
    mask = np.zeros((5, 6), bool)
    mask[0, 0:2] = True        # 2 px
    mask[1, 2] = True          # touches (0, 1) only diagonally: separate under 4-connectivity
    mask[3, 3:5] = True        # 2 px, same size as the first
    got = mm._largest_component(mask)
    expected = np.zeros_like(mask)
    expected[0, 0:2] = True
    np.testing.assert_array_equal(got, expected)
    assert not mm._largest_component(np.zeros((3, 3), bool)).any()


# ---------------------------------------------------------------- GRAD's filter


def test_grad_kernel_size_and_norm():
    k = gaussian_gradient_kernel(1.4)
    # sqrt(2 pi) * 1.4 * 0.01 = 0.03509; sqrt(-2 ln 0.03509) = 2.588; * 1.4 = 3.62 -> half size 4
    assert k.shape == (9, 9)
    assert gaussian_gradient_kernel(1.0).shape == (7, 7)  # 2.715 -> 3
    assert np.sqrt((k**2).sum()) == pytest.approx(1.0, rel=1e-14)
    np.testing.assert_allclose(k, -k[:, ::-1], atol=1e-17)  # odd in x (correlation: negative slope)
    np.testing.assert_allclose(k, k[::-1, :], atol=1e-17)  # even in y
    assert k[4, 3] > 0 > k[4, 5]


def test_grad_response_to_a_linear_ramp():
    h, sigma, slope = 4, 1.4, 0.01
    u = np.arange(-h, h + 1.0)
    g = np.exp(-(u**2) / (2 * sigma**2))
    dg = -u * g
    # correlating a*x with g(i) dg(j) / (|g| |dg|) gives a * sum(g) * sum(u dg) / (|g| |dg|)
    expected = slope * abs(g.sum() * (u * dg).sum()) / (np.linalg.norm(g) * np.linalg.norm(dg))
    ramp = np.tile(slope * np.arange(40.0), (30, 1))
    mag = gaussian_gradient_magnitude(ramp, sigma)
    np.testing.assert_allclose(mag[:, h:-h], expected, rtol=1e-12)
    mag_y = gaussian_gradient_magnitude(np.ascontiguousarray(ramp.T), sigma)
    np.testing.assert_allclose(mag_y[h:-h, :], expected, rtol=1e-12)


def test_grad_magnitude_is_scipys_gaussian_derivative_rescaled():
    """scipy's kernel is (g/sum g) x (dg/sum g); ours is g x dg / (|g| |dg|). With scipy's 'nearest'
    (= replicate) borders and the same radius the two magnitudes differ by that constant only."""
    sigma, h = 1.4, 4
    u = np.arange(-h, h + 1.0)
    g = np.exp(-(u**2) / (2 * sigma**2))
    dg = -u * g / sigma**2
    scale = g.sum() ** 2 / (np.linalg.norm(g) * np.linalg.norm(dg))
    img = cv2.GaussianBlur(np.random.default_rng(5).random((45, 62)), (0, 0), 2.0)
    kw = dict(sigma=sigma, mode="nearest", truncate=h / sigma)
    gx = ndimage.gaussian_filter(img, order=(0, 1), **kw)
    gy = ndimage.gaussian_filter(img, order=(1, 0), **kw)
    ours = gaussian_gradient_magnitude(img, sigma)
    np.testing.assert_allclose(ours, scale * np.hypot(gx, gy), rtol=1e-10, atol=1e-13)


def test_grad_is_zero_for_identical_and_for_constant_mattes():
    gt = np.full((8, 9), 77, np.uint8)
    trimap = np.full_like(gt, 128)
    assert gradient_error(gt, gt, trimap) == 0.0
    pred = np.full_like(gt, 200)  # both min-max normalise to all zeros
    assert gradient_error(pred, gt, trimap) == 0.0


# ---------------------------------------------------------------- bad inputs and speed


def single_line_error(fn, *args) -> str:
    with pytest.raises(ValueError) as err:
        fn(*args)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_bad_inputs_raise_one_line_value_errors():
    gt = np.full((4, 5), 128, np.uint8)
    trimap = np.full_like(gt, 128)
    assert "shape" in single_line_error(sad, gt[:, :4], gt, trimap)
    assert "shape" in single_line_error(mse, gt, gt, trimap[:3])
    assert "trimap values" in single_line_error(gradient_error, gt, gt, np.full_like(gt, 100))
    assert "uint8" in single_line_error(connectivity_error, gt.astype(np.float32), gt, trimap)
    assert "HxW" in single_line_error(sad, gt[..., None], gt[..., None], trimap)
    forced = trimap.copy()
    forced[0, 0] = 0
    assert "prepare_pred_alpha" in single_line_error(mse, gt, gt, forced)
    assert "NaN" in single_line_error(prepare_pred_alpha, np.full(gt.shape, np.nan), trimap)
    assert "shape" in single_line_error(matting_scores, np.zeros((4, 4)), gt, trimap)
    assert "trimap values" in single_line_error(matting_scores, np.zeros(gt.shape), gt, np.ones_like(gt))


def test_thousand_pixel_square_is_fast():
    rng = np.random.default_rng(0)
    field = cv2.GaussianBlur(rng.normal(size=(1000, 1000)), (0, 0), 20)
    gt = np.round(np.clip(0.5 + 0.6 * field / field.std(), 0, 1) * 255).astype(np.uint8)
    trimap = np.where(gt >= 128, 255, 0).astype(np.uint8)
    trimap[(gt > 0) & (gt < 255)] = 128
    pred01 = (gt / 255 + 0.05 * rng.normal(size=gt.shape)).astype(np.float32)
    start = time.perf_counter()
    scores = matting_scores(pred01, gt, trimap)
    assert time.perf_counter() - start < 3.0  # ~0.2 s on one loaded core
    assert all(v > 0 for v in scores.values())
