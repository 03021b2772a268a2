"""Forward-parity goldens for ``trainers/archs``, computed by MMEditing 0.16.1's own modules.

Run with the interpreter that has mmedit (see ``mmedit_shim``), from the repository root::

    /work/mmedit-venv/bin/python tests/golden/make_arch_goldens.py

Writes ``tests/data/golden/archs.npz``, which ``tests/trainers/test_arch_parity.py``
reads without mmedit. Each case is a tiny variant of a registered architecture (the
structure is what is under test, not the width), built from mmedit, given seeded
random weights and run on a seeded input. Keys, per case ``<c>``:

* ``<c>/arch``, ``<c>/kwargs``: the ``ARCHS`` name and the constructor kwargs (JSON),
  the same for both implementations;
* ``<c>/input``: the input batch;
* ``<c>/state/<key>``: the reference state dict before any forward;
* ``<c>/eval``: the eval-mode output;
* discriminators only: ``<c>/train``, the train-mode output (BN uses batch statistics,
  spectral norm runs one power iteration), and ``<c>/after_train/<key>``, every buffer
  after it (BN running statistics, spectral norm's ``weight_u`` / ``weight_v``).

Parameters are drawn in float32 and rounded to values float16 represents exactly, then
stored as float16: the same float32 numbers at half the file size. Inputs are 8-bit
images, ``k / 256`` (exact in float16 too). Outputs and buffers are stored as float32
as computed. Spectral-norm modules get a few power iterations before the state is
recorded, as a trained discriminator has: with spectral_norm's random initial ``u``,
``v`` the eval-mode sigma estimate is near zero and the outputs explode.
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

from mmedit.models.registry import BACKBONES, COMPONENTS  # noqa: E402

from trainers.archs import ARCHS  # noqa: E402  (names only: which mmedit class each ARCHS entry ports)

OUT = ROOT / "tests/data/golden/archs.npz"

LR = (1, 3, 8, 8)  # generator input: divisible by 4 for RRDBNet's x1 pixel-unshuffle
SR = dict(in_channels=3, out_channels=3)


def _cases() -> list[tuple[str, str, dict, tuple[int, ...]]]:
    """``(case, arch, kwargs, input shape)`` for every scale each generator supports, and the discriminators."""
    cases = []
    for s in (2, 3, 4):
        cases += [
            (f"srcnn_x{s}", "srcnn", dict(channels=[3, 8, 4, 3], kernel_sizes=[9, 1, 5], upscale_factor=s), LR),
            (f"edsr_x{s}", "edsr", dict(SR, mid_channels=8, num_blocks=2, upscale_factor=s), LR),
            (f"rdn_x{s}", "rdn", dict(SR, mid_channels=8, num_blocks=2, num_layers=2, channel_growth=4,
                                      upscale_factor=s), LR),
            (f"msrresnet_x{s}", "msrresnet", dict(SR, mid_channels=8, num_blocks=2, upscale_factor=s), LR),
        ]
    # EDSR-large's residual scaling and a non-unit std (the normalisation must be undone exactly).
    cases.append(("edsr_x2_res0.1_std", "edsr", dict(SR, mid_channels=8, num_blocks=2, upscale_factor=2,
                                                     res_scale=0.1, rgb_std=[0.5, 0.6, 0.7]), LR))
    for s in (1, 2, 4):
        cases.append((f"rrdbnet_x{s}", "rrdbnet", dict(SR, mid_channels=8, num_blocks=1, growth_channels=4,
                                                       upscale_factor=s), LR))
    cases += [
        ("modified_vgg", "modified_vgg", dict(in_channels=3, mid_channels=4), (2, 3, 128, 128)),
        ("unet_disc_sn", "unet_disc_sn", dict(in_channels=3, mid_channels=8, skip_connection=True), (1, 3, 32, 32)),
        ("unet_disc_sn_noskip", "unet_disc_sn", dict(in_channels=3, mid_channels=4, skip_connection=False),
         (1, 3, 32, 32)),
    ]
    return cases


def _reference_class(arch: str) -> type[nn.Module]:
    """mmedit's class of the same name as restoray's (the names are kept for checkpoint compatibility)."""
    name = ARCHS[arch].__name__
    return BACKBONES.get(name) or COMPONENTS.get(name)


def _half_exact(t: torch.Tensor) -> torch.Tensor:
    """``t`` rounded to the nearest float16 value, kept as float32."""
    return t.half().float()


def _randomise_(module: nn.Module) -> None:
    """Seeded weights with O(1) activations; power-iteration vectors keep spectral_norm's own init.

    Conv/linear weights are N(0, 1/fan_in); BN scales 1 + N(0, 0.1^2); biases and BN shifts
    N(0, 0.1^2); BN running statistics away from their (0, 1) defaults so that eval mode
    really uses them.
    """
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim > 1:
                new = torch.randn_like(p) / math.sqrt(p[0].numel())
            elif name.endswith("weight"):
                new = 1 + 0.1 * torch.randn_like(p)
            else:
                new = 0.1 * torch.randn_like(p)
            p.copy_(_half_exact(new))
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(_half_exact(0.1 * torch.randn_like(b)))
            elif name.endswith("running_var"):
                b.copy_(_half_exact(0.5 + torch.rand_like(b)))
            elif name.endswith("num_batches_tracked"):
                b.fill_(7)


def _warm_up_power_iteration_(module: nn.Module, shape: tuple[int, ...], steps: int = 3) -> None:
    """Train-mode forwards (spectral norm's power iteration) on noise, where the module has spectral norm."""
    if any(name.endswith("weight_u") for name, _ in module.named_buffers()):
        with torch.no_grad():
            for _ in range(steps):
                module.train()(torch.rand(shape))


def _stored(t: torch.Tensor) -> torch.Tensor:
    """float16 where that is exact (parameters, inputs), otherwise as is."""
    if t.dtype == torch.float32 and torch.equal(_half_exact(t), t):
        return t.half()
    return t.clone()


def _run_case(case: str, arch: str, kwargs: dict, shape: tuple[int, ...]) -> dict[str, object]:
    torch.manual_seed(zlib.crc32(case.encode()))
    model = _reference_class(arch)(**kwargs)
    _randomise_(model)
    _warm_up_power_iteration_(model, shape)
    x = torch.randint(0, 256, shape) / 256
    out = {f"{case}/arch": arch, f"{case}/kwargs": json.dumps(kwargs), f"{case}/input": x.half()}
    out |= {f"{case}/state/{k}": _stored(v) for k, v in model.state_dict().items()}
    with torch.no_grad():
        out[f"{case}/eval"] = model.eval()(x)
        if any(True for _ in model.buffers()):  # BN statistics or spectral norm: train mode differs
            out[f"{case}/train"] = model.train()(x)
            out |= {f"{case}/after_train/{k}": v.clone() for k, v in model.named_buffers()}
    return out


def main() -> None:
    arrays: dict[str, object] = {}
    for case in _cases():
        arrays |= _run_case(*case)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    mmedit_shim.save_golden(str(OUT), **arrays)
    print(f"{OUT.relative_to(ROOT)}: {len(_cases())} cases, {OUT.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
