"""Cheap checks that a shard's bytes are still what the shard job wrote, at training time.

Shards live for months on object stores and shared disks: a copy cut short, a bit flipped,
a member overwritten. Training must find such damage, name it (shard and sample) and go on
without it. What is checked, and what it costs:

* **size**: the shard's byte count against the manifest's ``bytes`` -- free; it finds a
  truncated or replaced tar before anything is parsed.
* **tar structure**: reading stops cleanly at a cut; the samples before it are kept.
* **image members**: PNG signature, every chunk's CRC-32 and the closing ``IEND``; JPEG's
  start and end markers. A CRC pass runs at >1 GB/s, a few percent of what decoding the same
  PNG costs, and it finds truncated members, garbage bytes and flipped bits without decoding.
  QOI members (``image_codec: qoi``) have no checksum: magic, header and end marker.
* **not the sha256** of every shard: it is as cheap as the CRC pass, but a mismatch says only
  that *something* in the shard changed, not which sample, and the checks above already find
  the damage sample by sample. ``manifest.json``'s sha256 stays what ``restoray shard`` uses to
  reuse finished shards.

A member that passes these checks but still fails to decode (possible only for crafted data)
is caught when the sampler decodes it (``pipelines/stream.py``).
"""

from __future__ import annotations

import io
import struct
import tarfile
import zlib
from dataclasses import dataclass, field

from .tar_safety import check_member

__all__ = ["ShardContents", "member_problem", "sample_problem", "read_tar"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_problem(data: bytes) -> str | None:
    if not data.startswith(_PNG_SIGNATURE):
        return "not a PNG (bad signature)"
    pos = len(_PNG_SIGNATURE)
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        kind = data[pos + 4:pos + 8]
        end = pos + 8 + length
        if end + 4 > len(data):
            return f"PNG cut off inside its {kind.decode('latin-1')!r} chunk"
        (crc,) = struct.unpack_from(">I", data, end)
        if zlib.crc32(data[pos + 4:end]) != crc:
            return f"PNG chunk {kind.decode('latin-1')!r} fails its CRC"
        if kind == b"IEND":
            return None
        pos = end + 4
    return "PNG cut off (no IEND chunk)"


def _jpeg_problem(data: bytes) -> str | None:
    if not data.startswith(b"\xff\xd8"):
        return "not a JPEG (no start marker)"
    if not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        return "JPEG cut off (no end marker)"
    return None


_QOI_END = b"\x00" * 7 + b"\x01"


def _qoi_problem(data: bytes) -> str | None:
    """QOI has no checksum: its magic, a sane header and the closing 8-byte end marker find a
    cut or overwritten member; a flipped bit inside is found only when it fails to decode."""
    if not data.startswith(b"qoif"):
        return "not a QOI image (bad magic)"
    if len(data) < 22:
        return "QOI cut off inside its header"
    width, height, channels = struct.unpack_from(">IIB", data, 4)
    if not width or not height or channels not in (3, 4):
        return f"QOI header is garbled ({width}x{height}, {channels} channels)"
    if not data.endswith(_QOI_END):
        return "QOI cut off (no end marker)"
    return None


def member_problem(name: str, data: bytes) -> str | None:
    """Why a shard member is damaged, or None when it looks whole (only images are checked)."""
    suffix = name.rsplit(".", 1)[-1].lower()
    if suffix == "png":
        return _png_problem(data)
    if suffix == "qoi":
        return _qoi_problem(data)
    if suffix in ("jpg", "jpeg"):
        return _jpeg_problem(data)
    return None


def sample_problem(members: dict[str, bytes]) -> str | None:
    """The first damaged member of a sample, as ``"<member>: <why>"``, or None."""
    for name, data in members.items():
        problem = member_problem(name, data)
        if problem:
            return f"{name}: {problem}"
    return None


@dataclass
class ShardContents:
    """The samples a shard's bytes still hold, in tar order.

    Attributes:
        samples: ``(key, {member suffix: bytes})`` for each complete sample.
        cut: why reading stopped early (a truncated or garbled tar), or None.
    """

    samples: list[tuple[str, dict[str, bytes]]] = field(default_factory=list)
    cut: str | None = None


def _split(name: str) -> tuple[str, str] | None:
    """``dir/key.gt.png`` -> (``dir/key``, ``gt.png``), WebDataset's rule (first dot of the basename)."""
    folder, _, base = name.rpartition("/")
    if "." not in base:
        return None
    stem, suffix = base.split(".", 1)
    return (f"{folder}/{stem}" if folder else stem), suffix


def read_tar(data: bytes, shard: str = "<shard>") -> ShardContents:
    """Groups a shard's regular-file members into samples, stopping cleanly at damage.

    A sample is a run of consecutive members with one key, as WebDataset groups them. When the
    tar breaks off, the sample being read is dropped too (its last members may be missing), and
    ``cut`` says where it broke. A member that is not a plain file with a plain relative name
    raises ``UnsafeTarMember`` (``preprocessing.tar_safety``): that is tampering, not damage.
    """
    out = ShardContents()
    key, members = None, {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for info in tar:
                check_member(shard, info)  # links, devices, escaping names: refused, named (not damage)
                parts = _split(info.name)
                if parts is None:
                    continue
                if parts[0] != key:
                    if key is not None:
                        out.samples.append((key, members))
                    key, members = parts[0], {}
                f = tar.extractfile(info)
                blob = f.read() if f is not None else b""
                if len(blob) != info.size:
                    raise tarfile.ReadError(f"member {info.name} cut off ({len(blob)} of {info.size} bytes)")
                members[parts[1]] = blob
    except (tarfile.TarError, EOFError, OSError) as exc:
        out.cut = f"tar unreadable after {len(out.samples)} sample(s): {exc}"
        return out
    if key is not None:
        out.samples.append((key, members))
    return out
