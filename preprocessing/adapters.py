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

Parameters arrive as a plain dict; unknown names are rejected, like the typed
configs elsewhere. ``{scale}`` in ``gt_dir``/``lq_dir`` is replaced by the scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from .crop import scale_box, sub_image_boxes
from .schema import sanitize_key, sub_image_key
from .storage import ObjectInfo, Storage
from .validate import CorruptInput

__all__ = [
    "ADAPTERS",
    "IMAGE_EXTENSIONS",
    "Adapter",
    "AdapterError",
    "Crop",
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
    """

    item_id: str
    gt_key: str
    lq_key: str | None = None
    gt_fingerprint: str = ""
    lq_fingerprint: str = ""

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SourceItem":
        return cls(**d)


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


ADAPTERS: dict[str, Adapter] = {
    "image_folder": ImageFolderAdapter(),
    "div2k": Div2kAdapter(),
    "set5_14": Set514Adapter(),
}


def get_adapter(name: str) -> Adapter:
    """The registered adapter called ``name``; AdapterError listing the known names otherwise."""
    try:
        return ADAPTERS[name]
    except KeyError:
        raise AdapterError(f"unknown adapter {name!r}; known: {sorted(ADAPTERS)}") from None
