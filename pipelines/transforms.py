"""Per-sample training and validation transforms (pure numpy; run inside Ray Data actors).

A sample is decoded, cropped, flipped and degraded with a generator derived
from (run seed, epoch, sample key), so its result is the same whichever actor
handles it and after any resume. Images leave here as uint8 HWC; the train
loop converts them to float32 NCHW in [0, 1] on its device.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from degradations.presets import degrade, degrade_pair
from degradations.realesrgan import X4PLUS, pack_params, paired_crop_corner, paired_random_crop, sample_params
from degradations.seeding import sample_rng
from preprocessing.schema import decode_image


def _pad_to(img: np.ndarray, size: int) -> np.ndarray:
    """Reflect-pad images smaller than the patch size (as Real-ESRGAN does)."""
    h, w = img.shape[:2]
    if h >= size and w >= size:
        return img
    return cv2.copyMakeBorder(img, 0, max(size - h, 0), 0, max(size - w, 0), cv2.BORDER_REFLECT_101)


def augment(images: list[np.ndarray], hflip: bool, rot: bool, rng: np.random.Generator) -> list[np.ndarray]:
    """mmedit's Flip(horizontal), Flip(vertical) and RandomTransposeHW, each p=0.5, same for all images."""
    do_h, do_v, do_t = rng.random(3) < 0.5
    out = []
    for img in images:
        if hflip and do_h:
            img = img[:, ::-1]
        if rot and do_v:
            img = img[::-1]
        if rot and do_t:
            img = img.transpose(1, 0, 2)
        out.append(np.ascontiguousarray(img))
    return out


def to_float(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float32) / 255.0


def to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)


def mod_crop(img: np.ndarray, scale: int) -> np.ndarray:
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def train_pair(
    gt_bytes: bytes, lq_bytes: bytes | None, key: str, epoch: int, seed: int, data: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """(lq, gt) uint8 HWC training patches for one sample.

    The GT patch (``gt_size``) is degraded by the preset; a preset may replace the target
    (Real-ESRGAN: the unsharp-masked GT, quantised to 8 bits here like every image the
    stream ships). With ``out_size`` set, a paired random crop (GT ``out_size``, LQ
    ``out_size / scale``) follows the degradation, as Real-ESRGAN crops 256/64 from 400.
    """
    rng = sample_rng(seed, epoch, key)
    scale, gt_size = data["scale"], data["gt_size"]
    lq_size = gt_size // scale
    gt = decode_image(gt_bytes)
    if data["degradation"]["preset"] == "paired":
        if not lq_bytes:
            raise ValueError(f"sample {key}: degradation.preset is 'paired' but the shard has no lq.png")
        lq = _pad_to(decode_image(lq_bytes), lq_size)
        gt = _pad_to(gt, gt_size)
        y = int(rng.integers(0, lq.shape[0] - lq_size + 1))
        x = int(rng.integers(0, lq.shape[1] - lq_size + 1))
        lq = lq[y : y + lq_size, x : x + lq_size]
        gt = gt[y * scale : y * scale + gt_size, x * scale : x * scale + gt_size]
        lq, gt = augment([lq, gt], data["use_hflip"], data["use_rot"], rng)
        return lq, gt
    gt = _gt_patch(gt, gt_size, data, rng)
    lq, target = degrade_pair(data["degradation"]["preset"], to_float(gt), scale=scale, rng=rng)
    if data.get("out_size"):
        lq, target = paired_random_crop(lq, target, data["out_size"], scale, rng)
    return to_uint8(lq), to_uint8(target)


def _gt_patch(gt: np.ndarray, gt_size: int, data: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Pad, random-crop and augment the GT patch (the first draws of a sample's generator)."""
    gt = _pad_to(gt, gt_size)
    y = int(rng.integers(0, gt.shape[0] - gt_size + 1))
    x = int(rng.integers(0, gt.shape[1] - gt_size + 1))
    (gt,) = augment([gt[y : y + gt_size, x : x + gt_size]], data["use_hflip"], data["use_rot"], rng)
    return gt


def train_gt_params(
    gt_bytes: bytes, key: str, epoch: int, seed: int, data: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What ``degradation.device: gpu`` ships for one sample: ``(gt, params, crop)``.

    ``gt`` is the uint8 HWC GT patch (``gt_size``, cropped and flipped as ``train_pair``
    does), ``params`` the ``realesrgan.pack_params`` vector of the degradation parameters
    and ``crop`` the LQ ``(top, left)`` of the final paired crop (zeros without
    ``out_size``). The sample's generator is consumed in ``train_pair``'s order (patch,
    flips, ``sample_params``, crop corner), so a sample gets the same parameters and crop
    on both devices; the training worker degrades it (``trainers.device_degradation``).
    """
    preset = data["degradation"]["preset"]
    if preset != "realesrgan":
        raise ValueError(f"degradation.device 'gpu' has no torch path for preset {preset!r}")
    rng = sample_rng(seed, epoch, key)
    scale, gt_size = data["scale"], data["gt_size"]
    gt = _gt_patch(decode_image(gt_bytes), gt_size, data, rng)
    params = pack_params(sample_params(rng, X4PLUS))
    crop = (0, 0)
    if data.get("out_size"):
        crop = paired_crop_corner((gt_size // scale, gt_size // scale), data["out_size"], scale, rng)
    return gt, params, np.asarray(crop, dtype=np.int64)


def val_pair(
    gt_bytes: bytes, lq_bytes: bytes | None, key: str, seed: int, data: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """(lq, gt) uint8 HWC full images for evaluation.

    Uses the shard's ``lq.png`` when present (Set5/Set14 ``LRbicx*``), else degrades
    the GT cropped to a multiple of the scale (mmedit's ``modcrop``) with a
    generator fixed per sample, so every evaluation sees the same inputs.
    """
    scale = data["scale"]
    gt = decode_image(gt_bytes)
    if lq_bytes:
        lq = decode_image(lq_bytes)
        gt = gt[: lq.shape[0] * scale, : lq.shape[1] * scale]
        return lq, gt
    gt = mod_crop(gt, scale)
    preset = data["degradation"]["preset"]
    preset = "bicubic" if preset == "paired" else preset
    lq = degrade(preset, to_float(gt), scale=scale, rng=sample_rng(seed, 0, key))
    return to_uint8(lq), gt
