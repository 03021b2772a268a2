"""Batched torch path of the Real-ESRGAN x4plus degradation, sharing the CPU sampler.

``apply_batch(gt, params)`` runs the pipeline of ``realesrgan.apply`` on a ``[B, 3, H, W]``
tensor on the tensor's own device (CPU or GPU), one ``RealESRGANParams`` per sample, as
``realesrgan.sample_params`` draws them. It is the same function of (gt, params) as the
CPU path, stage by stage:

* USM (``usm_sharp_batch``): separable 51-tap Gaussian (sigma 8, as ``cv2.GaussianBlur``
  with sigma 0) as two 1-D passes over the whole batch (banded-matrix products with the
  reflect-101 border folded in), soft threshold mask, same formula as ``usm.py``;
* blur (``filter2d_batch``): every sample's kernel zero-padded to 21x21 and applied as ONE
  grouped ``conv2d`` (input ``[1, B*3, H, W]``, weight ``[B*3, 1, 21, 21]``), i.e.
  correlation, with ``BORDER_REFLECT_101`` borders (torch's ``reflect``). Padding is done
  by index gathering, which also reflects repeatedly where the image is smaller than the
  kernel radius (as OpenCV does; plain ``F.pad(mode="reflect")`` would fail);
* resize (``resize_batch``): ``F.interpolate`` (``align_corners=False``, no antialias),
  with ``scale_factor=s`` for the first order and ``size=`` for the second order and the
  final step, exactly as the CPU path (``resize.py`` reproduces ``F.interpolate``). Samples
  whose input shape, mode and target (size or scale) are identical run as one call;
  otherwise per sample. Later stages (blur, sinc) regroup samples by their current shape;
* noise: Gaussian / Poisson per sample with the sample's sigma / scale / gray flag;
* JPEG (``jpeg=``): ``torch_jpeg.jpeg_batch``, libjpeg-turbo's integer codec re-implemented in
  torch (samples of one shape in one call, each at its own quality; bit-identical to the
  CPU codec), or ``jpeg.jpeg`` per sample through the host (``"libjpeg"``). ``"auto"`` (the
  default) takes libjpeg for CPU tensors, where the codec is ~7x faster, and the torch
  codec on a GPU, where it saves the host round trip: the pixels are the same either way;
* final order coin, sinc, ``round(clamp(x) * 255) / 255``.

Agreement with ``realesrgan.apply`` (measured, ``tests/degradations/test_torch_path.py``):

* without noise (sigma 0) and with JPEG replaced by identity on both sides, the stages and
  the whole pipeline agree to float32 rounding (max |diff| ~1e-6 before quantisation);
  after the final 8-bit quantisation a very rare pixel lands on the other side of a
  rounding boundary and differs by exactly 1/255; with the real JPEG on both sides the
  training pairs of ``data.degradation.device`` cpu and gpu were identical on the test
  samples (``tests/pipelines/test_device_degradation.py``);
* with noise and JPEG the agreement is statistical only: the noise realisation is drawn
  from a ``torch.Generator`` (on the tensor's device) seeded with ``params.noise_seed``,
  not from numpy's stream as the CPU path, so the values differ while the distributions
  are the same (mean |lq difference| 0.0325 on a 6-sample 96 px test batch, vs 0.0320
  between two CPU runs that differ only in noise_seed).
  For a given device the output is deterministic in (gt, params); CPU and CUDA generators
  give different realisations.

JPEG is libjpeg's integer codec on both routes (``torch_jpeg`` reproduces it bit for bit),
so the JPEG steps add no CPU/torch difference; unlike DiffJPEG it is not differentiable and
truncates the quality to an int, as the reference CPU path does. Poisson noise draws with
``torch.poisson`` at the rates the CPU path uses (``vals = 2 ** ceil(log2(#distinct 8-bit
levels))`` per sample).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from degradations.jpeg import jpeg
from degradations.kernels import make_kernel, pad_kernel
from degradations.realesrgan import X4PLUS, NoiseDraw, RealESRGANConfig, RealESRGANParams
from degradations.torch_jpeg import jpeg_batch

__all__ = [
    "JPEG_ROUTES",
    "apply_batch",
    "filter2d_batch",
    "gaussian_kernel_1d",
    "noise_sample",
    "resize_batch",
    "usm_sharp_batch",
]

_GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale, as noise.py
_PAD_TO = 21


# ----------------------------------------------------------------------------- padding
def _reflect101_index(n: int, pad: int, device: torch.device) -> torch.Tensor:
    """Source indices of a ``BORDER_REFLECT_101`` padding of ``n`` samples by ``pad`` each side.

    Reflects as often as needed (OpenCV semantics), so ``pad`` may exceed ``n - 1``.
    """
    i = torch.arange(-pad, n + pad, device=device)
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    i = torch.remainder(i, period)
    return torch.where(i >= n, period - i, i)


def _pad_reflect101(x: torch.Tensor, ph: int, pw: int) -> torch.Tensor:
    """Reflect-101 pad the last two dims of ``x`` by ``ph`` rows and ``pw`` columns."""
    h, w = x.shape[-2:]
    if ph:
        x = x.index_select(-2, _reflect101_index(h, ph, x.device))
    if pw:
        x = x.index_select(-1, _reflect101_index(w, pw, x.device))
    return x


# ----------------------------------------------------------------------------- USM
def gaussian_kernel_1d(size: int, sigma: float = 0.0) -> np.ndarray:
    """``cv2.getGaussianKernel(size, sigma)`` for ``size > 7``: sigma 0 -> ``0.3 ((size-1)/2 - 1) + 0.8``."""
    if sigma <= 0:
        sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    k = np.exp(-(x * x) / (2 * sigma * sigma))
    return k / k.sum()


def _blur_matrix(n: int, k1d: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``[n, n]`` matrix ``A`` with ``A @ v`` = correlation of ``v`` with ``k1d``, reflect-101 borders."""
    r = len(k1d) // 2
    src = _reflect101_index(n, r, torch.device("cpu"))
    a = torch.zeros(n, n, dtype=torch.float64)
    rows = torch.arange(n)
    for t, kt in enumerate(k1d):
        a.index_put_((rows, src[t : t + n]), torch.full((n,), float(kt), dtype=torch.float64), accumulate=True)
    return a.to(device=device, dtype=dtype)


def _gauss_blur(x: torch.Tensor, k1d: np.ndarray) -> torch.Tensor:
    """Separable blur of ``[B, C, H, W]`` with a 1-D kernel, reflect-101 borders.

    Each 1-D pass is a product with a banded ``[n, n]`` matrix that folds the border
    reflection in (``A_h @ X @ A_w^T``): several times faster than a 51-tap ``conv2d`` on
    the CPU, a plain batched GEMM on the GPU, and valid for any image size.
    """
    h, w = x.shape[-2:]
    a_h = _blur_matrix(h, k1d, x.device, x.dtype)
    a_w = a_h if w == h else _blur_matrix(w, k1d, x.device, x.dtype)
    return a_h @ x @ a_w.T


def usm_sharp_batch(img: torch.Tensor, weight: float = 0.5, threshold: float = 10, radius: int = 50) -> torch.Tensor:
    """``usm.usm_sharp`` on a ``[B, C, H, W]`` batch (same formula; separable Gaussian)."""
    if radius % 2 == 0:
        radius += 1
    k = gaussian_kernel_1d(radius)
    blur = _gauss_blur(img, k)
    residual = img - blur
    mask = (residual.abs() * 255.0 > threshold).to(img.dtype)
    soft = _gauss_blur(mask, k)
    sharp = (img + weight * residual).clamp_(0.0, 1.0)
    return soft * sharp + (1.0 - soft) * img


# ----------------------------------------------------------------------------- blur
def filter2d_batch(x: torch.Tensor, kernels: Sequence[np.ndarray] | torch.Tensor) -> torch.Tensor:
    """Correlate sample ``i`` of ``x`` (``[B, C, H, W]``) with ``kernels[i]``, reflect-101 borders.

    Kernels (odd, square, side <= 21) are zero-padded to 21x21 and the whole batch runs as
    one grouped ``conv2d`` on ``[1, B*C, H, W]`` with weight ``[B*C, 1, 21, 21]``.
    """
    b, c, h, w = x.shape
    if isinstance(kernels, torch.Tensor):
        kt = kernels.to(device=x.device, dtype=x.dtype)
    else:
        if len(kernels) != b:
            raise ValueError(f"got {len(kernels)} kernels for a batch of {b}")
        kt = torch.as_tensor(
            np.stack([pad_kernel(np.asarray(k, np.float32), _PAD_TO) for k in kernels]), dtype=x.dtype
        ).to(x.device)
    if kt.shape[0] != b or kt.ndim != 3 or kt.shape[1] != kt.shape[2] or kt.shape[1] % 2 == 0:
        raise ValueError(f"kernels must be [B, k, k] with k odd, got {tuple(kt.shape)} for B = {b}")
    ks = kt.shape[-1]
    weight = kt.unsqueeze(1).repeat_interleave(c, dim=0)  # [B*C, 1, k, k]
    y = _pad_reflect101(x.reshape(1, b * c, h, w), ks // 2, ks // 2)
    return F.conv2d(y, weight, groups=b * c).reshape(b, c, h, w)


# ----------------------------------------------------------------------------- resize
def resize_batch(
    x: torch.Tensor, size_hw: tuple[int, int] | None, mode: str, *, scale_factor: float | None = None
) -> torch.Tensor:
    """``F.interpolate`` as ``resize.resize`` specifies it (``align_corners=False``, no antialias).

    With ``scale_factor`` the output is ``floor(n * s)`` and coordinates map through ``1 / s``
    (``F.interpolate(scale_factor=s)``); otherwise ``size_hw``.
    """
    if mode not in ("area", "bilinear", "bicubic"):
        raise ValueError(f"unknown resize mode {mode!r}")
    kw = {} if mode == "area" else {"align_corners": False}
    if scale_factor is not None:
        return F.interpolate(x, scale_factor=scale_factor, mode=mode, **kw)
    if tuple(size_hw) == tuple(x.shape[-2:]):
        return x.clone()
    return F.interpolate(x, size=tuple(int(v) for v in size_hw), mode=mode, **kw)


def _size(h: float, w: float) -> tuple[int, int]:
    return max(int(h), 1), max(int(w), 1)  # realesrgan._size


def _resize_list(xs: list[torch.Tensor], specs: list[tuple]) -> list[torch.Tensor]:
    """Resize ``xs[i]`` (``[C, h, w]``) by ``specs[i] = (mode, size_hw | None, scale | None)`` or None (keep).

    Samples sharing input shape and spec run as one ``F.interpolate`` call.
    """
    out = list(xs)

    def key(i):
        return (tuple(xs[i].shape), specs[i])

    groups = defaultdict(list)
    for i, spec in enumerate(specs):
        if spec is not None:
            groups[key(i)].append(i)
    for (_, (mode, size_hw, sf)), idx in groups.items():
        y = resize_batch(torch.stack([xs[i] for i in idx]), size_hw, mode, scale_factor=sf)
        for j, i in enumerate(idx):
            out[i] = y[j]
    return out


def _by_shape(xs: list[torch.Tensor], idx: list[int], fn: Callable[[torch.Tensor, list[int]], torch.Tensor]):
    """Apply ``fn(stacked, indices)`` to the samples ``idx`` of ``xs`` grouped by shape, in place."""
    groups = defaultdict(list)
    for i in idx:
        groups[tuple(xs[i].shape)].append(i)
    for g in groups.values():
        y = fn(torch.stack([xs[i] for i in g]), g)
        for j, i in enumerate(g):
            xs[i] = y[j]


def _blur_list(xs: list[torch.Tensor], idx: list[int], kernels: dict[int, np.ndarray]) -> None:
    _by_shape(xs, idx, lambda x, g: filter2d_batch(x, [kernels[i] for i in g]))


# ----------------------------------------------------------------------------- noise / JPEG
def noise_sample(x: torch.Tensor, draw: NoiseDraw, gen: torch.Generator) -> torch.Tensor:
    """Add one sample's noise to ``x`` (``[3, h, w]``) and clip to [0, 1] (noise.py's formulas).

    Gaussian: ``N(0, (sigma/255)^2)``, one map shared by the channels when ``gray``.
    Poisson: quantise (luma when ``gray``) to 8-bit levels, ``vals = 2 ** ceil(log2(#levels))``,
    ``noise = Poisson(x_q * vals) / vals - x_q``, times ``scale``, added to the unquantised image.
    """
    c, h, w = x.shape
    if draw.kind == "gaussian":
        noise = torch.randn((1 if draw.gray else c, h, w), generator=gen, device=x.device, dtype=x.dtype)
        return (x + noise * (draw.sigma / 255.0)).clamp_(0.0, 1.0)
    if draw.kind != "poisson":
        raise ValueError(f"unknown noise kind {draw.kind!r}")
    if draw.gray:
        r, g, b = _GRAY_WEIGHTS
        src = (r * x[0] + g * x[1] + b * x[2]).unsqueeze(0)
    else:
        src = x
    levels = torch.round(src * 255.0).clamp_(0, 255)
    n = int(torch.unique(levels).numel())
    vals = float(2 ** math.ceil(math.log2(n)))
    quant = levels / 255.0
    counts = torch.poisson(quant * vals, generator=gen)
    noise = (counts / vals - quant) * draw.scale
    return (x + noise).clamp_(0.0, 1.0)


def _jpeg_sample(x: torch.Tensor, q: float) -> torch.Tensor:
    """CPU libjpeg round trip of ``x`` (``[3, h, w]``) at quality ``q`` (as realesrgan._jpeg)."""
    img = x.clamp(0.0, 1.0).permute(1, 2, 0).detach().to("cpu", torch.float32).numpy()
    out = jpeg(np.ascontiguousarray(img), q)
    return torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1).to(device=x.device, dtype=x.dtype)


JPEG_ROUTES = ("auto", "torch", "libjpeg")


def _jpeg_list(xs: list[torch.Tensor], idx: list[int], qualities: dict[int, float], route: str) -> None:
    """JPEG the samples ``idx`` of ``xs`` in place, each at ``qualities[i]``.

    ``torch``: one ``jpeg_batch`` call per group of equal shapes on the samples' device;
    ``libjpeg``: ``jpeg.jpeg`` per sample through the host; ``auto``: libjpeg for CPU tensors,
    torch otherwise (same pixels, see the module docstring).
    """
    if not idx:
        return
    if route == "auto":
        route = "libjpeg" if xs[idx[0]].device.type == "cpu" else "torch"
    if route == "libjpeg":
        for i in idx:
            xs[i] = _jpeg_sample(xs[i], qualities[i])
        return
    _by_shape(xs, idx, lambda x, g: jpeg_batch(x, [qualities[i] for i in g]).to(x.dtype))


# ----------------------------------------------------------------------------- pipeline
def _check(gt: torch.Tensor, params: Sequence[RealESRGANParams], scale: int) -> None:
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive int, got {scale!r}")
    if not isinstance(gt, torch.Tensor):
        raise ValueError(f"gt must be a torch tensor, got {type(gt).__name__}")
    if gt.ndim != 4 or gt.shape[1] != 3:
        raise ValueError(f"gt must be [B, 3, H, W], got shape {tuple(gt.shape)}")
    if not gt.is_floating_point():
        raise ValueError(f"gt must be float in [0, 1], got dtype {gt.dtype}")
    b, _, h, w = gt.shape
    if len(params) != b:
        raise ValueError(f"got {len(params)} params for a batch of {b}")
    min_side = max(2 * scale, 8)
    if h < min_side or w < min_side or h % scale or w % scale:
        raise ValueError(
            f"gt height and width must be multiples of scale {scale} and at least {min_side}, got {h}x{w}"
        )
    if not torch.isfinite(gt).all():
        raise ValueError("gt contains NaN or infinite values")


@torch.no_grad()
def apply_batch(
    gt: torch.Tensor,
    params: Sequence[RealESRGANParams],
    scale: int = 4,
    cfg: RealESRGANConfig = X4PLUS,
    jpeg: str = "auto",
) -> dict[str, torch.Tensor]:
    """Degrade a batch with per-sample ``params`` on ``gt``'s device (see the module docstring).

    Args:
        gt: ``[B, 3, H, W]`` float in [0, 1]; H, W multiples of ``scale``, at least 8.
        params: ``B`` draws of ``realesrgan.sample_params``.
        scale: Downscale factor of the LQ.
        cfg: USM settings are read from here.
        jpeg: JPEG route, one of ``JPEG_ROUTES`` (see the module docstring).

    Returns:
        ``{"lq": [B, 3, H/scale, W/scale] float32 on the 8-bit grid, "gt": [B, 3, H, W] USM'd GT}``
        on ``gt``'s device.
    """
    _check(gt, params, scale)
    if jpeg not in JPEG_ROUTES:
        raise ValueError(f"jpeg must be one of {', '.join(JPEG_ROUTES)}, got {jpeg!r}")
    params = list(params)
    gt = gt.to(torch.float32)
    dev = gt.device
    b, _, ori_h, ori_w = gt.shape
    gens = [torch.Generator(device=dev).manual_seed(int(p.noise_seed)) for p in params]
    gt_usm = usm_sharp_batch(gt, cfg.usm_weight, cfg.usm_threshold, cfg.usm_radius)

    # first order: one grouped conv for the whole batch
    out = filter2d_batch(gt_usm, [make_kernel(p.kernel1) for p in params])
    xs = list(out.unbind(0))
    specs = []
    for p in params:
        r = p.resize1
        if r.direction == "keep":
            specs.append(None)
        elif min(math.floor(ori_h * r.scale), math.floor(ori_w * r.scale)) >= 1:
            specs.append((r.mode, None, r.scale))
        else:
            specs.append((r.mode, _size(ori_h * r.scale, ori_w * r.scale), None))
    xs = _resize_list(xs, specs)
    xs = [noise_sample(x, p.noise1, g) for x, p, g in zip(xs, params, gens)]
    _jpeg_list(xs, list(range(b)), {i: p.jpeg1 for i, p in enumerate(params)}, jpeg)

    # second order
    blur2 = [i for i, p in enumerate(params) if p.second_blur]
    _blur_list(xs, blur2, {i: make_kernel(params[i].kernel2) for i in blur2})
    xs = _resize_list(
        xs,
        [(p.resize2.mode, _size(ori_h / scale * p.resize2.scale, ori_w / scale * p.resize2.scale), None) for p in params],
    )
    xs = [noise_sample(x, p.noise2, g) for x, p, g in zip(xs, params, gens)]

    # final: [resize, sinc, JPEG] or [JPEG, resize, sinc] per sample
    lq_hw = (ori_h // scale, ori_w // scale)
    first = [i for i, p in enumerate(params) if p.final_resize_first]
    later = [i for i, p in enumerate(params) if not p.final_resize_first]
    _jpeg_list(xs, later, {i: params[i].jpeg2 for i in later}, jpeg)
    xs = _resize_list(xs, [(p.final_mode, lq_hw, None) for p in params])
    sinc = [i for i, p in enumerate(params) if p.sinc is not None]
    _blur_list(xs, sinc, {i: make_kernel(params[i].sinc) for i in sinc})
    _jpeg_list(xs, first, {i: params[i].jpeg2 for i in first}, jpeg)
    lq = torch.stack(xs)
    lq = torch.round(lq.clamp(0.0, 1.0) * 255.0) / 255.0
    return {"lq": lq, "gt": gt_usm}
