"""The LIIF sampler: arbitrary-scale training pairs and per-scale evaluation inputs.

Training, as mmedit 0.16.1's LIIF pipeline (``RandomDownSampling`` -> ``Flip`` x2 ->
``RandomTransposeHW`` -> ``GenerateCoordinateAndCell``):

1. a scale ``s ~ U[scale_min, scale_max)``; a GT square of ``round(lq_patch * s)`` pixels at a
   random corner (``randint(0, H - size)``: the last position is never drawn, and an image exactly
   the patch size is an error, as in the reference);
2. the LQ patch (``lq_patch`` square) is that GT square resized by **PIL bicubic** on uint8 (mmcv
   ``imresize(backend="pillow")``, which antialiases when shrinking) -- not MATLAB bicubic;
3. the same horizontal flip, vertical flip and transpose on both, each with p = 0.5;
4. ``sample_quantity`` GT pixels drawn without replacement: their RGB values (``gt``, ``[Q, 3]``),
   pixel-centre coordinates in [-1, 1] (``coord``, (row, col)) and the cell size of the GT grid
   (``cell`` = ``(2 / H_gt, 2 / W_gt)`` for every query).

The random draws (:class:`Draws`) are separate from their application (:func:`train_sample`),
so a test can feed the reference pipeline's own draws and compare outputs exactly.

Validation: per evaluation scale ``s``, the GT cropped to ``round(floor(H / s) * s)`` rows (and
columns) and its PIL-bicubic LQ (the spec: LIIF test inputs are made by PIL bicubic), keys
``lq_x<s>``; ``gt`` is the whole image. The task decodes each scale's full grid from these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image
from pydantic import Field, model_validator

from preprocessing.schema import GT, decode_image, require_image
from trainers.strict import Strict


class LIIFDataConfig(Strict):
    scale_min: float = Field(1.0, ge=1.0, description="smallest training scale (inclusive)")
    scale_max: float = Field(4.0, ge=1.0, description="largest training scale (exclusive)")
    lq_patch: int = Field(48, ge=2, description="LQ training patch side; the GT square is round(lq_patch * s)")
    sample_quantity: int = Field(2304, ge=1, description="GT pixels (queries) sampled per training patch")
    use_hflip: bool = True
    use_rot: bool = True  # vertical flip + transpose, as mmedit's Flip/RandomTransposeHW

    @model_validator(mode="after")
    def _consistent(self) -> "LIIFDataConfig":
        if self.scale_max < self.scale_min:
            raise ValueError(f"scale_max {self.scale_max} is below scale_min {self.scale_min}")
        if self.sample_quantity > self.lq_patch**2:
            raise ValueError(f"sample_quantity {self.sample_quantity} is more than the smallest GT patch has "
                             f"({self.lq_patch}x{self.lq_patch} at scale 1)")
        return self


def make_coord(shape: tuple[int, int]) -> np.ndarray:
    """Pixel-centre coordinates of an ``h x w`` grid, ``[h*w, 2]`` float32, (row, col), in [-1, 1]
    (the same float32 arithmetic as mmedit's ``make_coord``)."""
    seqs = []
    for n in shape:
        r = 1 / n
        seqs.append(np.float32(-1 + r) + np.float32(2 * r) * np.arange(n, dtype=np.float32))
    rows, cols = np.meshgrid(*seqs, indexing="ij")
    return np.stack([rows, cols], axis=-1).reshape(-1, 2)


def make_cell(shape: tuple[int, int], n: int) -> np.ndarray:
    """``[n, 2]`` float32: every query's cell, ``(2 / h, 2 / w)`` of the target grid."""
    return np.tile(np.array([2 / shape[0], 2 / shape[1]], dtype=np.float32), (n, 1))


def pil_bicubic(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 HxWx3 resized to ``size`` = (w, h) by PIL bicubic, as mmcv's pillow backend."""
    return np.array(Image.fromarray(img).resize(size, Image.BICUBIC))


@dataclass(frozen=True)
class Draws:
    """Everything random about one training sample."""

    scale: float
    top: int
    left: int
    hflip: bool
    vflip: bool
    transpose: bool
    queries: np.ndarray  # indices into the flattened GT patch


def draw(cfg: LIIFDataConfig, shape: tuple[int, int], rng: np.random.Generator, key: str = "") -> Draws:
    """The draws for a GT image of ``shape`` (h, w), in the reference's order."""
    scale = float(rng.uniform(cfg.scale_min, cfg.scale_max))
    size = round(cfg.lq_patch * scale)
    if shape[0] <= size or shape[1] <= size:
        raise ValueError(f"sample {key}: GT {shape[0]}x{shape[1]} must exceed the {size} px patch of scale "
                         f"{scale:.3f} (lq_patch {cfg.lq_patch} x scale_max {cfg.scale_max})")
    top, left = int(rng.integers(0, shape[0] - size)), int(rng.integers(0, shape[1] - size))
    hflip, vflip, transpose = (bool(v) for v in rng.random(3) < 0.5)
    queries = rng.choice(size * size, cfg.sample_quantity, replace=False)
    return Draws(scale, top, left, hflip, vflip, transpose, queries)


def train_sample(cfg: LIIFDataConfig, gt: np.ndarray, d: Draws) -> dict[str, np.ndarray]:
    """Apply ``d`` to the uint8 GT image: ``lq`` uint8 patch, sampled ``gt`` uint8 ``[Q, 3]``,
    ``coord`` and ``cell`` float32 ``[Q, 2]``."""
    size = round(cfg.lq_patch * d.scale)
    hr = gt[d.top:d.top + size, d.left:d.left + size]
    lr = pil_bicubic(hr, (cfg.lq_patch, cfg.lq_patch))
    for flag, op in ((cfg.use_hflip and d.hflip, lambda a: a[:, ::-1]), (cfg.use_rot and d.vflip, lambda a: a[::-1]),
                     (cfg.use_rot and d.transpose, lambda a: a.transpose(1, 0, 2))):
        if flag:
            hr, lr = op(hr), op(lr)
    n = len(d.queries)
    return {
        "lq": np.ascontiguousarray(lr),
        "gt": np.ascontiguousarray(hr.reshape(-1, 3)[d.queries]),
        "coord": make_coord(hr.shape[:2])[d.queries],
        "cell": make_cell(hr.shape[:2], n),
    }


def val_pair(gt: np.ndarray, scale: float, key: str = "") -> tuple[np.ndarray, np.ndarray]:
    """(LQ, cropped GT) at ``scale``: mmedit's ``RandomDownSampling`` without a patch."""
    h_lr, w_lr = math.floor(gt.shape[0] / scale + 1e-9), math.floor(gt.shape[1] / scale + 1e-9)
    if h_lr < 1 or w_lr < 1:
        raise ValueError(f"sample {key}: GT {gt.shape[0]}x{gt.shape[1]} is too small for scale {scale}")
    hr = gt[:round(h_lr * scale), :round(w_lr * scale)]
    return pil_bicubic(np.ascontiguousarray(hr), (w_lr, h_lr)), hr


def scale_key(scale: float) -> str:
    """``lq_x4``, ``lq_x2.5``: the sample key of one evaluation scale's input."""
    return f"lq_x{scale:g}"


class LIIFSampler:
    """LIIF samples for one run: random-scale training patches, every evaluation scale's input."""

    def __init__(self, data: LIIFDataConfig, eval_scales: list[float]):
        self.data, self.eval_scales = data, list(eval_scales)

    def train(self, members: dict[str, bytes], rng: np.random.Generator) -> dict[str, np.ndarray]:
        gt = decode_image(require_image(members, GT))
        return train_sample(self.data, gt, draw(self.data, gt.shape[:2], rng, str(members.get("__key__"))))

    def val(self, members: dict[str, bytes], rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Deterministic (``rng`` unused): the whole GT and a PIL-bicubic LQ per evaluation scale."""
        gt = decode_image(require_image(members, GT))
        out = {"gt": gt}
        for s in self.eval_scales:
            out[scale_key(s)] = val_pair(gt, s, str(members.get("__key__")))[0]
        return out
