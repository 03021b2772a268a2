"""Raw-dataset adapters: which files make a sample, and how each is cropped.

An adapter turns a storage listing into a sorted list of :class:`SourceItem`
(one GT image, optionally its LQ counterpart) and, given the decoded image
sizes, the crop boxes of that item. Reading, validation and encoding live in
:mod:`preprocessing.shards`, so an adapter is a few small pure functions.

``ADAPTERS`` is the only registry: a hand-written dict, name -> adapter.

* ``image_folder``: every png/jpg/jpeg/bmp/webp under the root (recursive), GT
  only, cropped into sub-images (``crop=False`` keeps whole images).
* ``div2k``: ``<gt_dir>/0001.png`` paired with ``<lq_dir>/0001x4.png`` (or
  ``0001.png``), defaults ``DIV2K_train_HR`` and ``DIV2K_train_LR_bicubic/X{scale}``;
  GT cropped ``crop_size``/``step``, LQ at the same positions divided by ``scale``.
* ``set5_14``: ``GTmod12/<name>.png`` paired with ``LRbicx{scale}/<name>.png``
  (MMEditing's Set5/Set14 layout); not cropped (evaluation sets).
* ``comp1k``: Adobe Composition-1k as MMEditing prepares it (``split: train``: foreground +
  alpha per training image; ``split: test``: the composites with their trimaps, alphas,
  foregrounds and backgrounds); see :class:`Comp1kAdapter`.
* ``matting_folder``: generic matting folders paired by file stem (``fg/`` + ``alpha/`` for
  training; ``merged/`` + ``alpha/`` + ``trimap/`` [+ ``fg/``, ``bg/``] for evaluation).
* ``places365`` / ``celeba_hq``: inpainting image sets laid out as MMEditing's configs read
  them (``data_large``/``val_large``, ``train_256``/``test_256``, with the configs' image
  lists when present); whole images, GT only. See :class:`_ListedImagesAdapter`.
  ``celeba_hq`` ``split: glean_val``, ``ffhq`` and ``lsun_cat``: GLEAN's 1024/256 px face sets
  (``GT/`` with the configs' ``meta_info_*_GT.txt`` lists). With a ``landmarks`` file, ``celeba_hq`` makes DIC's face SR samples: the images the file names,
  each with its 68 facial landmarks (``landmarks.json``); see :class:`CelebAHQAdapter`.
* ``cufed``: reference-based SR (TTSR): CUFED's training pairs (``input/`` + ``ref/``, paired by
  file name) or CUFED5's evaluation groups (``<id>_0.png`` GT, ``<id>_1..5.png`` references; the
  reference level is a parameter); whole images, ``gt.png`` + ``ref.png``. See :class:`CufedAdapter`.
* ``reds``, ``vimeo90k``, ``vid4``, ``udm10``, ``videolq``, ``video_files``: video datasets
  whose samples are clips (see :mod:`preprocessing.video_adapters`).
* ``mask_folder``: an inpainting hole-mask set (PConv's irregular masks, AOT-GAN's training
  and test masks): one binary 1-channel ``mask.png`` (255 = hole) per file; see
  :class:`MaskFolderAdapter`.

Matting adapters make samples of several named whole images (``fg.png``, ``alpha.png``,
``merged.png``, ``trimap.png``, ``bg.png``, see :mod:`preprocessing.schema`) instead of a
GT/LQ pair: their items carry ``members`` and their :meth:`Adapter.member_specs` say which
members are grey and which are required. Backgrounds for on-the-fly compositing are an
ordinary ``image_folder`` shard set (``crop: false``).

Parameters arrive as a plain dict; unknown names are rejected, like the typed
configs elsewhere. ``{scale}`` in ``gt_dir``/``lq_dir`` is replaced by the scale.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .crop import scale_box, sub_image_boxes
from .schema import ALPHA, BG, FG, GT, IMAGE_CODECS, LANDMARKS, MASK, MERGED, REF, TRIMAP, sanitize_key, sub_image_key
from .storage import ObjectInfo, Storage
from .validate import CorruptInput

__all__ = [
    "ADAPTERS",
    "IMAGE_EXTENSIONS",
    "Adapter",
    "AdapterError",
    "Crop",
    "MemberSpec",
    "SourceItem",
    "get_adapter",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


class AdapterError(ValueError):
    """The raw dataset or the adapter parameters do not fit the adapter (one-line message)."""


@dataclass(frozen=True, order=True)
class SourceItem:
    """One source sample: a GT image and, for paired datasets, its LQ image.

    Fingerprints (ETag or mtime+size) let a re-run tell whether a finished
    shard was built from the same bytes. ``lq_key`` is None for GT-only
    adapters, and also for a paired adapter whose LQ file is missing (the
    item is then quarantined by the shard builder, not silently dropped).

    Matting adapters fill ``members`` instead: ``(member name, storage key or None,
    fingerprint)`` per member, in the order the shard stores them; ``gt_key`` is then
    the sample's main file (foreground or composite), used to name it in quarantine
    entries. A None key is a file the adapter expected but did not find.

    GT-only items with non-image data (``celeba_hq``'s landmarks) put a digest of that data
    in ``lq_fingerprint``, so changed landmarks rebuild the shard that holds the image.
    """

    item_id: str
    gt_key: str
    lq_key: str | None = None
    gt_fingerprint: str = ""
    lq_fingerprint: str = ""
    members: tuple[tuple[str, str | None, str], ...] = ()

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        if self.members:
            d["members"] = [list(m) for m in self.members]
        else:
            del d["members"]  # GT/LQ items keep their old dict form (plan rows, Ray task rows)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SourceItem":
        d = dict(d)
        members = d.pop("members", None) or ()
        return cls(**d, members=tuple((str(n), None if k is None else str(k), str(f)) for n, k, f in members))


@dataclass(frozen=True)
class MemberSpec:
    """One named image of a matting sample: its shard member name, whether it is stored
    grey (1-channel) and whether a sample without it is quarantined."""

    name: str
    grey: bool = False
    required: bool = True


@dataclass(frozen=True)
class Crop:
    """One sample cut from an item: its key, GT box and (paired) LQ box, as (y, x, h, w)."""

    key: str
    box: tuple[int, int, int, int]
    lq_box: tuple[int, int, int, int] | None = None


def _is_image(key: str) -> bool:
    return key.lower().endswith(IMAGE_EXTENSIONS)


def _split_ext(key: str) -> tuple[str, str]:
    stem, dot, ext = key.rpartition(".")
    return (stem, "." + ext) if dot else (key, "")


def _assign_ids(rel_keys: list[str]) -> dict[str, str]:
    """Maps each relative key to a unique, WebDataset-safe item id.

    The id is the key without its extension (``sub/0001.png`` -> ``sub_0001``);
    where two files would share it (``x.png`` and ``x.jpg``) both keep their
    extension (``x_png``, ``x_jpg``). Deterministic for a given listing.
    """
    by_id: dict[str, list[str]] = {}
    for rel in rel_keys:
        by_id.setdefault(sanitize_key(_split_ext(rel)[0]), []).append(rel)
    out: dict[str, str] = {}
    for item_id, rels in by_id.items():
        if len(rels) == 1:
            out[rels[0]] = item_id
        else:
            for rel in rels:
                out[rel] = sanitize_key(rel)
    if len(set(out.values())) != len(out):
        seen: dict[str, str] = {}
        for rel, item_id in sorted(out.items()):
            if item_id in seen:
                raise AdapterError(f"files {seen[item_id]!r} and {rel!r} map to the same sample key {item_id!r}")
            seen[item_id] = rel
    return out


def _list_images(storage: Storage, folder: str, adapter: str, what: str) -> list[ObjectInfo]:
    """Images under ``folder`` ('' = root); a missing or image-less folder is an AdapterError."""
    prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
    objects = storage.list(prefix)
    if not objects:
        raise AdapterError(f"{adapter}: missing or empty {what} folder {storage.uri(prefix.rstrip('/'))}")
    images = [o for o in objects if _is_image(o.key)]
    if not images:
        raise AdapterError(
            f"{adapter}: no images ({'/'.join(e[1:] for e in IMAGE_EXTENSIONS)}) found under "
            f"{storage.uri(prefix.rstrip('/'))}"
        )
    return images


class Adapter:
    """Base class: parameter handling shared by all adapters."""

    name: str = ""
    defaults: dict[str, Any] = {}
    paired: bool = False
    #: GT/LQ image sets take ``image_codec`` (``png``, the default, or ``qoi``: see
    #: ``preprocessing.schema``); it is kept in the resolved params only when not ``png``, so
    #: the params, and the reuse of shards built before the option existed, stay as they were.
    image_codecs: bool = False

    def resolve_params(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults filled in, unknown names rejected, values checked; returns a new dict."""
        params = dict(params or {})
        codec = params.pop("image_codec", "png") if self.image_codecs else None
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            allowed = sorted(self.defaults) + (["image_codec"] if self.image_codecs else [])
            raise AdapterError(f"{self.name}: unknown parameter(s) {unknown}; allowed: {allowed}")
        resolved = {**self.defaults, **params}
        if codec is not None and codec not in IMAGE_CODECS:
            raise AdapterError(f"{self.name}: image_codec must be one of {list(IMAGE_CODECS)}, got {codec!r}")
        if codec not in (None, "png"):
            resolved["image_codec"] = codec
        for name in ("crop_size", "step", "scale"):
            if name in resolved and (not isinstance(resolved[name], int) or isinstance(resolved[name], bool) or resolved[name] < 1):
                raise AdapterError(f"{self.name}: {name} must be a positive integer, got {resolved[name]!r}")
        if "thresh_size" in resolved and (not isinstance(resolved["thresh_size"], int) or resolved["thresh_size"] < 0):
            raise AdapterError(f"{self.name}: thresh_size must be a non-negative integer, got {resolved['thresh_size']!r}")
        if "crop" in resolved and not isinstance(resolved["crop"], bool):
            raise AdapterError(f"{self.name}: crop must be true or false, got {resolved['crop']!r}")
        for name in ("gt_dir", "lq_dir"):
            if name in resolved:
                resolved[name] = str(resolved[name]).format(scale=resolved.get("scale", 1)).strip("/")
        return resolved

    def list_items(self, storage: Storage, params: Mapping[str, Any]) -> list[SourceItem]:
        """Sorted source items found in ``storage`` (params already resolved)."""
        raise NotImplementedError

    def crops(self, item: SourceItem, gt_hw: tuple[int, int], lq_hw: tuple[int, int] | None,
              params: Mapping[str, Any]) -> list[Crop]:
        """Samples to cut from one item, given decoded sizes; CorruptInput if the pair does not fit."""
        raise NotImplementedError

    def member_specs(self, params: Mapping[str, Any]) -> tuple[MemberSpec, ...]:
        """The named members of a sample (matting adapters); empty for GT/LQ adapters."""
        return ()

    def extra_members(self, item: SourceItem, crop: Crop, storage: Storage,
                      params: Mapping[str, Any]) -> dict[str, bytes]:
        """Non-image members a GT/LQ sample carries besides its images (``celeba_hq``'s
        landmarks); none by default."""
        return {}

    def check_member(self, name: str, img, params: Mapping[str, Any]):
        """Hook for member adapters: ``(img, notes)`` to store for member ``name``, or
        CorruptInput (quarantine) when its pixels cannot be used. Default: unchanged."""
        return img, []


class ImageFolderAdapter(Adapter):
    """Every image under the root, GT only, cut into sub-images."""

    image_codecs = True

    name = "image_folder"
    defaults = {"crop_size": 480, "step": 240, "thresh_size": 0, "crop": True}

    def list_items(self, storage, params):
        images = _list_images(storage, "", self.name, "image")
        ids = _assign_ids([o.key for o in images])
        return sorted(SourceItem(ids[o.key], o.key, None, o.fingerprint) for o in images)

    def crops(self, item, gt_hw, lq_hw, params):
        h, w = gt_hw
        if not params["crop"]:
            return [Crop(item.item_id, (0, 0, h, w))]
        boxes = sub_image_boxes(h, w, params["crop_size"], params["step"], params["thresh_size"])
        return [Crop(sub_image_key(item.item_id, i), box) for i, box in enumerate(boxes, 1)]


def _paired_crops(item, gt_hw, lq_hw, scale, boxes, keys) -> list[Crop]:
    if lq_hw is None:
        raise CorruptInput(f"no LQ image for {item.gt_key}")
    if (lq_hw[0] * scale, lq_hw[1] * scale) != tuple(gt_hw):
        raise CorruptInput(f"LQ size {lq_hw[0]}x{lq_hw[1]} x{scale} != GT size {gt_hw[0]}x{gt_hw[1]}")
    return [Crop(k, b, scale_box(b, scale)) for k, b in zip(keys, boxes)]


class _PairedAdapter(Adapter):
    """GT folder + LQ folder matched by relative path and stem."""

    image_codecs = True

    lq_suffix_template = ""  # e.g. "x{scale}" for DIV2K's 0001x4.png

    def resolve_params(self, params=None):
        resolved = super().resolve_params(params)
        scale = resolved["scale"]
        for name in ("crop_size", "step"):
            if name in resolved and resolved[name] % scale:
                raise AdapterError(f"{self.name}: {name}={resolved[name]} is not divisible by scale={scale}")
        return resolved

    def list_items(self, storage, params):
        gt_dir, lq_dir = params["gt_dir"], params["lq_dir"]
        gts = _list_images(storage, gt_dir, self.name, "GT")
        lqs = _list_images(storage, lq_dir, self.name, "LQ")
        suffix = self.lq_suffix_template.format(scale=params["scale"])
        lq_by_stem: dict[str, ObjectInfo] = {}
        for o in lqs:
            stem = _split_ext(o.key[len(lq_dir) + 1:] if lq_dir else o.key)[0]
            if suffix and stem.endswith(suffix):
                stem = stem[: -len(suffix)]
            lq_by_stem.setdefault(stem, o)  # sorted listing: .jpg before .png etc.; first wins
        rel = {o.key: (o.key[len(gt_dir) + 1:] if gt_dir else o.key) for o in gts}
        ids = _assign_ids(list(rel.values()))
        items = []
        for o in gts:
            lq = lq_by_stem.get(_split_ext(rel[o.key])[0])
            items.append(SourceItem(ids[rel[o.key]], o.key, lq.key if lq else None, o.fingerprint,
                                    lq.fingerprint if lq else ""))
        return sorted(items)


class Div2kAdapter(_PairedAdapter):
    """DIV2K / DF2K style: HR folder + bicubic LR folder, cut into aligned sub-images."""

    name = "div2k"
    paired = True
    lq_suffix_template = "x{scale}"
    defaults = {
        "crop_size": 480,
        "step": 240,
        "thresh_size": 0,
        "scale": 4,
        "gt_dir": "DIV2K_train_HR",
        "lq_dir": "DIV2K_train_LR_bicubic/X{scale}",
    }

    def crops(self, item, gt_hw, lq_hw, params):
        boxes = sub_image_boxes(gt_hw[0], gt_hw[1], params["crop_size"], params["step"], params["thresh_size"])
        keys = [sub_image_key(item.item_id, i) for i in range(1, len(boxes) + 1)]
        return _paired_crops(item, gt_hw, lq_hw, params["scale"], boxes, keys)


class Set514Adapter(_PairedAdapter):
    """Set5 / Set14 evaluation layout (GTmod12 + LRbicx{scale}); whole images."""

    name = "set5_14"
    paired = True
    defaults = {"scale": 4, "gt_dir": "GTmod12", "lq_dir": "LRbicx{scale}"}

    def crops(self, item, gt_hw, lq_hw, params):
        return _paired_crops(item, gt_hw, lq_hw, params["scale"], [(0, 0, gt_hw[0], gt_hw[1])], [item.item_id])


# ----------------------------------------------------------------------------- matting
SPLITS = ("train", "test")
_TRAIN_MEMBERS = (MemberSpec(FG), MemberSpec(ALPHA, grey=True))
_TEST_MEMBERS = (MemberSpec(MERGED), MemberSpec(ALPHA, grey=True), MemberSpec(TRIMAP, grey=True),
                 MemberSpec(FG, required=False), MemberSpec(BG, required=False))
_MEMBER_OF_FIELD = {"merged_path": MERGED, "alpha_path": ALPHA, "trimap_path": TRIMAP, "fg_path": FG,
                    "bg_path": BG}


def _stem_map(objects: list[ObjectInfo], folder: str) -> dict[str, ObjectInfo]:
    """Relative stem (path under ``folder`` without extension) -> object; first in sort order wins."""
    prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
    out: dict[str, ObjectInfo] = {}
    for o in objects:
        out.setdefault(_split_ext(o.key[len(prefix):])[0], o)
    return out


def _images_or_empty(storage: Storage, folder: str) -> list[ObjectInfo]:
    prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
    return [o for o in storage.list(prefix) if _is_image(o.key)]


def _member_row(spec: MemberSpec, obj: ObjectInfo | str | None, fingerprints: Mapping[str, str]):
    if obj is None:
        return (spec.name, None, "")
    if isinstance(obj, str):
        return (spec.name, obj, fingerprints.get(obj, ""))
    return (spec.name, obj.key, obj.fingerprint)


def _matting_item(item_id: str, specs, found: Mapping[str, ObjectInfo | str | None],
                  fingerprints: Mapping[str, str] = {}) -> SourceItem:
    """An item with one member row per spec (absent optional members left out, absent
    required ones kept with a None key so the shard builder quarantines the item)."""
    rows = tuple(_member_row(sp, found.get(sp.name), fingerprints) for sp in specs
                 if sp.required or found.get(sp.name) is not None)
    main = next(((k, f) for _n, k, f in rows if k is not None), ("", ""))
    return SourceItem(item_id, main[0], None, main[1], "", rows)


def _unique_ids(names: list[tuple[str, str]]) -> list[str]:
    """Sample keys from (short name, qualified name) pairs: the short one where it is
    unique, else the qualified one; AdapterError if those still collide."""
    short = [sanitize_key(a) for a, _ in names]
    counts = {k: short.count(k) for k in set(short)}
    ids = [k if counts[k] == 1 else sanitize_key(q) for k, (_, q) in zip(short, names)]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise AdapterError(f"files map to the same sample keys {dup}")
    return ids


class _MattingAdapter(Adapter):
    """Shared parameter checks and member specs of the matting adapters.

    ``png_compression`` (default 3, as every restoray shard) is the zlib level of the PNG
    members. Matting training decodes whole foregrounds and backgrounds per sample and spends
    most of its time in PNG decoding; level 0 (stored, ~1.7x the bytes) decodes about twice
    as fast, for sets read by CPU-bound samplers from fast storage.
    """

    def resolve_params(self, params=None):
        resolved = super().resolve_params(params)
        if resolved["split"] not in SPLITS:
            raise AdapterError(f"{self.name}: split must be one of {list(SPLITS)}, got {resolved['split']!r}")
        level = resolved["png_compression"]
        if not isinstance(level, int) or isinstance(level, bool) or not 0 <= level <= 9:
            raise AdapterError(f"{self.name}: png_compression must be an integer 0-9, got {level!r}")
        for name, value in resolved.items():
            if name.endswith("_dir") or name == "ann_file":
                if not isinstance(value, str):
                    raise AdapterError(f"{self.name}: {name} must be a string, got {value!r}")
                resolved[name] = value.strip("/")
        return resolved

    def member_specs(self, params):
        return _TRAIN_MEMBERS if params["split"] == "train" else _TEST_MEMBERS

    def crops(self, item, gt_hw, lq_hw, params):
        return [Crop(item.item_id, (0, 0, gt_hw[0], gt_hw[1]))]


class MattingFolderAdapter(_MattingAdapter):
    """Generic matting folders, paired by relative path stem (``fg/a/x.jpg`` <-> ``alpha/a/x.png``).

    ``split: train``: one sample per file in ``fg_dir`` with its alpha from ``alpha_dir``.
    ``split: test``: one sample per file in ``merged_dir`` with alpha and trimap, plus fg
    and bg when those folders hold a file of that stem. A file of the main folder whose
    required partner is missing becomes an item with that member absent, which the shard
    builder quarantines (named in quarantine.json); a partner without a main file is
    ignored.
    """

    name = "matting_folder"
    defaults = {"split": "train", "fg_dir": "fg", "alpha_dir": "alpha", "merged_dir": "merged",
                "trimap_dir": "trimap", "bg_dir": "bg", "png_compression": 3}

    def list_items(self, storage, params):
        specs = self.member_specs(params)
        folders = {FG: params["fg_dir"], ALPHA: params["alpha_dir"], MERGED: params["merged_dir"],
                   TRIMAP: params["trimap_dir"], BG: params["bg_dir"]}
        main = specs[0].name
        by_member = {main: _stem_map(_list_images(storage, folders[main], self.name, main.split(".")[0]),
                                     folders[main])}
        for sp in specs[1:]:
            if sp.required:
                objs = _list_images(storage, folders[sp.name], self.name, sp.name.split(".")[0])
            else:
                objs = _images_or_empty(storage, folders[sp.name])
            by_member[sp.name] = _stem_map(objs, folders[sp.name])
        stems = sorted(by_member[main])
        ids = _unique_ids([(s, s) for s in stems])
        return sorted(_matting_item(i, specs, {m: objs.get(s) for m, objs in by_member.items()})
                      for i, s in zip(ids, stems))


class Comp1kAdapter(_MattingAdapter):
    """Adobe Composition-1k, laid out as MMEditing's ``preprocess_comp1k_dataset.py`` leaves it.

    The root is MMEditing's ``data/adobe_composition-1k`` (holding ``Training_set/`` and
    ``Test_set/``) or the folder above the archive's ``Combined_Dataset/``::

        Training_set/{Adobe-licensed images,Other}/{fg,alpha}/<name>
        Test_set/Adobe-licensed images/{fg,alpha}/<name>
        Test_set/Adobe-licensed images/trimaps/<name>_<i>.png
        Test_set/merged/<name>_<i>.png      Test_set/bg/<name>_<i>.png   (the preprocessing's output)
        training_list.json  test_list.json  (the preprocessing's annotation files)

    ``split: train`` makes one ``fg`` + ``alpha`` sample per training foreground (431 in
    Comp-1k): backgrounds are composited on the fly at training time, so the offline
    ``merged``/``bg`` of the training list are not sharded. ``split: test`` makes one
    ``merged`` + ``alpha`` + ``trimap`` [+ ``fg`` + ``bg``] sample per composite (1000).

    With ``ann_file: auto`` (default) the split's annotation file (``training_list.json`` /
    ``test_list.json``, list of ``{"alpha_path", "fg_path", "bg_path", "merged_path",
    "trimap_path"}`` relative to the root) is the source of truth when it exists; otherwise
    the folders are scanned (alpha paired with fg by file name; test alpha/fg named by the
    composite's name without its ``_<i>`` suffix, as the preprocessing names them).
    ``ann_file: ""`` always scans; any other value names the file (it must exist).
    """

    name = "comp1k"
    defaults = {"split": "train", "ann_file": "auto", "png_compression": 3}
    TRAIN_GROUPS = ("Adobe-licensed images", "Other")
    _ANN = {"train": "training_list.json", "test": "test_list.json"}
    _SUFFIX = re.compile(r"_\d+$")

    def _root(self, storage: Storage) -> str:
        """'' or 'Combined_Dataset/': where Training_set/ and Test_set/ live."""
        for prefix in ("", "Combined_Dataset/"):
            if storage.list(f"{prefix}Training_set/") or storage.list(f"{prefix}Test_set/"):
                return prefix
        raise AdapterError(f"{self.name}: no Training_set/ or Test_set/ folder under {storage.uri()} "
                           "(nor under Combined_Dataset/)")

    def list_items(self, storage, params):
        root = self._root(storage)
        ann = params["ann_file"]
        if ann == "auto":
            ann = f"{root}{self._ANN[params['split']]}"
            if not storage.exists(ann):
                ann = ""
        if ann:
            return self._from_annotations(storage, ann, root, params)
        if params["split"] == "train":
            return self._scan_train(storage, root)
        return self._scan_test(storage, root)

    def _from_annotations(self, storage, ann, root, params):
        try:
            entries = json.loads(storage.read_bytes(ann))
        except FileNotFoundError:
            raise AdapterError(f"{self.name}: annotation file {storage.uri(ann)} does not exist") from None
        except ValueError as exc:
            raise AdapterError(f"{self.name}: {storage.uri(ann)} is not valid JSON ({exc})") from None
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise AdapterError(f"{self.name}: {storage.uri(ann)} must hold a JSON list of objects")
        specs = self.member_specs(params)
        listing = {o.key: o.fingerprint for o in storage.list(root)}
        main = specs[0].name
        rows: list[tuple[str, dict[str, str | None]]] = []
        seen: set[str] = set()
        for n, entry in enumerate(entries):
            if not entry.get(_field(main)):
                raise AdapterError(f"{self.name}: entry {n} of {storage.uri(ann)} has no {_field(main)!r}")
            found: dict[str, str | None] = {}
            for sp in specs:
                rel = entry.get(_field(sp.name))
                if not rel:
                    continue
                key = f"{root}{str(rel).lstrip('/')}"
                # A listed required file that is missing stays (the builder quarantines the sample
                # naming it); a missing optional one (fg/bg of a test composite) is left out.
                if sp.required or key in listing:
                    found[sp.name] = key
            if params["split"] == "train" and found[main] in seen:
                continue  # the training list repeats each foreground once per background
            seen.add(found[main])
            rows.append((found[main], found))
        names = [(_split_ext(k.rpartition("/")[2])[0], _split_ext(k[len(root):])[0]) for k, _ in rows]
        ids = _unique_ids(names)
        return sorted(_matting_item(i, specs, found, listing) for i, (_k, found) in zip(ids, rows))

    def _scan_train(self, storage, root):
        specs = _TRAIN_MEMBERS
        rows = []
        for group in self.TRAIN_GROUPS:
            base = f"{root}Training_set/{group}"
            fgs = _stem_map(_images_or_empty(storage, f"{base}/fg"), f"{base}/fg")
            alphas = _stem_map(_images_or_empty(storage, f"{base}/alpha"), f"{base}/alpha")
            for stem in sorted(set(fgs) | set(alphas)):
                rows.append(((stem, f"{group}/{stem}"), {FG: fgs.get(stem), ALPHA: alphas.get(stem)}))
        if not rows:
            raise AdapterError(f"{self.name}: no training images under "
                               f"{storage.uri(f'{root}Training_set')}/{{{','.join(self.TRAIN_GROUPS)}}}/fg")
        ids = _unique_ids([n for n, _ in rows])
        return sorted(_matting_item(i, specs, found) for i, (_n, found) in zip(ids, rows))

    def _scan_test(self, storage, root):
        specs = _TEST_MEMBERS
        adobe = f"{root}Test_set/Adobe-licensed images"
        merged = _stem_map(_list_images(storage, f"{root}Test_set/merged", self.name,
                                        "composite (run MMEditing's preprocess_comp1k_dataset.py first)"),
                           f"{root}Test_set/merged")
        trimaps = _stem_map(_images_or_empty(storage, f"{adobe}/trimaps"), f"{adobe}/trimaps")
        alphas = _stem_map(_images_or_empty(storage, f"{adobe}/alpha"), f"{adobe}/alpha")
        fgs = _stem_map(_images_or_empty(storage, f"{adobe}/fg"), f"{adobe}/fg")
        bgs = _stem_map(_images_or_empty(storage, f"{root}Test_set/bg"), f"{root}Test_set/bg")
        stems = sorted(merged)
        ids = _unique_ids([(s, s) for s in stems])
        items = []
        for item_id, stem in zip(ids, stems):
            base = self._SUFFIX.sub("", stem)
            found = {MERGED: merged[stem], TRIMAP: trimaps.get(stem), ALPHA: alphas.get(base),
                     FG: fgs.get(base), BG: bgs.get(stem)}
            items.append(_matting_item(item_id, specs, found))
        return sorted(items)


def _field(member: str) -> str:
    return {m: f for f, m in _MEMBER_OF_FIELD.items()}[member]


# ----------------------------------------------------------------------------- inpainting
def _read_list(storage: Storage, ann: str, adapter: str) -> list[str]:
    """The first token of every non-empty line of an MMEditing image/mask list file."""
    try:
        text = storage.read_bytes(ann).decode("utf-8")
    except FileNotFoundError:
        raise AdapterError(f"{adapter}: list file {storage.uri(ann)} does not exist") from None
    except UnicodeDecodeError:
        raise AdapterError(f"{adapter}: list file {storage.uri(ann)} is not UTF-8 text") from None
    names = [line.split()[0] for line in text.splitlines() if line.strip()]
    if not names:
        raise AdapterError(f"{adapter}: list file {storage.uri(ann)} names no files")
    return names


def _resolve_listed(names: list[str], listing: Mapping[str, str], bases: tuple[str, ...]) -> list[tuple[str, str]]:
    """``(relative name, storage key)`` per listed name: the first of ``<base>/<name>`` that
    exists, trying each base in order; a name found under none keeps its first candidate (the
    shard builder then quarantines it as not found)."""
    out, seen = [], set()
    for name in names:
        rel = name.lstrip("/")
        candidates = [f"{b}/{rel}" if b else rel for b in bases]
        key = next((c for c in candidates if c in listing), candidates[0])
        if key not in seen:  # a list naming one file twice makes one sample
            seen.add(key)
            out.append((rel, key))
    return out


class _ListedImagesAdapter(Adapter):
    """Whole images of one split, from MMEditing's image list when there is one, else a scan.

    ``split`` picks the image folder and the list file. With ``ann_file: auto`` (default) the
    first of the split's known list names that exists (at the root or under ``meta/``) is the
    source of truth: its lines' first tokens are paths, tried relative to the root first and
    then to the split's image folder (MMEditing's lists are relative to ``data_prefix``, the
    official Places365 lists to ``data_large``/``val_large``); a listed file that exists under
    neither is quarantined ("file not found"). Without a list the image folder is scanned
    (recursively). ``ann_file: ""`` always scans; any other value names the list file (it must
    exist). ``image_dir: auto`` is the split's usual folder. Samples are keyed by the path
    under the image folder without extension (``a/airfield/00000001.jpg`` ->
    ``a_airfield_00000001``) and stored as ``gt.png`` (PNG level ``png_compression``).
    """

    image_codecs = True

    SPLITS: dict[str, tuple[str, tuple[str, ...]]] = {}  # split -> (image folder, list file names)
    defaults = {"split": "train", "ann_file": "auto", "image_dir": "auto", "png_compression": 3}

    def resolve_params(self, params=None):
        resolved = super().resolve_params(params)
        if resolved["split"] not in self.SPLITS:
            raise AdapterError(f"{self.name}: split must be one of {list(self.SPLITS)}, got {resolved['split']!r}")
        for name in ("ann_file", "image_dir"):
            if not isinstance(resolved[name], str):
                raise AdapterError(f"{self.name}: {name} must be a string, got {resolved[name]!r}")
            resolved[name] = resolved[name].strip("/")
        level = resolved["png_compression"]
        if not isinstance(level, int) or isinstance(level, bool) or not 0 <= level <= 9:
            raise AdapterError(f"{self.name}: png_compression must be an integer 0-9, got {level!r}")
        if resolved["image_dir"] == "auto":
            resolved["image_dir"] = self.SPLITS[resolved["split"]][0]
        return resolved

    def _ann(self, storage: Storage, params) -> str:
        ann = params["ann_file"]
        if ann != "auto":
            return ann
        for name in self.SPLITS[params["split"]][1]:
            for cand in (name, f"meta/{name}"):
                if storage.exists(cand):
                    return cand
        return ""

    def list_items(self, storage, params):
        image_dir = params["image_dir"]
        ann = self._ann(storage, params)
        if not ann:
            images = _list_images(storage, image_dir, self.name, f"{params['split']} image")
            prefix = f"{image_dir}/" if image_dir else ""
            rel = {o.key: o.key[len(prefix):] for o in images}
            ids = _assign_ids(list(rel.values()))
            return sorted(SourceItem(ids[rel[o.key]], o.key, None, o.fingerprint) for o in images)
        return self._listed_items(storage, _read_list(storage, ann, self.name), params)

    def _listed_items(self, storage: Storage, names: list[str], params,
                      extra_fingerprint: Mapping[str, str] = {}) -> list[SourceItem]:
        """Items for the listed ``names`` (relative to the root, then to the image folder);
        ``extra_fingerprint`` (listed name -> text) goes in the item's second fingerprint, so
        a re-run rebuilds a shard whose non-image data changed."""
        image_dir = params["image_dir"]
        listing = {o.key: o.fingerprint for o in storage.list("")}
        rows = _resolve_listed(names, listing, ("", image_dir) if image_dir else ("",))
        prefix = f"{image_dir}/" if image_dir else ""
        rels = [k[len(prefix):] if prefix and k.startswith(prefix) else rel for rel, k in rows]
        ids = _assign_ids(rels)
        return sorted(SourceItem(ids[r], k, None, listing.get(k, ""), extra_fingerprint.get(rel, ""))
                      for r, (rel, k) in zip(rels, rows))

    def crops(self, item, gt_hw, lq_hw, params):
        return [Crop(item.item_id, (0, 0, gt_hw[0], gt_hw[1]))]


class Places365Adapter(_ListedImagesAdapter):
    """Places365-Standard as MMEditing's inpainting configs read it (``data/places365``).

    ``split: train``: ``data_large/`` with ``train_places_img_list_total.txt`` (DeepFill v1/v2,
    Global&Local, PConv) or ``train_places_img_list.txt`` (AOT-GAN), else the official
    ``places365_train_standard.txt``; ``split: val``: ``val_large/`` with
    ``val_places_img_list.txt`` or ``places365_val.txt``.
    """

    name = "places365"
    SPLITS = {
        "train": ("data_large", ("train_places_img_list_total.txt", "train_places_img_list.txt",
                                 "places365_train_standard.txt")),
        "val": ("val_large", ("val_places_img_list.txt", "places365_val.txt")),
    }


class CelebAHQAdapter(_ListedImagesAdapter):
    """CelebA-HQ at 256 px as MMEditing's inpainting configs read it (``data/CelebA-HQ``).

    ``split: train``: ``train_256/`` with ``train_celeba_img_list.txt``; ``split: val``:
    ``test_256/`` with ``val_celeba_img_list.txt`` (the configs' val and test sets).

    ``landmarks`` (DIC's face SR training set, ``data/celeba-hq/train`` with
    ``train_info_list_256.npy`` in the zoo config) names a facial-landmark file; the images it
    lists are the samples (``ann_file`` is then not read) and each carries its points as a
    ``landmarks.json`` member (:data:`preprocessing.schema.LANDMARKS`). Two formats:

    * JSON (``.json``): ``{"<image path>": [[x, y], ...], ...}`` with 68 ``[x, y]`` pairs per
      image (the iBUG 300-W order DIC's attention groups by: 0-26 silhouette, 27-35 nose,
      36-41 and 42-47 eyes, 48-67 mouth);
    * MMEditing's ``.npy`` (``SRFacialLandmarkDataset``): a pickled array of dicts with
      ``gt_path`` and ``landmark`` (68 x 2); loading it unpickles, so only use files you trust.

    Image paths are relative to the root, then to ``image_dir``; coordinates are pixels of the
    image file as stored (x right, y down). A landmark detector's output for a folder of faces
    (e.g. face-alignment's 68-point 2D model) written as the JSON above is a valid file. An
    image with another number of points, or non-finite ones, stops the listing with one line
    naming the file and the image.
    """

    name = "celeba_hq"
    SPLITS = {
        "train": ("train_256", ("train_celeba_img_list.txt",)),
        "val": ("test_256", ("val_celeba_img_list.txt",)),
        # GLEAN's evaluation set: the 1024 px faces ``GT/`` listed in meta_info_CelebAHQ_val100_GT.txt
        # (the zoo reads pre-made ``BIx8_down``/``BIx16_down`` LR; the SR sampler makes the same
        # MATLAB-bicubic, 8-bit LR from the GT)
        "glean_val": ("GT", ("meta_info_CelebAHQ_val100_GT.txt",)),
    }
    defaults = {**_ListedImagesAdapter.defaults, "landmarks": ""}
    NUM_POINTS = 68

    def __init__(self) -> None:
        self._tables: dict[str, dict[str, np.ndarray]] = {}  # landmark file uri -> parsed table

    def resolve_params(self, params=None):
        resolved = super().resolve_params(params)
        if not isinstance(resolved["landmarks"], str):
            raise AdapterError(f"{self.name}: landmarks must be a file path (string), got {resolved['landmarks']!r}")
        resolved["landmarks"] = resolved["landmarks"].strip("/")
        return resolved

    def landmark_table(self, storage: Storage, params, fresh: bool = False) -> dict[str, np.ndarray]:
        """Image path (as the file writes it, without a leading slash) -> ``[68, 2]`` float32 (x, y).

        Parsed tables are kept per file URI for the shard tasks (one read per worker, not per
        image); ``fresh`` re-reads the file (listing always does, and a task does when an item's
        digest says the file changed since the plan)."""
        uri = storage.uri(params["landmarks"])
        if fresh or uri not in self._tables:
            try:
                data = storage.read_bytes(params["landmarks"])
            except FileNotFoundError:
                raise AdapterError(f"{self.name}: landmarks file {uri} does not exist") from None
            self._tables[uri] = parse_landmarks(data, uri, self.name, self.NUM_POINTS)
        return self._tables[uri]

    def list_items(self, storage, params):
        if not params["landmarks"]:
            return super().list_items(storage, params)
        table = self.landmark_table(storage, params, fresh=True)
        return self._listed_items(storage, list(table), params, {n: _landmark_digest(p) for n, p in table.items()})

    def _points(self, item: SourceItem, storage: Storage, params, fresh: bool) -> np.ndarray | None:
        table = self.landmark_table(storage, params, fresh=fresh)
        prefix = f"{params['image_dir']}/" if params["image_dir"] else ""
        rel = item.gt_key[len(prefix):] if prefix and item.gt_key.startswith(prefix) else item.gt_key
        return table.get(item.gt_key, table.get(rel))

    def extra_members(self, item, crop, storage, params):
        if not params["landmarks"]:
            return {}
        points = self._points(item, storage, params, fresh=False)
        if points is None or _landmark_digest(points) != item.lq_fingerprint:
            points = self._points(item, storage, params, fresh=True)  # the file changed: read it again
        if points is None or _landmark_digest(points) != item.lq_fingerprint:
            raise AdapterError(f"{self.name}: landmarks of {item.gt_key} in {storage.uri(params['landmarks'])} "
                               "changed while sharding; run the shard job again")
        y, x, h, w = crop.box
        shifted = points - np.asarray([x, y], dtype=np.float32)
        return {LANDMARKS: json.dumps({"points": shifted.tolist(), "image_size": [h, w]}).encode()}


def _landmark_digest(points: np.ndarray) -> str:
    return "landmarks:" + hashlib.sha1(np.ascontiguousarray(points, dtype=np.float32).tobytes()).hexdigest()[:16]


def parse_landmarks(data: bytes, uri: str, adapter: str, num_points: int = 68) -> dict[str, np.ndarray]:
    """A landmark file (JSON mapping or MMEditing ``.npy``, see :class:`CelebAHQAdapter`) ->
    image path -> ``[num_points, 2]`` float32; AdapterError (one line, naming the file and the
    image) for anything else."""
    if uri.lower().endswith(".npy"):
        try:
            rows = np.load(io.BytesIO(data), allow_pickle=True)
            raw = {str(r["gt_path"]): r["landmark"] for r in rows}
        except Exception as err:  # numpy/pickle raise many kinds for a bad file
            raise AdapterError(f"{adapter}: landmarks file {uri} is not MMEditing's list of "
                               f"{{gt_path, landmark}} dicts ({type(err).__name__})") from None
    else:
        try:
            raw = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise AdapterError(f"{adapter}: landmarks file {uri} is not JSON") from None
        if not isinstance(raw, dict):
            raise AdapterError(f"{adapter}: landmarks file {uri} must map image paths to point lists")
    if not raw:
        raise AdapterError(f"{adapter}: landmarks file {uri} names no images")
    table = {}
    for name, value in raw.items():
        try:
            points = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError):
            points = np.zeros((0, 0), np.float32)
        if points.ndim != 2 or points.shape[1] != 2:
            raise AdapterError(f"{adapter}: landmarks file {uri}: image {name}: expected {num_points} [x, y] "
                               f"pairs, got an array of shape {list(points.shape)}")
        if len(points) != num_points:
            raise AdapterError(f"{adapter}: landmarks file {uri}: image {name} has {len(points)} points, "
                               f"expected {num_points}")
        if not np.isfinite(points).all():
            raise AdapterError(f"{adapter}: landmarks file {uri}: image {name} has non-finite coordinates")
        table[str(name).lstrip("/")] = points
    return table


class FFHQAdapter(_ListedImagesAdapter):
    """FFHQ at 1024 px as MMEditing's GLEAN configs read it: ``data/FFHQ/GT`` with
    ``meta_info_FFHQ_GT.txt`` (``glean_ffhq_16x``); without the list every image under ``GT/``
    (``glean_in128out1024_4x2_300k_ffhq_celebahq`` scans ``data/FFHQ_CelebAHQ/GT``, FFHQ and
    CelebA-HQ less its val100 faces in one folder). Whole images, GT only."""

    name = "ffhq"
    SPLITS = {"train": ("GT", ("meta_info_FFHQ_GT.txt",))}


class LSUNCatAdapter(_ListedImagesAdapter):
    """The LSUN-cat faces of GLEAN's cat configs: ``data/cat_train/GT`` with
    ``meta_info_LSUNcat_GT.txt`` (``split: train``), ``data/cat_test/GT`` with
    ``meta_info_Cat100_GT.txt`` (``split: test``); 256 px, whole images, GT only."""

    name = "lsun_cat"
    SPLITS = {"train": ("GT", ("meta_info_LSUNcat_GT.txt",)), "test": ("GT", ("meta_info_Cat100_GT.txt",))}


class MaskFolderAdapter(Adapter):
    """A set of inpainting hole masks: one 1-channel ``mask.png`` per image file, 255 = hole.

    Every image under ``mask_dir`` ('' = the root; recursive), or, with ``ann_file``, the files
    an MMEditing mask list names (AOT-GAN's ``train_places_mask_list.txt``,
    ``mask_0.5-0.6_list.txt``; first token of each line, relative to the root, then to
    ``mask_dir``). A mask is read as grey (a colour file whose channels differ is quarantined)
    and must be binary, {0, 255} (or {0, 1}, stored as {0, 255}); ``binarize: true`` instead
    applies MMEditing's ``LoadMask`` rule (any value > 0 is a hole, noted). ``invert: true``
    is for sets that mark holes black. A mask with no hole or no valid pixel is quarantined
    unless ``allow_empty`` / ``allow_full``. Samples keep their size (the sampler resizes).
    """

    name = "mask_folder"
    defaults = {"mask_dir": "", "ann_file": "", "binarize": False, "invert": False, "allow_empty": False,
                "allow_full": False, "png_compression": 3}
    _SPECS = (MemberSpec(MASK, grey=True),)

    def resolve_params(self, params=None):
        resolved = super().resolve_params(params)
        for name in ("mask_dir", "ann_file"):
            if not isinstance(resolved[name], str):
                raise AdapterError(f"{self.name}: {name} must be a string, got {resolved[name]!r}")
            resolved[name] = resolved[name].strip("/")
        for name in ("binarize", "invert", "allow_empty", "allow_full"):
            if not isinstance(resolved[name], bool):
                raise AdapterError(f"{self.name}: {name} must be true or false, got {resolved[name]!r}")
        level = resolved["png_compression"]
        if not isinstance(level, int) or isinstance(level, bool) or not 0 <= level <= 9:
            raise AdapterError(f"{self.name}: png_compression must be an integer 0-9, got {level!r}")
        return resolved

    def member_specs(self, params):
        return self._SPECS

    def list_items(self, storage, params):
        mask_dir, ann = params["mask_dir"], params["ann_file"]
        prefix = f"{mask_dir}/" if mask_dir else ""
        if ann:
            listing = {o.key: o.fingerprint for o in storage.list("")}
            rows = _resolve_listed(_read_list(storage, ann, self.name), listing, ("", mask_dir) if mask_dir else ("",))
            keys = [(k[len(prefix):] if prefix and k.startswith(prefix) else rel, k, listing.get(k, ""))
                    for rel, k in rows]
        else:
            keys = [(o.key[len(prefix):], o.key, o.fingerprint)
                    for o in _list_images(storage, mask_dir, self.name, "mask")]
        ids = _assign_ids([r for r, _k, _f in keys])
        return sorted(SourceItem(ids[r], k, None, f, "", ((MASK, k, f),)) for r, k, f in keys)

    def crops(self, item, gt_hw, lq_hw, params):
        return [Crop(item.item_id, (0, 0, gt_hw[0], gt_hw[1]))]

    def check_member(self, name, img, params):
        notes = []
        values = np.unique(img)
        if not (set(values.tolist()) <= {0, 255} or set(values.tolist()) <= {0, 1}):
            if not params["binarize"]:
                shown = ", ".join(str(v) for v in values[:6]) + (", ..." if len(values) > 6 else "")
                raise CorruptInput(f"not a binary mask (values {shown}; expected 0 and 255, or set binarize: true)")
            notes.append("binarized (> 0 is a hole)")
        hole = img > 0
        if params["invert"]:
            hole = ~hole
            notes.append("inverted")
        if not hole.any() and not params["allow_empty"]:
            raise CorruptInput("mask has no hole pixel (all valid; allow_empty: true keeps it)")
        if hole.all() and not params["allow_full"]:
            raise CorruptInput("mask is all hole (allow_full: true keeps it)")
        return hole.astype(np.uint8) * 255, notes


# ----------------------------------------------------------------------------- reference-based SR
_CUFED_MEMBERS = (MemberSpec(GT), MemberSpec(REF))
_CUFED5_NAME = re.compile(r"^(\d+)_(\d+)$")


class CufedAdapter(Adapter):
    """CUFED (TTSR's training set) and CUFED5 (its evaluation set): a GT and its reference image.

    ``split: train``: one sample per image in ``input_dir`` (default ``input``) with the reference
    of the same file stem in ``ref_dir`` (``ref``), mmedit's ``SRFolderRefDataset`` pairing.
    ``split: test``: CUFED5 as published, 126 groups in ``cufed5_dir`` ('' = the root):
    ``<id>_0.png`` is the GT and ``<id>_<ref_level>.png`` (1 = most similar .. 5) the reference;
    a shard set holds one reference level, so each level the tables report is its own set.
    A GT whose reference is missing is quarantined, named (``no ref file found for <file>``).
    The reference keeps its own size (the sampler fits it to the GT, as mmedit's ``CropLike``).
    """

    name = "cufed"
    same_size_members = False
    defaults = {"split": "train", "input_dir": "input", "ref_dir": "ref", "cufed5_dir": "", "ref_level": 1,
                "png_compression": 3}

    def resolve_params(self, params=None):
        resolved = super().resolve_params(params)
        if resolved["split"] not in SPLITS:
            raise AdapterError(f"{self.name}: split must be one of {list(SPLITS)}, got {resolved['split']!r}")
        level = resolved["ref_level"]
        if not isinstance(level, int) or isinstance(level, bool) or not 1 <= level <= 5:
            raise AdapterError(f"{self.name}: ref_level must be an integer 1-5 (CUFED5's similarity levels), got {level!r}")
        for name in ("input_dir", "ref_dir", "cufed5_dir"):
            if not isinstance(resolved[name], str):
                raise AdapterError(f"{self.name}: {name} must be a string, got {resolved[name]!r}")
            resolved[name] = resolved[name].strip("/")
        level = resolved["png_compression"]
        if not isinstance(level, int) or isinstance(level, bool) or not 0 <= level <= 9:
            raise AdapterError(f"{self.name}: png_compression must be an integer 0-9, got {level!r}")
        return resolved

    def member_specs(self, params):
        return _CUFED_MEMBERS

    def list_items(self, storage, params):
        if params["split"] == "train":
            gts = _stem_map(_list_images(storage, params["input_dir"], self.name, "input (GT)"), params["input_dir"])
            refs = _stem_map(_images_or_empty(storage, params["ref_dir"]), params["ref_dir"])
            rows = [(stem, gts[stem], refs.get(stem)) for stem in sorted(gts)]
        else:
            folder = params["cufed5_dir"]
            found = _stem_map(_list_images(storage, folder, self.name, "CUFED5"), folder)
            groups: dict[str, dict[int, ObjectInfo]] = {}
            for stem, obj in found.items():
                m = _CUFED5_NAME.match(stem.rpartition("/")[2])
                if m:
                    groups.setdefault(stem[: len(stem) - len(m.group(2)) - 1], {})[int(m.group(2))] = obj
            rows = [(gid, g[0], g.get(params["ref_level"])) for gid, g in sorted(groups.items()) if 0 in g]
            if not rows:
                raise AdapterError(f"{self.name}: no CUFED5 GT images (<id>_0.png) under {storage.uri(folder)}")
        ids = _unique_ids([(stem.rpartition("/")[2], stem) for stem, _g, _r in rows])
        return sorted(_matting_item(i, _CUFED_MEMBERS, {GT: gt, REF: ref}) for i, (_s, gt, ref) in zip(ids, rows))

    def crops(self, item, gt_hw, lq_hw, params):
        return [Crop(item.item_id, (0, 0, gt_hw[0], gt_hw[1]))]


# Video adapters live in their own module, which builds on the classes above; imported here,
# after them, so this dict stays the one registry (preprocessing/__init__.py imports this module
# first, so importing preprocessing.video_adapters directly works too).
from .video_adapters import (  # noqa: E402
    RedsAdapter, Udm10Adapter, Vid4Adapter, VideoFilesAdapter, VideoLQAdapter, Vimeo90kAdapter,
)

ADAPTERS: dict[str, Adapter] = {
    "image_folder": ImageFolderAdapter(),
    "div2k": Div2kAdapter(),
    "set5_14": Set514Adapter(),
    "comp1k": Comp1kAdapter(),
    "matting_folder": MattingFolderAdapter(),
    "places365": Places365Adapter(),
    "celeba_hq": CelebAHQAdapter(),
    "ffhq": FFHQAdapter(),
    "lsun_cat": LSUNCatAdapter(),
    "mask_folder": MaskFolderAdapter(),
    "cufed": CufedAdapter(),
    "reds": RedsAdapter(),
    "vimeo90k": Vimeo90kAdapter(),
    "vid4": Vid4Adapter(),
    "udm10": Udm10Adapter(),
    "videolq": VideoLQAdapter(),
    "video_files": VideoFilesAdapter(),
}


def get_adapter(name: str) -> Adapter:
    """The registered adapter called ``name``; AdapterError listing the known names otherwise."""
    try:
        return ADAPTERS[name]
    except KeyError:
        raise AdapterError(f"unknown adapter {name!r}; known: {sorted(ADAPTERS)}") from None
