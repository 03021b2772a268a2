"""Sample banks: images drawn by a seeded index from a separate shard set (matting backgrounds, second foregrounds).

A bank is opened lazily in the process that first draws from it (a Ray Data actor), reads
single members with ranged reads (:class:`preprocessing.shard_index.ShardSet`: never a whole
shard), and keeps the raw bytes of recently drawn samples in a small LRU bounded in bytes --
useful when a bank is small (tests, demos, a few hundred foregrounds), harmless when it is
large (COCO's 118k backgrounds: mostly misses, one ranged GET each).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from preprocessing.shard_index import ShardSet
from preprocessing.shards import ManifestNotFound
from preprocessing.storage import StorageError

__all__ = ["SampleBank"]


class SampleBank:
    """Random access to the members ``members`` of every sample of one shard set.

    Args:
        uri: the shard folder (local path or s3://).
        members: member suffixes to read (``("gt.png",)`` for an ``image_folder`` set).
        what: how errors name the bank (``"backgrounds"``, ``"foregrounds"``).
        cache_bytes: LRU budget for raw member bytes (0 disables it).
        hint: what to do when the set is missing or lacks a member (appended to errors).
    """

    def __init__(self, uri: str, members: tuple[str, ...], what: str, cache_bytes: int = 32 << 20, hint: str = ""):
        self.uri, self.members, self.what, self.cache_bytes, self.hint = uri, tuple(members), what, cache_bytes, hint
        self._set = ShardSet(uri)
        self._cache: OrderedDict[int, dict[str, bytes]] = OrderedDict()
        self._cached = 0
        self.hits = self.misses = 0

    def _fail(self, msg: str) -> ValueError:
        return ValueError(f"{self.what} {self.uri}: {msg}" + (f" ({self.hint})" if self.hint else ""))

    def __len__(self) -> int:
        try:
            n = len(self._set)
        except ManifestNotFound:
            raise self._fail("no manifest.json (the shard job has not run or not finished)") from None
        except StorageError as exc:
            raise self._fail(str(exc)) from None
        if n == 0:
            raise self._fail("the shard set holds no samples")
        return n

    def get(self, index: int) -> dict[str, bytes]:
        """The members of sample ``index`` (raw bytes)."""
        if index in self._cache:
            self._cache.move_to_end(index)
            self.hits += 1
            return self._cache[index]
        self.misses += 1
        try:
            _key, data = self._set.read(index, self.members)
        except KeyError as exc:
            raise self._fail(str(exc.args[0]) if exc.args else "member missing") from None
        size = sum(len(v) for v in data.values())
        if size <= self.cache_bytes:
            self._cache[index] = data
            self._cached += size
            while self._cached > self.cache_bytes:
                _i, old = self._cache.popitem(last=False)
                self._cached -= sum(len(v) for v in old.values())
        return data

    def draw(self, rng: np.random.Generator) -> dict[str, bytes]:
        """A uniformly drawn sample: one ``rng.integers(len(bank))`` draw, as the reference's ``randint``."""
        return self.get(int(rng.integers(len(self))))
