"""Forward-parity goldens for ``glean`` and ``stylegan2_disc``, computed by MMEditing 0.16.1's
``GLEANStyleGANv2`` and mmgen-style ``StyleGAN2Discriminator`` (``mmedit.models.components.stylegan2``).

Run with the interpreter that has mmedit (see ``mmedit_shim``), from the repository root::

    /work/mmedit-venv/bin/python tests/golden/make_arch_goldens_glean.py

Writes ``tests/data/golden/archs_glean.npz`` in the case format of ``make_arch_goldens.py``
(``<c>/arch``, ``<c>/kwargs``, ``<c>/input``, ``<c>/state/<key>``, ``<c>/eval``).

StyleGAN2's channel table is fixed in the reference (512 up to 32 px), far too wide for a small
golden. restoray's ``width_divisor`` divides that table; here the reference's own module source is
executed with every entry of its two channel tables divided the same way (nothing else changed),
so the cases run the reference code at 16 channels. mmcv 1.7's ``upfirdn2d`` and
``fused_bias_leakyrelu`` take their own pure-torch paths on CPU (``upfirdn2d_native``,
``bias_leakyrelu_ref``), so no stand-in is needed for them.

Weights: the reference init (seeded), with parameters that start at zero (biases, noise
strengths) replaced by N(0, 0.1²) so they matter; all rounded to float16-exact values and
stored as float16. GLEAN always uses the bank's fixed ``injected_noise_<i>`` buffers (stored as
state), so its output is deterministic. Inputs are 8-bit levels mapped to [-1, 1].
"""

from __future__ import annotations

import json
import re
import sys
import types
import zlib
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests" / "golden"), str(ROOT)]
import mmedit_shim  # noqa: E402

mmedit_shim.install()

import mmedit.models.backbones.sr_backbones.glean_styleganv2 as glean_mod  # noqa: E402
import mmedit.models.components.stylegan2.generator_discriminator as gd  # noqa: E402

OUT = ROOT / "tests/data/golden/archs_glean.npz"
WIDTH_DIVISOR = 32


def _narrow_classes(divisor: int) -> types.SimpleNamespace:
    """The reference generator/discriminator classes with their channel tables divided by ``divisor``."""
    src = Path(gd.__file__).read_text()
    src, n = re.subn(r"(\n\s+)(4|8|16|32|64|128|256|512|1024): ([^,\n]+),", rf"\1\2: max(1, (\3) // {divisor}),", src)
    assert n == 18, n  # nine entries in each of the two tables
    src = src.replace("@COMPONENTS.register_module()\n", "")
    namespace = {"__name__": gd.__name__ + "_narrow", "__package__": gd.__package__}
    exec(compile(src, gd.__file__, "exec"), namespace)
    return types.SimpleNamespace(**namespace)


NARROW = _narrow_classes(WIDTH_DIVISOR)
glean_mod.build_component = lambda cfg: NARROW.StyleGANv2Generator(**{k: v for k, v in cfg.items() if k != "type"})

# (case, arch, reference kwargs, input shape [N, 3, H, W])
CASES = [
    ("glean_8to32_b2", "glean", dict(in_size=8, out_size=32, style_channels=16, num_mlps=2, rrdb_channels=8,
                                      num_rrdbs=1), (2, 3, 8, 8)),
    ("glean_16to64_cm1", "glean", dict(in_size=16, out_size=64, style_channels=8, num_mlps=1, rrdb_channels=4,
                                        num_rrdbs=0, channel_multiplier=1), (1, 3, 16, 16)),
    ("glean_4to16", "glean", dict(in_size=4, out_size=16, style_channels=8, num_mlps=1, rrdb_channels=4,
                                   num_rrdbs=0), (1, 3, 4, 4)),
    ("stylegan2_disc_16_b8", "stylegan2_disc", dict(in_size=16), (8, 3, 16, 16)),
    ("stylegan2_disc_64_cm1_b3", "stylegan2_disc", dict(in_size=64, channel_multiplier=1), (3, 3, 64, 64)),
]
REFERENCES = {"glean": glean_mod.GLEANStyleGANv2, "stylegan2_disc": NARROW.StyleGAN2Discriminator}


def _half_exact(t: torch.Tensor) -> torch.Tensor:
    return t.half().float()


def _randomise_(module: nn.Module, generator: torch.Generator) -> None:
    with torch.no_grad():
        for p in module.parameters():
            if not p.any():
                p.copy_(0.1 * torch.randn(p.shape, generator=generator))
            p.copy_(_half_exact(p))
        for name, b in module.named_buffers():
            if "injected_noise" in name:
                b.copy_(_half_exact(torch.randn(b.shape, generator=generator)))


def _stored(t: torch.Tensor) -> torch.Tensor:
    return t.half() if t.dtype == torch.float32 and torch.equal(_half_exact(t), t) else t.clone()


def _run_case(case: str, arch: str, kwargs: dict, shape: tuple[int, ...]) -> dict:
    generator = torch.Generator().manual_seed(zlib.crc32(case.encode()))
    torch.manual_seed(zlib.crc32(case.encode()))
    model = REFERENCES[arch](**kwargs).eval()
    _randomise_(model, generator)
    x = torch.randint(0, 256, shape, generator=generator).float() / 127.5 - 1
    ours = dict(kwargs, width_divisor=WIDTH_DIVISOR)
    out = {f"{case}/arch": arch, f"{case}/kwargs": json.dumps(ours), f"{case}/input": x}
    out |= {f"{case}/state/{k}": _stored(v) for k, v in model.state_dict().items()}
    with torch.no_grad():
        out[f"{case}/eval"] = model(x.clone())
    y = out[f"{case}/eval"]
    print(f"{case}: {list(x.shape)} -> {list(y.shape)}, |y| max {y.abs().max():.3g}, std {y.std():.3g}, "
          f"{sum(p.numel() for p in model.parameters())} params")
    return out


def main() -> None:
    arrays: dict[str, object] = {}
    for case in CASES:
        arrays |= _run_case(*case)
    mmedit_shim.save_golden(str(OUT), **arrays)
    print(f"{OUT.relative_to(ROOT)}: {len(CASES)} cases, {OUT.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
