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

Matting adapters make samples of several named whole images (``fg.png``, ``alpha.png``,
``merged.png``, ``trimap.png``, ``bg.png``, see :mod:`preprocessing.schema`) instead of a
GT/LQ pair: their items carry ``members`` and their :meth:`Adapter.member_specs` say which
members are grey and which are required. Backgrounds for on-the-fly compositing are an
ordinary ``image_folder`` shard set (``crop: false``).

Parameters arrive as a plain dict; unknown names are rejected, like the typed
configs elsewhere. ``{scale}`` in ``gt_dir``/``lq_dir`` is replaced by the scale.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Mapping

from .crop import scale_box, sub_image_boxes
from .schema import ALPHA, BG, FG, MERGED, TRIMAP, sanitize_key, sub_image_key
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

    def resolve_params(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults filled in, unknown names rejected, values checked; returns a new dict."""
        params = dict(params or {})
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise AdapterError(f"{self.name}: unknown parameter(s) {unknown}; allowed: {sorted(self.defaults)}")
        resolved = {**self.defaults, **params}
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


class ImageFolderAdapter(Adapter):
    """Every image under the root, GT only, cut into sub-images."""

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


ADAPTERS: dict[str, Adapter] = {
    "image_folder": ImageFolderAdapter(),
    "div2k": Div2kAdapter(),
    "set5_14": Set514Adapter(),
    "comp1k": Comp1kAdapter(),
    "matting_folder": MattingFolderAdapter(),
}


def get_adapter(name: str) -> Adapter:
    """The registered adapter called ``name``; AdapterError listing the known names otherwise."""
    try:
        return ADAPTERS[name]
    except KeyError:
        raise AdapterError(f"unknown adapter {name!r}; known: {sorted(ADAPTERS)}") from None
