"""Decode and validate raw input images; bad ones are quarantined, never fatal.

Policy (what :func:`load_image` accepts, converts or rejects):

==========================  ==============================================
input                       result
==========================  ==============================================
8-bit RGB                   returned as is
8-bit gray (L, 1-bit)       replicated to RGB; note ``"gray->rgb"``
palette (P)                 expanded to RGB(A), then the alpha rule below
RGBA / gray+alpha (LA)      alpha dropped if fully opaque (note
                            ``"dropped opaque alpha"``), else
                            ``CorruptInput("alpha channel ...")``
16-bit PNG (any channels)   ``CorruptInput("16-bit not supported")``
CMYK, float, 32-bit int...  ``CorruptInput("unsupported mode ...")``
zero bytes                  ``CorruptInput("empty file")``
not an image                ``CorruptInput("not a decodable image")``
truncated PNG / JPEG        ``CorruptInput("truncated ...")``
more pixels than the limit  ``CorruptInput("image too large ...")``, from the header, undecoded
a side under the minimum    ``CorruptInput("image too small ...")``, from the header, undecoded
==========================  ==============================================

Size limits (:class:`InputLimits`, set per shard job by ``limits:`` in the shard config and
installed around a shard build with :func:`input_limits`): ``max_image_pixels`` (default 2^27 =
134 Mpx, e.g. 16384x8192) refuses decompression bombs from the header, before a byte is
decoded. Why 2^27: the largest images of the zoo's datasets are ~12 Mpx (DIV2K 2040x1404 is
2.8 Mpx, Comp-1k foregrounds up to ~4000x3000), so the limit is 10x above real data, while a
decoded image at the limit is 384 MiB (plus Pillow's copy: ~0.8 GB) and still fits a shard
task's memory on a node with 2 GB per CPU; a 60000x60000 "PNG" (3.6 Gpx, 10 GB decoded) is
refused. ``min_image_size`` (shortest side, default 2) refuses images the training crop would
reflect-pad into a flat patch (a 1-pixel axis reflects to a constant); set it to the training
crop (``task.data.gt_size``) to refuse everything smaller than the crop.

Grey inputs (alpha mattes, trimaps) go through :func:`load_grey_with_notes`: 8-bit
gray is returned as ``HxW``; an RGB(A)/palette file whose colour channels are all equal is
reduced to one channel (note ``"rgb->gray"``); one whose channels differ is
``CorruptInput("colour image with differing channels ...")`` -- a luminance conversion
would silently invent an alpha matte. The alpha-channel and 16-bit rules above apply.
Matting colour inputs (fg, merged, bg) are loaded with ``drop_alpha=True``: an alpha
channel with transparent pixels is dropped (note ``"dropped alpha channel"``) as the
reference's readers drop it, since their matte is a separate file.

Why reject 16-bit instead of scaling to 8 bits: every zoo dataset is 8-bit, so
a 16-bit file is a sign of the wrong data; silently quantising it would hide
that. Images are decoded with Pillow because it raises on truncated data where
``cv2.imdecode`` may return a partial image; PNGs are additionally checked for
the IEND chunk, which Pillow does not require. EXIF orientation is applied,
matching ``cv2.IMREAD_COLOR`` (what MMEditing reads with).
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import struct
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["CorruptInput", "DEFAULT_MAX_IMAGE_PIXELS", "InputLimits", "current_limits", "image_header_size",
           "input_limits", "load_grey_with_notes", "load_image", "load_image_with_notes"]

DEFAULT_MAX_IMAGE_PIXELS = 2 ** 27


@dataclass(frozen=True)
class InputLimits:
    """What a raw input may be before it is decoded (see the module docstring for the defaults).

    Attributes:
        max_image_pixels: width x height above which an image (or a frame of a frame folder)
            is refused from its header.
        min_image_size: shortest side, in pixels, below which an image is refused.
        max_frame_pixels: width x height above which a video file is refused (from its header).
        max_video_frames: frame count above which a video file is refused (from its header, and
            again while decoding, should the header understate it).
    """

    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    min_image_size: int = 2
    max_frame_pixels: int = 2 ** 23  # 8.4 Mpx: 4K UHD (3840x2160) fits; a clip of 100 such frames is 2.5 GB
    max_video_frames: int = 2 ** 17  # 131072: over an hour at 30 fps

    def __post_init__(self):
        for name in ("max_image_pixels", "min_image_size", "max_frame_pixels", "max_video_frames"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"limits.{name} must be a positive integer, got {value!r}")


_LIMITS: contextvars.ContextVar[InputLimits] = contextvars.ContextVar("restoray_input_limits", default=InputLimits())


def current_limits() -> InputLimits:
    """The limits in force (the defaults unless inside :func:`input_limits`)."""
    return _LIMITS.get()


@contextlib.contextmanager
def input_limits(limits: InputLimits | None):
    """Applies ``limits`` to every input decoded inside the block (None: the defaults)."""
    token = _LIMITS.set(limits or InputLimits())
    try:
        yield
    finally:
        _LIMITS.reset(token)


def image_header_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from an image file's header, without decoding pixels; None when
    Pillow cannot identify the format (the decoder then says what is wrong)."""
    saved = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None  # our own limit applies, from this size
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                return im.size
    except Exception:  # noqa: BLE001 - unidentifiable or broken header: not our call to make here
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def check_header_size(width: int, height: int, limits: InputLimits | None = None) -> None:
    """CorruptInput when an image of this size is over the pixel limit or under the minimum side."""
    limits = limits or current_limits()
    if width * height > limits.max_image_pixels:
        raise CorruptInput(f"image too large: {width}x{height} = {width * height / 1e6:.0f} Mpx, over the "
                           f"limit of {limits.max_image_pixels / 1e6:.0f} Mpx (limits.max_image_pixels); not decoded")
    if min(width, height) < limits.min_image_size:
        raise CorruptInput(f"image too small: {width}x{height}, shortest side under "
                           f"{limits.min_image_size} px (limits.min_image_size): too small for the crop")

_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"


class CorruptInput(Exception):
    """An input image that cannot become a sample; ``reason`` says why (one line)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _check_png(data: bytes) -> None:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise CorruptInput("truncated PNG (no IHDR chunk)")
    _w, _h, bit_depth, _color_type = struct.unpack(">IIBB", data[16:26])
    if bit_depth == 16:
        raise CorruptInput("16-bit not supported")
    if not data.endswith(_PNG_IEND):
        raise CorruptInput("truncated PNG (no IEND chunk at end of file)")


def _to_rgb(im: Image.Image, notes: list[str], drop_alpha: bool = False) -> np.ndarray:
    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode in ("1", "L"):
        notes.append("gray->rgb")
        return np.asarray(im.convert("RGB"))
    if mode == "RGB":
        return np.asarray(im)
    if mode in ("RGBA", "LA"):
        arr = np.asarray(im)
        if (arr[..., -1] == 255).all():
            notes.append("dropped opaque alpha")
        elif drop_alpha:
            notes.append("dropped alpha channel")
        else:
            raise CorruptInput(f"alpha channel with transparent pixels ({mode}) not supported")
        if mode == "LA":
            notes.append("gray->rgb")
            return np.repeat(arr[..., :1], 3, axis=2)
        return np.ascontiguousarray(arr[..., :3])
    if mode.startswith("I;16"):
        raise CorruptInput("16-bit not supported")
    raise CorruptInput(f"unsupported mode {mode}")


def _open(data: bytes) -> tuple[Image.Image, list[str]]:
    """Decodes the bytes with Pillow (EXIF orientation applied); CorruptInput on bad data."""
    if not data:
        raise CorruptInput("empty file")
    if data.startswith(_PNG_SIG):
        _check_png(data)
    size = image_header_size(data)
    if size is not None:
        check_header_size(*size)  # before decoding: a bomb is refused from its header
    saved = Image.MAX_IMAGE_PIXELS
    try:
        # The limit is ours (checked above); Pillow's own (89 Mpx, an error at 2x) would
        # override a larger configured one.
        Image.MAX_IMAGE_PIXELS = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning etc.; errors still raise
            im = Image.open(io.BytesIO(data))
            im.load()
    except UnidentifiedImageError:
        raise CorruptInput("not a decodable image") from None
    except Image.DecompressionBombError as exc:
        raise CorruptInput(f"image too large: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        reason = "truncated image" if "truncated" in text else "corrupt image"
        raise CorruptInput(f"{reason}: {text}") from None
    finally:
        Image.MAX_IMAGE_PIXELS = saved
    notes: list[str] = []
    try:
        orientation = im.getexif().get(0x0112, 1)
    except Exception:  # broken EXIF must not reject otherwise good pixels
        orientation = 1
    if orientation not in (None, 1):
        im = ImageOps.exif_transpose(im)
        notes.append("exif orientation applied")
    return im, notes


def _check_size(arr: np.ndarray) -> np.ndarray:
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise CorruptInput("empty image (zero width or height)")
    return np.ascontiguousarray(arr)


def load_image_with_notes(data: bytes, name: str, drop_alpha: bool = False) -> tuple[np.ndarray, list[str]]:
    """Like :func:`load_image`, also returning the conversions applied (e.g. ``["gray->rgb"]``).

    ``drop_alpha`` keeps the colour of an image whose alpha channel has transparent pixels
    (note ``"dropped alpha channel"``) instead of rejecting it: matting inputs, whose matte is
    a separate file and which the reference reads with ``cv2.IMREAD_COLOR`` / PIL's
    ``convert("RGB")``, both of which drop the channel.
    """
    im, notes = _open(data)
    arr = _to_rgb(im, notes, drop_alpha)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise CorruptInput(f"unsupported pixel format {arr.dtype} {arr.shape}")
    return _check_size(arr), notes


def load_grey_with_notes(data: bytes, name: str) -> tuple[np.ndarray, list[str]]:
    """Decodes a grey input (alpha matte, trimap) to HxW uint8, or raises CorruptInput.

    See the module docstring for the policy; ``name`` is for context only.
    """
    im, notes = _open(data)
    if im.mode in ("1", "L"):
        return _check_size(np.asarray(im.convert("L"))), notes
    if im.mode.startswith("I;16"):
        raise CorruptInput("16-bit not supported")
    rgb_notes: list[str] = []
    arr = _to_rgb(im, rgb_notes)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise CorruptInput(f"unsupported pixel format {arr.dtype} {arr.shape}")
    if not ((arr[..., 0] == arr[..., 1]).all() and (arr[..., 0] == arr[..., 2]).all()):
        raise CorruptInput(f"colour image with differing channels ({im.mode}) where a grey "
                           "(single-channel) image is expected")
    notes += [n for n in rgb_notes if n != "gray->rgb"] + ([] if im.mode == "LA" else ["rgb->gray"])
    return _check_size(arr[..., 0]), notes


def load_image(data: bytes, name: str) -> np.ndarray:
    """Decodes raw image bytes to HxWx3 uint8 RGB, or raises CorruptInput.

    Args:
        data: the file's bytes.
        name: the file's key or URI, for context only: the content, not the
            extension, decides how the bytes are decoded.

    Raises:
        CorruptInput: see the module docstring for the policy.
    """
    return load_image_with_notes(data, name)[0]
