"""The video super-resolution sampler (BasicVSR, IconVSR, BasicVSR++, RealBasicVSR): one clip in,
``{"lq": [T, h, w, 3], "gt": [T, H, W, 3]}`` uint8 out.

A clip sample holds one PNG member per frame (``gt.000.png`` ... and, for paired data such as
REDS ``train_sharp_bicubic``, ``lq.000.png`` ...; ``preprocessing.schema.frame_member``) and a
``json`` member whose ``frames`` gives the clip length. Training follows mmedit 0.16.1's video
pipelines step by step, drawing from the sample's generator in the same order as mmedit draws
from ``np.random`` (so a ``RandomState``-backed generator reproduces mmedit's choice exactly;
``tests/trainers/test_vsr_sampler.py`` checks it against goldens made by mmedit itself):

1. **Temporal window** (``GenerateSegmentIndices``): an interval from ``interval_list``, then a
   start in ``[0, T - n * interval]``; frames ``start, start + interval, ...`` (``n`` of them).
   A clip with ``T < n * interval`` is an error (mmedit's condition, with the drawn interval,
   which is stricter than what the last index needs). ``num_input_frames: null`` takes all
   frames, as the Vimeo-90K configs (7 frames).
2. **Random reverse** (``TemporalReverse``, p 0.5) of the index list. The zoo's REDS configs
   carry it with ``reverse_ratio=0`` and only on ``lq_path`` (reversing LQ alone would break the
   pairing); here it reverses the window, so LQ and GT stay paired.
3. **Decode** only the window's frames.
4. **Crop** the same box from every frame: ``PairedRandomCrop`` for paired clips (LQ corner top
   then left on the LQ grid, GT at ``scale`` times it; LQ smaller than the patch is an error),
   ``FixedCrop`` with a random position for GT-only clips (RealBasicVSR; x then y, GT frames
   smaller than the patch are reflect-padded as ``sr.py`` does instead of clamped).
5. **Flip** horizontal, **Flip** vertical, **RandomTransposeHW** (p 0.5 each, one draw each,
   applied to every frame; ``sr.augment``).
6. **Degrade** per clip: ``bicubic`` / ``bd`` frame by frame (deterministic presets),
   ``paired`` uses the LQ frames, ``realbasicvsr`` degrades the clip with its random walk.
7. **Mirror** (``MirrorSequence``, ``x1..xN -> x1..xN, xN..x1``) on LQ and GT: Vimeo-90K's
   7 -> 14 and RealBasicVSR's "load 15, train on 30". For ``realbasicvsr`` the preset mirrors
   before degrading (the mirrored half gets its own degradation, as the reference), and the
   sample also carries ``gt_usm``, the unsharp-masked GT the pixel loss trains against (the
   plain ``gt`` is the GAN's real input, as mmedit's ``gt`` / ``gt_unsharp``).

Validation takes every frame (or a centred window of ``val_num_input_frames``), no random
augmentation, the clip's ``lq`` frames when it has them, else the preset applied with the
generator the stream seeds per sample (``paired`` falls back to ``bicubic``; ``realbasicvsr``
runs unmirrored). An optional centred ``val_gt_size`` crop keeps big clips cheap. Mirroring
for evaluation (Vimeo-90K-T's 7 -> 14) is the family's business, not the sampler's.

The sliding-window families (EDVR, TDAN, TOFlow) use :class:`VSRWindowSampler`: a training
sample is a window of ``num_input_frames`` LQ frames and the GT of its centre frame only
(``GenerateFrameIndices`` for REDS, a random centre whose window fits; the clip's middle window
for Vimeo-90K), read by ``train_members`` frame by frame, then the same crop and flips. Their
validation clips are the ones above; the per-frame windows with edge padding
(:func:`padded_indices`, ``GenerateFrameIndiceswithPadding``) are built by the task.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from degradations.presets import CLIP_PRESETS, degrade
from degradations.realbasicvsr import REALBASICVSR, apply_clip, sample_clip_params
from preprocessing.schema import META, decode_image, decode_json, frame_member, parse_frame_member
from trainers.samplers.sr import PAIRED, DegradationConfig, _pad_to, augment, mod_crop, to_float, to_uint8
from trainers.strict import Strict

#: Degradations a clip config takes: per-frame classic presets, the clip presets, paired LR frames.
CLIP_DEGRADATIONS = ("bicubic", "bd", *sorted(CLIP_PRESETS), PAIRED)


class ClipDegradationConfig(DegradationConfig):
    """``DegradationConfig`` for clips: ``bicubic``/``bd`` per frame, ``realbasicvsr`` per clip,
    or ``paired`` (the clip's ``lq.NNN.png`` frames). Per-image stochastic presets
    (``realesrgan``) are refused: they would draw independent parameters for every frame."""

    @classmethod
    def _check_kind(cls, preset: str) -> str:
        if preset not in CLIP_DEGRADATIONS:
            known = ", ".join(CLIP_DEGRADATIONS)
            raise ValueError(f"{preset} degrades single images; a video task takes one of {known}")
        return preset


class VSRDataConfig(Strict):
    """What one training / validation clip is made of (defaults: BasicVSR on REDS)."""

    scale: int = Field(4, ge=1, le=8)
    gt_size: int | None = Field(256, ge=8, description="GT patch side; null: whole frames")
    num_input_frames: int | None = Field(15, ge=1, description="training window length; null: the whole clip")
    interval_list: list[int] = Field([1], min_length=1, description="frame intervals, one drawn per sample")
    random_reverse: bool = Field(False, description="reverse the window with p 0.5 (TemporalReverse)")
    use_hflip: bool = True
    use_rot: bool = True  # vertical flip + transpose, as mmedit's Flip(vertical)/RandomTransposeHW
    mirror: bool = Field(False, description="x1..xN -> x1..xN,xN..x1 (Vimeo-90K, RealBasicVSR's 15 -> 30)")
    degradation: ClipDegradationConfig = ClipDegradationConfig()
    val_num_input_frames: int | None = Field(None, ge=1, description="validation: centred window; null: all")
    val_gt_size: int | None = Field(None, ge=8, description="validation: centred GT crop; null: whole frames")

    @model_validator(mode="after")
    def _consistent(self) -> "VSRDataConfig":
        for name in ("gt_size", "val_gt_size"):
            size = getattr(self, name)
            if size is not None and size % self.scale:
                raise ValueError(f"{name} {size} is not divisible by scale {self.scale}")
        if any(i < 1 for i in self.interval_list):
            raise ValueError(f"interval_list entries must be >= 1, got {self.interval_list}")
        if self.degradation.preset == "bd" and self.scale != 4:
            raise ValueError(f"the bd preset is defined for scale 4 only, got scale {self.scale}")
        return self


def segment_indices(total: int, num: int | None, interval_list, rng, key=None) -> list[int]:
    """mmedit's ``GenerateSegmentIndices``: the frame indices of one training window.

    Draws the interval (``interval_list[rng.integers(0, len)]``, as ``np.random.choice``) and
    then the start (``rng.integers(0, total - num * interval + 1)``, as ``np.random.randint``).

    Raises:
        ValueError: when ``total < num * interval`` (mmedit's condition).
    """
    num = total if num is None else num
    interval = int(interval_list[int(rng.integers(0, len(interval_list)))])
    if total - num * interval < 0:
        raise ValueError(f"clip {key}: {total} frames are too few for num_input_frames {num} at interval {interval}")
    start = int(rng.integers(0, total - num * interval + 1))
    return list(range(start, start + num * interval, interval))


def mirror(frames: np.ndarray) -> np.ndarray:
    """``MirrorSequence``: ``[x1..xN] -> [x1..xN, xN..x1]`` along the first axis."""
    return np.concatenate([frames, frames[::-1]])


def clip_length(members: dict[str, bytes], key=None) -> int:
    """Frames in a clip: the ``json`` member's ``frames``, else the number of ``gt`` frame members."""
    meta = members.get(META)
    if meta:
        frames = decode_json(meta).get("frames")
        if frames is not None:
            if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
                raise ValueError(f"clip {key}: json 'frames' must be a positive int, got {frames!r}")
            return frames
    count = sum(1 for name in members if (parse_frame_member(name) or ("",))[0] == "gt")
    if count == 0:
        raise ValueError(f"clip {key}: no gt frame members (gt.000.png ...)")
    return count


def decode_frames(members: dict[str, bytes], kind: str, indices, key=None) -> list[np.ndarray]:
    """Decode frames ``indices`` of ``kind`` (``gt``/``lq``); all must exist and share one size."""
    frames = []
    for t in indices:
        name = frame_member(kind, t)
        data = members.get(name)
        if not data:
            raise ValueError(f"clip {key}: frame {t} is missing (no {name} member)")
        img = decode_image(data)
        if frames and img.shape != frames[0].shape:
            raise ValueError(f"clip {key}: {name} is {img.shape[:2]}, frame {indices[0]} is {frames[0].shape[:2]}")
        frames.append(img)
    return frames


def _check_pair(lq: list[np.ndarray], gt: list[np.ndarray], scale: int, key) -> None:
    (h, w), (gh, gw) = lq[0].shape[:2], gt[0].shape[:2]
    if (gh, gw) != (h * scale, w * scale):
        raise ValueError(f"clip {key}: GT frames {gh}x{gw} are not {scale}x the LQ frames {h}x{w}")


class VSRSampler:
    """Video SR clips for one run (the stream seeds ``rng`` per sample)."""

    def __init__(self, data: VSRDataConfig):
        self.data = data

    # ------------------------------------------------------------------ train

    def needs(self, split: str) -> dict[str, str]:
        """Members every clip must hold (see ``trainers.samplers.Sampler``)."""
        if split != "train":
            return {}  # validation clips may be LQ only (VideoLQ: NIQE)
        need = {"gt.*.png": "data.train"}
        if self.data.degradation.preset == PAIRED:
            need["lq.*.png"] = "task.data.degradation.preset"
        return need

    def train_members(self, members: dict[str, bytes], rng: np.random.Generator) -> list[str]:
        """The members :meth:`train` reads for this sample: the stream fetches only these (ranged
        reads), not the whole clip. ``members`` needs only the ``json`` member (others may be
        empty); ``rng`` must be a fresh copy of the sample's generator: the window is its first draw."""
        d, key = self.data, members.get("__key__")
        indices = segment_indices(clip_length(members, key), d.num_input_frames, d.interval_list, rng, key)
        kinds = ("gt", "lq") if d.degradation.preset == PAIRED else ("gt",)
        return [META, *(frame_member(k, t) for k in kinds for t in indices)]

    def train(self, members: dict[str, bytes], rng: np.random.Generator) -> dict[str, np.ndarray]:
        d, key = self.data, members.get("__key__")
        indices = segment_indices(clip_length(members, key), d.num_input_frames, d.interval_list, rng, key)
        if d.random_reverse and rng.random() < 0.5:
            indices = indices[::-1]
        gt = decode_frames(members, "gt", indices, key)
        if d.degradation.preset == PAIRED:
            self._check_meta_scale(members, key)
            lq = decode_frames(members, "lq", indices, key)
            lq, gt = self._paired_crop(lq, gt, rng, key)
            both = augment(lq + gt, d.use_hflip, d.use_rot, rng)
            lq, gt = np.stack(both[: len(lq)]), np.stack(both[len(lq) :])
            return self._mirrored({"lq": lq, "gt": gt})
        gt = np.stack(augment(self._gt_crop(gt, rng), d.use_hflip, d.use_rot, rng))
        if d.degradation.preset in CLIP_PRESETS:
            return self._realbasicvsr(gt, rng, d.mirror)
        lq = np.stack([self._degrade_frame(f, rng) for f in gt])
        return self._mirrored({"lq": lq, "gt": gt})

    def _check_meta_scale(self, members: dict[str, bytes], key) -> None:
        meta = members.get(META)
        scale = decode_json(meta).get("scale") if meta else None
        if scale is not None and scale != self.data.scale:
            raise ValueError(f"clip {key}: its lq frames are x{scale}, the config's scale is {self.data.scale}")

    def _paired_crop(self, lq, gt, rng, key):
        """``PairedRandomCrop``: LQ corner (top, then left) on the LQ grid, GT at ``scale`` x it."""
        d = self.data
        _check_pair(lq, gt, d.scale, key)
        if d.gt_size is None:
            return lq, gt
        size = d.gt_size // d.scale
        h, w = lq[0].shape[:2]
        if h < size or w < size:
            raise ValueError(f"clip {key}: LQ frames {h}x{w} are smaller than the LQ patch {size}x{size}")
        top = int(rng.integers(0, h - size + 1))
        left = int(rng.integers(0, w - size + 1))
        y, x, g = top * d.scale, left * d.scale, d.gt_size
        return [f[top : top + size, left : left + size] for f in lq], [f[y : y + g, x : x + g] for f in gt]

    def _gt_crop(self, gt: list[np.ndarray], rng) -> list[np.ndarray]:
        """``FixedCrop`` at a random position (x, then y), the same box on every frame."""
        size = self.data.gt_size
        if size is None:
            return [mod_crop(f, self.data.scale) for f in gt]
        gt = [_pad_to(f, size) for f in gt]
        h, w = gt[0].shape[:2]
        x = int(rng.integers(0, w - size + 1))
        y = int(rng.integers(0, h - size + 1))
        return [f[y : y + size, x : x + size] for f in gt]

    def _degrade_frame(self, frame: np.ndarray, rng) -> np.ndarray:
        preset = self.data.degradation.preset
        preset = "bicubic" if preset == PAIRED else preset
        return to_uint8(degrade(preset, to_float(frame), scale=self.data.scale, rng=rng))

    def _realbasicvsr(self, gt: np.ndarray, rng, mirrored: bool) -> dict[str, np.ndarray]:
        """``realbasicvsr_clip``'s draws and result (its ``sample_clip_params`` + ``apply_clip``),
        without stacking and quantising the mirrored half of the sharpened GT twice."""
        cfg = REALBASICVSR if REALBASICVSR.mirror == mirrored else dataclasses.replace(REALBASICVSR, mirror=mirrored)
        n = len(gt)
        params = sample_clip_params(rng, 2 * n if mirrored else n, cfg)
        out = apply_clip(list(to_float(gt)), params, self.data.scale)
        usm = np.stack([to_uint8(f) for f in out["gt"][:n]])
        lq = np.stack([to_uint8(f) for f in out["lq"]])
        return {"lq": lq, "gt": mirror(gt) if mirrored else gt, "gt_usm": mirror(usm) if mirrored else usm}

    def _mirrored(self, sample: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: mirror(v) for k, v in sample.items()} if self.data.mirror else sample

    # ------------------------------------------------------------------ val

    def val(self, members: dict[str, bytes], rng: np.random.Generator) -> dict[str, np.ndarray]:
        """The whole clip (or its centred ``val_num_input_frames``), no random augmentation."""
        d, key = self.data, members.get("__key__")
        total = clip_length(members, key)
        n = d.val_num_input_frames or total
        if n > total:
            raise ValueError(f"clip {key}: {total} frames are too few for val_num_input_frames {n}")
        start = (total - n) // 2
        indices = list(range(start, start + n))
        if not members.get(frame_member("gt", indices[0])) and members.get(frame_member("lq", indices[0])):
            return {"lq": np.stack(decode_frames(members, "lq", indices, key))}  # LQ-only (VideoLQ): no-reference
        gt = decode_frames(members, "gt", indices, key)
        if members.get(frame_member("lq", indices[0])):
            lq = decode_frames(members, "lq", indices, key)
            h, w = lq[0].shape[:2]
            gt = [f[: h * d.scale, : w * d.scale] for f in gt]
            _check_pair(lq, gt, d.scale, key)
            lq, gt = self._centre_crop(np.stack(lq), np.stack(gt))
            return {"lq": lq, "gt": gt}
        gt = np.stack([mod_crop(f, d.scale) for f in gt])
        _, gt = self._centre_crop(None, gt)
        if d.degradation.preset in CLIP_PRESETS:
            out = self._realbasicvsr(gt, rng, mirrored=False)
            return {"lq": out["lq"], "gt": gt}
        return {"lq": np.stack([self._degrade_frame(f, rng) for f in gt]), "gt": gt}

    def _centre_crop(self, lq: np.ndarray | None, gt: np.ndarray):
        """The centred ``val_gt_size`` box (LQ-grid aligned); frames smaller than it stay whole."""
        d = self.data
        if d.val_gt_size is None:
            return lq, gt
        s, size = d.scale, d.val_gt_size // d.scale
        h, w = gt.shape[1] // s, gt.shape[2] // s
        top, left = max(h - size, 0) // 2, max(w - size, 0) // 2
        gt = gt[:, top * s : (top + size) * s, left * s : (left + size) * s]
        return (None if lq is None else lq[:, top : top + size, left : left + size]), gt


# ---------------------------------------------------------------------- sliding-window families

#: ``GenerateFrameIndiceswithPadding``'s modes: how a window centred near a clip end is filled.
PADDINGS = ("reflection", "reflection_circle", "replicate", "circle")


def window_indices(total: int, num: int, interval_list, rng, key=None, centre: int | None = None) -> list[int]:
    """mmedit's ``GenerateFrameIndices``: a training window of ``num`` (odd) frames around a
    random centre, every ``interval`` frames.

    The stream gives one sample per clip where mmedit's REDS dataset has one per frame, so the
    centre is first drawn over the whole clip (``rng.integers(0, total)``, the frame key mmedit's
    loader would have picked); then the interval (``np.random.choice``); then, while the window
    crosses an end of the clip, the centre is redrawn (``np.random.randint(0, total)``, mmedit's
    ``frames_per_clip + 1`` = 100 for REDS). Centres end up uniform over the ones whose window
    fits (REDS, 5 frames: 2..97). ``centre`` given: no first draw (mmedit's own sequence of draws,
    for the parity test).

    Raises:
        ValueError: when the clip is too short for the window at the drawn interval.
    """
    half = num // 2
    centre = int(rng.integers(0, total)) if centre is None else centre
    interval = int(interval_list[int(rng.integers(0, len(interval_list)))])
    if 2 * half * interval > total - 1:
        raise ValueError(f"clip {key}: {total} frames are too few for a window of {num} frames at interval {interval}")
    while centre - half * interval < 0 or centre + half * interval > total - 1:
        centre = int(rng.integers(0, total))
    return list(range(centre - half * interval, centre + half * interval + 1, interval))


def centre_window(total: int, num: int, key=None) -> list[int]:
    """The window in the middle of the clip (``SRVimeo90KDataset``: 5 of 7 frames -> im2..im6)."""
    if total < num:
        raise ValueError(f"clip {key}: {total} frames are too few for a window of {num} frames")
    start = (total - num) // 2
    return list(range(start, start + num))


def padded_indices(current: int, total: int, num: int, padding: str) -> list[int]:
    """mmedit's ``GenerateFrameIndiceswithPadding``: the ``num``-frame window around frame
    ``current`` of a ``total``-frame clip, indices beyond an end replaced by ``padding``.

    For ``current`` 0, ``num`` 5: replicate ``[0, 0, 0, 1, 2]``, reflection ``[2, 1, 0, 1, 2]``,
    reflection_circle ``[4, 3, 0, 1, 2]``, circle ``[3, 4, 0, 1, 2]`` (mmedit's formulas, which
    for ``circle`` and ``reflection_circle`` wrap within the window, not the clip).

    Raises:
        ValueError: for an unknown mode, or a clip too short for the window in this mode (an index
            that stays outside the clip after padding).
    """
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {', '.join(PADDINGS)}, got {padding!r}")
    if not 0 <= current < total:
        raise ValueError(f"frame {current} is outside a clip of {total} frames")
    last, half, out = total - 1, num // 2, []
    for i in range(current - half, current + half + 1):
        if i < 0:
            j = {"replicate": 0, "reflection": -i, "reflection_circle": current + half - i, "circle": num + i}[padding]
        elif i > last:
            j = {"replicate": last, "reflection": 2 * last - i,
                 "reflection_circle": current - half - (i - last), "circle": i - num}[padding]
        else:
            j = i
        if not 0 <= j <= last:
            raise ValueError(f"a clip of {total} frames is too short for a window of {num} frames "
                             f"with {padding} padding")
        out.append(j)
    return out


class VSRWindowDataConfig(VSRDataConfig):
    """Training / validation clips of the sliding-window families (EDVR, TDAN, TOFlow): a window
    of ``num_input_frames`` LQ frames and the GT of its centre frame. Defaults: EDVR on REDS."""

    num_input_frames: int = Field(5, ge=1, description="window length (odd); the GT is its centre frame")
    window: Literal["random", "centre"] = Field(
        "random", description="random: GenerateFrameIndices (REDS, a random centre whose window fits); "
        "centre: the clip's middle window (SRVimeo90KDataset: im2..im6 of 7)")

    @model_validator(mode="after")
    def _window_fits(self) -> "VSRWindowDataConfig":
        if self.num_input_frames % 2 == 0:
            raise ValueError(f"num_input_frames must be odd (a centre frame), got {self.num_input_frames}")
        if self.mirror:
            raise ValueError("mirror: a sliding-window model trains on one window, not a mirrored clip")
        if self.degradation.preset in CLIP_PRESETS:
            raise ValueError(f"degradation {self.degradation.preset}: a clip preset; the window families take "
                             "bicubic, bd or paired")
        if self.window == "centre" and self.interval_list != [1]:
            raise ValueError(f"interval_list: the centre window takes consecutive frames, got {self.interval_list}")
        return self


class VSRWindowSampler(VSRSampler):
    """Sliding-window samples: ``{"lq": [n, h, w, 3], "gt": [H, W, 3]}`` (the window's centre
    frame) for training; whole clips for validation (:meth:`VSRSampler.val`)."""

    data: VSRWindowDataConfig

    def _window(self, members: dict[str, bytes], rng) -> list[int]:
        d, key = self.data, members.get("__key__")
        total = clip_length(members, key)
        if d.window == "centre":
            return centre_window(total, d.num_input_frames, key)
        return window_indices(total, d.num_input_frames, d.interval_list, rng, key)

    def train_members(self, members: dict[str, bytes], rng: np.random.Generator) -> list[str]:
        """The window's LQ frames and its centre GT frame (paired), or the window's GT frames."""
        indices = self._window(members, rng)
        if self.data.degradation.preset == PAIRED:
            return [META, *(frame_member("lq", t) for t in indices), frame_member("gt", indices[len(indices) // 2])]
        return [META, *(frame_member("gt", t) for t in indices)]

    def train(self, members: dict[str, bytes], rng: np.random.Generator) -> dict[str, np.ndarray]:
        d, key = self.data, members.get("__key__")
        indices = self._window(members, rng)
        if d.random_reverse and rng.random() < 0.5:
            indices = indices[::-1]  # the centre stays the centre
        centre = len(indices) // 2
        if d.degradation.preset == PAIRED:
            self._check_meta_scale(members, key)
            lq = decode_frames(members, "lq", indices, key)
            gt = decode_frames(members, "gt", [indices[centre]], key)
            lq, gt = self._paired_crop(lq, gt, rng, key)
            frames = augment(lq + gt, d.use_hflip, d.use_rot, rng)
            return {"lq": np.stack(frames[:-1]), "gt": frames[-1]}
        gt = augment(self._gt_crop(decode_frames(members, "gt", indices, key), rng), d.use_hflip, d.use_rot, rng)
        return {"lq": np.stack([self._degrade_frame(f, rng) for f in gt]), "gt": gt[centre]}
