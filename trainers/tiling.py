"""Tiled inference, so full-resolution test images fit in accelerator memory.

The LR image is cut into ``tile x tile`` windows that overlap by ``overlap``
pixels; every window goes through the model and the upscaled windows are
blended back. Windows never shrink at the border: the last window along an axis
is shifted inward to end at the edge, so the model always sees full-size
context (and, on GPU, a single input shape).

Blending: along each edge a window shares with a neighbour, its weight is 0 on
the outer quarter of the overlap, ramps linearly across the middle half, and is 1
beyond. Outputs within a quarter-overlap of a window's inner edge (where zero
padding makes it differ from the untiled result) are therefore never used, and
the hand-over from one window to the next is gradual, so no seam is visible.
If the model's receptive-field radius (in LR pixels) is at most ``overlap / 4``,
the result equals the untiled output up to float rounding. Image borders keep
weight 1, because there the untiled model sees the same zero padding.
"""

import torch
from torch import Tensor, nn


def _starts(size: int, tile: int, stride: int) -> list[int]:
    """Window start offsets covering ``[0, size)``; the last window ends exactly at ``size``."""
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, stride))
    return starts + [size - tile]


def _ramp(length: int, overlap: int, at_start: bool, at_end: bool, device: torch.device) -> Tensor:
    """1-D blending weights for a window of ``length`` output pixels.

    ``at_start``/``at_end`` say whether that side borders a neighbouring window
    (and so gets the dead zone plus ramp) rather than the image border.
    """
    w = torch.ones(length, dtype=torch.float32, device=device)
    if overlap <= 0:
        return w
    dead = overlap // 4
    ramp_len = max(overlap - 2 * dead, 1)
    pos = torch.arange(length, dtype=torch.float32, device=device)
    rising = ((pos - dead + 1) / (ramp_len + 1)).clamp(0, 1)
    if at_start:
        w = torch.minimum(w, rising)
    if at_end:
        w = torch.minimum(w, rising.flip(0))
    return w


@torch.no_grad()
def tiled_forward(model: nn.Module, lq: Tensor, scale: int, tile: int | None, overlap: int) -> Tensor:
    """Runs ``model`` on overlapping tiles of ``lq`` and blends the upscaled tiles.

    The model's train/eval mode is left as the caller set it.

    Args:
        model: Maps ``[B, C, h, w]`` to ``[B, C_out, h*scale, w*scale]``.
        lq: LR batch ``[B, C, H, W]``.
        scale: The model's upscaling factor (1 for restoration models).
        tile: Window side in LR pixels; ``None`` (or an image no larger than it) runs
            the whole image at once.
        overlap: LR pixels shared by neighbouring windows; aim for 4x the receptive
            field radius for results identical to untiled inference.

    Returns:
        ``[B, C_out, H*scale, W*scale]``.

    Raises:
        ValueError: If ``overlap`` is negative or not smaller than ``tile``, or the
            model's output size is not ``scale`` times its input size.
    """
    _, _, height, width = lq.shape
    if tile is None or (height <= tile and width <= tile):
        return model(lq)
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, tile), got overlap={overlap}, tile={tile}")
    stride = tile - overlap
    ys, xs = _starts(height, tile, stride), _starts(width, tile, stride)
    out = weight = None
    for iy, y in enumerate(ys):
        for ix, x in enumerate(xs):
            window = lq[:, :, y : y + tile, x : x + tile]
            pred = model(window)
            th, tw = window.shape[-2] * scale, window.shape[-1] * scale
            if pred.shape[-2:] != (th, tw):
                raise ValueError(f"model output {tuple(pred.shape[-2:])} is not scale x input {(th, tw)}")
            if out is None:
                out = lq.new_zeros(lq.shape[0], pred.shape[1], height * scale, width * scale, dtype=torch.float32)
                weight = lq.new_zeros(1, 1, height * scale, width * scale, dtype=torch.float32)
            wy = _ramp(th, overlap * scale, iy > 0, iy < len(ys) - 1, lq.device)
            wx = _ramp(tw, overlap * scale, ix > 0, ix < len(xs) - 1, lq.device)
            w2d = (wy[:, None] * wx[None, :])[None, None]
            oy, ox = y * scale, x * scale
            out[:, :, oy : oy + th, ox : ox + tw] += pred.float() * w2d
            weight[:, :, oy : oy + th, ox : ox + tw] += w2d
    return (out / weight).to(pred.dtype)
