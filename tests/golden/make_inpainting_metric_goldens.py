"""Write ``tests/data/golden/inpainting_metrics.npz``: MMEditing 0.16.1's inpainting L1, PSNR, SSIM.

Run with the reference interpreter (see ``mmedit_shim.py``), from the repository root::

    /work/mmedit-venv/bin/python tests/golden/make_inpainting_metric_goldens.py

Each case is an 8-bit RGB ground truth, a 0/1 hole mask and a float32 "generator output" on
[-1, 1]. They go through the reference's own test path: ``mmcv.imnormalize`` of the BGR image
(mean = std = 127.5, what the zoo configs' ``Normalize`` does), ``GetMaskedImage``, then the
inpaintor's ``forward_test`` with a stub generator that returns the stored output
(``OneStageInpaintor``, which Global&Local inherits; ``TwoStageInpaintor``, DeepFillv1/v2;
``PConvInpaintor``; ``AOTInpaintor``), metrics ``['l1', 'psnr', 'ssim']``. The stored tensors are
RGB, as restoray's batches are: the reference's BGR tensors flipped on the channel axis.

Keys: ``cases``; per case ``<case>.gt_u8`` (HxWx3 RGB uint8), ``.gt`` and ``.pred`` ([3, H, W]
float32 RGB on [-1, 1]), ``.mask`` ([1, H, W] float32), ``.inpaintor`` (which forward_test),
``.fake_u8`` (``tensor2img`` of the reference's composite, HxWx3 as it returns it) and
``.scores`` (float64 [l1, psnr, ssim]).
"""

from __future__ import annotations

import os
import sys
import types

sys.path.insert(0, os.path.dirname(__file__))
import mmedit_shim  # noqa: E402

mmedit_shim.install()

import cv2  # noqa: E402
import mmcv  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmedit.core import tensor2img  # noqa: E402
from mmedit.datasets.pipelines import GetMaskedImage  # noqa: E402
from mmedit.models.inpaintors.aot_inpaintor import AOTInpaintor  # noqa: E402
from mmedit.models.inpaintors.one_stage import OneStageInpaintor  # noqa: E402
from mmedit.models.inpaintors.pconv_inpaintor import PConvInpaintor  # noqa: E402
from mmedit.models.inpaintors.two_stage import TwoStageInpaintor  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "data", "golden", "inpainting_metrics.npz")
METRICS = ["l1", "psnr", "ssim"]
BGR = [2, 1, 0]


def smooth_field(rng, shape, sigma):
    f = cv2.GaussianBlur(rng.normal(size=shape), (0, 0), sigma)
    return (f - f.mean()) / f.std()


def image(rng, h, w):
    """Smooth colour image plus texture, 8-bit RGB."""
    base = np.stack([smooth_field(rng, (h, w), 5.0) for _ in range(3)], -1)
    img = 127.5 + 55 * base + 12 * rng.normal(size=(h, w, 3))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def bbox_mask(h, w, top, left, bh, bw):
    m = np.zeros((h, w, 1), np.float32)
    m[top:top + bh, left:left + bw] = 1
    return m


def irregular_mask(rng, h, w, ratio):
    """Blobby hole covering about ``ratio`` of the image."""
    f = smooth_field(rng, (h, w), 4.0)
    return (f > np.quantile(f, 1 - ratio)).astype(np.float32)[..., None]


def pred_near(rng, gt_norm_rgb, amp, pixel_amp=0.0):
    h, w = gt_norm_rgb.shape[1:]
    noise = np.stack([smooth_field(rng, (h, w), 3.0) for _ in range(3)]) * amp
    noise += pixel_amp * rng.normal(size=noise.shape)
    return (gt_norm_rgb + noise).astype(np.float32)


def normalise(u8_rgb):
    """The configs' pipeline: BGR image (LoadImageFromFile), imnormalize(127.5, 127.5, to_rgb=False)."""
    bgr = u8_rgb[..., ::-1]
    return mmcv.imnormalize(bgr, np.array([127.5] * 3), np.array([127.5] * 3), to_rgb=False)


def to_tensor(hwc):
    return torch.from_numpy(np.ascontiguousarray(hwc.transpose(2, 0, 1)))[None]


def run_reference(kind, gt_u8, mask_hw1, pred_rgb):
    results = GetMaskedImage()({"gt_img": normalise(gt_u8), "mask": mask_hw1})
    gt_t, masked_t, mask_t = (to_tensor(results[k]) for k in ("gt_img", "masked_img", "mask"))
    pred_bgr = torch.from_numpy(pred_rgb[BGR].copy())[None]
    if kind == "one_stage":
        cls, gen = OneStageInpaintor, (lambda x: pred_bgr)
    elif kind == "two_stage":
        cls, gen = TwoStageInpaintor, (lambda x: (pred_bgr * 0.5, pred_bgr))
    elif kind == "pconv":
        cls, gen = PConvInpaintor, (lambda x, m: (pred_bgr, m))
    else:
        cls, gen = AOTInpaintor, (lambda x: pred_bgr)
    model = types.SimpleNamespace(generator=gen, test_cfg=dict(metrics=METRICS), input_with_ones=True,
                                  _eval_metrics=cls._eval_metrics, eval_with_metrics=True)
    scores = cls.forward_test(model, masked_t.clone(), mask_t.clone(), gt_img=gt_t)["eval_result"]
    model.eval_with_metrics = False
    fake = cls.forward_test(model, masked_t.clone(), mask_t.clone(), gt_img=gt_t)["fake_img"]
    gt_rgb = gt_t[0, BGR].numpy()
    return gt_rgb, tensor2img(fake, min_max=(-1, 1)), [float(scores[m]) for m in METRICS]


def cases(rng):
    out = {}
    gt = image(rng, 64, 64)
    out["bbox"] = ("one_stage", gt, bbox_mask(64, 64, 10, 18, 30, 25), dict(amp=0.15, pixel_amp=0.05))
    gt = image(rng, 72, 56)
    out["irregular"] = ("one_stage", gt, irregular_mask(rng, 72, 56, 0.3), dict(amp=0.2, pixel_amp=0.08))
    gt = image(rng, 48, 64)
    out["two_stage"] = ("two_stage", gt, bbox_mask(48, 64, 5, 5, 20, 40), dict(amp=0.1))
    gt = image(rng, 53, 37)
    out["pconv_odd"] = ("pconv", gt, irregular_mask(rng, 53, 37, 0.45), dict(amp=0.12, pixel_amp=0.1))
    gt = image(rng, 64, 64)
    out["aot_image_l1"] = ("aot", gt, irregular_mask(rng, 64, 64, 0.55), dict(amp=0.25))
    gt = image(rng, 64, 48)
    out["perfect"] = ("one_stage", gt, irregular_mask(rng, 64, 48, 0.2), dict(amp=0.0))
    gt = image(rng, 40, 40)
    out["garbage_outside_hole"] = ("one_stage", gt, bbox_mask(40, 40, 12, 12, 16, 16), dict(amp=0.0, outside=3.0))
    gt = image(rng, 64, 80)
    out["out_of_range"] = ("one_stage", gt, irregular_mask(rng, 64, 80, 0.4), dict(amp=1.2, pixel_amp=0.3))
    gt = image(rng, 96, 128)  # large MSE over 36864 values: float32 accumulation shows in PSNR
    out["float32_mse"] = ("one_stage", gt, bbox_mask(96, 128, 0, 0, 96, 100), dict(amp=0.6, pixel_amp=0.4))
    gt = image(rng, 32, 32)
    out["single_pixel"] = ("one_stage", gt, bbox_mask(32, 32, 7, 9, 1, 1), dict(amp=0.3))
    gt = image(rng, 32, 32)
    out["all_hole"] = ("aot", gt, np.ones((32, 32, 1), np.float32), dict(amp=0.2, pixel_amp=0.1))
    return out


def main():
    rng = np.random.default_rng(20241203)
    arrays = {}
    all_cases = cases(rng)
    for name, (kind, gt_u8, mask, p) in all_cases.items():
        gt_rgb = normalise(gt_u8)[..., ::-1].transpose(2, 0, 1).astype(np.float32)
        pred = pred_near(rng, gt_rgb, p["amp"], p.get("pixel_amp", 0.0))
        if "outside" in p:
            pred = pred + p["outside"] * (1 - mask.transpose(2, 0, 1)) * rng.normal(size=pred.shape).astype(np.float32)
            pred = pred.astype(np.float32)
        gt_t, fake_u8, scores = run_reference(kind, gt_u8, mask, pred)
        np.testing.assert_array_equal(gt_t, gt_rgb)
        arrays |= {f"{name}.gt_u8": gt_u8, f"{name}.gt": gt_rgb, f"{name}.pred": pred,
                   f"{name}.mask": mask.transpose(2, 0, 1).copy(), f"{name}.inpaintor": np.array(kind),
                   f"{name}.fake_u8": fake_u8, f"{name}.scores": np.array(scores, np.float64)}
        print(f"{name:22s} {kind:9s} {gt_u8.shape}  " + "  ".join(f"{m}={s!r}" for m, s in zip(METRICS, scores)))
    arrays["cases"] = np.array(list(all_cases))
    mmedit_shim.save_golden(OUT, **arrays)


if __name__ == "__main__":
    main()
