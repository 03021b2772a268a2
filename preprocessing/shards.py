"""Plan, build and commit WebDataset shards; re-runs skip finished shards.

The shard job has three steps, split so a Ray job can run the middle one in
parallel tasks (this module imports nothing from Ray):

1. driver: :func:`plan_job` lists the source, resolves adapter parameters and
   cuts the sorted items into :class:`ShardSpec` groups (:func:`plan_shards`);
2. tasks: :func:`build_shard` per spec. A pure function of picklable
   arguments; it opens source and destination from their URI strings itself;
3. driver: :func:`commit_manifest` writes ``quarantine.json`` and then
   ``manifest.json``, the commit point readers require.

Clip adapters (``adapter.clip``: REDS, Vimeo-90K, Vid4, UDM10, VideoLQ, video files) make one
sample per clip or sub-clip through :func:`preprocessing.clips.clip_samples`; their part
records and manifest entries add ``clips`` rows (:data:`CLIP_FIELDS`: key, frame count, frame
height and width, source) and ``num_frames``, and the manifest names the row columns in
``clip_fields``. Image shard sets keep their record shape.

A part record also holds ``offsets``: for each sample key, each member's data offset
and size in the tar, recorded while writing, so a reader can fetch a single member with
one ranged read (:mod:`preprocessing.shard_index`). Adding it changed no tar byte and no
fingerprint: shards built before it stay valid, and readers scan their tar headers.

Destination layout::

    <dest>/shard-000000.tar          WebDataset tar (see preprocessing.schema)
    <dest>/shard-000001.tar
    <dest>/_parts/shard-000000.json  part record: written after the tar is in place
    <dest>/quarantine.json           rejected inputs with reasons
    <dest>/manifest.json             written last; its presence means "complete"
    <dest>/_tmp/                     in-flight tars (removed by commit_manifest)

Crash safety: a tar is written under ``_tmp/`` and renamed into place; only
then is its part record written. On a re-run, a shard is skipped only if its
part record exists, carries the same shard fingerprint (adapter, parameters,
items and their source fingerprints) and the tar in place has the recorded
size and sha256. Anything else (a tar left in ``_tmp/``, a tar without a
record, a record from another plan) is rebuilt. Tar bytes are deterministic
(fixed mtime/uid/gid/mode, fixed member order), so rebuilding gives the same
sha256 for the same inputs and library versions.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
import tempfile
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .adapters import SourceItem, get_adapter
from .clips import clip_samples
from .schema import (FORMAT, GT, LQ, META, TRIMAP, codec_member, decode_json, encode_json, encode_png,
                     encode_png_grey, encode_shard_image, parse_frame_member, sample_metadata)
from .storage import Storage, StorageError, normalize_uri, open_storage
from .tar_safety import check_shard_name
from .validate import CorruptInput, InputLimits, input_limits, load_grey_with_notes, load_image_with_notes

__all__ = [
    "BUILD_VERSION",
    "CLIP_FIELDS",
    "OFFSETS",
    "PARTS_DIR",
    "ManifestNotFound",
    "ShardPlan",
    "ShardResult",
    "ShardSpec",
    "AppendPlan",
    "commit_append",
    "manifest_digest",
    "plan_append",
    "build_shard",
    "commit_manifest",
    "plan_fingerprint",
    "plan_job",
    "plan_shards",
    "part_key",
    "read_manifest",
    "shard_fingerprint",
]

# Bump when the bytes build_shard writes for the same inputs change (crop rule,
# PNG settings, metadata fields): finished shards of older builds are then redone.
BUILD_VERSION = 1
PNG_COMPRESSION = 3
MANIFEST = "manifest.json"
QUARANTINE = "quarantine.json"
PARTS_DIR = "_parts"
VERSIONS_DIR = "_versions"
TMP_DIR = "_tmp"
OFFSETS = "offsets"  # part-record field: sample key -> member suffix -> [data offset, size]
#: Columns of a clip row in a clip shard set's manifest (``shards[i]["clips"]``): one row per
#: sample, with its frame count, frame size (the stored frames: GT, or LQ for LQ-only sets) and source.
CLIP_FIELDS = ("key", "frames", "height", "width", "source")
_SHARD_RE = re.compile(r"^shard-\d{6,}\.tar$")
_SPOOL_BYTES = 64 << 20


class ManifestNotFound(StorageError):
    """The destination has no manifest.json: the shard job has not (successfully) finished."""


@dataclass(frozen=True)
class ShardSpec:
    """One planned shard: its index, file name and source items, in write order."""

    index: int
    name: str
    items: tuple[SourceItem, ...]

    def to_dict(self) -> dict:
        return {"index": self.index, "name": self.name, "items": [i.to_dict() for i in self.items]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ShardSpec":
        items = tuple(i if isinstance(i, SourceItem) else SourceItem.from_dict(i) for i in d["items"])
        return cls(int(d["index"]), str(d["name"]), items)


@dataclass
class ShardResult:
    """What build_shard wrote. ``skipped`` is True when a finished shard was reused."""

    name: str
    num_samples: int
    bytes: int
    sha256: str
    keys: list[str] = field(default_factory=list)
    quarantined: list[dict] = field(default_factory=list)
    skipped: bool = False
    item_ids: list[str] = field(default_factory=list)  # source items this shard was built from
    clips: list[list] = field(default_factory=list)  # clip shards: one CLIP_FIELDS row per sample
    # member suffixes every sample of the shard holds (``gt.png``, ``lq.png``, ...); None in
    # records of older builds, which did not count them
    members: list[str] | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        if not self.clips:
            del d["clips"]  # image shards keep their record shape
        if self.members is None:
            del d["members"]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ShardResult":
        return cls(**{k: d[k] for k in ("name", "num_samples", "bytes", "sha256")},
                   keys=list(d.get("keys", [])), quarantined=[dict(q) for q in d.get("quarantined", [])],
                   skipped=bool(d.get("skipped", False)), item_ids=list(d.get("item_ids", [])),
                   clips=[list(c) for c in d.get("clips", [])],
                   members=list(d["members"]) if d.get("members") is not None else None)


@dataclass(frozen=True)
class ShardPlan:
    """Everything the driver hands to build_shard tasks and then to commit_manifest."""

    source_uri: str
    dest_uri: str
    adapter: str
    params: dict
    items_per_shard: int
    shards: list[ShardSpec]
    fingerprint: str
    num_items: int
    version: int = 1


def _sha256_json(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _item_row(item: SourceItem) -> list:
    row = [item.item_id, item.gt_key, item.gt_fingerprint, item.lq_key, item.lq_fingerprint]
    if item.members:  # matting items; GT/LQ rows (and so their fingerprints) stay as they were
        row.append([list(m) for m in item.members])
    return row


def plan_shards(items: Iterable[SourceItem], items_per_shard: int) -> list[ShardSpec]:
    """Sorts items and groups consecutive runs of ``items_per_shard`` into shards.

    Raises:
        ValueError: no items, a non-positive group size, or duplicate item ids.
    """
    if items_per_shard < 1:
        raise ValueError(f"items_per_shard must be >= 1, got {items_per_shard}")
    items = sorted(items)
    if not items:
        raise ValueError("no input images found: nothing to shard")
    ids = [i.item_id for i in items]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise ValueError(f"duplicate item ids {dup}: sample keys would collide")
    return [
        ShardSpec(n, f"shard-{n:06d}.tar", tuple(items[start:start + items_per_shard]))
        for n, start in enumerate(range(0, len(items), items_per_shard))
    ]


def plan_fingerprint(adapter_name: str, params: Mapping[str, Any], items: Iterable[SourceItem],
                     items_per_shard: int | None = None) -> str:
    """sha256 over the build version, adapter, parameters, grouping and every source key+fingerprint."""
    return _sha256_json({
        "format": FORMAT, "build": BUILD_VERSION, "adapter": adapter_name, "params": dict(params),
        "items_per_shard": items_per_shard, "items": [_item_row(i) for i in sorted(items)],
    })


def shard_fingerprint(spec: ShardSpec, adapter_name: str, params: Mapping[str, Any]) -> str:
    """sha256 identifying one shard's inputs; equal fingerprints mean equal tar bytes."""
    return _sha256_json({
        "format": FORMAT, "build": BUILD_VERSION, "adapter": adapter_name, "params": dict(params),
        "name": spec.name, "items": [_item_row(i) for i in spec.items],
    })


def part_key(name: str) -> str:
    """Storage key of a shard's part record: ``_parts/shard-000000.json``."""
    return f"{PARTS_DIR}/{name.removesuffix('.tar')}.json"


_part_key = part_key


def _reuse_finished(dest: Storage, spec: ShardSpec, fingerprint: str, verify: bool) -> ShardResult | None:
    """The recorded result if this shard is already complete and intact, else None."""
    try:
        record = json.loads(dest.read_bytes(_part_key(spec.name)))
    except (FileNotFoundError, ValueError):
        return None
    try:
        if record.get("fingerprint") != fingerprint:
            return None
        result = ShardResult.from_dict(record["result"])
    except (AttributeError, KeyError, TypeError):  # unreadable record: rebuild
        return None
    info = dest.info(spec.name)
    if info is None or info.size != result.bytes:
        return None
    if verify and hashlib.sha256(dest.read_bytes(spec.name)).hexdigest() != result.sha256:
        return None
    result.skipped = True
    result.item_ids = result.item_ids or [i.item_id for i in spec.items]
    return result


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> int:
    """Appends one member; returns the byte offset of its data in the tar."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, _BytesReader(data))
    # addfile leaves tar.offset after the data padded to whole 512-byte blocks.
    return tar.offset - -(-len(data) // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE


class _BytesReader:
    """Minimal file object for tarfile.addfile without copying into a BytesIO."""

    def __init__(self, data: bytes):
        self._view = memoryview(data)
        self._pos = 0

    def read(self, n: int = -1) -> bytes:
        end = len(self._view) if n is None or n < 0 else min(len(self._view), self._pos + n)
        chunk = self._view[self._pos:end].tobytes()
        self._pos = end
        return chunk


def _load(src: Storage, key: str, grey: bool = False,
          missing: str = "file not found (vanished after listing, or named by a list file but absent)",
          drop_alpha: bool = False) -> tuple[Any, list[str]]:
    try:
        data = src.read_bytes(key)
    except FileNotFoundError:
        raise CorruptInput(missing) from None
    if grey:
        return load_grey_with_notes(data, key)
    return load_image_with_notes(data, key, drop_alpha=True) if drop_alpha else load_image_with_notes(data, key)


def _member_samples(item: SourceItem, src: Storage, adapter, params: Mapping[str, Any]):
    """The one whole-image sample of a matting item: every member decoded, checked
    (required ones present, all the same size unless the adapter's ``same_size_members`` is
    false, as a reference image's) and re-encoded under its member name."""
    specs = {sp.name: sp for sp in adapter.member_specs(params)}
    keys = {name: key for name, key, _fp in item.members}
    for sp in specs.values():
        if sp.required and keys.get(sp.name) is None:
            exc = CorruptInput(f"no {sp.name.split('.')[0]} file found for {item.gt_key}")
            exc.key = item.gt_key
            raise exc
    arrays, notes, first = {}, [], None
    for name, key in keys.items():
        if key is None:
            continue
        try:
            # Colour members drop an alpha channel, as the reference's readers do (the matte is alpha.png).
            img, img_notes = _load(src, key, grey=specs[name].grey, missing="file not found", drop_alpha=True)
        except CorruptInput as exc:
            exc.reason = f"{name.split('.')[0]}: {exc.reason}"
            exc.args = (exc.reason,)
            exc.key = key
            raise
        if first is None:
            first = (name, key, img.shape[:2])
        elif img.shape[:2] != first[2] and getattr(adapter, "same_size_members", True):
            exc = CorruptInput(f"{name.split('.')[0]} size {img.shape[0]}x{img.shape[1]} differs from "
                               f"{first[0].split('.')[0]} size {first[2][0]}x{first[2][1]} ({first[1]})")
            exc.key = key
            raise exc
        if name == TRIMAP and not np.isin(img, (0, 128, 255)).all():
            img_notes = img_notes + ["values outside {0, 128, 255}"]
        try:
            img, extra = adapter.check_member(name, img, params)
        except CorruptInput as exc:
            exc.reason = f"{name.split('.')[0]}: {exc.reason}"
            exc.args = (exc.reason,)
            exc.key = key
            raise
        img_notes = img_notes + extra
        arrays[name] = img
        notes += [f"{name.split('.')[0]}: {n}" for n in img_notes]
    level = params.get("png_compression", PNG_COMPRESSION)
    members = {name: encode_png_grey(a, level) if specs[name].grey else encode_png(a, level)
               for name, a in arrays.items()}
    h, w = first[2]
    meta = sample_metadata(key=item.item_id, adapter=adapter.name, source=item.gt_key, box=(0, 0, h, w),
                           image_size=(h, w), notes=notes,
                           members={name: key for name, key in keys.items() if key is not None})
    members[META] = encode_json(meta)
    yield item.item_id, members


def _samples(item: SourceItem, src: Storage, adapter, params: Mapping[str, Any]):
    """Yields (key, members) for one item; raises CorruptInput(reason) with ``.key`` set."""
    if getattr(adapter, "clip", False):
        yield from clip_samples(item, src, adapter, params)
        return
    if item.members:
        yield from _member_samples(item, src, adapter, params)
        return
    try:
        gt, notes = _load(src, item.gt_key)
    except CorruptInput as exc:
        exc.key = item.gt_key
        raise
    lq = None
    if adapter.paired and item.lq_key is not None:
        try:
            lq, lq_notes = _load(src, item.lq_key)
        except CorruptInput as exc:
            exc.key = item.lq_key
            raise
        notes = notes + [f"lq: {n}" for n in lq_notes]
    try:
        crops = adapter.crops(item, gt.shape[:2], None if lq is None else lq.shape[:2], params)
    except CorruptInput as exc:
        exc.key = item.gt_key
        raise
    scale = params.get("scale", 1) if adapter.paired else 1
    codec = params.get("image_codec", "png")
    for crop in crops:
        y, x, h, w = crop.box
        members = {codec_member(GT, codec): encode_shard_image(
            gt[y:y + h, x:x + w], codec, params.get("png_compression", PNG_COMPRESSION))}
        if crop.lq_box is not None:
            ly, lx, lh, lw = crop.lq_box
            members[codec_member(LQ, codec)] = encode_shard_image(lq[ly:ly + lh, lx:lx + lw], codec, PNG_COMPRESSION)
        members |= adapter.extra_members(item, crop, src, params)
        meta = sample_metadata(key=crop.key, adapter=adapter.name, source=item.gt_key, box=crop.box,
                               image_size=gt.shape[:2], scale=scale,
                               lq_source=item.lq_key if adapter.paired else None, lq_box=crop.lq_box,
                               notes=notes)
        members[META] = encode_json(meta)
        yield crop.key, members


def _clip_row(meta_json: bytes) -> list:
    """A clip sample's manifest row (:data:`CLIP_FIELDS`) from its ``json`` member."""
    meta = decode_json(meta_json)
    return [meta["key"], meta["frames"], meta["box"][2], meta["box"][3], meta["source"]]


def build_shard(spec: ShardSpec | Mapping[str, Any], source_uri: str, dest_uri: str, adapter_name: str,
                adapter_params: Mapping[str, Any] | None = None, *, verify: bool = True,
                limits: Mapping[str, int] | None = None) -> ShardResult:
    """Builds one shard tar (or reuses a finished one) and returns what it holds.

    Reads each item's images from ``source_uri``, validates them, cuts the
    adapter's crops and writes samples in plan order (item order, then
    sub-image index) to ``_tmp/<name>.<uuid>``, renames that to ``<name>`` and
    then writes ``_parts/<stem>.json``. Corrupt inputs are quarantined and
    reported in the result; storage errors propagate (so Ray retries the task).

    Args:
        spec: the shard to build (a ShardSpec or its ``to_dict()``).
        source_uri: raw dataset root (local path or s3://), as given to plan_job.
        dest_uri: output root; must be absolute for local paths when run in Ray.
        adapter_name: key of ``ADAPTERS``.
        adapter_params: adapter parameters (resolved again here; defaults filled).
        verify: re-hash an existing finished tar before trusting its part record.
        limits: :class:`~preprocessing.validate.InputLimits` fields (None: the defaults). Inputs
            beyond them are quarantined from their headers, undecoded. Non-default limits are
            part of the shard fingerprint (other limits, other samples); the defaults are not, so
            shards built before limits existed stay valid.
    """
    limits_obj = InputLimits(**(limits or {}))
    with input_limits(limits_obj):
        return _build_shard(spec, source_uri, dest_uri, adapter_name, adapter_params, verify, limits_obj)


def _build_shard(spec, source_uri, dest_uri, adapter_name, adapter_params, verify, limits: InputLimits) -> ShardResult:
    spec = spec if isinstance(spec, ShardSpec) else ShardSpec.from_dict(spec)
    adapter = get_adapter(adapter_name)
    params = adapter.resolve_params(adapter_params)
    src, dest = open_storage(source_uri), open_storage(dest_uri, create=True)
    fingerprint = shard_fingerprint(spec, adapter.name, params)
    if limits != InputLimits():
        fingerprint = _sha256_json([fingerprint, asdict(limits)])
    finished = _reuse_finished(dest, spec, fingerprint, verify)
    if finished is not None:
        return finished
    dest.delete(_part_key(spec.name))  # a stale record must never vouch for the new tar

    keys: list[str] = []
    clips: list[list] = []
    is_clip = getattr(adapter, "clip", False)
    offsets: dict[str, dict[str, list[int]]] = {}
    quarantined: list[dict] = []
    digest = hashlib.sha256()
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as buf:
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for item in spec.items:
                try:
                    for key, members in _samples(item, src, adapter, params):
                        offsets[key] = {suffix: [_add_member(tar, f"{key}.{suffix}", data), len(data)]
                                        for suffix, data in members.items()}
                        keys.append(key)
                        if is_clip:
                            clips.append(_clip_row(members[META]))
                except CorruptInput as exc:
                    quarantined.append({"key": getattr(exc, "key", item.gt_key), "item_id": item.item_id,
                                        "reason": exc.reason, "uri": src.uri(getattr(exc, "key", item.gt_key)),
                                        "shard": spec.name})
        size = buf.tell()
        buf.seek(0)
        for chunk in iter(lambda: buf.read(1 << 20), b""):
            digest.update(chunk)
        buf.seek(0)
        tmp_key = f"{TMP_DIR}/{spec.name}.{uuid.uuid4().hex}"
        dest.write_fileobj(tmp_key, buf)
    dest.rename(tmp_key, spec.name)
    common = set.intersection(*(set(o) for o in offsets.values())) if offsets else set()
    result = ShardResult(spec.name, len(keys), size, digest.hexdigest(), keys, quarantined,
                         item_ids=[i.item_id for i in spec.items], clips=clips,
                         members=sorted(m for m in common if "." in m and not m[0].isdigit()))
    dest.write_bytes(_part_key(spec.name), encode_json({
        "fingerprint": fingerprint, "result": result.to_dict(), "items": [_item_row(i) for i in spec.items],
        # Where each member's bytes sit in the tar, so readers can fetch one member with a
        # ranged read (trainers' background bank). Records of older builds lack it: readers
        # then scan the tar headers (preprocessing.shard_index).
        OFFSETS: offsets,
    }))
    return result


def commit_manifest(dest_uri: str, results: Sequence[ShardResult | Mapping[str, Any]], *, adapter: str,
                    params: Mapping[str, Any], source_uri: str, source_fingerprint: str,
                    expected_shards: int | None = None, version: int = 1) -> dict:
    """Writes quarantine.json, removes stale shards, then writes manifest.json (the commit point).

    ``manifest["shards"]`` lists only shards holding samples; tars whose
    inputs were all quarantined stay on disk (named in ``empty_shards``).
    Checks first that every result's tar is in place with the recorded size
    and that sample keys are unique across shards. Shard files from an older
    plan that are not in ``results`` are deleted before the manifest is
    written, so a glob over ``shard-*.tar`` agrees with the manifest.

    Raises:
        ValueError: missing/extra shards, duplicate keys, or no valid sample at all
            (quarantine.json is still written, so the reasons can be read).
    """
    dest = open_storage(dest_uri, create=True)
    results = sorted((r if isinstance(r, ShardResult) else ShardResult.from_dict(r) for r in results),
                     key=lambda r: r.name)
    if expected_shards is not None and len(results) != expected_shards:
        raise ValueError(f"expected {expected_shards} shard results, got {len(results)}")
    names = [r.name for r in results]
    if len(set(names)) != len(names):
        raise ValueError("duplicate shard names in results")
    for r in results:
        info = dest.info(r.name)
        if info is None or info.size != r.bytes:
            raise ValueError(f"shard {dest.uri(r.name)} is missing or has the wrong size: rebuild it")
    seen: set[str] = set()
    for r in results:
        dup = seen.intersection(r.keys)
        if dup:
            raise ValueError(f"sample keys repeated across shards: {sorted(dup)[:5]}")
        seen.update(r.keys)

    quarantined = [q for r in results for q in r.quarantined]
    dest.write_bytes(QUARANTINE, json.dumps({"count": len(quarantined), "quarantined": quarantined},
                                            indent=1).encode())
    num_samples = sum(r.num_samples for r in results)
    if num_samples == 0:
        raise ValueError(f"no valid samples: all {len(quarantined)} inputs were quarantined "
                         f"(see {dest.uri(QUARANTINE)})")
    keep = set(names)
    for obj in dest.list("shard-"):
        if _SHARD_RE.match(obj.key) and obj.key not in keep:
            dest.delete(obj.key)
    keep_parts = {_part_key(n) for n in keep}
    for obj in dest.list(f"{PARTS_DIR}/"):
        if obj.key.endswith(".json") and obj.key not in keep_parts:
            dest.delete(obj.key)

    manifest = {
        "format": FORMAT,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": normalize_uri(source_uri),
        "source_fingerprint": source_fingerprint,
        "adapter": adapter,
        "params": dict(params),
        "num_samples": num_samples,
        "num_bytes": sum(r.bytes for r in results),
        "shards": [_shard_entry(r) for r in results if r.num_samples],
        # Shards whose every input was quarantined: kept on disk so re-runs can skip them,
        # left out of "shards" because WebDataset refuses to read a sample-less source.
        "empty_shards": [r.name for r in results if not r.num_samples],
        "quarantined": len(quarantined),
        # Every source item already in a shard (incl. quarantined ones): what
        # `restoray retrain` compares the raw location with to find new data.
        "item_ids": sorted({i for r in results for i in r.item_ids}),
        "version": version,
    }
    filled = [r for r in results if r.num_samples]
    if filled and all(r.members is not None for r in filled):
        # What every sample holds, so a config that reads a member the data lacks (``preset:
        # paired`` on GT-only shards) is refused before Ray starts (pipelines.train_job).
        manifest["members"] = sorted(set.intersection(*(set(r.members) for r in filled)))
    if any(r.clips for r in results):
        # Clip shard sets: what the clip stream needs to know without opening a tar.
        manifest["clip_fields"] = list(CLIP_FIELDS)
        manifest["num_frames"] = sum(c[1] for r in results for c in r.clips)
    manifest["digest"] = manifest_digest(manifest)
    body = json.dumps(manifest, indent=1).encode()
    dest.write_bytes(f"{VERSIONS_DIR}/manifest-v{version:06d}.json", body)
    dest.write_bytes(MANIFEST, body)
    dest.delete_prefix(f"{TMP_DIR}/")
    return manifest


def _shard_entry(r: ShardResult) -> dict:
    entry = {"name": r.name, "num_samples": r.num_samples, "bytes": r.bytes, "sha256": r.sha256}
    if r.clips:
        entry["num_frames"] = sum(c[1] for c in r.clips)
        entry["clips"] = [list(c) for c in r.clips]
    return entry


def manifest_digest(manifest: Mapping[str, Any]) -> str:
    """sha256 over the shard list (names and content hashes): equal digests, equal training data."""
    return _sha256_json([[s["name"], s["sha256"]] for s in manifest["shards"]] + sorted(manifest.get("empty_shards", [])))


def read_manifest(dest_uri: str) -> dict:
    """The committed manifest of a shard folder.

    Raises:
        ManifestNotFound: no manifest.json (the job did not finish).
        StorageError: the folder/bucket does not exist, the manifest is not ours, or it names a
            shard outside the folder (an absolute path, ``..``, a URI).
    """
    dest = open_storage(dest_uri)
    try:
        manifest = json.loads(dest.read_bytes(MANIFEST))
    except FileNotFoundError:
        raise ManifestNotFound(f"no {MANIFEST} at {dest.uri()}: the shard job did not finish") from None
    if manifest.get("format") != FORMAT:
        raise StorageError(f"{dest.uri(MANIFEST)} has format {manifest.get('format')!r}, expected {FORMAT!r}")
    for entry in [*manifest.get("shards", []), *manifest.get("empty_shards", [])]:
        check_shard_name(entry.get("name") if isinstance(entry, dict) else entry, dest.uri(MANIFEST))
    return manifest


def plan_job(source_uri: str, dest_uri: str, adapter: str, params: Mapping[str, Any] | None = None,
             items_per_shard: int = 64) -> ShardPlan:
    """Driver side: lists the source, plans shards, and retires an outdated manifest.

    A manifest.json left by a run with a different plan fingerprint is deleted
    now, so readers never trust it while its shards are being rewritten.
    URIs are normalised (local paths made absolute) for use inside Ray tasks.
    """
    source_uri, dest_uri = normalize_uri(source_uri), normalize_uri(dest_uri)
    ad = get_adapter(adapter)
    resolved = ad.resolve_params(params)
    src = open_storage(source_uri)
    items = ad.list_items(src, resolved)
    if not items:
        raise ValueError(f"{adapter}: no input images found under {src.uri()}")
    shards = plan_shards(items, items_per_shard)
    fingerprint = plan_fingerprint(ad.name, resolved, items, items_per_shard)
    dest = open_storage(dest_uri, create=True)
    try:
        old = json.loads(dest.read_bytes(MANIFEST))
    except (FileNotFoundError, ValueError):
        old = None
    if old is not None and old.get("source_fingerprint") != fingerprint:
        dest.delete(MANIFEST)
    same = old is not None and old.get("source_fingerprint") == fingerprint
    version = int(old.get("version", 1)) if same else _last_version(dest) + 1
    return ShardPlan(source_uri, dest_uri, ad.name, resolved, items_per_shard, shards, fingerprint, len(items),
                     version)


def _last_version(dest: Storage) -> int:
    """Highest manifest version ever committed in ``dest`` (0 for none)."""
    found = [int(m.group(1)) for o in dest.list(f"{VERSIONS_DIR}/")
             if (m := re.search(r"manifest-v(\d+)\.json$", o.key))]
    return max(found, default=0)


@dataclass(frozen=True)
class AppendPlan:
    """New source items to add to an existing shard set (``restoray retrain``).

    ``plan.shards`` holds only the new shards, numbered after the existing ones;
    ``base`` is the manifest they extend. ``changed`` lists items already sharded
    whose source bytes changed since: they keep their old shards (a full
    ``restoray shard`` rebuilds everything).
    """

    plan: ShardPlan
    base: dict
    changed: list[str]


def plan_append(source_uri: str, dest_uri: str, adapter: str, params: Mapping[str, Any] | None = None,
                items_per_shard: int = 64) -> AppendPlan:
    """Driver side: which items under ``source_uri`` are not yet in ``dest_uri``'s manifest.

    Raises:
        ManifestNotFound: no manifest yet (shard the whole source first).
        ValueError: the manifest was built with another adapter/parameters, or predates
            item tracking (re-run ``restoray shard`` once).
        StorageError: the source location does not exist (any more).
    """
    source_uri, dest_uri = normalize_uri(source_uri), normalize_uri(dest_uri)
    src = open_storage(source_uri)  # first: a vanished source must fail before anything else
    open_storage(dest_uri, create=True)
    base = read_manifest(dest_uri)
    ad = get_adapter(adapter)
    resolved = ad.resolve_params(params)
    if base.get("adapter") != ad.name or dict(base.get("params", {})) != resolved:
        raise ValueError(
            f"{dest_uri} was sharded with adapter {base.get('adapter')!r} {base.get('params')}, not "
            f"{ad.name!r} {resolved}: new shards must be cut the same way"
        )
    if "item_ids" not in base:
        raise ValueError(f"{dest_uri}/{MANIFEST} predates item tracking: re-run `restoray shard` on it once")
    items = ad.list_items(src, resolved)
    if not items:
        raise ValueError(f"{adapter}: no input images found under {source_uri}")
    known = set(base["item_ids"])
    new = [i for i in items if i.item_id not in known]
    dest = open_storage(dest_uri)
    changed = _changed_items(dest, base, {i.item_id: i for i in items if i.item_id in known})
    start = 1 + max((int(n[len("shard-"):-len(".tar")]) for n in
                     [s["name"] for s in base["shards"]] + list(base.get("empty_shards", []))), default=-1)
    shards = [ShardSpec(start + s.index, f"shard-{start + s.index:06d}.tar", s.items)
              for s in (plan_shards(new, items_per_shard) if new else [])]
    fingerprint = _sha256_json({"append_to": base["digest"], "items": [_item_row(i) for i in sorted(new)]})
    plan = ShardPlan(source_uri, dest_uri, ad.name, resolved, items_per_shard, shards, fingerprint, len(new),
                     _last_version(dest) + 1)
    return AppendPlan(plan, base, changed)


def _changed_items(dest: Storage, base: Mapping[str, Any], current: Mapping[str, SourceItem]) -> list[str]:
    """Item ids whose source fingerprint differs from the one their shard was built from."""
    changed = []
    for name in [s["name"] for s in base["shards"]] + list(base.get("empty_shards", [])):
        try:
            record = json.loads(dest.read_bytes(_part_key(name)))
        except (FileNotFoundError, ValueError):
            continue
        for row in record.get("items", []):
            item = current.get(row[0])
            if item is not None and _item_row(item) != row:
                changed.append(row[0])
    return sorted(changed)


def commit_append(append: AppendPlan, new_results: Sequence[ShardResult | Mapping[str, Any]]) -> dict:
    """Commit base shards + new shards as the next manifest version (old shards are referenced, not copied)."""
    plan, base = append.plan, append.base
    dest = open_storage(plan.dest_uri)
    old = []
    for name in [s["name"] for s in base["shards"]] + list(base.get("empty_shards", [])):
        try:
            old.append(ShardResult.from_dict(json.loads(dest.read_bytes(_part_key(name)))["result"]))
        except (FileNotFoundError, ValueError, KeyError) as exc:
            raise ValueError(f"{dest.uri(_part_key(name))} is missing or unreadable ({exc}): "
                             f"re-run `restoray shard` on {plan.dest_uri}") from None
    return commit_manifest(plan.dest_uri, old + list(new_results), adapter=plan.adapter, params=plan.params,
                           source_uri=plan.source_uri, source_fingerprint=plan.fingerprint,
                           expected_shards=len(old) + len(plan.shards), version=plan.version)
