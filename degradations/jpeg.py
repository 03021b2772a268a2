"""JPEG compression round trip (libjpeg through OpenCV).

Real-ESRGAN's GPU path uses DiffJPEG (a differentiable torch re-implementation: float
quality, 4:2:0 chroma, rounding in the quantiser, pads to multiples of 16); its CPU path
(``add_jpg_compression``) and this module run the real codec, which is what "JPEG at
quality q" means at inference time. Differences vs DiffJPEG: integer quality (``int(q)``,
as the reference CPU path truncates), libjpeg's own DCT/colour conversion rounding, and
edge padding by libjpeg instead of zero-padding to 16. ``torch_jpeg.jpeg_batch`` is this
codec re-implemented in torch for the batched GPU path, bit-identical to it.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["jpeg"]


def jpeg(img: np.ndarray, quality: float) -> np.ndarray:
    """Encode an RGB float image in [0, 1] as JPEG at ``quality`` and decode it.

    The image is clipped to [0, 1] and rounded to 8 bits (OpenCV's saturating cast of
    ``img * 255``), channels go RGB -> BGR for the codec and back.

    Args:
        img: ``HxWx3`` (or ``HxWx1`` / ``HxW`` gray) float image.
        quality: JPEG quality; truncated to an int in [1, 100].

    Returns:
        float32 image of the same shape, values ``k / 255``.
    """
    if not isinstance(img, np.ndarray) or img.ndim not in (2, 3) or img.size == 0:
        raise ValueError(f"image must be a non-empty HxW or HxWxC array, got {getattr(img, 'shape', type(img))}")
    channels = 1 if img.ndim == 2 else img.shape[2]
    if channels not in (1, 3):
        raise ValueError(f"JPEG needs 1 or 3 channels, got {channels}")
    q = int(quality)
    if not 1 <= q <= 100:
        raise ValueError(f"JPEG quality must be in [1, 100], got {quality!r}")
    u8 = np.rint(np.clip(img * np.float32(255.0), 0.0, 255.0)).astype(np.uint8)  # = cv2's saturate_cast
    if channels == 3:
        u8 = cv2.cvtColor(u8, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", u8, [int(cv2.IMWRITE_JPEG_QUALITY), q])
    if not ok:
        raise ValueError(f"JPEG encoding failed for an image of shape {img.shape}")
    dec = cv2.imdecode(buf, cv2.IMREAD_COLOR if channels == 3 else cv2.IMREAD_GRAYSCALE)
    if channels == 3:
        dec = cv2.cvtColor(dec, cv2.COLOR_BGR2RGB)
    return (dec.astype(np.float32) / np.float32(255.0)).reshape(img.shape)
