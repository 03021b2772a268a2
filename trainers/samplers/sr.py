"""The image super-resolution sampler (PSNR and GAN SR families): decode, crop, flip, degrade.

Training: the GT patch (``gt_size``) is cropped and flipped, then degraded by the preset; a
preset that sharpens its target (Real-ESRGAN's unsharp-masked GT) adds ``gt_usm`` beside the
plain ``gt``, so a family can choose per loss which one it trains against (Real-ESRGAN: USM
for the pixel and perceptual losses, plain GT for the GAN loss). With ``out_size`` a paired
random crop follows the degradation, as Real-ESRGAN crops 256 / 64 from 400. ``paired`` reads
the shard's ``lq.png`` (DIV2K's official MATLAB-bicubic LR) instead of degrading.

With ``degradation.device: gpu`` nothing is degraded here: the sample carries its uint8 GT
patch, the degradation parameters drawn for it (``realesrgan.pack_params``) and the LQ corner of
the final crop, and the family's device stage (``trainers/device_degradation.py``) degrades the
batch on the training worker. The generator is consumed in the same order on both paths, so a
sample gets the same parameters and crop on either.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
from pydantic import Field, field_validator, model_validator

from degradations.presets import CLIP_PRESETS, PRESETS, degrade, degrade_pair
from degradations.realesrgan import X4PLUS, pack_params, paired_crop_corner, sample_params
from preprocessing.schema import GT, LQ, decode_image, image_bytes, require_image
from trainers.strict import Strict

PAIRED = "paired"
TORCH_PATH_PRESETS = ("realesrgan",)  # presets degradations/torch_path.py implements
USM_PRESETS = ("realesrgan",)  # presets whose target is the unsharp-masked GT


class DegradationConfig(Strict):
    """How LQ inputs are made from GT patches: a ``degradations.presets.PRESETS`` name, or
    ``paired`` to read the ``lq.png`` member a paired adapter wrote."""

    preset: str = "bicubic"
    device: Literal["cpu", "gpu"] = Field(
        "cpu",
        description="cpu: the Ray Data actors degrade; gpu: they ship GT + sampled parameters and the "
        "batched torch path degrades inside the training worker, on its device (CUDA when it has a GPU)",
    )

    @field_validator("preset")
    @classmethod
    def _known(cls, preset: str) -> str:
        if preset != PAIRED and preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; known: {', '.join(sorted([*PRESETS, PAIRED]))}")
        return cls._check_kind(preset)

    @classmethod
    def _check_kind(cls, preset: str) -> str:
        """Image tasks take every preset but the clip ones (a video config overrides this)."""
        if preset in CLIP_PRESETS:
            raise ValueError(f"{preset} degrades clips and needs a video task")
        return preset

    @model_validator(mode="after")
    def _device_has_torch_path(self) -> "DegradationConfig":
        if self.device == "gpu" and self.preset not in TORCH_PATH_PRESETS:
            raise ValueError(
                f"device: gpu needs a preset with a batched torch path ({', '.join(TORCH_PATH_PRESETS)}), "
                f"got {self.preset!r}"
            )
        return self


class SRDataConfig(Strict):
    scale: int = Field(4, ge=1, le=8)
    gt_size: int = Field(96, ge=8, description="GT patch size (LQ patch = gt_size / scale)")
    out_size: int | None = Field(
        None, ge=8, description="a final paired random crop after degradation: GT out_size, LQ out_size / scale"
    )
    use_hflip: bool = True
    use_rot: bool = True  # vertical flip + transpose, as mmedit's Flip/RandomTransposeHW
    degradation: DegradationConfig = DegradationConfig()

    @model_validator(mode="after")
    def _patch_divisible(self) -> "SRDataConfig":
        if self.gt_size % self.scale:
            raise ValueError(f"gt_size {self.gt_size} is not divisible by scale {self.scale}")
        if self.out_size is not None:
            if self.out_size % self.scale:
                raise ValueError(f"out_size {self.out_size} is not divisible by scale {self.scale}")
            if self.out_size > self.gt_size:
                raise ValueError(f"out_size {self.out_size} is larger than gt_size {self.gt_size}")
        return self


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


class SRSampler:
    """Image SR samples for one run (``seed`` is unused: the stream seeds ``rng``)."""

    def __init__(self, data: SRDataConfig):
        self.data = data

    def needs(self, split: str) -> dict[str, str]:
        """Members every sample must hold (see ``trainers.samplers.Sampler``)."""
        need = {GT: f"data.{split}"}
        if split == "train" and self.data.degradation.preset == PAIRED:
            need[LQ] = "task.data.degradation.preset"
        return need

    def train(self, members: dict[str, bytes], rng: np.random.Generator) -> dict[str, np.ndarray]:
        gt_bytes = require_image(members, GT)
        d = self.data
        if d.degradation.preset == PAIRED:
            return self._paired(gt_bytes, image_bytes(members, LQ), members.get("__key__"), rng)
        gt = self._gt_patch(decode_image(gt_bytes), rng)
        if d.degradation.device == "gpu":
            params = pack_params(sample_params(rng, X4PLUS))
            crop = (0, 0)
            if d.out_size:
                crop = paired_crop_corner((d.gt_size // d.scale,) * 2, d.out_size, d.scale, rng)
            return {"gt": gt, "params": params, "crop": np.asarray(crop, dtype=np.int64)}
        lq, target = degrade_pair(d.degradation.preset, to_float(gt), scale=d.scale, rng=rng)
        out = {"lq": to_uint8(lq), "gt": gt}
        if d.degradation.preset in USM_PRESETS:
            out["gt_usm"] = to_uint8(target)
        if d.out_size:
            top, left = paired_crop_corner(lq.shape[:2], d.out_size, d.scale, rng)
            out = {k: _crop(v, top, left, d.out_size, d.scale, k == "lq") for k, v in out.items()}
        return out

    def _paired(self, gt_bytes: bytes, lq_bytes: bytes | None, key, rng) -> dict[str, np.ndarray]:
        d = self.data
        if lq_bytes is None:
            raise ValueError(f"sample {key}: degradation.preset is 'paired' but the shard has no lq.png")
        lq_size = d.gt_size // d.scale
        lq = _pad_to(decode_image(lq_bytes), lq_size)
        gt = _pad_to(decode_image(gt_bytes), d.gt_size)
        y = int(rng.integers(0, lq.shape[0] - lq_size + 1))
        x = int(rng.integers(0, lq.shape[1] - lq_size + 1))
        lq = lq[y : y + lq_size, x : x + lq_size]
        gt = gt[y * d.scale : y * d.scale + d.gt_size, x * d.scale : x * d.scale + d.gt_size]
        lq, gt = augment([lq, gt], d.use_hflip, d.use_rot, rng)
        return {"lq": lq, "gt": gt}

    def _gt_patch(self, gt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Pad, random-crop and augment the GT patch (the first draws of a sample's generator)."""
        size = self.data.gt_size
        gt = _pad_to(gt, size)
        y = int(rng.integers(0, gt.shape[0] - size + 1))
        x = int(rng.integers(0, gt.shape[1] - size + 1))
        (gt,) = augment([gt[y : y + size, x : x + size]], self.data.use_hflip, self.data.use_rot, rng)
        return gt

    def val(self, members: dict[str, bytes], rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Full images: the shard's ``lq.png`` when present (Set5/Set14 ``LRbicx*``), else the GT
        cropped to a multiple of the scale (mmedit's ``modcrop``) degraded with ``rng`` (fixed per
        sample, so every evaluation sees the same inputs)."""
        scale = self.data.scale
        gt = decode_image(require_image(members, GT))
        lq_bytes = image_bytes(members, LQ)
        if lq_bytes is not None:
            lq = decode_image(lq_bytes)
            return {"lq": lq, "gt": gt[: lq.shape[0] * scale, : lq.shape[1] * scale]}
        gt = mod_crop(gt, scale)
        preset = self.data.degradation.preset
        preset = "bicubic" if preset == PAIRED else preset
        return {"lq": to_uint8(degrade(preset, to_float(gt), scale=scale, rng=rng)), "gt": gt}


def _crop(img: np.ndarray, top: int, left: int, size: int, scale: int, is_lq: bool) -> np.ndarray:
    """The paired crop at LQ corner ``(top, left)``: LQ ``size / scale``, GT-sized images ``size``."""
    if is_lq:
        n = size // scale
        return img[top : top + n, left : left + n]
    return img[top * scale : top * scale + size, left * scale : left * scale + size]
