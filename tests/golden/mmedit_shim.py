"""Import mmedit 0.16.1 without its compiled ops, to make golden files (never imported by tests).

The parity goldens under ``tests/data/golden/`` are made by the ``make_*.py`` scripts beside
this file, run with a separate interpreter that has the reference installed (it is not a
dependency of restoray; ``make test`` only reads the ``.npz`` files they write)::

    python3.11 -m venv /tmp/mmedit-venv
    /tmp/mmedit-venv/bin/pip install torch==2.13.0 torchvision 'numpy<2' opencv-python-headless \
        addict yapf pyyaml scipy scikit-image pillow 'setuptools<70' wheel
    MMCV_WITH_OPS=0 /tmp/mmedit-venv/bin/pip install --no-deps --no-build-isolation mmcv==1.7.2
    /tmp/mmedit-venv/bin/pip install --no-deps mmedit==0.16.1
    /tmp/mmedit-venv/bin/python tests/golden/make_<what>.py

Two stand-ins make the import work on a CPU-only machine:

* ``mmcv._ext`` (mmcv's compiled ops, not built with ``MMCV_WITH_OPS=0``): any op called
  raises ``NotImplementedError``, except deformable convolution: the autograd Functions behind
  ``mmcv.ops.modulated_deform_conv2d`` (DCNv2: EDVR, BasicVSR++, IconVSR) and
  ``mmcv.ops.deform_conv2d`` (DCNv1: TDAN) compute with :func:`_reference_deform_conv`, a
  straightforward tap-by-tap transcription of the CUDA kernel's definition, written
  independently of restoray's op (``trainers/archs/deform_conv.py``) so goldens do not just
  mirror it.
* ``torchvision``'s package ``__init__`` registers fake kernels for its C ops, which fails when
  the torchvision wheel and the CPU torch build disagree; the stand-in package object skips
  that ``__init__`` and loads the pure-Python submodules (``torchvision.models.vgg``) as they are.
"""

from __future__ import annotations

import importlib.util
import sys
import types

import torch  # noqa: F401  (torch must be imported before the stand-ins)


def _missing_op_module() -> types.ModuleType:
    ext = types.ModuleType("mmcv._ext")

    def __getattr__(name: str):
        if name.startswith("__"):
            raise AttributeError(name)

        def missing(*args, **kwargs):
            raise NotImplementedError(f"mmcv._ext.{name} is a compiled op, not available here")

        return missing

    ext.__getattr__ = __getattr__
    return ext


def _bilinear_zero_outside(img: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Sample ``img`` [N, C, H, W] at float pixel positions ``y, x`` [N, P]; corners off the image are 0."""
    n, c, h, w = img.shape
    flat = img.reshape(n, c, h * w)
    y0, x0 = torch.floor(y), torch.floor(x)
    out = img.new_zeros(n, c, y.shape[1])
    for dy in (0, 1):
        for dx in (0, 1):
            yy, xx = y0 + dy, x0 + dx
            wgt = (1 - (y - yy).abs()) * (1 - (x - xx).abs())
            inside = (yy >= 0) & (yy <= h - 1) & (xx >= 0) & (xx <= w - 1)
            idx = (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)).long()
            vals = torch.gather(flat, 2, idx[:, None, :].expand(n, c, -1))
            out = out + vals * (wgt * inside)[:, None, :]
    return out


def _reference_deform_conv(x, offset, mask, weight, bias, stride, padding, dilation, groups, deform_groups):
    """DCN by its definition, one kernel tap at a time (mask None: DCNv1); differentiable by autograd."""
    from torch.nn.modules.utils import _pair

    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    b, c, h, w = x.shape
    cout, _, kh, kw = weight.shape
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    g = deform_groups
    xg = x.reshape(b * g, c // g, h, w)
    off = offset.reshape(b * g, kh * kw, 2, ho, wo)
    rows = torch.arange(ho, dtype=x.dtype, device=x.device)[:, None] * sh - ph
    cols = torch.arange(wo, dtype=x.dtype, device=x.device)[None, :] * sw - pw
    taps = []
    for ki in range(kh):
        for kj in range(kw):
            k = ki * kw + kj
            y = (rows + ki * dh + off[:, k, 0]).reshape(b * g, -1)
            xx = (cols + kj * dw + off[:, k, 1]).reshape(b * g, -1)
            v = _bilinear_zero_outside(xg, y, xx).reshape(b, c, ho * wo)
            if mask is not None:
                m = mask.reshape(b, g, 1, kh * kw, ho * wo)[:, :, :, k]
                v = (v.reshape(b, g, c // g, ho * wo) * m).reshape(b, c, ho * wo)
            taps.append(v)
    col = torch.stack(taps, dim=2)  # [B, C, K, L], channel-major like the weight's flattening
    col = col.reshape(b, groups, (c // groups) * kh * kw, ho * wo)
    wmat = weight.reshape(groups, cout // groups, -1)
    out = torch.einsum("gok,bgkl->bgol", wmat, col).reshape(b, cout, ho, wo)
    if bias is not None and bias.numel():
        out = out + bias.reshape(1, -1, 1, 1)
    return out


def _install_deform_conv() -> None:
    """Make mmcv's DCNv1/DCNv2 autograd Functions compute with :func:`_reference_deform_conv`.

    ``mmcv.ops.modulated_deform_conv2d`` is ``ModulatedDeformConv2dFunction.apply`` bound at
    import (mmedit binds it again with ``from mmcv.ops import ...``), and ``apply`` looks up
    ``forward``/``backward`` on the class at call time, so replacing those two covers every caller.
    The backward recomputes the forward under autograd.
    """
    from mmcv.ops import deform_conv as dc
    from mmcv.ops import modulated_deform_conv as mdc

    def _backward(ctx, grad_out):
        with torch.enable_grad():
            leaves = [t.detach().requires_grad_(t.is_floating_point()) if t is not None else None for t in ctx.saved]
            out = _reference_deform_conv(*leaves, *ctx.args)
            used = [t for t in leaves if t is not None and t.requires_grad]
            grads = iter(torch.autograd.grad(out, used, grad_out, allow_unused=True))
        return tuple(next(grads) if t is not None and t.requires_grad else None for t in leaves)

    def mdc_forward(ctx, input, offset, mask, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                    deform_groups=1):
        input = input.type_as(offset)
        ctx.saved = (input, offset, mask.type_as(input), weight.type_as(input), bias)
        ctx.args = (stride, padding, dilation, groups, deform_groups)
        return _reference_deform_conv(*ctx.saved, *ctx.args)

    def mdc_backward(ctx, grad_out):
        return _backward(ctx, grad_out) + (None,) * 5

    def dc_forward(ctx, input, offset, weight, stride=1, padding=0, dilation=1, groups=1, deform_groups=1,
                   bias=False, im2col_step=32):
        if bias:
            raise NotImplementedError("mmcv's deform_conv2d has no bias (bias=True is rejected by mmcv too)")
        input = input.type_as(offset)
        ctx.saved = (input, offset, None, weight.type_as(input), None)
        ctx.args = (stride, padding, dilation, groups, deform_groups)
        return _reference_deform_conv(*ctx.saved, *ctx.args)

    def dc_backward(ctx, grad_out):
        g_in, g_off, _, g_w, _ = _backward(ctx, grad_out)
        return (g_in, g_off, g_w) + (None,) * 7

    mdc.ModulatedDeformConv2dFunction.forward = staticmethod(mdc_forward)
    mdc.ModulatedDeformConv2dFunction.backward = staticmethod(mdc_backward)
    dc.DeformConv2dFunction.forward = staticmethod(dc_forward)
    dc.DeformConv2dFunction.backward = staticmethod(dc_backward)


def install() -> None:
    """Register the stand-ins; call before ``import mmedit``."""
    sys.modules.setdefault("mmcv._ext", _missing_op_module())
    if "torchvision" not in sys.modules:
        spec = importlib.util.find_spec("torchvision")
        tv = types.ModuleType("torchvision")
        tv.__path__ = list(spec.submodule_search_locations)
        tv.__version__ = "0.28.0"
        sys.modules["torchvision"] = tv
    _install_deform_conv()


def save_golden(path: str, **arrays) -> None:
    """Write a compressed ``.npz`` golden (tensors become numpy arrays, dtypes kept)."""
    import numpy as np

    out = {k: v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v) for k, v in arrays.items()}
    np.savez_compressed(path, **out)
