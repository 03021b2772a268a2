"""What a shard tar may hold, checked by every reader: regular files with plain relative names.

restoray's shard builder writes only regular-file members named ``<key>.<suffix>`` (no folders,
no links, fixed mode). A tar from elsewhere -- a hand-made or tampered shard, a shard folder on
a shared bucket -- may hold absolute paths, ``..`` components, symlinks, hardlinks or device
entries. Readers here never extract to disk, so such a member cannot write outside a folder,
but silently skipping it (what tarfile-based readers such as webdataset's do) turns a hostile or
broken shard into a confusing ``KeyError: 'gt.png'`` far from the cause. Every tar read in the
project (the training stream's read task, validation and evaluation, ranged member reads and
header scans) goes through :func:`check_member` instead, which refuses the member with the
shard and member named.

Manifests name their shards; :func:`check_shard_name` keeps those names inside the dataset root.
"""

from __future__ import annotations

import tarfile
from typing import IO, Iterator

from .storage import StorageError

__all__ = ["UnsafeTarMember", "check_member", "check_shard_name", "member_problem", "safe_tar_files"]


class UnsafeTarMember(StorageError):
    """A shard holds a member restoray refuses to read (a link, a device, an escaping name)."""


def _name_problem(name: str) -> str | None:
    if not name:
        return "an empty name"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":") or name.startswith("\\"):
        return "an absolute path"
    if "\\" in name:
        return "a backslash in its name"
    parts = name.split("/")
    if ".." in parts:
        return "a '..' component (it would point outside the shard)"
    if any(p in ("", ".") for p in parts):
        return "an empty or '.' path component"
    if any(ord(c) < 32 for c in name):
        return "a control character in its name"
    return None


def member_problem(info: tarfile.TarInfo) -> str | None:
    """Why a member is refused (a phrase), or None for a regular file with a plain relative name."""
    if info.issym():
        return f"a symbolic link (to {info.linkname!r})"
    if info.islnk():
        return f"a hard link (to {info.linkname!r})"
    if info.ischr() or info.isblk():
        return "a device entry"
    if info.isfifo():
        return "a FIFO"
    if info.isdir():
        return "a directory"
    if not info.isreg():
        return f"not a regular file (tar type {info.type!r})"
    return _name_problem(info.name)


def check_member(shard: str, info: tarfile.TarInfo) -> None:
    """Raises :class:`UnsafeTarMember` naming ``shard`` and the member if it is not a plain file."""
    problem = member_problem(info)
    if problem is not None:
        raise UnsafeTarMember(f"shard {shard}: member {info.name!r} refused ({problem}): restoray reads only "
                              "regular files with plain relative names; rebuild the shard with `restoray shard`")


def safe_tar_files(fileobj: IO[bytes], shard: str) -> Iterator[dict]:
    """``{"fname", "data"}`` of every member of a streamed tar, in order, each checked first
    (the input webdataset's ``group_by_keys`` takes)."""
    try:
        with tarfile.open(fileobj=fileobj, mode="r|*") as stream:
            for info in stream:
                check_member(shard, info)
                yield {"fname": info.name, "data": stream.extractfile(info).read()}
                stream.members = []  # streamed: keep no per-member state
    except tarfile.TarError as exc:
        raise StorageError(f"shard {shard} is not a readable tar ({exc})") from None


def check_shard_name(name: object, manifest: str) -> str:
    """A manifest's shard name, if it stays inside the dataset root (a relative path without
    ``..``, no scheme); else a StorageError naming both."""
    if not isinstance(name, str):
        raise StorageError(f"{manifest}: shard name {name!r} is not a string")
    problem = "a URI, not a name in the dataset folder" if "://" in name else _name_problem(name)
    if problem is not None:
        raise StorageError(f"{manifest}: shard name {name!r} refused ({problem}): shards must lie in the "
                           "dataset folder")
    return name
