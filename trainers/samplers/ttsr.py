"""The TTSR sampler (reference-based SR): mmedit 0.16's ``SRFolderRefDataset`` pipelines.

Each shard sample holds its GT (``gt.png``) and its reference image (``ref.png``): CUFED's
``input/`` + ``ref/`` pair for training, a CUFED5 group's ``<id>_0.png`` and the chosen
``<id>_<level>.png`` for evaluation. Training and validation make, as the zoo's pipeline:

1. ``ref`` cut or zero-padded at the bottom/right to the GT's size (mmedit's ``CropLike``);
2. ``lq`` and ``ref_down``: GT and ref resized by 1/scale with PIL's bicubic filter, the new size
   ``int(size / scale + 0.5)`` (mmcv's ``imrescale``, ``backend='pillow'``);
3. ``lq_up`` and ``ref_downup``: those resized back by ``scale`` the same way (the search compares
   the LR image with a reference blurred alike);
4. training only: flips and a transpose, one draw for ``lq``/``gt``/``lq_up`` and an independent
   one for ``ref``/``ref_downup``.

GT sizes are cut to a multiple of ``scale`` first (a no-op on CUFED's 160 px training images and
on the formatted CUFED5 images the zoo evaluates on), so ``lq_up`` and the output have the GT's
size. Images are returned as uint8; the ``ttsr`` task maps ``lq`` and ``gt`` to [-1, 1] as the
zoo's ``Normalize`` does and keeps the rest in [0, 1].
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from pydantic import Field

from preprocessing.schema import GT, decode_image, require_image
from trainers.samplers.sr import augment, mod_crop
from trainers.strict import Strict

REF = "ref.png"


class TTSRDataConfig(Strict):
    scale: int = Field(4, ge=2, le=8)
    use_hflip: bool = True
    use_rot: bool = True  # vertical flip + transpose (mmedit's Flip vertical, RandomTransposeHW)


def pil_rescale(img: np.ndarray, factor: float) -> np.ndarray:
    """mmcv ``imrescale(img, factor, interpolation='bicubic', backend='pillow')``."""
    h, w = img.shape[:2]
    size = (int(w * factor + 0.5), int(h * factor + 0.5))
    return np.array(Image.fromarray(img).resize(size, Image.BICUBIC))


def crop_like(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """``img`` cut or zero-padded (bottom/right) to ``hw`` (mmedit's ``CropLike``)."""
    out = np.zeros((*hw, *img.shape[2:]), dtype=img.dtype)
    h, w = min(hw[0], img.shape[0]), min(hw[1], img.shape[1])
    out[:h, :w] = img[:h, :w]
    return out


def make_views(gt: np.ndarray, ref: np.ndarray, scale: int) -> dict[str, np.ndarray]:
    """GT and reference -> the five images TTSR reads (steps 1-3 of the module docstring)."""
    gt = mod_crop(gt, scale)
    ref = crop_like(ref, gt.shape[:2])
    lq = pil_rescale(gt, 1 / scale)
    ref_down = pil_rescale(ref, 1 / scale)
    return {"lq": lq, "gt": gt, "lq_up": pil_rescale(lq, float(scale)), "ref": ref,
            "ref_downup": pil_rescale(ref_down, float(scale))}


def decode_pair(members: dict[str, bytes]) -> tuple[np.ndarray, np.ndarray]:
    """The sample's GT and reference; a one-line ValueError naming a sample without either."""
    key = members.get("__key__")
    gt = require_image(members, GT)
    if not members.get(REF):
        raise ValueError(f"sample {key}: no reference image (ref.png member); TTSR samples carry their "
                         "reference (shard CUFED with the cufed adapter)")
    return decode_image(gt), decode_image(members[REF])


class TTSRSampler:
    """GT + reference -> ``lq``, ``gt``, ``lq_up``, ``ref``, ``ref_downup`` (uint8 HxWx3)."""

    def __init__(self, data: TTSRDataConfig):
        self.data = data

    def train(self, members: dict[str, bytes], rng: np.random.Generator) -> dict[str, np.ndarray]:
        d = self.data
        v = make_views(*decode_pair(members), d.scale)
        v["lq"], v["gt"], v["lq_up"] = augment([v["lq"], v["gt"], v["lq_up"]], d.use_hflip, d.use_rot, rng)
        v["ref"], v["ref_downup"] = augment([v["ref"], v["ref_downup"]], d.use_hflip, d.use_rot, rng)
        return v

    def val(self, members: dict[str, bytes], rng: np.random.Generator) -> dict[str, np.ndarray]:
        return make_views(*decode_pair(members), self.data.scale)
