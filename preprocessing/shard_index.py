"""Random access to single samples of a committed shard folder, without reading whole shards.

Training-time compositing (matting) draws a background, or a second foreground, by index
from a separate shard set of tens of thousands of images; downloading a 64-image shard to
use one image would multiply the traffic by 64. :class:`ShardSet` instead

1. maps a global index to (shard, position) with the manifest's per-shard sample counts
   (shards in manifest order, samples in tar order);
2. finds where each member's bytes sit in that shard: from the ``offsets`` the shard
   builder records in the shard's part record (``_parts/<shard>.json``), or -- for shards
   built before offsets were recorded, or whose record does not match the tar -- by
   scanning the tar headers with small ranged reads (data blocks are skipped, not read);
3. reads only those bytes (:meth:`Storage.read_range`: a local seek or an S3 ranged GET).

Per-shard member tables are kept in a small LRU, so a reader pays for a part record or a
header scan once per shard. Nothing here decodes images or caches image bytes: that is
the caller's choice (``trainers/samplers/banks.py``).
"""

from __future__ import annotations

import io
import json
import tarfile
from bisect import bisect_right
from collections import OrderedDict
from dataclasses import dataclass
from typing import Mapping

from .schema import image_member_names
from .shards import OFFSETS, read_manifest, part_key
from .storage import Storage, StorageError, normalize_uri, open_storage
from .tar_safety import check_member

__all__ = ["MemberTable", "ShardSet", "member_table", "read_members", "scan_tar_members", "split_member_name"]

_SCAN_CHUNK = 64 << 10


def split_member_name(name: str) -> tuple[str, str]:
    """WebDataset's rule: the key ends at the first dot after the last slash (``a/k.gt.png`` -> ``a/k``, ``gt.png``)."""
    head, slash, base = name.rpartition("/")
    key, _dot, suffix = base.partition(".")
    return head + slash + key, suffix


@dataclass(frozen=True)
class MemberTable:
    """Where each sample's members sit in one tar: ``samples[i] = (key, {suffix: (offset, size)})``."""

    shard: str
    samples: tuple[tuple[str, Mapping[str, tuple[int, int]]], ...]
    source: str  # "part-record" or "scan": how the table was obtained


class _RangedFile(io.RawIOBase):
    """A read-only, seekable file over ``Storage.read_range`` with a small read-ahead buffer.

    tarfile reads a header (512 bytes, a few more for PAX) and then seeks past the data, so
    scanning a shard costs about one ranged read per member, never the data itself.
    """

    def __init__(self, storage: Storage, key: str, size: int, chunk: int = _SCAN_CHUNK):
        self._storage, self._key, self._size, self._chunk = storage, key, size, chunk
        self._pos = 0
        self._buf_start, self._buf = 0, b""
        self.reads = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self._size - self._pos
        n = max(0, min(n, self._size - self._pos))
        if n == 0:
            return b""
        start = self._pos - self._buf_start
        if not (0 <= start and start + n <= len(self._buf)):
            self._buf_start = self._pos
            self._buf = self._storage.read_range(self._key, self._pos, max(n, self._chunk))
            self.reads += 1
            start = 0
        out = self._buf[start:start + n]
        self._pos += len(out)
        return out

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)


def scan_tar_members(storage: Storage, shard: str, size: int | None = None, chunk: int = _SCAN_CHUNK
                     ) -> MemberTable:
    """The member table of a shard read from its tar headers (fallback for old part records).

    ``chunk`` is the size of each ranged read (headers are 512 bytes; the read-ahead lets
    a run of small members share one request).

    Raises:
        StorageError: the object is not a readable tar.
        UnsafeTarMember: a member is not a regular file with a plain relative name.
    """
    if size is None:
        info = storage.info(shard)
        if info is None:
            raise FileNotFoundError(f"no such shard: {storage.uri(shard)}")
        size = info.size
    samples: list[tuple[str, dict[str, tuple[int, int]]]] = []
    try:
        with tarfile.open(fileobj=_RangedFile(storage, shard, size, chunk), mode="r:") as tar:
            for member in tar:
                check_member(storage.uri(shard), member)  # a link or an escaping name: refused, not skipped
                key, suffix = split_member_name(member.name)
                if not samples or samples[-1][0] != key:
                    samples.append((key, {}))
                samples[-1][1][suffix] = (member.offset_data, member.size)
    except tarfile.TarError as exc:
        raise StorageError(f"{storage.uri(shard)} is not a readable tar ({exc})") from None
    return MemberTable(shard, tuple(samples), "scan")


def _table_from_record(record: Mapping, shard: str, sha256: str) -> MemberTable | None:
    """The recorded table if the part record belongs to this very tar and has offsets, else None."""
    try:
        result = record["result"]
        offsets = record[OFFSETS]
        if result["sha256"] != sha256 or list(offsets) != list(result["keys"]):
            return None
        samples = tuple((k, {s: (int(v[0]), int(v[1])) for s, v in offsets[k].items()}) for k in result["keys"])
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        return None
    return MemberTable(shard, samples, "part-record")


def member_table(storage: Storage, entry: Mapping) -> MemberTable:
    """The member table of the shard a manifest ``entry`` describes (its part record if that
    matches the tar, else a header scan), checked against the entry's sample count."""
    shard = entry["name"]
    try:
        record = json.loads(storage.read_bytes(part_key(shard)))
    except (FileNotFoundError, ValueError):
        record = None
    table = _table_from_record(record, shard, entry["sha256"]) if record is not None else None
    if table is None:
        table = scan_tar_members(storage, shard, int(entry["bytes"]))
    if len(table.samples) != int(entry["num_samples"]):
        raise StorageError(f"{storage.uri(shard)} holds {len(table.samples)} samples but the manifest "
                           f"says {entry['num_samples']}: re-run the shard job")
    return table


def read_members(storage: Storage, shard: str, members: Mapping[str, tuple[int, int]], wanted) -> dict[str, bytes]:
    """``{suffix: bytes}`` of the ``wanted`` members of one sample, each run of members that sit
    next to each other in the tar fetched with one ranged read (a clip's consecutive frames)."""
    spans = sorted((members[w][0], members[w][1], w) for w in wanted)
    out: dict[str, bytes] = {}
    i = 0
    while i < len(spans):
        j, end = i, spans[i][0] + spans[i][1]
        # members of one sample are adjacent but for a 512-byte header (and PAX headers): allow 4 KiB gaps
        while j + 1 < len(spans) and spans[j + 1][0] - end <= 4096:
            j += 1
            end = spans[j][0] + spans[j][1]
        start = spans[i][0]
        data = storage.read_range(shard, start, end - start)
        if len(data) != end - start:
            raise StorageError(f"{storage.uri(shard)}: short read ({len(data)} of {end - start} bytes): "
                               "the shard changed, re-run the shard job")
        for offset, size, name in spans[i:j + 1]:
            out[name] = data[offset - start:offset - start + size]
        i = j + 1
    return out


class ShardSet:
    """Random access by global index to the samples of one committed shard folder (local or s3://).

    Opening is lazy (first use), so a ShardSet is cheap to build and to pickle into Ray
    actors. Index ``i`` counts samples over the manifest's shards in manifest order, each
    shard's samples in tar order.

    Args:
        uri: the shard folder (holds ``manifest.json``).
        table_cache: how many shards' member tables to keep (LRU).
    """

    def __init__(self, uri: str, table_cache: int = 256):
        self.uri = normalize_uri(uri)
        self.table_cache = table_cache
        self._storage: Storage | None = None
        self._shards: list[dict] | None = None
        self._ends: list[int] = []
        self._tables: OrderedDict[str, MemberTable] = OrderedDict()

    def __getstate__(self):
        return {"uri": self.uri, "table_cache": self.table_cache}

    def __setstate__(self, state):
        self.__init__(state["uri"], state["table_cache"])

    def _open(self) -> None:
        if self._shards is not None:
            return
        storage = open_storage(self.uri)
        manifest = read_manifest(self.uri)
        shards = [s for s in manifest.get("shards", []) if int(s.get("num_samples", 0)) > 0]
        ends, total = [], 0
        for s in shards:
            total += int(s["num_samples"])
            ends.append(total)
        self._storage, self._shards, self._ends = storage, shards, ends

    @property
    def storage(self) -> Storage:
        self._open()
        return self._storage

    def __len__(self) -> int:
        self._open()
        return self._ends[-1] if self._ends else 0

    def locate(self, index: int) -> tuple[str, int]:
        """(shard name, position in the shard) of global sample ``index``."""
        n = len(self)
        if not 0 <= index < n:
            raise IndexError(f"sample index {index} out of range for {self.uri} ({n} samples)")
        s = bisect_right(self._ends, index)
        return self._shards[s]["name"], index - (self._ends[s - 1] if s else 0)

    def table(self, shard: str) -> MemberTable:
        """The member table of one shard (part record if it matches the tar, else a header scan)."""
        self._open()
        if shard in self._tables:
            self._tables.move_to_end(shard)
            return self._tables[shard]
        entry = next((s for s in self._shards if s["name"] == shard), None)
        if entry is None:
            raise KeyError(f"{shard} is not a shard of {self.uri}")
        table = member_table(self._storage, entry)
        self._tables[shard] = table
        while len(self._tables) > self.table_cache:
            self._tables.popitem(last=False)
        return table

    def member_location(self, index: int) -> tuple[str, str, Mapping[str, tuple[int, int]]]:
        """(shard, sample key, {suffix: (offset, size)}) of global sample ``index``."""
        shard, pos = self.locate(index)
        key, members = self.table(shard).samples[pos]
        return shard, key, members

    def read(self, index: int, suffixes: tuple[str, ...] | None = None) -> tuple[str, dict[str, bytes]]:
        """(sample key, {suffix: bytes}) of sample ``index``: one ranged read per member.

        Args:
            index: global sample index.
            suffixes: members to read (all when None); a missing one is a KeyError naming
                the sample and the members it has.
        """
        shard, key, members = self.member_location(index)
        wanted = tuple(members) if suffixes is None else suffixes
        out = {}
        for suffix in wanted:
            if suffix not in members and suffix.endswith(".png"):  # the image in another codec (gt.qoi)
                suffix = next((n for n in image_member_names(suffix) if n in members), suffix)
            if suffix not in members:
                raise KeyError(f"sample {key} of {self._storage.uri(shard)} has no {suffix!r} member "
                               f"(it has {sorted(members)})")
            offset, size = members[suffix]
            data = self._storage.read_range(shard, offset, size)
            if len(data) != size:
                raise StorageError(f"{self._storage.uri(shard)}: short read of {key}.{suffix} "
                                   f"({len(data)} of {size} bytes): the shard changed, re-run the shard job")
            out[suffix] = data
        return key, out
