"""load_image: accepted, converted and quarantined inputs (see validate's policy table)."""

import io

import cv2
import numpy as np
import pytest
from PIL import Image
from prep_helpers import png_bytes, rgb

from preprocessing.validate import CorruptInput, load_image, load_image_with_notes


def pil_bytes(arr, mode, fmt="PNG", **kw):
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, fmt, **kw)
    return buf.getvalue()


def test_rgb_png_round_trip():
    img = rgb(17, 23)
    out = load_image(png_bytes(img), "x.png")
    assert out.dtype == np.uint8 and out.shape == (17, 23, 3)
    np.testing.assert_array_equal(out, img)


def test_jpeg_decodes_rgb():
    img = np.zeros((16, 16, 3), np.uint8)
    img[..., 0] = 200  # red in RGB
    out = load_image(pil_bytes(img, "RGB", "JPEG", quality=95), "x.jpg")
    assert out.shape == (16, 16, 3) and out[..., 0].mean() > 150 and out[..., 2].mean() < 50


def test_gray_converted_to_rgb():
    g = rgb(8, 9)[..., 0].copy()
    out, notes = load_image_with_notes(pil_bytes(g, "L"), "g.png")
    assert out.shape == (8, 9, 3) and (out[..., 0] == g).all() and (out[..., 2] == g).all()
    assert notes == ["gray->rgb"]


def test_opaque_alpha_dropped_transparent_rejected():
    rgba = np.concatenate([rgb(8, 8), np.full((8, 8, 1), 255, np.uint8)], axis=2)
    out, notes = load_image_with_notes(pil_bytes(rgba, "RGBA"), "a.png")
    np.testing.assert_array_equal(out, rgba[..., :3])
    assert "dropped opaque alpha" in notes
    rgba[0, 0, 3] = 10
    with pytest.raises(CorruptInput, match="alpha channel"):
        load_image(pil_bytes(rgba, "RGBA"), "a.png")


def test_two_channel_gray_alpha():
    la = np.stack([rgb(8, 8)[..., 0], np.full((8, 8), 128, np.uint8)], axis=2)
    with pytest.raises(CorruptInput, match="alpha channel"):
        load_image(pil_bytes(la, "LA"), "la.png")


@pytest.mark.parametrize("channels", [1, 3])
def test_16bit_rejected(channels):
    arr = np.random.default_rng(0).integers(0, 65535, (8, 8, channels), dtype=np.uint16)
    ok, buf = cv2.imencode(".png", arr[..., 0] if channels == 1 else arr)
    with pytest.raises(CorruptInput, match="16-bit not supported"):
        load_image(buf.tobytes(), "deep.png")


def test_cmyk_rejected():
    with pytest.raises(CorruptInput, match="unsupported mode CMYK"):
        load_image(_cmyk_jpeg(), "c.jpg")


def _cmyk_jpeg():
    buf = io.BytesIO()
    Image.fromarray(rgb(8, 8)).convert("CMYK").save(buf, "JPEG")
    return buf.getvalue()


@pytest.mark.parametrize("cut", [1, 12, 100, 1000])
def test_truncated_png(cut):
    data = png_bytes(rgb(40, 40))
    with pytest.raises(CorruptInput, match="truncated"):
        load_image(data[:-cut], "t.png")


@pytest.mark.parametrize("cut", [2, 50, 500])
def test_truncated_jpeg(cut):
    data = pil_bytes(rgb(40, 40), "RGB", "JPEG")
    with pytest.raises(CorruptInput, match="truncated"):
        load_image(data[:-cut], "t.jpg")


def test_empty_and_text():
    with pytest.raises(CorruptInput, match="empty file"):
        load_image(b"", "e.png")
    with pytest.raises(CorruptInput, match="not a decodable image"):
        load_image(b"this is not an image\n", "t.png")
