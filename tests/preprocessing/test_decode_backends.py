"""Shard members decode to the same pixels with libspng (``pyspng``, used when installed) as with
OpenCV: every PNG mode restoray writes or may meet, and the modes libspng refuses fall back."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from preprocessing import schema


def _png(mode: str) -> bytes:
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (21, 34, 3), dtype=np.uint8)
    im = Image.fromarray(rgb[..., 0].astype(np.uint16) * 257) if mode == "I;16" else Image.fromarray(rgb).convert(mode)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P", "LA", "I;16"])
def test_decode_image_equals_opencv(mode):
    data = _png(mode)
    want = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    got = schema.decode_image(data)
    assert got.dtype == np.uint8 and got.shape == want.shape and np.array_equal(got, want)


def test_decode_grey_equals_opencv_and_refuses_colour():
    data = _png("L")
    assert np.array_equal(schema.decode_grey(data), cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED))
    with pytest.raises(ValueError, match="grey"):
        schema.decode_grey(_png("RGB"))


def test_libspng_is_used_where_it_is_installed():
    pytest.importorskip("pyspng")
    assert schema._spng(_png("RGB")) is not None and schema._spng(b"\xff\xd8 not a png") is None
