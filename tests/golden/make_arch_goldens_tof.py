"""Forward-parity goldens for ``tof`` (TOFlow video SR) and ``tof_vfi`` (TOFlow frame interpolation),
computed by MMEditing 0.16.1's modules.

Run with the interpreter that has mmedit (see ``mmedit_shim``), from the repository root::

    /work/mmedit-venv/bin/python tests/golden/make_arch_goldens_tof.py

Writes ``tests/data/golden/archs_tof.npz`` in the case format of ``make_arch_goldens.py`` (read by
``tests/trainers/test_arch_parity.py``): per case ``<c>/arch``, ``<c>/kwargs``, ``<c>/input``,
``<c>/state/<key>``, ``<c>/eval`` and, for the cases with batch norm, ``<c>/train`` and
``<c>/after_train/<buffer>``. The references are ``mmedit.models.backbones.sr_backbones.tof.TOFlow``
and ``mmedit.models.backbones.vfi_backbones.tof_vfi_net.TOFlowVFINet`` (both in 0.16.1), built with
the kwargs restoray takes.

What differs from ``make_arch_goldens.py``, and why:

* The widths are hard-coded (1.41M and 1.00M parameters), so conv weights are N(0, 1/fan_in)
  drawn for the first 127 entries of the flattened weight and repeated with that period (the
  trick of ``make_arch_goldens_matting_gca.py``): 127 is prime and above every row
  (output-channel) count, so no two rows start at the same phase. Biases and BN shifts
  N(0, 0.1²), BN scales 1 + N(0, 0.1²), running means N(0, 0.1²), running variances
  U(0.5, 1.5); every value rounded to float16 and stored as such.
* Random flow networks give flows of hundreds of pixels; each level's last conv is scaled by one
  common factor so the mean |flow| on the case's own frame pairs (in eval mode) is about 2 pixels,
  as ``make_arch_goldens_vsr.py`` does for SPyNet.
* Frames are 8-bit-valued (``k/256``, exact in float16), a blurred random field moved by one
  pixel per frame plus noise, so the warps sample inside the frame and off-grid.
* ``tof``: the zoo's ``adapt_official_weights=True`` (reordered window) in eval and train mode
  (BN batch statistics, running averages after six flow calls), and the natural order at batch 2.
  ``tof_vfi``: the zoo's no-BN flow network at 20x28 (reflection-padded to 32x32 and cropped
  back), other mean/std at 16x32 (no padding), and the BN variant at 24x40 in eval and train mode.
  The cases without BN are checked to give the same outputs in train mode, and record none.
"""

from __future__ import annotations

import json
import math
import sys
import zlib
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests" / "golden"), str(ROOT)]
import mmedit_shim  # noqa: E402

mmedit_shim.install()

from mmedit.models.backbones.sr_backbones import tof as mm_tof  # noqa: E402
from mmedit.models.backbones.vfi_backbones import tof_vfi_net as mm_tof_vfi  # noqa: E402

OUT = ROOT / "tests/data/golden/archs_tof.npz"
PERIOD = 127  # prime, above every weight's row count (<= 64)
FLOW_TARGET = 2.0  # mean |flow| in pixels the scaled last convs aim at
ZOO_VFI = dict(rgb_mean=[0.485, 0.456, 0.406], rgb_std=[0.229, 0.224, 0.225],
               flow_cfg=dict(norm_cfg=None, pretrained=None))

# (case, arch, kwargs, input shape [N, T, 3, H, W] as (n, t, h, w), train-mode outputs too)
CASES = [
    ("tof_official_32x48", "tof", dict(adapt_official_weights=True), (1, 7, 32, 48), True),
    ("tof_natural_order_16x32", "tof", {}, (2, 7, 16, 32), False),
    ("tof_vfi_zoo_20x28", "tof_vfi", ZOO_VFI, (2, 2, 20, 28), False),
    ("tof_vfi_mean_std_16x32", "tof_vfi", dict(rgb_mean=[0.5, 0.4, 0.3], rgb_std=[0.25, 0.5, 1.0]),
     (1, 2, 16, 32), False),
    ("tof_vfi_bn_24x40", "tof_vfi", dict(flow_cfg=dict(norm_cfg=dict(type="BN"), pretrained=None)),
     (2, 2, 24, 40), True),
]


def _reference(arch: str, kwargs: dict) -> nn.Module:
    if arch == "tof":
        return mm_tof.TOFlow(**kwargs)
    if arch == "tof_vfi":
        return mm_tof_vfi.TOFlowVFINet(**kwargs)
    raise ValueError(arch)


def _half_exact(t: torch.Tensor) -> torch.Tensor:
    return t.half().float()


def _periodic_normal(shape: torch.Size, generator: torch.Generator) -> torch.Tensor:
    base = torch.randn(PERIOD, generator=generator)
    return base.repeat(math.ceil(shape.numel() / PERIOD))[:shape.numel()].view(shape)


def _randomise_(module: nn.Module, generator: torch.Generator) -> None:
    """Periodic N(0, 1/fan_in) conv weights, N(0, 0.1²) biases and BN shifts, BN scales
    1 + N(0, 0.1²), running statistics away from (0, 1); all float16-exact."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() == 4:
                new = _periodic_normal(p.shape, generator) / math.sqrt(p[0].numel())
            elif name.endswith("bn.weight"):
                new = 1 + 0.1 * torch.randn(p.shape, generator=generator)
            else:
                new = 0.1 * torch.randn(p.shape, generator=generator)
            p.copy_(_half_exact(new))
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(_half_exact(0.1 * torch.randn(b.shape, generator=generator)))
            elif name.endswith("running_var"):
                b.copy_(_half_exact(0.5 + torch.rand(b.shape, generator=generator)))
            elif name.endswith("num_batches_tracked"):
                b.fill_(7)


def _frames(n: int, t: int, h: int, w: int, generator: torch.Generator) -> torch.Tensor:
    """``[n, t, 3, h, w]`` 8-bit-valued frames: a blurred random field moved by a pixel per frame."""
    coarse = torch.rand(n, 3, (h + 3) // 4, (w + 3) // 4, generator=generator)
    frame = nn.functional.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)
    clip = []
    for i in range(t):
        moved = torch.roll(frame, shifts=(i, -i), dims=(2, 3))
        noisy = moved + 0.03 * torch.randn(moved.shape, generator=generator)
        clip.append((noisy.clamp(0, 255 / 256) * 256).floor() / 256)
    return torch.stack(clip, dim=1)


def _flow_pairs(model: nn.Module, arch: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The (ref, supp) batches the model's flow network sees, normalised (and padded) as the model does."""
    if arch == "tof":
        if model.adapt_official_weights:
            x = x[:, [3, 0, 1, 2, 4, 5, 6]]
        n, t, c, h, w = x.shape
        x = model.normalize(x.reshape(-1, c, h, w)).view(n, t, c, h, w)
        ref = x[:, model.ref_idx]
        supps = [x[:, i] for i in range(t) if i != model.ref_idx]
        return torch.cat([ref] * len(supps)), torch.cat(supps)
    x = model.spatial_padding(x)
    n, t, c, h, w = x.shape
    x = model.normalize(x.reshape(-1, c, h, w)).view(n, t, c, h, w)
    return torch.cat([x[:, 0], x[:, 1]]), torch.cat([x[:, 1], x[:, 0]])


def _tame_flows_(model: nn.Module, arch: str, x: torch.Tensor) -> float:
    """Scales every level's last conv by one factor so the mean |flow| on the case's pairs is FLOW_TARGET."""
    spynet = model.spynet.eval()
    with torch.no_grad():
        pairs = _flow_pairs(model, arch, x)
        for _ in range(5):  # the flow is not linear in the factor (warps), so iterate
            mean = spynet(*pairs).abs().mean().item()
            factor = FLOW_TARGET / max(mean, 1e-6)
            for level in spynet.basic_module:
                last = level.basic_module[-1].conv
                last.weight.mul_(factor)
                last.bias.mul_(factor)
        for p in spynet.parameters():
            p.copy_(_half_exact(p))
        return spynet(*pairs).abs().mean().item()


def _stored(t: torch.Tensor) -> torch.Tensor:
    if t.dtype == torch.float32 and torch.equal(_half_exact(t), t):
        return t.half()
    return t.clone()


def _run_case(case: str, arch: str, kwargs: dict, dims: tuple[int, ...], train: bool) -> dict[str, object]:
    generator = torch.Generator().manual_seed(zlib.crc32(case.encode()))
    model = _reference(arch, kwargs)
    _randomise_(model, generator)
    x = _frames(*dims, generator)
    flow = _tame_flows_(model, arch, x)
    out = {f"{case}/arch": arch, f"{case}/kwargs": json.dumps(kwargs), f"{case}/input": x.half()}
    out |= {f"{case}/state/{k}": _stored(v) for k, v in model.state_dict().items()}
    with torch.no_grad():
        out[f"{case}/eval"] = y = model.eval()(x.clone())
        y_train = model.train()(x.clone())
    if train:
        out[f"{case}/train"] = y_train
        out |= {f"{case}/after_train/{k}": v.clone() for k, v in model.named_buffers()}
    elif not any(isinstance(m, nn.BatchNorm2d) for m in model.modules()):
        assert torch.equal(y, y_train), f"{case}: train mode differs from eval without BN"
    print(f"{case}: mean |flow| {flow:.2f}; output {list(y.shape)} range [{y.min():.3f}, {y.max():.3f}]")
    return out


def main() -> None:
    arrays: dict[str, object] = {}
    for case in CASES:
        arrays |= _run_case(*case)
    mmedit_shim.save_golden(str(OUT), **arrays)
    print(f"{OUT.relative_to(ROOT)}: {len(CASES)} cases, {OUT.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
