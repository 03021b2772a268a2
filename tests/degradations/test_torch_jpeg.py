"""The torch JPEG round trip against libjpeg-turbo (OpenCV and Pillow): tables, pixels, batching."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from degradations.bench import synthetic_gt
from degradations.jpeg import jpeg
from degradations.torch_jpeg import jpeg_batch, quant_tables


def to_t(imgs):
    return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()


def to_np(t):
    return t.permute(1, 2, 0).numpy()


def pil_jpeg(img: np.ndarray, q: int) -> np.ndarray:
    u8 = np.rint(np.clip(img * 255, 0, 255)).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(u8).save(buf, format="JPEG", quality=int(q))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")).astype(np.float32) / 255


def photo_like(h: int, w: int, seed: int) -> np.ndarray:
    return synthetic_gt(max(h, w), np.random.default_rng(seed))[:h, :w]


@pytest.mark.parametrize("q", [1, 10, 30, 50, 75, 90, 95, 100])
def test_quant_tables_are_libjpegs(q):
    buf = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(buf, format="JPEG", quality=q)
    ref = Image.open(io.BytesIO(buf.getvalue())).quantization  # natural order, as libjpeg wrote them
    luma, chroma = quant_tables(torch.tensor([float(q)]))
    assert luma[0].flatten().tolist() == list(ref[0])
    assert chroma[0].flatten().tolist() == list(ref[1])


@pytest.mark.parametrize("q", [10, 30, 50, 75, 90, 95])
@pytest.mark.parametrize("hw", [(96, 96), (101, 77), (48, 130)])
def test_bit_identical_to_opencv_and_pillow(q, hw):
    # Measured: max |diff| 0 (mean 0) at every quality and size tried, including odd sizes
    # that exercise libjpeg's edge padding; the tolerance asserted is the measured one.
    img = photo_like(*hw, seed=q)
    out = to_np(jpeg_batch(to_t([img]), [q])[0])
    np.testing.assert_array_equal(out, jpeg(img, q))
    np.testing.assert_array_equal(out, pil_jpeg(img, q))


def test_adversarial_inputs_still_bit_identical():
    # random noise and binary images, tiny and odd sizes, very low qualities: IDCT overshoot
    # (libjpeg's range-limit table), chroma planes 1-2 samples wide (replication upsampling)
    rng = np.random.default_rng(7)
    for i in range(60):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        q = int(rng.integers(1, 12)) if i % 2 else int(rng.integers(1, 101))
        img = rng.random((h, w, 3)).astype(np.float32)
        if i % 3 == 1:
            img = (img > 0.5).astype(np.float32)
        out = to_np(jpeg_batch(to_t([img]), [q])[0])
        np.testing.assert_array_equal(out, jpeg(img, q), err_msg=f"{h}x{w} q{q}")


def test_per_sample_quality_in_one_batch_and_float_quality_truncates():
    imgs = [photo_like(64, 64, s) for s in range(4)]
    qs = [30.9, 55.2, 77.0, 95.99]
    out = jpeg_batch(to_t(imgs), qs)
    for i, (img, q) in enumerate(zip(imgs, qs)):
        np.testing.assert_array_equal(to_np(out[i]), jpeg(img, q))  # jpeg() also truncates: int(q)
    assert not torch.equal(out[0], out[3])
    same = jpeg_batch(to_t(imgs), 50)  # one quality for all
    for i, img in enumerate(imgs):
        np.testing.assert_array_equal(to_np(same[i]), jpeg(img, 50))


def test_output_contract_and_clipping():
    x = torch.rand(2, 3, 24, 40) * 1.4 - 0.2  # out of range: clipped first, as jpeg() does
    out = jpeg_batch(x, [40, 80])
    assert out.shape == x.shape and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(out, torch.round(out * 255) / 255)
    np.testing.assert_array_equal(to_np(out[1]), jpeg(to_np(x[1]), 80))


@pytest.mark.parametrize(
    "x, q, match",
    [
        (torch.zeros(1, 1, 8, 8), [50], r"\[B, 3, H, W\]"),
        (torch.zeros(3, 8, 8), [50], r"\[B, 3, H, W\]"),
        (torch.zeros(1, 3, 0, 8), [50], "non-empty"),
        (torch.zeros(2, 3, 8, 8), [50, 60, 70], "3 qualities for a batch of 2"),
        (torch.zeros(1, 3, 8, 8), [0.5], r"\[1, 100\]"),
        (torch.zeros(1, 3, 8, 8), [101], r"\[1, 100\]"),
    ],
)
def test_bad_inputs(x, q, match):
    with pytest.raises(ValueError, match=match):
        jpeg_batch(x, q)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_libjpeg():
    imgs = [photo_like(96, 80, s) for s in range(3)]
    out = jpeg_batch(to_t(imgs).cuda(), [35, 60, 92]).cpu()
    for i, (img, q) in enumerate(zip(imgs, [35, 60, 92])):
        np.testing.assert_array_equal(to_np(out[i]), jpeg(img, q))
