"""Forward-parity goldens for ``edvr`` (with and without TSA) and ``tdan``, computed by MMEditing 0.16.1.

Run with the interpreter that has mmedit (see ``mmedit_shim``, whose stand-in computes mmcv's
DCNv1 and DCNv2 by their definition), from the repository root::

    /work/mmedit-venv/bin/python tests/golden/make_arch_goldens_edvr.py

Writes ``tests/data/golden/archs_edvr.npz`` in the case format read by
``tests/trainers/test_arch_parity.py`` (``<c>/arch``, ``<c>/kwargs``, ``<c>/input``,
``<c>/state/<key>``, ``<c>/eval``; TDAN returns a tuple, stored as ``<c>/eval.0`` (the HR
centre frame) and ``<c>/eval.1`` (the aligned LR frames)). Cases:

* ``edvr_wotsa_c8_t5``: EDVR without TSA (the 1x1 fusion conv), 5 frames, centre 2, 16x16 LR.
* ``edvr_tsa_c16_t3_ref0``: EDVR with TSA, 3 frames with the reference at index 0 (so the
  centre index is honoured by PCD, TSA and the residual alike, not assumed to be the middle),
  20x24 LR (the TSA pyramid pools 10x12 to 5x6 and upsamples back).
* ``tdan_c16``: TDAN, its fixed 5 frames and 8 deformable groups, 16x16 LR, inputs in the zoo's
  ``x / 255 - 0.5`` range.

Weights as in ``make_arch_goldens_iconvsr.py`` (whose helpers are used): periodic N(0, 1/fan_in)
conv and DCN weights and N(0, 0.1²) biases, float16-exact; every ``conv_offset`` (zero in a
fresh mmedit model, which would make the DCNs plain convs) is random and scaled so that the
offsets are fractional and a few pixels large (printed per case). Inputs are panned blurred
textures with 8-bit values.
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

from make_arch_goldens_iconvsr import _clip, _half_exact, _periodic_normal, _stored  # noqa: E402
from mmcv.ops import DeformConv2d, ModulatedDeformConv2d  # noqa: E402
from mmedit.models.backbones.sr_backbones.edvr_net import EDVRNet  # noqa: E402
from mmedit.models.backbones.sr_backbones.tdan_net import TDANNet  # noqa: E402

OUT = ROOT / "tests/data/golden/archs_edvr.npz"
# conv_offset weights x this, per arch: mean |offset| of one to a few pixels on these inputs
OFFSET_GAIN = {"edvr": 20.0, "tdan": 15.0}

# (case, arch, kwargs, frames, height, width, input shift)
CASES = [
    ("edvr_wotsa_c8_t5", "edvr",
     dict(in_channels=3, out_channels=3, mid_channels=8, num_frames=5, deform_groups=2, num_blocks_extraction=1,
          num_blocks_reconstruction=1, center_frame_idx=2, with_tsa=False), 5, 16, 16, 0.0),
    ("edvr_tsa_c16_t3_ref0", "edvr",
     dict(in_channels=3, out_channels=3, mid_channels=16, num_frames=3, deform_groups=4, num_blocks_extraction=1,
          num_blocks_reconstruction=2, center_frame_idx=0, with_tsa=True), 3, 20, 24, 0.0),
    ("tdan_c16", "tdan",
     dict(in_channels=3, mid_channels=16, out_channels=3, num_blocks_before_align=1, num_blocks_after_align=1),
     5, 16, 16, -0.5),
]
REFERENCE = {"edvr": EDVRNet, "tdan": TDANNet}


def _randomise_(module: nn.Module, offset_gain: float, generator: torch.Generator) -> None:
    """Periodic N(0, 1/fan_in) weights of every conv and DCN, N(0, 0.1²) biases, offsets scaled."""
    with torch.no_grad():
        for name, m in module.named_modules():
            if not isinstance(m, (nn.Conv2d, ModulatedDeformConv2d, DeformConv2d)):
                continue
            w = _periodic_normal(m.weight.numel(), generator).view_as(m.weight) / math.sqrt(m.weight[0].numel())
            if name.endswith("conv_offset"):
                w = w * offset_gain
            m.weight.copy_(_half_exact(w))
            if getattr(m, "bias", None) is not None:
                m.bias.copy_(_half_exact(0.1 * torch.randn(m.bias.shape, generator=generator)))


def _offset_stats(model: nn.Module) -> tuple[list[float], callable]:
    """Mean |offset| of every DCN call: DCNv2 packs use the first two thirds of conv_offset, DCNv1 all of it."""
    stats: list[float] = []

    def hook(share: float):
        return lambda mod, args, out: stats.append(out[:, : round(out.shape[1] * share)].abs().mean().item())

    hooks = [m.conv_offset.register_forward_hook(hook(2 / 3 if isinstance(m, ModulatedDeformConv2d) else 1.0))
             for m in model.modules() if hasattr(m, "conv_offset")]
    return stats, lambda: [h.remove() for h in hooks]


def _case(case, arch, kwargs, frames, h, w, shift) -> dict[str, object]:
    generator = torch.Generator().manual_seed(zlib.crc32(case.encode()))
    model = REFERENCE[arch](**kwargs)
    model.init_weights()
    model.eval()
    _randomise_(model, OFFSET_GAIN[arch], generator)
    x = _clip(frames, h, w, False, generator) + shift
    stats, remove = _offset_stats(model)
    with torch.no_grad():
        out = model(x)
    remove()
    outs = list(out) if isinstance(out, tuple) else [out]
    print(f"{case}: mean |offset| per DCN call {min(stats):.2f}..{max(stats):.2f} px, "
          f"outputs {[tuple(o.shape) for o in outs]}")
    arrays = {f"{case}/arch": arch, f"{case}/kwargs": json.dumps(kwargs), f"{case}/input": x.half()}
    if len(outs) == 1:
        arrays[f"{case}/eval"] = outs[0]
    else:
        arrays |= {f"{case}/eval.{i}": o for i, o in enumerate(outs)}
    arrays |= {f"{case}/state/{k}": _stored(v) for k, v in model.state_dict().items()}
    return arrays


def main() -> None:
    arrays: dict[str, object] = {}
    for case in CASES:
        arrays |= _case(*case)
    mmedit_shim.save_golden(str(OUT), **arrays)
    print(f"{OUT.relative_to(ROOT)}: {len(CASES)} cases, {OUT.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
