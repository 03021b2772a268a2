"""Forward-parity goldens for the frame-interpolation archs ``cain`` and ``flavr``, computed by
MMEditing 0.16.1's ``CAINNet`` and ``FLAVRNet``.

Run with the interpreter that has mmedit (see ``mmedit_shim``), from the repository root::

    /work/mmedit-venv/bin/python tests/golden/make_arch_goldens_vfi.py

Writes ``tests/data/golden/archs_vfi.npz`` in the case format of ``make_arch_goldens.py`` (read by
``tests/trainers/test_arch_parity.py``): per case ``<c>/arch``, ``<c>/kwargs``, ``<c>/input``
(a clip ``[N, T, 3, H, W]`` of 8-bit values ``k / 256``), optional ``<c>/forward_kwargs``
(CAIN's ``padding_flag``), ``<c>/state/<key>``, ``<c>/eval``, and for the cases with norm layers
``<c>/train`` and ``<c>/after_train/<key>``.

The cases are narrow (CAIN depth 1 or 2, i.e. 12 or 48 channels; FLAVR widths 8-32, 1-2 blocks a
stage) and cover: CAIN without padding, with ``padding_flag`` by reflection and by edge
replication (the half-pad reaches the frame size), with ``norm='in'`` (InstanceNorm2d with running
statistics: eval uses them, train updates them) and ``'BN'``; FLAVR with concatenated skips and
transposed convs (the zoo's choice), and with added skips, trilinear upsampling, encoder biases,
3 frames in and 2 out. Weights N(0, 1/fan_in) (``p[0].numel()``), biases and norm shifts
N(0, 0.1²), norm scales 1 + N(0, 0.1²), running statistics away from (0, 1); all rounded to
float16-exact values and stored as float16. mmedit's CAIN subtracts the frame means in place on
the caller's tensor, so every reference call gets a fresh copy of the input.
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

from mmedit.models.backbones.vfi_backbones.cain_net import CAINNet  # noqa: E402
from mmedit.models.backbones.vfi_backbones.flavr_net import FLAVRNet  # noqa: E402

OUT = ROOT / "tests/data/golden/archs_vfi.npz"
REFERENCES = {"cain": CAINNet, "flavr": FLAVRNet}

CAIN_D1 = dict(depth=1, reduction=4, num_block_groups=1, num_block_layers=1)
FLAVR_TINY = dict(num_input_frames=4, num_output_frames=1, mid_channels_list=[32, 16, 8, 8],
                  encoder_layers_list=[1, 1, 1, 1])
# (case, arch, kwargs, input shape [N, T, H, W], forward kwargs)
CASES = [
    ("cain_d1_g2b1", "cain", CAIN_D1 | dict(num_block_groups=2), (2, 2, 8, 12), {}),
    # 10x14 -> 16x16: pads (top 3, bottom 3, left 1, right 1), reflection
    ("cain_d2_pad_reflect", "cain", dict(depth=2, reduction=16, num_block_groups=1, num_block_layers=1, padding=4),
     (1, 2, 10, 14), dict(padding_flag=True)),
    # 2x12 -> 8x16: bottom pad 3 >= 2 rows, so edge replication (left / right 2)
    ("cain_d1_pad_replicate", "cain", CAIN_D1 | dict(padding=3), (1, 2, 2, 12), dict(padding_flag=True)),
    ("cain_d1_in", "cain", CAIN_D1 | dict(norm="in"), (2, 2, 8, 8), {}),
    ("cain_d1_bn", "cain", CAIN_D1 | dict(norm="BN"), (2, 2, 8, 8), {}),
    ("flavr_c32_concat", "flavr", FLAVR_TINY, (1, 4, 16, 16), {}),
    ("flavr_c24_add_trilinear", "flavr",
     dict(num_input_frames=3, num_output_frames=2, mid_channels_list=[24, 16, 8, 8], encoder_layers_list=[2, 1, 1, 2],
          bias=True, join_type="add", up_mode="trilinear"), (2, 3, 8, 16), {}),
]


def _half_exact(t: torch.Tensor) -> torch.Tensor:
    return t.half().float()


def _randomise_(module: nn.Module, generator: torch.Generator) -> None:
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() > 1:
                new = torch.randn(p.shape, generator=generator) / math.sqrt(p[0].numel())
            elif name.endswith("norm.weight"):
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


def _stored(t: torch.Tensor) -> torch.Tensor:
    if t.dtype == torch.float32 and torch.equal(_half_exact(t), t):
        return t.half()
    return t.clone()


def _run_case(case: str, arch: str, kwargs: dict, shape: tuple[int, ...], forward_kwargs: dict) -> dict:
    generator = torch.Generator().manual_seed(zlib.crc32(case.encode()))
    model = REFERENCES[arch](**kwargs)
    _randomise_(model, generator)
    n, t, h, w = shape
    clip = torch.randint(0, 256, (n, t, 3, h, w), generator=generator).float() / 256
    out = {f"{case}/arch": arch, f"{case}/kwargs": json.dumps(kwargs), f"{case}/input": clip.half()}
    if forward_kwargs:
        out[f"{case}/forward_kwargs"] = json.dumps(forward_kwargs)
    out |= {f"{case}/state/{k}": _stored(v) for k, v in model.state_dict().items()}
    with torch.no_grad():
        out[f"{case}/eval"] = model.eval()(clip.clone(), **forward_kwargs)
        if any(True for _ in model.buffers()):
            out[f"{case}/train"] = model.train()(clip.clone(), **forward_kwargs)
            out |= {f"{case}/after_train/{k}": v.clone() for k, v in model.named_buffers()}
            assert not torch.equal(out[f"{case}/train"], out[f"{case}/eval"]), case
    y = out[f"{case}/eval"]
    print(f"{case}: {list(clip.shape)} -> {list(y.shape)}, |y| max {y.abs().max():.3g}, mean {y.mean():.3g}")
    return out


def main() -> None:
    arrays: dict[str, object] = {}
    for case in CASES:
        arrays |= _run_case(*case)
    mmedit_shim.save_golden(str(OUT), **arrays)
    print(f"{OUT.relative_to(ROOT)}: {len(CASES)} cases, {OUT.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
