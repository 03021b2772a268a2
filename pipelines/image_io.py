"""Image files in and out of inference: decoding (RGB images; grey masks and trimaps), pairing an
image with its extra inputs by stem, encoding results.

numpy and OpenCV only (and Pillow to read an image's size from its header): ``restoray infer``
uses it, and so do the read and write tasks of ``restoray restore``, whose Ray workers should
not pay for importing torch or Ray Train. An image whose header claims more than
``preprocessing.validate.DEFAULT_MAX_IMAGE_PIXELS`` is refused before it is decoded (a
ValueError naming the file, which ``infer`` reports as a skip like any unreadable file).
"""

from __future__ import annotations

import cv2
import numpy as np

from preprocessing.validate import DEFAULT_MAX_IMAGE_PIXELS, image_header_size

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
JPEG_QUALITY = 95


def pair_index(keys) -> dict[str, str]:
    """``{key without its image suffix: key}`` over the image files among ``keys`` (relative
    paths or names), the first in sorted order winning: how an extra input (mask, trimap) is
    found for an image of the same stem, by ``restoray infer`` in one folder and by ``restoray
    restore`` at the same relative path."""
    index: dict[str, str] = {}
    for key in sorted(keys):
        stem, dot, suffix = key.rpartition(".")
        if dot and f".{suffix.lower()}" in IMAGE_SUFFIXES and "/" not in suffix:
            index.setdefault(stem, key)
    return index


def _decode(data: bytes | np.ndarray, where: str) -> np.ndarray:
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else data
    size = image_header_size(buf[:1 << 20].tobytes()) if buf.size else None  # the header is in the first bytes
    if size is not None and size[0] * size[1] > DEFAULT_MAX_IMAGE_PIXELS:
        w, h = size
        raise ValueError(f"{where}: image too large to decode: {w}x{h} = {w * h / 1e6:.0f} Mpx, over the limit "
                         f"of {DEFAULT_MAX_IMAGE_PIXELS / 1e6:.0f} Mpx")
    try:
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if buf.size else None
    except cv2.error as exc:  # OpenCV's own limits (CV_IO_MAX_IMAGE_PIXELS) and decoder failures
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        raise ValueError(f"{where}: cannot decode ({lines[-1] if lines else 'cv2.error'})") from None
    if img is None:
        raise ValueError(f"{where}: not a readable image")
    if img.dtype != np.uint8:
        raise ValueError(f"{where}: {img.dtype} images are not supported (8-bit only)")
    return img


def decode_grey(data: bytes | np.ndarray, where: str) -> np.ndarray:
    """An encoded mask or trimap -> uint8 HxW; ValueError naming ``where`` for anything else."""
    img = _decode(data, where)
    if img.ndim == 3:
        if not (img[..., :1] == img[..., 1:3]).all():
            raise ValueError(f"{where}: expected a grey image, got colour")
        img = img[..., 0]
    return img


def decode_input(name: str, data: bytes | np.ndarray, where: str) -> np.ndarray:
    """One inference input from its encoded bytes: the ``image`` as RGB, any other the family
    names in ``infer_inputs`` (mask, trimap) as grey. Shared by ``infer`` and ``restore``."""
    return decode_rgb(data, where) if name == "image" else decode_grey(data, where)


def decode_rgb(data: bytes | np.ndarray, where: str) -> np.ndarray:
    """An encoded image -> uint8 RGB HxWx3 (grey and BGRA converted); ValueError naming ``where``."""
    img = _decode(data, where)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    else:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return img


def encode_image(image: np.ndarray, suffix: str) -> bytes:
    """uint8 RGB HxWx3 or grey HxW (HxWx1) -> the bytes of an image file of this suffix
    (``.png``: OpenCV's default compression, as ``restoray infer`` writes; JPEG at quality 95)."""
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    img = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if suffix.lower() in (".jpg", ".jpeg") else []
    ok, data = cv2.imencode(suffix, img, params)
    if not ok:
        raise ValueError(f"cannot encode a {image.shape[1]}x{image.shape[0]} image as {suffix}")
    return data.tobytes()
