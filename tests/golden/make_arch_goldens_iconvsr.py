"""Forward-parity goldens for ``iconvsr`` and EDVR's ``PCDAlignment``, computed by MMEditing 0.16.1.

Run with the interpreter that has mmedit (see ``mmedit_shim``, whose stand-in computes mmcv's
deformable convolution), from the repository root::

    /work/mmedit-venv/bin/python tests/golden/make_arch_goldens_iconvsr.py

Writes ``tests/data/golden/archs_iconvsr.npz`` in the case format of ``make_arch_goldens.py``:

* ``iconvsr_*`` cases (``<c>/arch``, ``<c>/kwargs``, ``<c>/input``, ``<c>/state/<key>``,
  ``<c>/eval``), read by ``tests/trainers/test_arch_parity.py``. Two clips: padding 2 with
  keyframe stride 3 over 5 frames (keyframes 0, 3 and the appended last frame 4; windows reach
  past both ends), 10x15 LR frames (reflect-padded to 12x16 inside); and padding 3 (7-frame
  EDVR windows) with stride 7 over a mirror-extended 8-frame clip (forward flows taken from the
  backward ones; keyframes 0 and 7, so both ends' window extensions) of 8x8 frames. Few
  keyframes and small frames because the EDVR windows dominate the test's run time.
* ``pcd_*``: a ``PCDAlignment`` alone (not an ``ARCHS`` entry, so ``<c>/block`` names the class
  instead of ``<c>/arch``; ``<c>/input.0-2`` are the neighbour's L1-L3 features, ``input.3-5``
  the reference's), read by ``tests/trainers/test_archs_iconvsr.py``.

Choices, all for what the goldens can show or for size:

* mmedit's ``IconVSR.forward`` asserts LR frames of at least 64x64; restoray's port does not.
  The reference forward is run from mmedit's own source with only that ``assert`` statement
  removed (``_forward_without_size_assert``), so the clips stay small (outputs are float32).
* ``mid_channels`` is 64 (the only width IconVSR works with: the EDVR-M extractor is 64 wide),
  SPyNet and EDVR-M have fixed widths too: 5.2M parameters per case. As in
  ``make_arch_goldens_matting_gca.py``, conv weights are N(0, 1/fan_in) drawn for 1021 (prime)
  entries and repeated with that period, which deflate stores in ~1% of the space; biases are
  N(0, 0.1²); all parameters are rounded to float16 values and stored as float16.
* mmedit zero-initialises every DCN's ``conv_offset``, which makes the deformable conv a plain
  conv at half weight. Here they are random like every other conv, scaled so that offsets are
  fractional and a few pixels large (the script prints their mean absolute value per case), and
  SPyNet's last conv of each level is scaled up so the flows are non-trivial too.
* Inputs are smooth-ish 8-bit frames (``k/256``, exact in float16) that move by a few pixels
  between frames, so SPyNet, PCD and the warps see structure rather than noise.
"""

from __future__ import annotations

import ast
import inspect
import json
import math
import sys
import textwrap
import zlib
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests" / "golden"), str(ROOT)]
import mmedit_shim  # noqa: E402

mmedit_shim.install()

from mmedit.models.backbones.sr_backbones import edvr_net, iconvsr  # noqa: E402

OUT = ROOT / "tests/data/golden/archs_iconvsr.npz"
PERIOD = 1021
OFFSET_GAIN = 12.0  # conv_offset weights x this: mean |offset| of a few pixels on these inputs
FLOW_GAIN = 3.0  # SPyNet's last conv per level x this: flows of a pixel or more

# (case, kwargs, frames, height, width, mirror-extended)
ICONVSR_CASES = [
    ("iconvsr_p2_s3_t5", dict(mid_channels=64, num_blocks=1, keyframe_stride=3, padding=2), 5, 10, 15, False),
    ("iconvsr_p3_s7_t8_mirror", dict(mid_channels=64, num_blocks=1, keyframe_stride=7, padding=3), 8, 8, 8, True),
]
PCD_CASE = ("pcd_c16_g4", dict(mid_channels=16, deform_groups=4), 16)  # L1 size 16x16


def _forward_without_size_assert():
    """mmedit's ``IconVSR.forward``, compiled from its source minus the ``assert`` on the frame size."""
    src = textwrap.dedent(inspect.getsource(iconvsr.IconVSR.forward))
    tree = ast.parse(src)
    fn = tree.body[0]
    asserts = [s for s in fn.body if isinstance(s, ast.Assert)]
    assert len(asserts) == 1 and "64" in ast.unparse(asserts[0]), "mmedit's IconVSR.forward changed"
    fn.body = [s for s in fn.body if not isinstance(s, ast.Assert)]
    namespace: dict = {}
    exec(compile(tree, inspect.getsourcefile(iconvsr.IconVSR), "exec"), vars(iconvsr), namespace)
    return namespace["forward"]


def _half_exact(t: torch.Tensor) -> torch.Tensor:
    return t.half().float()


def _periodic_normal(numel: int, generator: torch.Generator) -> torch.Tensor:
    base = torch.randn(PERIOD, generator=generator)
    return base.repeat(math.ceil(numel / PERIOD))[:numel]


def _randomise_(module: nn.Module, generator: torch.Generator) -> None:
    """Periodic N(0, 1/fan_in) conv weights (DCN weights included), N(0, 0.1²) biases, gains as above."""
    convs = {n: m for n, m in module.named_modules()
             if isinstance(m, (nn.Conv2d, edvr_net.ModulatedDeformConv2d))}
    with torch.no_grad():
        for name, m in convs.items():
            fan_in = m.weight[0].numel()
            w = _periodic_normal(m.weight.numel(), generator).view_as(m.weight) / math.sqrt(fan_in)
            if name.endswith("conv_offset"):
                w = w * OFFSET_GAIN
            if name.startswith("spynet") and name.endswith("basic_module.4.conv"):
                w = w * FLOW_GAIN
            m.weight.copy_(_half_exact(w))
            if m.bias is not None:
                m.bias.copy_(_half_exact(0.1 * torch.randn(m.bias.shape, generator=generator)))


def _clip(frames: int, h: int, w: int, mirror: bool, generator: torch.Generator) -> torch.Tensor:
    """Blurred random texture panned by a random few pixels per frame, 8-bit values."""
    big = torch.rand(1, 3, h + 4 * frames + 8, w + 4 * frames + 8, generator=generator)
    big = nn.functional.avg_pool2d(big, 3, 1, 1)
    n = frames // 2 if mirror else frames
    shifts = torch.randint(0, 4, (n, 2), generator=generator).cumsum(0)
    out = torch.stack([big[0, :, y:y + h, x:x + w] for y, x in shifts.tolist()])
    if mirror:
        out = torch.cat([out, out.flip(0)])
    return (torch.round(out * 255) / 256)[None]


def _offset_stats(model: nn.Module) -> tuple[list[float], callable]:
    """Records mean |offset| of every DCN call (mmedit's pack: offset = first two thirds of conv_offset)."""
    stats: list[float] = []

    def hook(mod, args, out):
        stats.append(out[:, : out.shape[1] * 2 // 3].abs().mean().item())

    handles = [m.conv_offset.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, edvr_net.ModulatedDCNPack)]
    return stats, lambda: [h.remove() for h in handles]


def _stored(t: torch.Tensor) -> torch.Tensor:
    if t.dtype == torch.float32 and torch.equal(_half_exact(t), t):
        return t.half()
    return t.clone()


def _iconvsr_case(case, kwargs, frames, h, w, mirror) -> dict[str, object]:
    generator = torch.Generator().manual_seed(zlib.crc32(case.encode()))
    model = iconvsr.IconVSR(**kwargs).eval()
    _randomise_(model, generator)
    x = _clip(frames, h, w, mirror, generator)
    stats, remove = _offset_stats(model)
    with torch.no_grad():
        model.check_if_mirror_extended(model.spatial_padding(x))
        assert model.is_mirror_extended == mirror
        _, flows_b = model.compute_flow(model.spatial_padding(x))
        out = model(x)
    remove()
    print(f"{case}: mean |offset| per DCN call {min(stats):.2f}..{max(stats):.2f} px, "
          f"mean |flow| {flows_b.abs().mean():.2f} px, out {tuple(out.shape)}")
    arrays = {f"{case}/arch": "iconvsr", f"{case}/kwargs": json.dumps(kwargs), f"{case}/input": x.half(),
              f"{case}/eval": out}
    arrays |= {f"{case}/state/{k}": _stored(v) for k, v in model.state_dict().items()}
    return arrays


def _pcd_case(case, kwargs, size) -> dict[str, object]:
    generator = torch.Generator().manual_seed(zlib.crc32(case.encode()))
    model = edvr_net.PCDAlignment(**kwargs).eval()
    _randomise_(model, generator)
    c = kwargs["mid_channels"]
    feats = [_half_exact(torch.randn(1, c, size >> k, size >> k, generator=generator)) for k in (0, 1, 2) * 2]
    stats, remove = _offset_stats(model)
    with torch.no_grad():
        out = model(feats[:3], feats[3:])
    remove()
    print(f"{case}: mean |offset| per DCN {', '.join(f'{s:.2f}' for s in stats)} px")
    arrays = {f"{case}/block": "trainers.archs.edvr_blocks.PCDAlignment", f"{case}/kwargs": json.dumps(kwargs),
              f"{case}/eval": out}
    arrays |= {f"{case}/input.{i}": f.half() for i, f in enumerate(feats)}
    arrays |= {f"{case}/state/{k}": _stored(v) for k, v in model.state_dict().items()}
    return arrays


def main() -> None:
    iconvsr.IconVSR.forward = _forward_without_size_assert()
    arrays: dict[str, object] = {}
    for case in ICONVSR_CASES:
        arrays |= _iconvsr_case(*case)
    arrays |= _pcd_case(*PCD_CASE)
    mmedit_shim.save_golden(str(OUT), **arrays)
    print(f"{OUT.relative_to(ROOT)}: {len(ICONVSR_CASES) + 1} cases, {OUT.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
