"""Video dataset adapters: which frames make a clip, and how clips are cut into sub-clips.

A clip item is a :class:`~preprocessing.adapters.SourceItem` whose ``members`` rows are its
frames in order (``("gt.000.png", key, fingerprint)``, ..., ``("lq.000.png", ...)``), so the
plan and shard fingerprints cover every frame file; ``gt_key`` is the clip folder (the LQ
folder for LQ-only sets, the file for videos) and ``lq_key`` the LQ clip folder. The shard
builder hands clip items to :func:`preprocessing.clips.clip_samples`, which reads, checks
and crops the frames (a gap in the numbering, a bad or differently sized frame quarantines
the whole clip, naming the frame).

Layouts (``source`` is the dataset root; folder parameters are relative to it):

* ``reds``: ``train_sharp/<clip>/<frame>.png`` + ``train_sharp_bicubic/X4/<clip>/<frame>.png``,
  and the official validation clips ``val_sharp/000..029`` (+ ``val_sharp_bicubic/X4``) as
  clips 240-269, as MMEditing's ``preprocess_reds_dataset.py`` merges them (folders already
  merged into ``train_sharp`` work too). ``split``: ``train`` = all 270 clips minus REDS4,
  ``reds4`` = 000, 011, 015, 020 (the test clips), ``val`` = 240-269 (the official validation
  set), ``all`` = 270 clips (what ``crop_sub_images.py`` cuts into ``train_sharp_sub``, which
  RealBasicVSR trains on).
* ``vimeo90k``: septuplets ``sequences/<a>/<b>/im1.png..im7.png`` listed by ``sep_trainlist.txt``
  / ``sep_testlist.txt`` (or MMEditing's ``meta_info_Vimeo90K_{train,test}_GT.txt``, first token
  per line); LR frames from ``lq_dir`` (``sequences_BIx4``, ``BDx4``...) when given, else GT only
  (the sampler makes LQ with the BI/BD preset at training time; the metadata says so).
  ``layout: triplet`` reads the interpolation set ``vimeo_triplet`` instead: the same
  ``sequences/<a>/<b>/`` tree with ``im1..im3.png``, listed by ``tri_trainlist.txt`` /
  ``tri_testlist.txt`` (frame interpolation: im1 + im3 -> im2; GT only, no LR).
* ``vid4`` / ``udm10``: ``GT/<clip>/<frame>.png`` + ``BIx4/<clip>/...`` or ``BDx4/<clip>/...``.
* ``videolq``: ``<clip>/<frame>.png``, LQ only (no-reference evaluation): stored as ``lq.NNN.png``.
* ``video_files``: every mp4/mkv/mov/avi/webm/m4v under the root (recursive), decoded with PyAV
  (:mod:`preprocessing.video_decode`); GT frames, frame rate and time base in the metadata;
  ``clip_len`` cuts long videos into clips of that many frames. A file that is not a decodable
  video is quarantined with the decoder's reason.

Common parameters: ``crop`` (default false: whole frames, as evaluation reads them) with
``crop_size``/``step``/``thresh_size`` (MMEditing's sub-image rule, 480/240/0 as its REDS
``train_sharp_sub``: the same box on every frame, samples ``<clip>_s001``...), and
``png_compression`` (zlib level of the frame PNGs, default 3 as MMEditing's crops).
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any, Mapping

from .adapters import Adapter, AdapterError, SourceItem, _assign_ids, _is_image, _read_list
from .clips import ClipFrames, folder_clip, frame_rows
from .crop import sub_image_boxes
from .schema import sanitize_key
from .storage import LocalStorage, ObjectInfo, Storage
from .validate import CorruptInput, current_limits
from .video_decode import VIDEO_EXTENSIONS, VideoDecodeError, decode_video

__all__ = ["REDS4", "RedsAdapter", "Vimeo90kAdapter", "Vid4Adapter", "Udm10Adapter", "VideoLQAdapter",
           "VideoFilesAdapter"]

REDS4 = ("000", "011", "015", "020")
_REDS_VAL_OFFSET = 240
_NO_LQ_NOTE = "no lq frames stored: the sampler makes LQ at training time"


def _clip_folders(storage: Storage, folder: str) -> dict[str, list[tuple[str, str]]]:
    """``{clip name: [(key, fingerprint) of its images]}`` for ``<folder>/<clip>/<frame>``
    (images directly inside each clip folder; deeper files are not frames)."""
    prefix = f"{folder}/" if folder else ""
    out: dict[str, list[tuple[str, str]]] = {}
    for o in storage.list(prefix):
        parts = o.key[len(prefix):].split("/")
        if len(parts) == 2 and _is_image(o.key):
            out.setdefault(parts[0], []).append((o.key, o.fingerprint))
    return out


def _check_bool(adapter: str, resolved: dict, *names: str) -> None:
    for name in names:
        if not isinstance(resolved[name], bool):
            raise AdapterError(f"{adapter}: {name} must be true or false, got {resolved[name]!r}")


def _check_level(adapter: str, resolved: dict) -> None:
    level = resolved["png_compression"]
    if not isinstance(level, int) or isinstance(level, bool) or not 0 <= level <= 9:
        raise AdapterError(f"{adapter}: png_compression must be an integer 0-9, got {level!r}")


def _clip_item(item_id: str, source: str, gt: list[tuple[str, str]] | None,
               lq: list[tuple[str, str]] | None, lq_source: str | None) -> SourceItem:
    rows = (frame_rows("gt", gt) if gt is not None else []) + (frame_rows("lq", lq) if lq is not None else [])
    return SourceItem(item_id, source, lq_source, "", "", tuple(rows))


class _ClipAdapter(Adapter):
    """Shared parameters and the clip hooks the shard builder calls (:mod:`preprocessing.clips`)."""

    clip = True
    common = {"crop": False, "crop_size": 480, "step": 240, "thresh_size": 0, "png_compression": 3}

    def resolve_params(self, params=None):
        resolved = super().resolve_params(params)
        _check_level(self.name, resolved)
        for name, value in resolved.items():
            if name.endswith("_dir") or name == "ann_file":
                if not isinstance(value, str):
                    raise AdapterError(f"{self.name}: {name} must be a string, got {value!r}")
                resolved[name] = value.format(scale=resolved.get("scale", 1)).strip("/")
        if self.kinds(resolved) == ("gt", "lq"):
            for name in ("crop_size", "step", "thresh_size"):
                if resolved[name] % resolved["scale"]:
                    raise AdapterError(f"{self.name}: {name}={resolved[name]} is not divisible by "
                                       f"scale={resolved['scale']}")
        return resolved

    def kinds(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        """Frame kinds a sample stores, in member order."""
        return ("gt", "lq") if params.get("lq_dir") else ("gt",)

    def clip_boxes(self, hw: tuple[int, int], params: Mapping[str, Any]):
        """Sub-region boxes of a clip whose frames are ``hw``; None keeps the whole frame."""
        if not params["crop"]:
            return None
        return sub_image_boxes(hw[0], hw[1], params["crop_size"], params["step"], params["thresh_size"])

    def read_clip(self, item: SourceItem, src: Storage, params: Mapping[str, Any]) -> ClipFrames:
        kinds = self.kinds(params)
        clip = folder_clip(src, item.members, kinds, item.gt_key, scale=params.get("scale", 1),
                           lq_source=item.lq_key if "lq" in kinds and kinds[0] == "gt" else None)
        if kinds == ("gt",) and self.paired_lq_expected:
            clip.notes.append(_NO_LQ_NOTE)
        return clip

    paired_lq_expected = True  # a GT-only sample is one whose LQ the sampler synthesises

    def crops(self, item, gt_hw, lq_hw, params):  # image path only; clips go through clip_boxes
        raise NotImplementedError(f"{self.name} makes clip samples (preprocessing.clips)")


class RedsAdapter(_ClipAdapter):
    """REDS (NTIRE 2019): 270 clips x 100 frames of 720x1280, LR x4 180x320; see the module docstring."""

    name = "reds"
    SPLITS = ("train", "val", "reds4", "all")
    defaults = {"split": "train", "lq": True, "scale": 4, "gt_dir": "train_sharp",
                "lq_dir": "train_sharp_bicubic/X{scale}", "val_gt_dir": "val_sharp",
                "val_lq_dir": "val_sharp_bicubic/X{scale}", **_ClipAdapter.common}

    def resolve_params(self, params=None):
        resolved = super().resolve_params(params)
        _check_bool(self.name, resolved, "lq", "crop")
        if resolved["split"] not in self.SPLITS:
            raise AdapterError(f"{self.name}: split must be one of {list(self.SPLITS)}, got {resolved['split']!r}")
        return resolved

    def kinds(self, params):
        return ("gt", "lq") if params["lq"] else ("gt",)

    def _clips(self, storage, gt_dir, lq_dir, offset):
        gts = _clip_folders(storage, gt_dir)
        lqs = _clip_folders(storage, lq_dir)
        out = {}
        for name in gts:
            clip_id = f"{int(name) + offset:03d}" if offset and name.isdigit() else name
            out[clip_id] = (name, gts[name], lqs.get(name, []))
        return out

    def list_items(self, storage, params):
        gt_dir, lq_dir = params["gt_dir"], params["lq_dir"]
        clips = {cid: (gt_dir, lq_dir, *rest) for cid, rest in self._clips(storage, gt_dir, lq_dir, 0).items()}
        val = self._clips(storage, params["val_gt_dir"], params["val_lq_dir"], _REDS_VAL_OFFSET)
        for cid, rest in val.items():
            if cid in clips:
                raise AdapterError(f"{self.name}: clip {cid} is both in {gt_dir}/ and (as {rest[0]}) in "
                                   f"{params['val_gt_dir']}/: drop {params['val_gt_dir']}/ if it is already merged")
            clips[cid] = (params["val_gt_dir"], params["val_lq_dir"], *rest)
        if not clips:
            raise AdapterError(f"{self.name}: no clips (<clip>/<frame>.png) under {storage.uri(gt_dir)} "
                               f"or {storage.uri(params['val_gt_dir'])}")
        split = params["split"]
        if split == "reds4":
            chosen = [c for c in clips if c in REDS4]
        elif split == "val":
            chosen = [c for c in clips if c.isdigit() and _REDS_VAL_OFFSET <= int(c) < _REDS_VAL_OFFSET + 30]
        elif split == "train":
            chosen = [c for c in clips if c not in REDS4]
        else:
            chosen = list(clips)
        if not chosen:
            raise AdapterError(f"{self.name}: no clips of split {split!r} under {storage.uri()}")
        items = []
        for cid in chosen:
            gdir, ldir, name, gt, lq = clips[cid]
            lq_source = f"{ldir}/{name}" if params["lq"] else None
            items.append(_clip_item(sanitize_key(cid), f"{gdir}/{name}", gt, lq if params["lq"] else None,
                                    lq_source))
        return sorted(items)


class _GtLqClipsAdapter(_ClipAdapter):
    """``<gt_dir>/<clip>/<frame>`` with optional ``<lq_dir>/<clip>/<frame>`` (Vid4, UDM10)."""

    defaults = {"scale": 4, "gt_dir": "GT", "lq_dir": "BIx4", **_ClipAdapter.common}

    def resolve_params(self, params=None):
        resolved = super().resolve_params(params)
        _check_bool(self.name, resolved, "crop")
        return resolved

    def list_items(self, storage, params):
        gt_dir, lq_dir = params["gt_dir"], params["lq_dir"]
        gts = _clip_folders(storage, gt_dir)
        if not gts:
            raise AdapterError(f"{self.name}: no clips (<clip>/<frame>.png) under {storage.uri(gt_dir)}")
        lqs = _clip_folders(storage, lq_dir) if lq_dir else {}
        if lq_dir and not lqs:
            raise AdapterError(f"{self.name}: no LQ clips under {storage.uri(lq_dir)}")
        ids = _assign_ids(list(gts))
        return sorted(_clip_item(ids[name], f"{gt_dir}/{name}", frames, lqs.get(name, []) if lq_dir else None,
                                 f"{lq_dir}/{name}" if lq_dir else None) for name, frames in gts.items())


class Vid4Adapter(_GtLqClipsAdapter):
    """Vid4 (calendar, city, foliage, walk) with ``BIx4`` or ``BDx4`` (``lq_dir``)."""

    name = "vid4"


class Udm10Adapter(_GtLqClipsAdapter):
    """UDM10 (10 clips, 32 frames each) with ``BIx4`` or ``BDx4`` (``lq_dir``)."""

    name = "udm10"


class VideoLQAdapter(_ClipAdapter):
    """VideoLQ (RealBasicVSR's real-world test set): ``<lq_dir>/<clip>/<frame>.png``, LQ only."""

    name = "videolq"
    defaults = {"lq_dir": "", **_ClipAdapter.common}
    paired_lq_expected = False

    def resolve_params(self, params=None):
        resolved = super().resolve_params(params)
        _check_bool(self.name, resolved, "crop")
        return resolved

    def kinds(self, params):
        return ("lq",)

    def list_items(self, storage, params):
        lq_dir = params["lq_dir"]
        lqs = _clip_folders(storage, lq_dir)
        if not lqs:
            raise AdapterError(f"{self.name}: no clips (<clip>/<frame>.png) under {storage.uri(lq_dir)}")
        ids = _assign_ids(list(lqs))
        prefix = f"{lq_dir}/" if lq_dir else ""
        return sorted(_clip_item(ids[name], f"{prefix}{name}", None, frames, None) for name, frames in lqs.items())


class Vimeo90kAdapter(_ClipAdapter):
    """Vimeo-90K septuplets (448x256, 7 frames) or, with ``layout: triplet``, the interpolation
    triplets (3 frames), split by the official lists; see the module docstring."""

    name = "vimeo90k"
    SPLITS = {"septuplet": {"train": ("sep_trainlist.txt", "meta_info_Vimeo90K_train_GT.txt"),
                            "test": ("sep_testlist.txt", "meta_info_Vimeo90K_test_GT.txt")},
              "triplet": {"train": ("tri_trainlist.txt",), "test": ("tri_testlist.txt",)}}
    defaults = {"split": "train", "layout": "septuplet", "scale": 4, "gt_dir": "sequences", "lq_dir": "",
                "ann_file": "auto", **_ClipAdapter.common}

    def resolve_params(self, params=None):
        resolved = super().resolve_params(params)
        _check_bool(self.name, resolved, "crop")
        if resolved["layout"] not in self.SPLITS:
            raise AdapterError(f"{self.name}: layout must be one of {list(self.SPLITS)}, got {resolved['layout']!r}")
        if resolved["split"] not in self.SPLITS[resolved["layout"]]:
            raise AdapterError(f"{self.name}: split must be one of {list(self.SPLITS[resolved['layout']])}, "
                               f"got {resolved['split']!r}")
        if resolved["layout"] == "triplet" and resolved["lq_dir"]:
            raise AdapterError(f"{self.name}: layout triplet has no LR frames (frame interpolation); "
                               f"drop lq_dir {resolved['lq_dir']!r}")
        return resolved

    def _ann(self, storage, params) -> str:
        if params["ann_file"] != "auto":
            return params["ann_file"]
        names = self.SPLITS[params["layout"]][params["split"]]
        for name in names:
            for cand in (name, f"meta/{name}"):
                if storage.exists(cand):
                    return cand
        raise AdapterError(f"{self.name}: no list file for split {params['split']!r} under {storage.uri()} "
                           f"(looked for {' or '.join(names)})")

    def list_items(self, storage, params):
        names = _read_list(storage, self._ann(storage, params), self.name)
        gt_dir, lq_dir = params["gt_dir"], params["lq_dir"]
        gts = _sequences(storage, gt_dir)
        if not gts:
            raise AdapterError(f"{self.name}: no frames (<a>/<b>/im1.png) under {storage.uri(gt_dir)}")
        lqs = _sequences(storage, lq_dir) if lq_dir else {}
        items, seen = [], set()
        for name in names:
            seq = name.strip("/")
            if seq in seen:
                continue
            seen.add(seq)
            items.append(_clip_item(sanitize_key(seq), f"{gt_dir}/{seq}", gts.get(seq, []),
                                    lqs.get(seq, []) if lq_dir else None, f"{lq_dir}/{seq}" if lq_dir else None))
        return sorted(items)

    def read_clip(self, item, src, params):
        clip = super().read_clip(item, src, params)
        if params["layout"] == "triplet":  # interpolation data: no LQ is ever made from it
            clip.notes = [n for n in clip.notes if n != _NO_LQ_NOTE]
        return clip


def _sequences(storage: Storage, folder: str) -> dict[str, list[tuple[str, str]]]:
    """``{"00001/0001": [(key, fingerprint) of im1..im7]}`` under ``<folder>/<a>/<b>/``."""
    prefix = f"{folder}/" if folder else ""
    out: dict[str, list[tuple[str, str]]] = {}
    for o in storage.list(prefix):
        parts = o.key[len(prefix):].split("/")
        if len(parts) == 3 and _is_image(o.key):
            out.setdefault(f"{parts[0]}/{parts[1]}", []).append((o.key, o.fingerprint))
    return out


class VideoFilesAdapter(_ClipAdapter):
    """Plain video files decoded with PyAV; see the module docstring.

    ``clip_len`` (default 100, REDS's clip length) cuts a video into consecutive clips of that
    many frames, keyed ``<video>_c000``, ``<video>_c001``... (the last one shorter), so a long
    video neither becomes one huge sample nor has to be held decoded at once (the builder holds
    one clip's frames decoded: 100 1080p frames are ~600 MB). ``clip_len: 0`` keeps each video
    whole, keyed ``<video>``: only for short ones.
    """

    name = "video_files"
    defaults = {"clip_len": 100, **_ClipAdapter.common}
    paired_lq_expected = True

    def resolve_params(self, params=None):
        resolved = super().resolve_params(params)
        _check_bool(self.name, resolved, "crop")
        n = resolved["clip_len"]
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise AdapterError(f"{self.name}: clip_len must be an integer >= 0 (0 = whole video), got {n!r}")
        return resolved

    def kinds(self, params):
        return ("gt",)

    def list_items(self, storage, params):
        videos = [o for o in storage.list("") if o.key.lower().endswith(VIDEO_EXTENSIONS)]
        if not videos:
            raise AdapterError(f"{self.name}: no video files ({'/'.join(e[1:] for e in VIDEO_EXTENSIONS)}) "
                               f"under {storage.uri()}")
        ids = _assign_ids([o.key for o in videos])
        return sorted(SourceItem(ids[o.key], o.key, None, o.fingerprint) for o in videos)

    def read_clip(self, item, src, params):
        target = src.uri(item.gt_key) if isinstance(src, LocalStorage) else _read(src, item.gt_key)
        try:
            frames, meta = decode_video(target)
        except VideoDecodeError as exc:
            raise CorruptInput(str(exc)) from None
        except FileNotFoundError:
            raise CorruptInput("file not found (vanished after listing)") from None
        base = item.gt_key.rpartition("/")[2]
        limits = current_limits()
        _check_video_header(meta, limits, frames)
        notes = [_NO_LQ_NOTE, f"codec {meta.codec}"]

        def named():
            count = 0
            try:
                for frame in frames:
                    if count >= limits.max_video_frames:  # the header understated the length
                        frames.close()
                        raise CorruptInput(f"video has more than {limits.max_video_frames} frames "
                                           "(limits.max_video_frames); rest not decoded")
                    yield {"gt": f"{base}#{count}"}, {"gt": frame}
                    count += 1
            except VideoDecodeError as exc:
                raise CorruptInput(f"frame {count} of {base}: {exc}") from None
            if meta.frames and count != meta.frames:
                notes.append(f"decoded {count} frames, the container says {meta.frames}")

        return ClipFrames(item.gt_key, ("gt",), named(), fps=meta.fps, time_base=meta.time_base, notes=notes)


def _check_video_header(meta, limits, frames) -> None:
    """CorruptInput, before any frame is decoded, for a video whose header says it is beyond the
    limits (frame size or count): a video bomb is refused like an image one."""
    h, w = meta.size
    problem = None
    if h * w > limits.max_frame_pixels:
        problem = (f"video frames too large: {w}x{h} = {w * h / 1e6:.1f} Mpx, over the limit of "
                   f"{limits.max_frame_pixels / 1e6:.1f} Mpx (limits.max_frame_pixels)")
    elif meta.frames > limits.max_video_frames:
        problem = f"video too long: {meta.frames} frames, over the limit of {limits.max_video_frames} (limits.max_video_frames)"
    if problem is not None:
        frames.close()  # nothing was decoded (the unread container closes when collected)
        raise CorruptInput(f"{problem}; not decoded")


def _read(src: Storage, key: str) -> bytes:
    try:
        return src.read_bytes(key)
    except FileNotFoundError:
        raise CorruptInput("file not found (vanished after listing)") from None

