"""Write ``tests/data/golden/matting_metrics.npz``: MMEditing 0.16.1's SAD, MSE, GRAD and CONN.

Run with the reference interpreter (see ``mmedit_shim.py``), from the repository root::

    /work/mmedit-venv/bin/python tests/golden/make_matting_metric_goldens.py

Each case is a float32 network output ``pred01`` (what the mattor's tensor gives), a uint8
ground-truth matte and a uint8 trimap. They go through the mattors' own test-time path,
``BaseMattor.restore_shape`` then ``BaseMattor.evaluate`` (no padding or resize in ``meta``),
so the stored figures and the processed uint8 prediction (captured as the metrics receive
it) are the reference's, order of operations included. Arrays are small (at most 97 px a
side) to keep the file small. Keys: ``cases`` (names), then ``<case>.pred01``, ``.gt``,
``.trimap``, ``.pred_u8`` and ``.scores`` (float64 [sad, mse, grad, conn]), plus
``grad_kernel_x`` (mmedit's ``gauss_filter(1.4)`` x kernel).
"""

from __future__ import annotations

import os
import sys
import types

sys.path.insert(0, os.path.dirname(__file__))
import mmedit_shim  # noqa: E402

mmedit_shim.install()

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from mmcv import ConfigDict  # noqa: E402
from mmedit.core.evaluation.metric_utils import gauss_filter  # noqa: E402
from mmedit.models.mattors.base_mattor import BaseMattor  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "data", "golden", "matting_metrics.npz")
METRICS = ["SAD", "MSE", "GRAD", "CONN"]


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-blurred noise scaled to zero mean, unit std."""
    f = cv2.GaussianBlur(rng.normal(size=shape), (0, 0), sigma)
    return (f - f.mean()) / f.std()


def smooth_alpha(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A matte with solid 0 and 255 regions and a soft band between them (uint8)."""
    a = 0.5 + 0.6 * smooth_field(rng, shape, 6.0)
    return np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)


def trimap_from(gt: np.ndarray, grow: int = 2) -> np.ndarray:
    """128 on soft pixels, grown by ``grow`` px; 0 / 255 on the solid regions left."""
    soft = ((gt > 0) & (gt < 255)).astype(np.uint8)
    soft = cv2.dilate(soft, np.ones((2 * grow + 1,) * 2, np.uint8)) > 0
    trimap = np.where(gt >= 128, 255, 0).astype(np.uint8)
    trimap[soft] = 128
    return trimap


def noisy_pred(rng, gt: np.ndarray, smooth_sigma: float, amp: float, pixel_amp: float = 0.0) -> np.ndarray:
    pred = gt / 255.0 + amp * smooth_field(rng, gt.shape, smooth_sigma)
    pred += pixel_amp * rng.normal(size=gt.shape)
    return pred.astype(np.float32)


def conn_levels_case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A solid block with ten separate islands hanging off it through one-pixel-high bridges,
    one bridge at each CONN threshold's uint8 level (and one just under 1), so island ``n``
    leaves the largest component at threshold ``n + 2``; the prediction's islands sit 0.1 or
    0.3 above that level, either side of the 0.15 cut-off."""
    gt = np.zeros((46, 40), np.uint8)
    gt[2:44, 4:20] = 255
    pred = np.zeros_like(gt)
    pred[2:44, 4:20] = 255
    bridges = (26, 51, 77, 102, 128, 153, 179, 204, 230, 250)
    for n, b in enumerate(bridges):
        r = 4 + 4 * n
        level = 0.1 * (n + 1) if n < 9 else 0.9
        gt[r, 20:24] = b                  # bridge, equal in both
        pred[r, 20:24] = b
        gt[r - 1:r + 2, 24:27] = 255      # island, 3x3, one blank row from the next
        pred[r - 1:r + 2, 24:27] = min(255, round((level + (0.1 if n % 2 == 0 else 0.3)) * 255))
    trimap = np.zeros_like(gt)
    trimap[2:44, 4:20] = 255
    trimap[:, 19:30] = 128
    return pred.astype(np.float32) / 255, gt, trimap


def conn_tie_case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two equal-size foreground blobs: which one is 'largest' decides the other's levels."""
    gt = np.zeros((24, 30), np.uint8)
    gt[3:9, 3:9] = 255
    gt[14:20, 18:24] = 200
    pred = gt.astype(np.float32) / 255
    pred[3:9, 3:9] = 0.9
    pred[14:20, 18:24] = 0.5
    trimap = np.full_like(gt, 128)
    return pred, gt, trimap


def cases(rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    out = {}
    gt = smooth_alpha(rng, (64, 80))
    out["smooth"] = (noisy_pred(rng, gt, 3.0, 0.05), gt, trimap_from(gt))
    gt = smooth_alpha(rng, (64, 80))
    out["smooth_noisy"] = (noisy_pred(rng, gt, 2.0, 0.1, 0.05), gt, trimap_from(gt, 4))
    gt = smooth_alpha(rng, (64, 80))
    out["exact"] = (gt.astype(np.float32) / 255, gt, trimap_from(gt))
    gt = smooth_alpha(rng, (64, 80))
    out["all_unknown"] = (noisy_pred(rng, gt, 3.0, 0.08), gt, np.full_like(gt, 128))
    out["conn_levels"] = conn_levels_case()
    out["conn_tie"] = conn_tie_case()
    gt = smooth_alpha(rng, (97, 31))
    out["tall_odd"] = (noisy_pred(rng, gt, 2.5, 0.07, 0.02), gt, trimap_from(gt))
    gt = smooth_alpha(rng, (40, 120))
    out["wide"] = (noisy_pred(rng, gt, 4.0, 0.06), gt, trimap_from(gt, 1))
    gt = smooth_alpha(rng, (64, 80))
    out["out_of_range"] = (noisy_pred(rng, gt, 3.0, 0.6), gt, trimap_from(gt))
    gt = smooth_alpha(rng, (48, 48))
    trimap = np.where(gt >= 128, 255, 0).astype(np.uint8)  # no unknown pixel: MSE's 0 branch
    out["no_unknown"] = (noisy_pred(rng, gt, 3.0, 0.1), gt, trimap)
    gt = np.full((32, 40), 128, np.uint8)  # constant matte: min-max range 0
    out["constant_gt"] = (noisy_pred(rng, gt, 3.0, 0.1), gt, np.full_like(gt, 128))
    k = rng.integers(0, 255, (32, 40))
    gt = rng.integers(0, 256, (32, 40)).astype(np.uint8)
    half = ((k + 0.5) / 255).astype(np.float32)  # x*255 lands on/near .5: rounding rule matters
    out["half_round"] = (half, gt, np.full_like(gt, 128))
    return out


def mmedit_eval(pred01: np.ndarray, gt: np.ndarray, trimap: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """Run the mattor's restore_shape + evaluate; capture the uint8 prediction the metrics get."""
    seen = []

    def capture(fn):
        def wrapped(alpha, tri, pred_alpha):
            seen.append(pred_alpha.copy())
            return fn(alpha, tri, pred_alpha)
        return wrapped

    mattor = types.SimpleNamespace(
        test_cfg=ConfigDict(metrics=METRICS),
        allowed_metrics={k: capture(v) for k, v in BaseMattor.allowed_metrics.items()},
    )
    meta = [{"ori_alpha": gt.copy(), "ori_trimap": trimap.copy(), "merged_ori_shape": gt.shape + (3,)}]
    restored = BaseMattor.restore_shape(mattor, pred01.copy(), meta)
    result = BaseMattor.evaluate(mattor, restored, meta)
    assert all((s == seen[0]).all() for s in seen)
    return seen[0], [float(result[m]) for m in METRICS]


def main() -> None:
    rng = np.random.default_rng(20240917)
    arrays: dict[str, np.ndarray] = {}
    all_cases = cases(rng)
    for name, (pred01, gt, trimap) in all_cases.items():
        assert pred01.dtype == np.float32 and gt.dtype == np.uint8 and trimap.dtype == np.uint8
        pred_u8, scores = mmedit_eval(pred01, gt, trimap)
        arrays |= {f"{name}.pred01": pred01, f"{name}.gt": gt, f"{name}.trimap": trimap,
                   f"{name}.pred_u8": pred_u8, f"{name}.scores": np.array(scores, np.float64)}
        print(f"{name:14s} {gt.shape}  " + "  ".join(f"{m}={s:.9g}" for m, s in zip(METRICS, scores)))
    arrays["cases"] = np.array(list(all_cases))
    arrays["grad_kernel_x"] = gauss_filter(1.4)[0]
    mmedit_shim.save_golden(OUT, **arrays)


if __name__ == "__main__":
    main()
