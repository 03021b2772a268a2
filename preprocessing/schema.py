"""The on-disk sample schema of restoray shards (WebDataset tars).

One sample is a group of adjacent tar members sharing a key::

    0801_s001.gt.png    ground-truth crop, RGB, PNG compression 3 (as MMEditing)
    0801_s001.lq.png    low-quality crop (only for paired adapters, e.g. div2k, set5_14)
    0801_s001.json      metadata (see :func:`sample_metadata`)

Matting adapters (``comp1k``, ``matting_folder``) write whole images under other member
names instead of ``gt``/``lq``::

    GT-0001.fg.png       training: foreground, RGB
    GT-0001.alpha.png    training and evaluation: alpha matte, single-channel 8-bit PNG
    GT-0001_3.merged.png evaluation: the composite the network sees, RGB
    GT-0001_3.trimap.png evaluation: trimap (0 / 128 / 255), single-channel 8-bit PNG
    GT-0001_3.bg.png     evaluation, when the source has it: the background, RGB

Inpainting mask sets (``mask_folder``) store one hole mask per sample::

    00012.mask.png       single-channel 8-bit PNG, 255 = hole, 0 = valid (binary)

Reference-based SR sets (``cufed``) store the GT and its reference image, whose size may differ::

    000001.gt.png        GT, RGB
    000001.ref.png       the reference (CUFED's ref/ image; CUFED5's <id>_<level>.png), RGB

Video adapters (``reds``, ``vimeo90k``, ``vid4``, ``udm10``, ``videolq``, ``video_files``)
write one sample per clip (all frames of one spatial sub-region, or of the whole frame), one PNG
member per frame (:func:`frame_member`), so a training read decodes only the frames it uses::

    000_s001.gt.000.png  000_s001.gt.001.png ...   GT frames, RGB
    000_s001.lq.000.png  000_s001.lq.001.png ...   LQ frames (datasets with LR frames; VideoLQ has only these)
    000_s001.json                                   metadata (see :func:`clip_metadata`)

Face SR samples (``celeba_hq`` with a ``landmarks`` file) add the GT's facial landmarks::

    00001.landmarks.json  {"points": [[x, y], ... 68 pairs], "image_size": [h, w]}: pixel
                          coordinates in gt.png (x right, y down, origin at the top-left pixel)

Grey members (:data:`GREY_MEMBERS`) are stored as 1-channel PNGs and decoded with
:func:`decode_grey` to ``HxW`` uint8; every member of one sample has the same height and
width (the shard builder quarantines a sample whose files disagree), except a reference image.

WebDataset splits a member name at the first dot after the last slash, so keys
contain no dots; :func:`sanitize_key` makes any file stem safe. Cropped samples
are keyed ``<item_id>_s<NNN>`` with a 1-based, 3-digit sub-image index (more
digits past 999), like MMEditing's ``extract_subimages``; uncropped samples
(evaluation sets) are keyed ``<item_id>``.

Image codecs: GT/LQ members are PNG by default. A shard job with ``image_codec: qoi`` (image
adapters: sub-image and whole-image sets, not matting, clip or mask sets) writes them as QOI
instead, named for it (``0801_s001.gt.qoi``): lossless like PNG, ~1.1x its size on photographs,
and 3.5-5x faster to decode (1.3 ms against libspng's 4.5 ms for a 480 px crop), which is what
bounds a training read on fast storage. Readers find an image member with :func:`image_bytes`,
which takes the canonical name (``gt.png``) and returns whichever codec the shard holds.

Readers (pipelines/, trainers/) import the member names and decoders from here.
"""

from __future__ import annotations

import json
import re
from fractions import Fraction

import cv2
import numpy as np
import qoi  # QOI members: the reference C codec behind a small binding (exact, and fast to decode)

try:  # optional speed-up (x86_64 wheels); OpenCV decodes the same pixels without it
    import pyspng as _pyspng
except ImportError:  # pragma: no cover - depends on the platform
    _pyspng = None

__all__ = [
    "FORMAT",
    "GT",
    "LQ",
    "META",
    "FG",
    "ALPHA",
    "MERGED",
    "TRIMAP",
    "BG",
    "MASK",
    "LANDMARKS",
    "REF",
    "GREY_MEMBERS",
    "encode_png_grey",
    "decode_grey",
    "sanitize_key",
    "sub_image_key",
    "sample_metadata",
    "clip_metadata",
    "FRAME_KINDS",
    "frame_member",
    "parse_frame_member",
    "encode_png",
    "encode_shard_image",
    "decode_image",
    "IMAGE_CODECS",
    "codec_member",
    "image_bytes",
    "require_image",
    "image_member_names",
    "encode_json",
    "decode_json",
]

FORMAT = "restoray-shards/1"
GT = "gt.png"
LQ = "lq.png"
META = "json"
FG = "fg.png"
ALPHA = "alpha.png"
MERGED = "merged.png"
TRIMAP = "trimap.png"
BG = "bg.png"
MASK = "mask.png"
LANDMARKS = "landmarks.json"  # facial landmarks of a sample's gt.png (celeba_hq with ``landmarks``)
REF = "ref.png"  # reference-based SR (TTSR): the sample's reference image, RGB, any size
GREY_MEMBERS = frozenset({ALPHA, TRIMAP, MASK})  # single-channel members: decode with decode_grey

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_QOI_MAGIC = b"qoif"
#: ``image_codec`` values of a shard job: the suffix its GT/LQ members get.
IMAGE_CODECS = {"png": "png", "qoi": "qoi"}
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")


def sanitize_key(text: str) -> str:
    """Makes a WebDataset-safe key part: every char outside ``[A-Za-z0-9_-]`` becomes ``_``.

    That covers dots (WebDataset's member separator), whitespace and path
    separators (``a/b c.d`` -> ``a_b_c_d``).
    """
    key = _UNSAFE.sub("_", text)
    if not key:
        raise ValueError(f"cannot make a sample key from {text!r}")
    return key


def sub_image_key(item_id: str, index: int) -> str:
    """The key of the ``index``-th (1-based) sub-image of an item: ``0801_s001``."""
    return f"{item_id}_s{index:03d}"


#: Clip samples store one PNG member per frame, ``gt.000.png``, ``lq.000.png``, ... (frame index
#: zero-padded to at least 3 digits), so a training read decodes only the frames it samples and
#: the tar still lists as ordinary files for ``tar`` and the ``webdataset`` library.
FRAME_KINDS = ("gt", "lq")
_FRAME_RE = re.compile(r"^(gt|lq)\.(\d{3,})\.png$")


def frame_member(kind: str, index: int) -> str:
    """The member name of frame ``index`` (0-based) of a clip: ``frame_member("gt", 7) == "gt.007.png"``."""
    if kind not in FRAME_KINDS or index < 0:
        raise ValueError(f"no frame member for kind {kind!r}, index {index}")
    return f"{kind}.{index:03d}.png"


def parse_frame_member(name: str) -> tuple[str, int] | None:
    """``"gt.007.png" -> ("gt", 7)``; None for a member that is not a frame."""
    m = _FRAME_RE.match(name)
    return (m.group(1), int(m.group(2))) if m else None


def sample_metadata(
    *,
    key: str,
    adapter: str,
    source: str,
    box: tuple[int, int, int, int],
    image_size: tuple[int, int],
    scale: int = 1,
    lq_source: str | None = None,
    lq_box: tuple[int, int, int, int] | None = None,
    notes: list[str] | None = None,
    members: dict[str, str] | None = None,
) -> dict:
    """The ``json`` member of a sample.

    Args:
        key: the sample key.
        adapter: name of the adapter that produced it.
        source: storage key of the GT source image (relative to the source root).
        box: crop box ``(y, x, h, w)`` in GT pixels.
        image_size: ``(h, w)`` of the whole GT source image.
        scale: LQ downscale factor (1 when there is no LQ).
        lq_source: storage key of the LQ source image, if any.
        lq_box: crop box in LQ pixels (``box`` divided by ``scale``).
        notes: conversions applied on load (e.g. ``"gray->rgb"``).
        members: member name -> storage key of its source file, for samples made of
            several named images (matting); omitted for gt/lq samples.
    """
    meta = {
        "key": key,
        "adapter": adapter,
        "source": source,
        "box": list(box),
        "image_size": list(image_size),
        "scale": scale,
    }
    if lq_source is not None:
        meta["lq_source"] = lq_source
        meta["lq_box"] = list(lq_box) if lq_box is not None else None
    if notes:
        meta["notes"] = list(notes)
    if members:
        meta["members"] = dict(members)
    return meta


def clip_metadata(
    *,
    key: str,
    adapter: str,
    source: str,
    frame_names: list[str],
    box: tuple[int, int, int, int],
    image_size: tuple[int, int],
    kinds: tuple[str, ...] = ("gt",),
    scale: int = 1,
    lq_source: str | None = None,
    lq_box: tuple[int, int, int, int] | None = None,
    lq_frame_names: list[str] | None = None,
    fps: Fraction | None = None,
    time_base: Fraction | None = None,
    start_frame: int | None = None,
    notes: list[str] | None = None,
) -> dict:
    """The ``json`` member of a clip sample (one spatial sub-region of all frames of a clip).

    Args:
        key: the sample key.
        adapter: name of the adapter that produced it.
        source: storage key of the clip folder (GT frames; the LQ folder for LQ-only sets) or
            of the video file.
        frame_names: source file name of every frame, in frame order (``frames`` is its
            length); for video files ``"<video>#<decode index>"``.
        box: crop box ``(y, x, h, w)`` shared by every frame, in pixels of the stored
            ``kinds[0]`` frames (GT pixels when there is GT).
        image_size: ``(h, w)`` of the whole source frame the box is cut from.
        kinds: which frame members the sample stores: ``("gt", "lq")``, ``("gt",)`` (LQ made
            at training time by the sampler) or ``("lq",)`` (no-reference sets: VideoLQ).
        scale: GT/LQ size ratio (1 without a stored LQ).
        lq_source: the LQ clip folder, when LQ frames are stored beside GT.
        lq_box: ``box`` divided by ``scale``.
        lq_frame_names: LQ source file names per frame.
        fps: frame rate of a video file (exact); stored as a float ``fps`` and a
            ``"num/den"`` string ``fps_fraction``.
        time_base: the video stream's time base, stored as ``"num/den"``.
        start_frame: index of the clip's first frame in the video, for videos cut into clips.
        notes: conversions applied on load.
    """
    meta = {
        "key": key,
        "adapter": adapter,
        "source": source,
        "frames": len(frame_names),
        "frame_names": list(frame_names),
        "kinds": list(kinds),
        "box": list(box),
        "image_size": list(image_size),
        "scale": scale,
    }
    if lq_source is not None:
        meta["lq_source"] = lq_source
        meta["lq_box"] = list(lq_box) if lq_box is not None else None
        if lq_frame_names is not None:
            meta["lq_frame_names"] = list(lq_frame_names)
    if fps is not None:
        meta["fps"] = float(fps)
        meta["fps_fraction"] = f"{fps.numerator}/{fps.denominator}"
    if time_base is not None:
        meta["time_base"] = f"{time_base.numerator}/{time_base.denominator}"
    if start_frame is not None:
        meta["start_frame"] = start_frame
    if notes:
        meta["notes"] = list(notes)
    return meta


def encode_json(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


def decode_json(data: bytes):
    return json.loads(data)


def codec_member(name: str, codec: str) -> str:
    """The member name of canonical image member ``name`` in ``codec``: ``("gt.png", "qoi") -> "gt.qoi"``."""
    if codec not in IMAGE_CODECS:
        raise ValueError(f"image_codec {codec!r}: expected one of {', '.join(IMAGE_CODECS)}")
    stem, _, _suffix = name.rpartition(".")
    return f"{stem}.{IMAGE_CODECS[codec]}"


def image_bytes(members: dict[str, bytes], name: str) -> bytes | None:
    """The bytes of image member ``name`` (canonical, ``gt.png``) in whichever codec the sample
    holds it, or None when it has none (or an empty one)."""
    for codec in IMAGE_CODECS:
        data = members.get(codec_member(name, codec))
        if data:
            return data
    return None


def require_image(members: dict[str, bytes], name: str) -> bytes:
    """:func:`image_bytes`, or a ValueError naming the sample (``__key__``) and the member."""
    data = image_bytes(members, name)
    if data is None:
        raise ValueError(f"sample {members.get('__key__')}: no {name} member")
    return data


def image_member_names(name: str) -> tuple[str, ...]:
    """Every name image member ``name`` may have in a shard (one per codec)."""
    return tuple(codec_member(name, codec) for codec in IMAGE_CODECS)


def encode_shard_image(img: np.ndarray, codec: str = "png", compression: int = 3) -> bytes:
    """An HxWx3 uint8 RGB array as a shard member in ``codec`` (``compression``: PNG's zlib level)."""
    if codec == "qoi":
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"expected HxWx3 uint8 RGB, got {img.dtype} {img.shape}")
        return bytes(qoi.encode(np.ascontiguousarray(img)))
    if codec != "png":
        raise ValueError(f"image_codec {codec!r}: expected one of {', '.join(IMAGE_CODECS)}")
    return encode_png(img, compression)


def encode_png(img: np.ndarray, compression: int = 3) -> bytes:
    """Encodes an HxWx3 uint8 RGB array as PNG (cv2, compression 3 like MMEditing's crops)."""
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected HxWx3 uint8 RGB, got {img.dtype} {img.shape}")
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def _spng(data: bytes) -> np.ndarray | None:
    """An 8-bit PNG decoded by libspng (``pyspng``, ~30 % faster than OpenCV's libpng here,
    and already in RGB order), or None when that is not available or does not apply (not a
    PNG, another bit depth): the caller then uses OpenCV. Same pixels either way: PNG is
    lossless (``tests/preprocessing`` compares the two)."""
    if _pyspng is None or not data.startswith(_PNG_SIGNATURE):
        return None
    try:
        img = _pyspng.load(data)
    except Exception:  # noqa: BLE001 - a file libspng refuses may still be one OpenCV reads
        return None
    return img if img.dtype == np.uint8 else None


def decode_image(data: bytes) -> np.ndarray:
    """Decodes PNG/JPEG/QOI bytes written by restoray to an HxWx3 uint8 RGB array.

    Meant for shard members, which are already validated; raw inputs go
    through :func:`preprocessing.validate.load_image` instead.
    """
    if data[:4] == _QOI_MAGIC:
        try:
            img = qoi.decode(bytes(data))
        except (RuntimeError, ValueError) as exc:
            raise ValueError(f"cannot decode image bytes (QOI: {exc})") from None
        return np.ascontiguousarray(img[..., :3]) if img.shape[2] == 4 else img
    img = _spng(data)
    if img is not None:
        if img.ndim == 2:
            return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
        return np.ascontiguousarray(img[..., :3]) if img.shape[2] == 4 else img
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError("cannot decode image bytes")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)  # same pixels as img[..., ::-1], ~40x faster than that copy


def encode_png_grey(img: np.ndarray, compression: int = 3) -> bytes:
    """Encodes an HxW uint8 array (alpha matte, trimap) as a single-channel 8-bit PNG."""
    if img.dtype != np.uint8 or img.ndim != 2:
        raise ValueError(f"expected HxW uint8 grey, got {img.dtype} {img.shape}")
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img), [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def decode_grey(data: bytes) -> np.ndarray:
    """Decodes a grey member (``alpha.png``, ``trimap.png``) to an HxW uint8 array.

    Shards store these as 1-channel PNGs; a 3-channel image whose channels agree is
    accepted too (its first channel), anything else is a ValueError rather than a
    silent luminance conversion.
    """
    img = _spng(data)
    if img is None:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError("cannot decode image bytes")
    if img.dtype != np.uint8:
        raise ValueError(f"expected an 8-bit grey image, got {img.dtype}")
    if img.ndim == 3:
        if not (img[..., :1] == img[..., 1:3]).all():
            raise ValueError("expected a grey image, got colour")
        img = img[..., 0]
    return np.ascontiguousarray(img)
