"""The DIC face super-resolution sampler: whole faces resized to 128 px, LR 16 px, landmark heatmaps.

mmedit 0.16.1's DIC pipelines (``dic_x8c48b6_g4_150k_CelebAHQ`` and the GAN config, identical):

* training (``SRFacialLandmarkDataset``): the whole image resized to 128 x 128 (``Resize``,
  PIL bicubic), the LR made from that by ``Resize(scale=1/8, keep_ratio=True)`` (PIL bicubic,
  16 x 16), and 68 Gaussian heatmaps (``GenerateHeatmap``: 32 x 32, sigma 1) from the sample's
  landmarks; no crop, no flip;
* validation/test (``SRFolderGTDataset``): the same two resizes, no landmarks needed.

``GenerateHeatmap`` scales the landmarks by ``32 / ori_size`` with ``ori_size=256`` fixed in the
config (the zoo's faces are 256 px); here ``ori_size`` is the size of the image the landmarks
were given for (``landmarks.json``'s ``image_size``), which is the same for the zoo's data and
still right for faces of another size. A heatmap is ``exp(-((x - px)^2 + (y - py)^2) / 2 sigma^2)``
over integer pixel positions ``x, y`` in the 32 x 32 grid, so a landmark at integer heatmap
coordinates peaks at exactly 1 there.

Samples carry ``lq`` (uint8 16x16x3), ``gt`` (uint8 128x128x3) and, in training, ``heatmap``
(float32 ``[68, 32, 32]``, the layout of the network's heatmap output). The zoo's mean
subtraction is the task's business (``trainers/tasks/dic.py``), not the sampler's.
"""

from __future__ import annotations

import json

import numpy as np
from PIL import Image
from pydantic import Field

from preprocessing.schema import GT, LANDMARKS, decode_image, require_image
from trainers.strict import Strict


class DICDataConfig(Strict):
    gt_size: int = Field(128, ge=8, description="faces are resized to gt_size x gt_size (the zoo: 128)")
    scale: int = Field(8, ge=1, description="LR = gt_size / scale (the zoo: 16 px)")
    heatmap_size: int = Field(32, ge=4, description="landmark heatmap side (the zoo: 32)")
    sigma: float = Field(1.0, gt=0, description="heatmap Gaussian sigma in heatmap pixels")
    num_landmarks: int = Field(68, ge=1)


def pil_bicubic(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """mmcv ``imresize(..., interpolation='bicubic', backend='pillow')``: uint8 HxWxC -> (w, h)."""
    return np.array(Image.fromarray(img).resize(size, Image.BICUBIC))


def rescale_size(hw: tuple[int, int], scale: float) -> tuple[int, int]:
    """mmcv's ``rescale_size`` for a float factor: ``(int(w * s + 0.5), int(h * s + 0.5))``."""
    h, w = hw
    return int(w * scale + 0.5), int(h * scale + 0.5)


def facial_heatmaps(points: np.ndarray, image_size: tuple[int, int], size: int, sigma: float) -> np.ndarray:
    """``[N, size, size]`` float32 Gaussian heatmaps of ``points`` (``[N, 2]`` x, y in pixels of an
    image of ``image_size`` (h, w)), as mmedit's ``GenerateHeatmap`` with ``ori_size`` = that image."""
    h, w = image_size
    xy = points.astype(np.float64) * np.asarray([size / w, size / h])
    grid = np.arange(size, dtype=np.float64)
    dx2 = (grid[None, None, :] - xy[:, 0, None, None]) ** 2  # [N, 1, size] over columns (x)
    dy2 = (grid[None, :, None] - xy[:, 1, None, None]) ** 2  # [N, size, 1] over rows (y)
    return np.exp(-(dx2 + dy2) / (2.0 * sigma * sigma)).astype(np.float32)


class DICSampler:
    """Face SR samples for DIC (``rng`` is unused: the zoo's pipeline has no randomness)."""

    def __init__(self, data: DICDataConfig):
        self.data = data

    def _pair(self, members: dict[str, bytes]) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        img = decode_image(require_image(members, GT))
        d = self.data
        gt = pil_bicubic(img, (d.gt_size, d.gt_size))
        lq = pil_bicubic(gt, rescale_size(gt.shape[:2], 1 / d.scale))
        return lq, gt, img.shape[:2]

    def landmarks(self, members: dict[str, bytes]) -> tuple[np.ndarray, tuple[int, int]]:
        """The sample's ``[N, 2]`` landmarks and the (h, w) they refer to; one-line ValueError
        when the shard has none or the wrong number."""
        key, raw = members.get("__key__"), members.get(LANDMARKS)
        if not raw:
            raise ValueError(f"sample {key}: no {LANDMARKS} member (shard the training set with "
                             "celeba_hq's 'landmarks' parameter)")
        meta = json.loads(raw)
        points = np.asarray(meta["points"], dtype=np.float32)
        if points.shape != (self.data.num_landmarks, 2):
            raise ValueError(f"sample {key}: {LANDMARKS} holds {points.shape[0]} points, expected "
                             f"{self.data.num_landmarks}")
        return points, tuple(meta["image_size"])

    def train(self, members: dict[str, bytes], rng: np.random.Generator) -> dict[str, np.ndarray]:
        lq, gt, hw = self._pair(members)
        points, size = self.landmarks(members)
        if tuple(size) != tuple(hw):
            raise ValueError(f"sample {members.get('__key__')}: landmarks are for a {size[0]}x{size[1]} image, "
                             f"{GT} is {hw[0]}x{hw[1]}")
        d = self.data
        return {"lq": lq, "gt": gt, "heatmap": facial_heatmaps(points, hw, d.heatmap_size, d.sigma)}

    def val(self, members: dict[str, bytes], rng: np.random.Generator) -> dict[str, np.ndarray]:
        lq, gt, _ = self._pair(members)
        return {"lq": lq, "gt": gt}
