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
==========================  ==============================================

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

import io
import struct
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["CorruptInput", "load_grey_with_notes", "load_image", "load_image_with_notes"]

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
    try:
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
