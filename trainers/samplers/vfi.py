"""The frame-interpolation sampler (CAIN, FLAVR, TOFlow-VFI): one clip in,
``{"inputs": [T_in, H, W, 3], "gt": [H, W, 3]}`` uint8 out.

A sample is a clip of the shard format the video family uses (``gt.000.png`` ... one member per
frame, and ``json``; the ``vimeo90k`` adapter with ``layout: triplet`` or the default
septuplets). ``input_frames`` pick the frames the network sees, ``target_frame`` the one it
synthesises (0-based): Vimeo-90K triplets ``[0, 2] -> 1`` (im1, im3 -> im2, CAIN and TOFlow),
septuplets ``[0, 2, 4, 6] -> 3`` (im1, 3, 5, 7 -> im4, FLAVR). Only those frames are read
(``train_members``: the stream fetches them by ranged reads).

Batch keys: ``inputs`` is a key of this family, not of the image/video SR schema: the input
frames are clean frames, not a degraded ``lq``, and they are not the target's time steps
(``[B, T_in, 3, H, W]`` on the worker, mmedit's name); ``gt`` is the target frame
(``[B, 3, H, W]``).

Training follows the zoo's pipeline (mmedit 0.16.1 ``cain_b5_g1b32_vimeo90k_triplet`` /
``flavr_in4out1_g8b4_vimeo90k_septuplet``) step by step, drawing from the sample's generator in
mmedit's order (``tests/trainers/test_vfi_sampler.py`` replays goldens made by mmedit itself):

1. ``FixedCrop`` of ``crop_size`` at a random position (x, then y), the same box on inputs and
   target; a frame smaller than the crop keeps its size on that side (mmedit's ``min``).
2. ``Flip`` horizontal, then vertical (p 0.5 each, one draw each), on inputs and target.
3. ``ColorJitter`` (when configured): one seed drawn in ``[0, 2 ** 32]``, the same factors and
   order for every frame (:mod:`trainers.samplers.color_jitter`, torchvision's PIL jitter).
4. ``TemporalReverse`` of the inputs (p ``reverse_ratio``, one draw, always made).

TOFlow-VFI's zoo pipeline has no augmentation at all (``crop_size: null``, flips off, no jitter,
``reverse_ratio: 0``). Validation returns the whole frames, no augmentation.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, model_validator

from preprocessing.schema import META, frame_member
from trainers.samplers.color_jitter import apply_jitter, jitter_params
from trainers.samplers.vsr import clip_length, decode_frames
from trainers.strict import Strict


class ColorJitterConfig(Strict):
    """torchvision ``ColorJitter`` amounts (the zoo: 0.05 each)."""

    brightness: float = Field(0.05, ge=0)
    contrast: float = Field(0.05, ge=0)
    saturation: float = Field(0.05, ge=0)
    hue: float = Field(0.05, ge=0, le=0.5)


class VFIDataConfig(Strict):
    """Which frames of a clip are inputs and target, and the training augmentation (defaults: CAIN)."""

    input_frames: list[int] = Field([0, 2], min_length=2, description="0-based input frame indices, in time order")
    target_frame: int = Field(1, ge=0, description="0-based index of the frame to synthesise")
    crop_size: int | None = Field(256, ge=8, description="training crop side (FixedCrop); null: whole frames")
    use_hflip: bool = True
    use_vflip: bool = True
    color_jitter: ColorJitterConfig | None = ColorJitterConfig()
    reverse_ratio: float = Field(0.5, ge=0, le=1, description="TemporalReverse probability of the inputs")

    @model_validator(mode="after")
    def _frames_in_order(self) -> "VFIDataConfig":
        f = self.input_frames
        if any(i < 0 for i in f) or f != sorted(set(f)):
            raise ValueError(f"input_frames must be distinct increasing indices >= 0, got {f}")
        if not f[0] < self.target_frame < f[-1] or self.target_frame in f:
            raise ValueError(f"target_frame {self.target_frame} must lie between input frames {f} and not be one")
        return self


class VFISampler:
    """Interpolation samples for one run (the stream seeds ``rng`` per sample)."""

    def __init__(self, data: VFIDataConfig):
        self.data = data

    def _indices(self, members: dict[str, bytes], key) -> tuple[list[int], int]:
        d = self.data
        total = clip_length(members, key)
        last = max(d.input_frames[-1], d.target_frame)
        if last >= total:
            raise ValueError(f"clip {key}: {total} frames, but input_frames {d.input_frames} / target_frame "
                             f"{d.target_frame} need {last + 1}")
        return list(d.input_frames), d.target_frame

    def train_members(self, members: dict[str, bytes], rng: np.random.Generator) -> list[str]:
        """The members :meth:`train` reads: ``json`` and the input and target frames (no draw is used)."""
        inputs, target = self._indices(members, members.get("__key__"))
        return [META, *(frame_member("gt", t) for t in sorted([*inputs, target]))]

    def _frames(self, members, key) -> tuple[list[np.ndarray], np.ndarray]:
        inputs, target = self._indices(members, key)
        frames = decode_frames(members, "gt", [*inputs, target], key)
        return frames[:-1], frames[-1]

    def train(self, members: dict[str, bytes], rng: np.random.Generator) -> dict[str, np.ndarray]:
        d, key = self.data, members.get("__key__")
        inputs, target = self._frames(members, key)
        frames = [*inputs, target]
        if d.crop_size is not None:
            h, w = target.shape[:2]
            ch, cw = min(h, d.crop_size), min(w, d.crop_size)
            x = int(rng.integers(0, w - cw + 1))
            y = int(rng.integers(0, h - ch + 1))
            frames = [f[y:y + ch, x:x + cw] for f in frames]
        if d.use_hflip and rng.random() < 0.5:
            frames = [f[:, ::-1] for f in frames]
        if d.use_vflip and rng.random() < 0.5:
            frames = [f[::-1] for f in frames]
        if d.color_jitter is not None:
            c = d.color_jitter
            params = jitter_params(int(rng.integers(0, 2 ** 32 + 1)), c.brightness, c.contrast, c.saturation, c.hue)
            frames = [apply_jitter(np.ascontiguousarray(f), params) for f in frames]
        inputs, target = frames[:-1], frames[-1]
        if rng.random() < d.reverse_ratio:
            inputs = inputs[::-1]
        return {"inputs": np.ascontiguousarray(np.stack(inputs)), "gt": np.ascontiguousarray(target)}

    def val(self, members: dict[str, bytes], rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Whole frames, no augmentation."""
        inputs, target = self._frames(members, members.get("__key__"))
        return {"inputs": np.stack(inputs), "gt": target}
