"""Inpainting metrics (L1, PSNR, SSIM) and the AOT-GAN area buckets: MMEditing 0.16.1 goldens,
hand-computed cases, boundaries and input errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from trainers import metrics
from trainers.inpainting_metrics import (
    AREA_BUCKETS,
    gt_to_model_range,
    inpainting_scores,
    mask_area_bucket,
    to_uint8_image,
)

GOLDEN = np.load(Path(__file__).parents[1] / "data" / "golden" / "inpainting_metrics.npz")
CASES = [str(c) for c in GOLDEN["cases"]]
KEYS = ("l1", "psnr", "ssim")
# L1 (float32 torch) and PSNR (float32 numpy mean) agree with the reference bit for bit. SSIM
# differs by ~1e-15: the reference's own _ssim code run in this venv gives this module's value,
# so the gap is OpenCV 4.11 (reference venv) vs 5.x filter2D rounding, not the formula.
RTOL = {"l1": 0.0, "psnr": 0.0, "ssim": 1e-12}


def tensors(name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return tuple(torch.from_numpy(GOLDEN[f"{name}.{k}"]) for k in ("pred", "gt", "mask"))


def region(name: str) -> str:
    return "image" if str(GOLDEN[f"{name}.inpaintor"]) == "aot" else "hole"


# ---------------------------------------------------------------- MMEditing goldens


@pytest.mark.parametrize("name", CASES)
def test_golden_case(name):
    pred, gt, mask = tensors(name)
    scores = inpainting_scores(pred, gt, mask, l1_region=region(name))
    assert list(scores) == list(KEYS)
    for key, ref in zip(KEYS, GOLDEN[f"{name}.scores"]):
        assert isinstance(scores[key], float)
        if math.isinf(ref):
            assert scores[key] == ref, key
        else:
            assert scores[key] == pytest.approx(ref, rel=RTOL[key], abs=1e-15), key


@pytest.mark.parametrize("name", CASES)
def test_golden_images_and_gt_normalisation(name):
    pred, gt, mask = tensors(name)
    gt_u8 = GOLDEN[f"{name}.gt_u8"]
    # gt from a [0, 1] batch image reproduces mmcv's normalisation bit for bit
    gt01 = torch.from_numpy(gt_u8.transpose(2, 0, 1).astype(np.float32) / 255)
    assert torch.equal(gt_to_model_range(gt01), gt)
    # tensor2img of gt gives back the 8-bit image; of the composite, the reference's image
    np.testing.assert_array_equal(to_uint8_image(gt[[2, 1, 0]]), gt_u8)
    fake = pred * mask + gt * (1 - mask)
    np.testing.assert_array_equal(to_uint8_image(fake[[2, 1, 0]]), GOLDEN[f"{name}.fake_u8"])


def test_golden_cases_cover_what_they_claim():
    scores = {n: dict(zip(KEYS, GOLDEN[f"{n}.scores"])) for n in CASES}
    assert scores["perfect"]["psnr"] == math.inf and scores["perfect"]["l1"] == 0
    assert scores["garbage_outside_hole"]["psnr"] == math.inf  # composite discards the outside
    assert np.abs(GOLDEN["out_of_range.pred"]).max() > 2
    assert {str(GOLDEN[f"{n}.inpaintor"]) for n in CASES} == {"one_stage", "two_stage", "pconv", "aot"}


def test_psnr_accumulates_in_float32_like_the_reference():
    name = "float32_mse"
    fake, gt = GOLDEN[f"{name}.fake_u8"], GOLDEN[f"{name}.gt_u8"]
    ref = float(GOLDEN[f"{name}.scores"][1])
    assert metrics.psnr(fake, gt) != ref  # float64 MSE is a different number here
    assert metrics.psnr(fake, gt) == pytest.approx(ref, rel=1e-6)
    pred, gtt, mask = tensors(name)
    assert inpainting_scores(pred, gtt, mask)["psnr"] == ref


def test_aot_region_differs_from_hole_region():
    pred, gt, mask = tensors("aot_image_l1")
    hole = inpainting_scores(pred, gt, mask, l1_region="hole")["l1"]
    image = inpainting_scores(pred, gt, mask, l1_region="image")["l1"]
    ratio = float(mask.mean())
    assert image == pytest.approx(hole * ratio, rel=1e-5)  # composite is exact outside the hole


# ---------------------------------------------------------------- hand-computed L1


def test_l1_hand_computed():
    gt = torch.zeros(3, 12, 12)
    pred = torch.zeros(3, 12, 12)
    mask = torch.zeros(1, 12, 12)
    mask[0, 1, 1] = mask[0, 2, 3] = 1
    pred[:, 1, 1] = torch.tensor([0.5, -0.25, 1.0])   # hole pixel: |d| = .5, .25, 1
    pred[:, 2, 3] = torch.tensor([0.0, 0.0, 2.5])     # out of range, unclamped: 2.5
    pred[:, 0, 0] = 7.0                               # outside the hole: ignored
    expected = (0.5 + 0.25 + 1.0 + 2.5) / (2 * 3)     # on [-1, 1], no x100
    s = inpainting_scores(pred, gt, mask)
    assert s["l1"] == pytest.approx(expected, rel=1e-7)
    # the spec's percentage on [0, 1] is 50x this
    assert 100 * s["l1"] / 2 == pytest.approx(50 * expected)
    # AOT-GAN: the composite (the 7s are gone) over the whole image, 3 * 144 values
    assert inpainting_scores(pred, gt, mask, l1_region="image")["l1"] == pytest.approx(4.25 / 432, rel=1e-7)


def test_channel_order_and_batch_axis_do_not_matter():
    pred, gt, mask = tensors("irregular")
    a = inpainting_scores(pred, gt, mask)
    b = inpainting_scores(pred[None], gt[None], mask[None])
    c = inpainting_scores(pred, gt, mask[0])
    assert a == b == c
    d = inpainting_scores(pred[[2, 1, 0]], gt[[2, 1, 0]], mask)
    for k in KEYS:
        assert d[k] == pytest.approx(a[k], rel=1e-6)


# ---------------------------------------------------------------- area buckets


@pytest.mark.parametrize(
    ("hole", "total", "bucket"),
    [
        (1, 1000, "0-10%"),
        (100, 1000, "0-10%"),
        (101, 1000, "10-20%"),
        (500, 1000, "40-50%"),
        (501, 1000, "50-60%"),
        (550, 1000, "50-60%"),
        (600, 1000, "50-60%"),
        (601, 1000, "60-70%"),
        (999, 1000, "90-100%"),
        (1000, 1000, "90-100%"),
        (1, 3, "30-40%"),   # 0.333...
        (2, 3, "60-70%"),   # 0.666...
    ],
)
def test_mask_area_bucket_boundaries(hole, total, bucket):
    m = np.zeros(total, np.uint8)
    m[:hole] = 1
    assert mask_area_bucket(m) == bucket


def test_mask_area_bucket_accepts_tensors_and_channel_axis():
    m = torch.zeros(1, 1, 20, 10)
    m[..., :11, :] = 1  # 110 of 200 = 55 %
    assert mask_area_bucket(m) == "50-60%"
    assert mask_area_bucket(m.bool()) == "50-60%"
    assert AREA_BUCKETS[5] == "50-60%" and len(AREA_BUCKETS) == 10


def test_mask_area_bucket_rejects():
    with pytest.raises(ValueError, match="no hole"):
        mask_area_bucket(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="binary"):
        mask_area_bucket(np.full((4, 4), 0.5))
    with pytest.raises(ValueError, match="no pixels"):
        mask_area_bucket(np.zeros((0, 4)))


# ---------------------------------------------------------------- bad inputs


def _ok():
    g = torch.Generator().manual_seed(0)
    gt = torch.rand(3, 16, 16, generator=g) * 2 - 1
    pred = torch.rand(3, 16, 16, generator=g) * 2 - 1
    mask = torch.zeros(1, 16, 16)
    mask[:, 4:9, 3:12] = 1
    return pred, gt, mask


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p, g, m: (p[:, :15], g, m), "shapes differ"),
        (lambda p, g, m: (p, g, m[:, :15]), "mask must be"),
        (lambda p, g, m: (p[:2], g[:2], m), r"\[3, H, W\]"),
        (lambda p, g, m: (p[None].expand(2, 3, 16, 16), g[None].expand(2, 3, 16, 16), m), r"\[3, H, W\]"),
        (lambda p, g, m: (p, g, m * 0.5), "binary"),
        (lambda p, g, m: (p[:, :10], g[:, :10], m[:, :10]), "at least 11x11"),
        (lambda p, g, m: (p, g, m * 0), "no hole"),
        (lambda p, g, m: (p.numpy(), g, m), "torch.Tensor"),
        (lambda p, g, m: (p, g, m.numpy()), "torch.Tensor"),
        (lambda p, g, m: ((p * 100).to(torch.uint8), g, m), "float"),
        (lambda p, g, m: (p.index_fill(1, torch.tensor([0]), float("nan")), g, m), "NaN"),
    ],
)
def test_bad_inputs_raise_one_line_value_error(change, message):
    pred, gt, mask = change(*_ok())
    with pytest.raises(ValueError, match=message) as err:
        inpainting_scores(pred, gt, mask)
    assert "\n" not in str(err.value)


def test_bad_l1_region():
    with pytest.raises(ValueError, match="l1_region"):
        inpainting_scores(*_ok(), l1_region="valid")


def test_gt_to_model_range_rejects_out_of_range():
    with pytest.raises(ValueError):
        gt_to_model_range(torch.full((3, 2, 2), 1.5))
    with pytest.raises(ValueError):
        gt_to_model_range(torch.zeros(3, 2, 2, dtype=torch.uint8))
