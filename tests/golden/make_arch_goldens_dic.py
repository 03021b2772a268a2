"""Forward-parity goldens for ``dicnet`` (DIC's generator) and ``light_cnn`` (DIC-GAN's
discriminator), computed by MMEditing 0.16.1's ``DICNet`` and ``LightCNN``.

Run with the interpreter that has mmedit (see ``mmedit_shim``), from the repository root::

    /work/mmedit-venv/bin/python tests/golden/make_arch_goldens_dic.py

Writes ``tests/data/golden/archs_dic.npz`` in the case format of ``make_arch_goldens.py`` (read by
``tests/trainers/test_arch_parity.py``). DICNet returns two lists (SR image and 68 heatmaps per
step): they are stored flattened as ``eval.0`` .. ``eval.<2*steps-1>`` (images first), which is
how the parity test flattens nested outputs.

* ``dicnet``: a narrow DICNet (mid 8, 2 projection pairs, hourglass 16, 2 fusion blocks) with 3
  steps and 68 landmarks, so the attention block runs twice and its feedback hidden state is
  exercised; only the last step's image and heatmaps are stored (``eval_indices``: every
  earlier step feeds them, and all six outputs would be 2.6 MB). A second case with
  ``hg_num_keypoints=5`` (the reference's 5-map pass-through), ``detach_attention`` and another
  PReLU init stores all its outputs. Inputs are 16 x 16 (the reference resizes its residual to
  a fixed 128 x 128).
* ``light_cnn``: the widths are hard-coded (5.49M parameters), so weights are N(0, 1/fan_in)
  drawn for 127 entries and repeated with that period (``make_arch_goldens_tof.py``'s trick) and
  everything is float16-exact, so the compressed file stays small. Input 128 x 128, batch 2.
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

from mmedit.models.backbones.sr_backbones.dic_net import DICNet  # noqa: E402
from mmedit.models.components.discriminators.light_cnn import LightCNN  # noqa: E402

OUT = ROOT / "tests/data/golden/archs_dic.npz"
PERIOD = 127
TINY = dict(in_channels=3, out_channels=3, mid_channels=8, num_blocks=2, hg_mid_channels=16, num_steps=3,
            num_fusion_blocks=2)
CASES = [  # (case, arch, kwargs, input shape, flattened outputs stored (None: all))
    ("dicnet_tiny_3steps", "dicnet", TINY, (1, 3, 16, 16), [2, 5]),
    ("dicnet_tiny_5maps_detached", "dicnet",
     TINY | dict(detach_attention=True, num_steps=2, prelu_init=0.1, hg_num_keypoints=5), (1, 3, 16, 16), None),
    ("light_cnn_128", "light_cnn", dict(in_channels=3), (1, 3, 128, 128), None),
]


def _half_exact(t: torch.Tensor) -> torch.Tensor:
    return t.half().float()


def _periodic_normal(shape: torch.Size, generator: torch.Generator) -> torch.Tensor:
    base = torch.randn(PERIOD, generator=generator)
    return base.repeat(math.ceil(shape.numel() / PERIOD))[:shape.numel()].view(shape)


def _randomise_(module: nn.Module, generator: torch.Generator) -> None:
    """N(0, 1/fan_in) weights (periodic), N(0, 0.1²) biases, PReLU slopes U(0.1, 0.3); float16-exact."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() >= 2:
                new = _periodic_normal(p.shape, generator) / math.sqrt(p[0].numel())
            elif p.numel() == 1:  # PReLU
                new = 0.1 + 0.2 * torch.rand(p.shape, generator=generator)
            else:
                new = 0.1 * torch.randn(p.shape, generator=generator)
            p.copy_(_half_exact(new))


def _stored(t: torch.Tensor) -> torch.Tensor:
    if t.dtype == torch.float32 and torch.equal(_half_exact(t), t):
        return t.half()
    return t.clone()


def _run_case(case: str, arch: str, kwargs: dict, shape: tuple[int, ...], keep: list[int] | None
              ) -> dict[str, object]:
    generator = torch.Generator().manual_seed(zlib.crc32(case.encode()))
    model = DICNet(**kwargs) if arch == "dicnet" else LightCNN(**kwargs)
    _randomise_(model, generator)
    x = _half_exact(torch.rand(shape, generator=generator) - 0.45)
    out = {f"{case}/arch": arch, f"{case}/kwargs": json.dumps(kwargs), f"{case}/input": x.half()}
    out |= {f"{case}/state/{k}": _stored(v) for k, v in model.state_dict().items()}
    with torch.no_grad():
        y = model.eval()(x.clone())
    if arch == "dicnet":
        flat = list(y[0]) + list(y[1])
        if keep is not None:
            out[f"{case}/eval_indices"] = json.dumps(keep)
        out |= {f"{case}/eval.{i}": t for i, t in enumerate(flat) if keep is None or i in keep}
        print(f"{case}: sr {list(y[0][-1].shape)} range [{y[0][-1].min():.3f}, {y[0][-1].max():.3f}], "
              f"heatmaps {list(y[1][-1].shape)} std {y[1][-1].std():.3f}")
    else:
        out[f"{case}/eval"] = y
        print(f"{case}: logits {y.flatten().tolist()}")
    return out


def main() -> None:
    arrays: dict[str, object] = {}
    for case in CASES:
        arrays |= _run_case(*case)
    mmedit_shim.save_golden(str(OUT), **arrays)
    print(f"{OUT.relative_to(ROOT)}: {len(CASES)} cases, {OUT.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
