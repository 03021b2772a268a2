"""Clip samples: frames of one clip -> validated, cropped, encoded shard samples.

:func:`clip_samples` is what :func:`preprocessing.shards.build_shard` runs for a clip adapter
(``adapter.clip``): the adapter says where the frames come from (:meth:`read_clip`: a frame
folder, or a decoded video), this module checks them and cuts the samples. A sample is one
spatial sub-region (the same box on every frame) of every frame of a clip, one PNG member
per frame (``gt.000.png``..., ``lq.000.png``...) plus the ``json`` metadata
(:func:`preprocessing.schema.clip_metadata`).

A clip is all-or-nothing: a gap in the frame numbering, a missing or undecodable frame, a
frame whose size differs from the first one, or LQ frames that do not match the GT frames
raise :class:`~preprocessing.validate.CorruptInput` naming the frame, and the shard builder
quarantines the whole clip. All of a clip's frames are decoded and checked before its first
sample is produced, so a quarantined clip leaves nothing in the shard. Videos cut into
several clips (``clip_len``) are checked clip by clip: a decode error in the third clip
keeps the first two.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from .schema import META, clip_metadata, encode_json, encode_png, frame_member
from .storage import Storage
from .validate import CorruptInput, load_image_with_notes

__all__ = ["ClipFrames", "check_numbering", "clip_samples", "folder_clip", "frame_rows", "natural_key"]

_TRAILING_NUMBER = re.compile(r"(\d+)$")
_NATURAL = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    """Sort key putting ``im2`` before ``im10`` (numbers compared as numbers)."""
    return tuple(int(p) if p.isdigit() else p for p in _NATURAL.split(name))


def _stem(name: str) -> str:
    base = name.rpartition("/")[2]
    return base.rpartition(".")[0] or base


@dataclass
class ClipFrames:
    """Where one clip's frames come from, as a clip adapter's ``read_clip`` returns it.

    Attributes:
        source: storage key of the clip (GT folder, LQ folder for LQ-only sets, or video file).
        kinds: frame kinds stored, in member order: ``("gt", "lq")``, ``("gt",)`` or ``("lq",)``.
        frames: iterator of ``(names, arrays)`` per frame: source name and decoded HxWx3 uint8
            RGB array per kind. May raise CorruptInput (naming the frame) while iterating.
        scale: GT/LQ size ratio when both kinds are stored, else 1.
        lq_source: the LQ clip folder when LQ frames are stored beside GT.
        fps, time_base: a video's exact timing (None for frame folders).
        notes: facts to record in every sample's metadata.
    """

    source: str
    kinds: tuple[str, ...]
    frames: Iterator[tuple[dict[str, str], dict[str, np.ndarray]]]
    scale: int = 1
    lq_source: str | None = None
    fps: Fraction | None = None
    time_base: Fraction | None = None
    notes: list[str] = field(default_factory=list)


def frame_rows(kind: str, objects: Sequence[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """``SourceItem.members`` rows for the frames of one kind: ``(gt.000.png, key, fingerprint)``...

    ``objects`` are ``(storage key, fingerprint)`` pairs; they are put in natural order of
    their file names, which is frame order.
    """
    ordered = sorted(objects, key=lambda o: natural_key(o[0].rpartition("/")[2]))
    return [(frame_member(kind, t), key, fp) for t, (key, fp) in enumerate(ordered)]


def check_numbering(kind: str, keys: Sequence[str]) -> None:
    """CorruptInput when the frame files' trailing numbers skip or repeat a value.

    ``00000000.png, 00000002.png`` is a gap (frame 00000001 missing); ``im1..im7`` is fine.
    File names without a trailing number are not checked (their order is their name order).
    """
    numbers = []
    for key in keys:
        m = _TRAILING_NUMBER.search(_stem(key))
        if m is None:
            return
        numbers.append((int(m.group(1)), m.group(1), key.rpartition("/")[2]))
    for (a, digits, name_a), (b, _d, name_b) in zip(numbers, numbers[1:]):
        if b == a:
            raise CorruptInput(f"{kind} frames {name_a} and {name_b} have the same number {a}")
        if b != a + 1:
            missing = str(a + 1).zfill(len(digits))
            more = f" (and {b - a - 2} more)" if b - a > 2 else ""
            raise CorruptInput(f"{kind} frame {missing} missing{more}: numbering jumps from {name_a} to {name_b}")


def folder_clip(src: Storage, members: Sequence[tuple[str, str | None, str]], kinds: tuple[str, ...],
                source: str, *, scale: int = 1, lq_source: str | None = None) -> ClipFrames:
    """A clip stored as one image file per frame (``members`` rows from :func:`frame_rows`).

    Checks the numbering of every kind and that GT and LQ list the same frame names before
    anything is read; the frames are then read and decoded lazily, one at a time.
    """
    by_kind: dict[str, list[str]] = {k: [] for k in kinds}
    for name, key, _fp in members:
        by_kind.setdefault(name.split(".")[0], []).append(key)
    for kind in kinds:
        if not by_kind[kind]:
            raise CorruptInput(f"no {kind} frames for clip {source}")
        check_numbering(kind, by_kind[kind])
    if len(kinds) > 1:
        ref, names = kinds[0], [k.rpartition("/")[2] for k in by_kind[kinds[0]]]
        for kind in kinds[1:]:
            other = [k.rpartition("/")[2] for k in by_kind[kind]]
            if [_stem(n) for n in other] != [_stem(n) for n in names]:
                diff = sorted(set(map(_stem, names)) ^ set(map(_stem, other)), key=natural_key)[:3]
                raise CorruptInput(f"{kind} frames do not match {ref} frames ({len(other)} vs {len(names)}; "
                                   f"unmatched: {', '.join(diff)})")

    notes: list[str] = []

    def frames():
        for t in range(len(by_kind[kinds[0]])):
            names, arrays = {}, {}
            for kind in kinds:
                key = by_kind[kind][t]
                name = key.rpartition("/")[2]
                try:
                    img, img_notes = load_image_with_notes(src.read_bytes(key), key)
                except (FileNotFoundError, CorruptInput) as exc:
                    why = "file not found" if isinstance(exc, FileNotFoundError) else exc.reason
                    err = CorruptInput(f"{kind} frame {name} (index {t}): {why}")
                    err.key = key
                    raise err from None
                notes.extend(f"{kind}: {n}" for n in img_notes if f"{kind}: {n}" not in notes)
                names[kind], arrays[kind] = name, img
            yield names, arrays

    return ClipFrames(source, kinds, frames(), scale=scale, lq_source=lq_source, notes=notes)


def _check_scale(clip: ClipFrames, names: dict[str, str], arrays: dict[str, np.ndarray]) -> None:
    (h, w), (lh, lw), s = arrays["gt"].shape[:2], arrays["lq"].shape[:2], clip.scale
    if (lh * s, lw * s) != (h, w):
        exc = CorruptInput(f"lq frame {names['lq']} is {lh}x{lw}, x{s} != gt frame {names['gt']} {h}x{w}")
        exc.key = clip.lq_source or clip.source
        raise exc


def _decode_all(clip: ClipFrames, limit: int | None):
    """Up to ``limit`` frames of the clip, checked for equal sizes: (names per kind, arrays per kind)."""
    names: dict[str, list[str]] = {k: [] for k in clip.kinds}
    arrays: dict[str, list[np.ndarray]] = {k: [] for k in clip.kinds}
    first: dict[str, tuple[int, int, str]] = {}
    for t, (frame_names, frame_arrays) in enumerate(clip.frames):
        for kind in clip.kinds:
            img, name = frame_arrays[kind], frame_names[kind]
            if kind not in first:
                first[kind] = (img.shape[0], img.shape[1], name)
            elif img.shape[:2] != first[kind][:2]:
                h, w, name0 = first[kind]
                raise CorruptInput(f"{kind} frame {name} (index {t}) is {img.shape[0]}x{img.shape[1]}, "
                                   f"frame {name0} is {h}x{w}: frame sizes differ within the clip")
            names[kind].append(name)
            arrays[kind].append(img)
        if t == 0 and clip.kinds == ("gt", "lq"):
            _check_scale(clip, frame_names, frame_arrays)
        if limit is not None and t + 1 >= limit:
            break
    return names, arrays


def clip_samples(item, src: Storage, adapter, params: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Yields ``(key, members)`` for every sample of one clip item; CorruptInput (with ``.key``)
    for a clip that cannot be used.

    The adapter provides ``read_clip(item, src, params) -> ClipFrames`` and
    ``clip_boxes(hw, params)`` (None for the whole frame, else the sub-region boxes
    ``(y, x, h, w)`` in GT pixels, numbered from 1 into ``<clip>_s001``...). ``clip_len`` in ``params``
    (video files) cuts a long clip into consecutive clips of that many frames, keyed
    ``<clip>_c000``, ``<clip>_c001``...
    """
    try:
        clip = adapter.read_clip(item, src, params)
    except CorruptInput as exc:
        exc.key = getattr(exc, "key", None) or item.gt_key
        raise
    clip_len = params.get("clip_len") or None
    level = params.get("png_compression", 3)
    chunk = 0
    while True:
        try:
            names, arrays = _decode_all(clip, clip_len)
        except CorruptInput as exc:
            if clip_len is not None:
                exc.reason = f"clip {chunk} (from frame {chunk * clip_len}): {exc.reason}"
                exc.args = (exc.reason,)
            exc.key = getattr(exc, "key", None) or clip.source
            raise
        main = clip.kinds[0]
        n = len(names[main])
        if n == 0:
            if chunk == 0:
                exc = CorruptInput(f"no frames decoded from {clip.source}")
                exc.key = clip.source
                raise exc
            return
        base_key = item.item_id if clip_len is None else f"{item.item_id}_c{chunk:03d}"
        yield from _cut(item, clip, adapter, params, base_key, names, arrays, level,
                        None if clip_len is None else chunk * clip_len)
        if clip_len is None or n < clip_len:
            return
        chunk += 1


def _cut(item, clip: ClipFrames, adapter, params, base_key, names, arrays, level, start_frame):
    main = clip.kinds[0]
    h, w = arrays[main][0].shape[:2]
    scale = clip.scale if len(clip.kinds) > 1 else 1
    sub_boxes = adapter.clip_boxes((h, w), params)
    boxes = [(0, 0, h, w)] if sub_boxes is None else sub_boxes
    keys = [base_key] if sub_boxes is None else [f"{base_key}_s{i:03d}" for i in range(1, len(boxes) + 1)]
    for key, box in zip(keys, boxes):
        y, x, bh, bw = box
        members: dict[str, bytes] = {}
        for kind in clip.kinds:
            s = scale if (kind == "lq" and main == "gt") else 1
            for t, img in enumerate(arrays[kind]):
                members[frame_member(kind, t)] = encode_png(
                    img[y // s:(y + bh) // s, x // s:(x + bw) // s], level)
        lq_box = tuple(v // scale for v in box) if len(clip.kinds) > 1 else None
        meta = clip_metadata(
            key=key, adapter=adapter.name, source=clip.source, frame_names=names[main], box=box,
            image_size=(h, w), kinds=clip.kinds, scale=scale, lq_source=clip.lq_source, lq_box=lq_box,
            lq_frame_names=names.get("lq") if len(clip.kinds) > 1 else None, fps=clip.fps,
            time_base=clip.time_base, start_frame=start_frame, notes=clip.notes)
        members[META] = encode_json(meta)
        yield key, members
