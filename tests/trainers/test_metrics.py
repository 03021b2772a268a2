"""PSNR / SSIM / Y conversion against hand-computed values, scikit-image and MMEditing 0.16.1."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from trainers.metrics import psnr, ssim, tensor_to_image, to_y
from trainers.niqe import luma

C1 = (0.01 * 255) ** 2
C2 = (0.03 * 255) ** 2


def random_pair(shape=(40, 48, 3), noise=20.0, seed=0):
    rng = np.random.default_rng(seed)
    gt = rng.random(shape) * 255
    pred = np.clip(gt + rng.normal(0, noise, shape), 0, 255)
    return pred, gt


def skimage_ssim(pred, gt):
    """scikit-image with the Wang et al. settings: its 11x11 window (truncate 3.5 at sigma 1.5)
    and its 5-pixel border crop equal our valid region, so the numbers must agree."""
    return structural_similarity(
        pred,
        gt,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
        channel_axis=2 if pred.ndim == 3 else None,
    )


# ---------------------------------------------------------------- Y conversion


@pytest.mark.parametrize(
    "rgb, y",
    [
        ((255, 255, 255), 235.0),
        ((0, 0, 0), 16.0),
        ((255, 0, 0), 16 + 65.481),
        ((0, 255, 0), 16 + 128.553),
        ((0, 0, 255), 16 + 24.966),
        ((51, 102, 204), 16 + (65.481 * 51 + 128.553 * 102 + 24.966 * 204) / 255),
    ],
)
def test_to_y_known_colours(rgb, y):
    img = np.broadcast_to(np.array(rgb, dtype=np.float64), (2, 3, 3))
    out = to_y(img)
    assert out.shape == (2, 3) and out.dtype == np.float64
    np.testing.assert_allclose(out, y, rtol=0, atol=1e-12)


def test_to_y_is_not_rounded():
    assert to_y(np.full((1, 1, 3), 1.0))[0, 0] == pytest.approx(16 + 219 / 255)


def test_to_y_rejects_non_rgb():
    with pytest.raises(ValueError, match="HxWx3"):
        to_y(np.zeros((4, 4)))


# ---------------------------------------------------------------- PSNR


@pytest.mark.parametrize("d", [1.0, 5.0, 12.5])
def test_psnr_constant_difference(d):
    gt = np.full((8, 9, 3), 100.0)
    assert psnr(gt + d, gt) == pytest.approx(20 * math.log10(255 / d), abs=1e-12)
    assert psnr(gt - d, gt) == pytest.approx(20 * math.log10(255 / d), abs=1e-12)


def test_psnr_mse_is_over_all_channels():
    gt = np.full((6, 6, 3), 50.0)
    pred = gt.copy()
    pred[..., 1] += 6.0  # one channel off: mse = 36 / 3
    assert psnr(pred, gt) == pytest.approx(20 * math.log10(255 / math.sqrt(12.0)), abs=1e-12)


def test_psnr_identical_is_inf():
    pred, gt = random_pair()
    assert psnr(gt, gt.copy()) == float("inf")
    assert psnr(gt, gt.copy(), crop_border=4, convert_to="y") == float("inf")


def test_psnr_accepts_uint8_and_computes_in_float():
    gt = np.full((4, 4, 3), 10, dtype=np.uint8)
    pred = np.full((4, 4, 3), 250, dtype=np.uint8)  # would wrap around in uint8 arithmetic
    assert psnr(pred, gt) == pytest.approx(20 * math.log10(255 / 240), abs=1e-12)


def test_psnr_crop_border_excludes_corrupted_border():
    _, gt = random_pair(seed=1)
    pred = gt.copy()
    for b in range(4):  # garbage in a 4-pixel frame
        pred[b, :] = pred[-1 - b, :] = pred[:, b] = pred[:, -1 - b] = 0.0
    assert psnr(pred, gt, crop_border=4) == float("inf")
    assert psnr(pred, gt, crop_border=3) < 40
    assert psnr(pred, gt) < psnr(pred, gt, crop_border=3)


def test_psnr_y_channel_of_uniform_offset():
    gt = np.full((8, 8, 3), 120.0)
    d = 10.0
    # Y moves by d * (65.481 + 128.553 + 24.966) / 255 = d * 219 / 255.
    assert psnr(gt + d, gt, convert_to="y") == pytest.approx(20 * math.log10(255 / (d * 219 / 255)), abs=1e-12)


def test_psnr_y_crop_order_does_not_matter():
    pred, gt = random_pair(seed=2)
    want = psnr(to_y(pred)[4:-4, 4:-4], to_y(gt)[4:-4, 4:-4])
    assert psnr(pred, gt, crop_border=4, convert_to="y") == pytest.approx(want, abs=1e-12)


# ---------------------------------------------------------------- SSIM


def ref_ssim_direct(x: np.ndarray, y: np.ndarray) -> float:
    """Single-channel SSIM from the formula, one valid window position at a time."""
    t = np.arange(11) - 5.0
    g = np.exp(-(t**2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    vals = []
    for i in range(x.shape[0] - 10):
        for j in range(x.shape[1] - 10):
            px, py = x[i : i + 11, j : j + 11], y[i : i + 11, j : j + 11]
            mx, my = (w * px).sum(), (w * py).sum()
            vx = (w * px * px).sum() - mx * mx
            vy = (w * py * py).sum() - my * my
            cxy = (w * px * py).sum() - mx * my
            vals.append(((2 * mx * my + C1) * (2 * cxy + C2)) / ((mx * mx + my * my + C1) * (vx + vy + C2)))
    return float(np.mean(vals))


def test_ssim_identical_is_one():
    _, gt = random_pair()
    assert ssim(gt, gt.copy()) == pytest.approx(1.0, abs=1e-12)
    assert ssim(gt, gt.copy(), crop_border=4, convert_to="y") == pytest.approx(1.0, abs=1e-12)


def test_ssim_matches_direct_window_formula():
    pred, gt = random_pair(shape=(14, 13, 3), seed=3)
    want = np.mean([ref_ssim_direct(pred[..., c], gt[..., c]) for c in range(3)])
    assert ssim(pred, gt) == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("noise", [2.0, 20.0, 60.0])
@pytest.mark.parametrize("shape", [(40, 48, 3), (23, 31, 3), (30, 30)])
def test_ssim_matches_skimage(noise, shape):
    pred, gt = random_pair(shape=shape, noise=noise, seed=int(noise))
    assert ssim(pred, gt) == pytest.approx(skimage_ssim(pred, gt), abs=1e-10)


def test_ssim_crop_border_matches_skimage_on_cropped_images():
    pred, gt = random_pair(seed=4)
    want = skimage_ssim(pred[4:-4, 4:-4], gt[4:-4, 4:-4])
    assert ssim(pred, gt, crop_border=4) == pytest.approx(want, abs=1e-10)


def test_ssim_y_channel_matches_skimage_on_luma():
    pred, gt = random_pair(seed=5)
    want = skimage_ssim(to_y(pred), to_y(gt))
    assert ssim(pred, gt, convert_to="y") == pytest.approx(want, abs=1e-10)


def test_ssim_y_channel_of_flat_black_vs_white():
    # Flat images: no variance, so SSIM is the luminance term of Y = 16 and Y = 235.
    black = np.zeros((16, 16, 3))
    white = np.full((16, 16, 3), 255.0)
    want = (2 * 16 * 235 + C1) / (16**2 + 235**2 + C1)
    assert ssim(black, white, convert_to="y") == pytest.approx(want, abs=1e-12)


def test_ssim_crop_border_excludes_corrupted_border():
    _, gt = random_pair(seed=6)
    pred = gt.copy()
    pred[:3], pred[-3:], pred[:, :3], pred[:, -3:] = 0, 0, 0, 0
    assert ssim(pred, gt, crop_border=3) == pytest.approx(1.0, abs=1e-12)
    assert ssim(pred, gt) < 0.99


def test_ssim_decreases_with_noise():
    scores = [ssim(*random_pair(noise=n, seed=7)) for n in (1.0, 10.0, 40.0)]
    assert scores[0] > scores[1] > scores[2]


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("metric", [psnr, ssim])
def test_shape_mismatch_raises(metric):
    with pytest.raises(ValueError, match="shapes differ"):
        metric(np.zeros((20, 20, 3)), np.zeros((20, 21, 3)))


@pytest.mark.parametrize("metric", [psnr, ssim])
@pytest.mark.parametrize("crop", [10, 11, 50])
def test_crop_larger_than_image_raises(metric, crop):
    with pytest.raises(ValueError, match="crop_border"):
        metric(np.zeros((20, 24, 3)), np.zeros((20, 24, 3)), crop_border=crop)


@pytest.mark.parametrize("kwargs, match", [({"crop_border": -1}, "non-negative"), ({"convert_to": "ycbcr"}, "convert_to")])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        psnr(np.zeros((20, 20, 3)), np.zeros((20, 20, 3)), **kwargs)


def test_ssim_too_small_after_crop_raises():
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(np.zeros((20, 20, 3)), np.zeros((20, 20, 3)), crop_border=5)


# ---------------------------------------------------------------- tensor_to_image / mean


def test_tensor_to_image_layout_clamp_and_rounding():
    t = torch.tensor([[[-0.5, 100.4 / 255]], [[1.5, 0.0]], [[200.6 / 255, 1.0]]], dtype=torch.float32)
    assert t.shape == (3, 1, 2)
    img = tensor_to_image(t)
    assert img.shape == (1, 2, 3) and img.dtype == np.float64
    np.testing.assert_allclose(img[0, 0], [0, 255, 200.6], atol=1e-4)
    np.testing.assert_allclose(img[0, 1], [100.4, 0, 255], atol=1e-4)
    np.testing.assert_array_equal(tensor_to_image(t, round=True)[0], [[0, 255, 201], [100, 0, 255]])


def test_tensor_to_image_rejects_batched_tensor():
    with pytest.raises(ValueError, match=r"\[C, H, W\]"):
        tensor_to_image(torch.zeros(1, 3, 4, 4))


def test_dataset_score_is_the_mean_of_per_sample_scores():
    from trainers.tasks.common import mean_scores

    out = mean_scores([{"psnr": 30.0, "ssim": 0.9}, {"psnr": 32.0, "ssim": 0.8}, {"psnr": 25.0, "ssim": 0.7}])
    assert out == pytest.approx({"psnr": 29.0, "ssim": 0.8})
    assert mean_scores([]) == {}
    # a sample a metric cannot score (NIQE under one block) is left out of that metric only
    nan = float("nan")
    out = mean_scores([{"psnr": 30.0, "niqe": nan}, {"psnr": 32.0, "niqe": 4.0}])
    assert out == pytest.approx({"psnr": 31.0, "niqe": 4.0})
    assert np.isnan(mean_scores([{"niqe": nan}])["niqe"])


# ---------------------------------------------------------------- MMEditing 0.16.1 parity

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden" / "metrics.npz"
CASES = [(i, j, k) for i in range(3) for j in range(2) for k in range(2)]  # pair, crop_border, convert_to


@pytest.fixture(scope="module")
def golden():
    """mmedit's psnr/ssim of three 48x64 RGB uint8 pairs (tests/golden/make_metric_goldens.py)."""
    with np.load(GOLDEN) as g:
        return {k: g[k] for k in g.files}


def golden_case(golden, i, j, k):
    crop, conv = int(golden["crop_border"][j]), str(golden["convert_to"][k])
    return golden[f"pair{i}_pred"], golden[f"pair{i}_gt"], crop, conv


def mmedit_channels(crop: int, conv: str) -> str:
    """What mmedit 0.x's SSIM scores: only the blue channel for cropped RGB."""
    return "blue" if crop and conv == "rgb" else "mean"


@pytest.mark.parametrize("i, j, k", CASES)
def test_psnr_matches_mmedit(golden, i, j, k):
    # mmedit computes the MSE (and Y) in float32; we compute in float64: 6e-7 dB apart.
    pred, gt, crop, conv = golden_case(golden, i, j, k)
    assert psnr(pred, gt, crop, conv) == pytest.approx(golden["psnr"][i, j, k], abs=2e-6)


@pytest.mark.parametrize("i, j, k", CASES)
def test_ssim_matches_mmedit(golden, i, j, k):
    # RGB SSIM is float64 in both: equal to rounding. mmedit's Y is float32: 4e-8 apart.
    pred, gt, crop, conv = golden_case(golden, i, j, k)
    got = ssim(pred, gt, crop, conv, channels=mmedit_channels(crop, conv))
    assert got == pytest.approx(golden["ssim"][i, j, k], abs=1e-12 if conv == "rgb" else 2e-7)


@pytest.mark.parametrize("i, j, k", CASES)
def test_mmedit_residual_is_its_float32_arithmetic(golden, i, j, k):
    """Redoing mmedit's float32 steps closes the gaps above to rounding level."""
    pred, gt, crop, conv = golden_case(golden, i, j, k)
    if conv == "y":
        pred, gt = luma(pred), luma(gt)  # mmcv.bgr2ycbcr's float32 Y
        assert ssim(pred, gt, crop) == pytest.approx(golden["ssim"][i, j, k], abs=1e-12)
    pred, gt = pred.astype(np.float32), gt.astype(np.float32)
    if crop:
        pred, gt = pred[crop:-crop, crop:-crop], gt[crop:-crop, crop:-crop]
    rmse32 = float(np.sqrt(np.mean((pred - gt) ** 2)))  # float32 mean and root, as mmedit's
    assert 20 * math.log10(255 / rmse32) == pytest.approx(golden["psnr"][i, j, k], abs=1e-12)


@pytest.mark.parametrize("i", range(3))
def test_mmedit_cropped_rgb_ssim_is_not_the_channel_mean(golden, i):
    pred, gt, crop, conv = golden_case(golden, i, 1, 0)
    assert crop > 0 and conv == "rgb"
    assert abs(ssim(pred, gt, crop, conv) - golden["ssim"][i, 1, 0]) > 1e-3


# ---------------------------------------------------------------- SSIM channels


def test_ssim_blue_is_the_last_rgb_channel():
    pred, gt = random_pair(seed=8)
    want = ssim(pred[..., 2], gt[..., 2], crop_border=3)
    assert ssim(pred, gt, crop_border=3, channels="blue") == pytest.approx(want, abs=1e-15)
    assert ssim(pred, gt, crop_border=3, channels="blue") != pytest.approx(ssim(pred, gt, crop_border=3))


@pytest.mark.parametrize(
    "shape, kwargs, match",
    [
        ((20, 20, 3), {"channels": "green"}, "channels must be"),
        ((20, 20, 3), {"channels": "blue", "convert_to": "y"}, "HxWx3 RGB"),
        ((20, 20), {"channels": "blue"}, "HxWx3 RGB"),
    ],
)
def test_ssim_bad_channels_raise(shape, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ssim(np.zeros(shape), np.zeros(shape), **kwargs)
