"""Tiled inference must match whole-image inference and leave no seams."""

import pytest
import torch

from trainers.archs import build_arch
from trainers.tiling import tiled_forward


@pytest.fixture(scope="module")
def small_edsr():
    torch.manual_seed(0)
    # Receptive-field radius in LR pixels: conv_first 1 + 2 blocks x 2 + conv_after_body 1
    # + upsample conv 1 + conv_last (1 HR px) -> 8 at most.
    return build_arch("edsr", in_channels=3, out_channels=3, mid_channels=8, num_blocks=2, upscale_factor=2).eval()


@pytest.mark.parametrize(("height", "width", "tile"), [(70, 53, 40), (81, 81, 36), (45, 100, 33)])
def test_tiled_equals_untiled_with_enough_overlap(small_edsr, height, width, tile):
    lq = torch.rand(2, 3, height, width, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = small_edsr(lq)
    tiled = tiled_forward(small_edsr, lq, scale=2, tile=tile, overlap=32)  # overlap/4 = 8 >= radius
    assert tiled.shape == full.shape
    assert (tiled - full).abs().max() < 1e-5


def test_small_overlap_stays_close_and_smooth(small_edsr):
    lq = torch.rand(1, 3, 50, 50, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = small_edsr(lq)
    tiled = tiled_forward(small_edsr, lq, scale=2, tile=24, overlap=8)
    err = (tiled - full).abs()
    assert err.max() < 0.05
    # Far from every seam the result is exact.
    assert err[..., :30, :30].max() < 1e-5


def test_whole_image_when_untiled_or_small(small_edsr):
    lq = torch.rand(1, 3, 20, 17)
    with torch.no_grad():
        full = small_edsr(lq)
    assert torch.equal(tiled_forward(small_edsr, lq, 2, None, 0), full)
    assert torch.equal(tiled_forward(small_edsr, lq, 2, 32, 8), full)


def test_no_overlap_tiles_cover_image():
    identity = torch.nn.Identity()
    lq = torch.rand(1, 3, 23, 31)
    assert torch.equal(tiled_forward(identity, lq, scale=1, tile=8, overlap=0), lq)
    assert torch.allclose(tiled_forward(identity, lq, scale=1, tile=8, overlap=5), lq)


def test_bad_overlap_rejected(small_edsr):
    with pytest.raises(ValueError, match="overlap"):
        tiled_forward(small_edsr, torch.rand(1, 3, 40, 40), 2, tile=16, overlap=16)


def test_no_grad_even_in_training_context(small_edsr):
    lq = torch.rand(1, 3, 40, 40, requires_grad=True)
    assert not tiled_forward(small_edsr, lq, 2, tile=24, overlap=8).requires_grad
