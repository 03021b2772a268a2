"""Forward-parity goldens for ``ttsr`` (TTSRNet), ``lte`` (LTE) and ``ttsr_disc`` (TTSRDiscriminator),
and for the search/transfer step (mmedit's ``SearchTransformer``), computed by MMEditing 0.16.1.

Run with the interpreter that has mmedit (see ``mmedit_shim``), from the repository root::

    /work/mmedit-venv/bin/python tests/golden/make_arch_goldens_ttsr.py

Writes ``tests/data/golden/archs_ttsr.npz`` in the case format of ``make_arch_goldens.py`` (read by
``tests/trainers/test_arch_parity.py``). TTSRNet's third argument is a list of three tensors: its
inputs are ``input.0`` .. ``input.4`` with ``input_arity`` ``[1, 1, 3]`` (x, soft attention, the
three texture levels). The LTE and the discriminator have fixed widths (0.56M and, at
``in_size=32``, 5.2M parameters), so their weights repeat a 127-value period (the trick of
``make_arch_goldens_tof.py``) and compress to little. Values are float16-exact.

Also writes ``tests/data/golden/ttsr_search.npz`` (not an ``archs*`` file: the search holds no
weights and is no network role): random level-3/2/1 features and mmedit's soft attention and
textures for them, and mmedit's ``TransferalPerceptualLoss`` (weight 0.3; l1/mse, with and
without attention) of random maps against those textures, read by
``tests/trainers/test_archs_ttsr.py``.
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

from mmedit.models.backbones.sr_backbones.ttsr_net import TTSRNet  # noqa: E402
from mmedit.models.components.discriminators.ttsr_disc import TTSRDiscriminator  # noqa: E402
from mmedit.models.extractors.lte import LTE  # noqa: E402
from mmedit.models.losses.perceptual_loss import TransferalPerceptualLoss  # noqa: E402
from mmedit.models.transformers.search_transformer import SearchTransformer  # noqa: E402

OUT = ROOT / "tests/data/golden/archs_ttsr.npz"
OUT_SEARCH = ROOT / "tests/data/golden/ttsr_search.npz"
PERIOD = 127


def _half(t: torch.Tensor) -> torch.Tensor:
    return t.half().float()


def _randomise_(module: nn.Module, g: torch.Generator, periodic: bool) -> None:
    """N(0, 1/fan_in) weights (periodic when ``periodic``), N(0, 0.1²) biases; ImgNormalize kept."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.startswith("img_normalize"):
                continue
            fan_in = p[0].numel() if p.dim() > 1 else 1
            if p.dim() > 1 and periodic:
                base = torch.randn(PERIOD, generator=g)
                new = base.repeat(math.ceil(p.numel() / PERIOD))[: p.numel()].view(p.shape) / math.sqrt(fan_in)
            elif p.dim() > 1:
                new = torch.randn(p.shape, generator=g) / math.sqrt(fan_in)
            else:
                new = 0.1 * torch.randn(p.shape, generator=g)
            p.copy_(_half(new))


def _stored(t: torch.Tensor) -> torch.Tensor:
    return t.half() if t.dtype == torch.float32 and torch.equal(_half(t), t) else t.clone()


def _case(case: str, arch: str, kwargs: dict, model: nn.Module, inputs: list, arity=None, periodic=False) -> dict:
    g = torch.Generator().manual_seed(zlib.crc32(case.encode()))
    _randomise_(model, g, periodic)
    model.eval()
    flat = [_half(x(g)) for x in inputs]
    out = {f"{case}/arch": arch, f"{case}/kwargs": json.dumps(kwargs)}
    out |= {f"{case}/input.{i}": x.half() for i, x in enumerate(flat)}
    if arity:
        out[f"{case}/input_arity"] = json.dumps(arity)
        args, i = [], 0
        for a in arity:
            args.append(flat[i] if a == 1 else flat[i:i + a])
            i += a
    else:
        args = flat
    out |= {f"{case}/state/{k}": _stored(v) for k, v in model.state_dict().items()}
    with torch.no_grad():
        y = model(*args)
    ys = list(y) if isinstance(y, (list, tuple)) else [y]
    out |= {f"{case}/eval.{i}": v for i, v in enumerate(ys)} if len(ys) > 1 else {f"{case}/eval": ys[0]}
    print(f"{case}: outputs {[list(v.shape) for v in ys]}")
    return out


def _image(n, h, w, lo=0.0):
    return lambda g: torch.rand(n, 3, h, w, generator=g) * (1 - lo) + lo


def main() -> None:
    arrays: dict[str, object] = {}
    kw = dict(in_channels=3, out_channels=3, mid_channels=8, texture_channels=4, num_blocks=[1, 2, 1, 1])
    arrays |= _case("ttsr_c8t4", "ttsr", kw, TTSRNet(**kw), [
        lambda g: torch.rand(2, 3, 6, 8, generator=g) * 2 - 1,
        lambda g: torch.rand(2, 1, 6, 8, generator=g),
        lambda g: torch.randn(2, 16, 6, 8, generator=g),
        lambda g: torch.randn(2, 8, 12, 16, generator=g),
        lambda g: torch.randn(2, 4, 24, 32, generator=g)], arity=[1, 1, 3])
    arrays |= _case("lte_zoo", "lte", dict(load_pretrained_vgg=False), LTE(load_pretrained_vgg=False),
                    [_image(1, 16, 20)], periodic=True)
    arrays |= _case("ttsr_disc_32", "ttsr_disc", dict(in_size=32), TTSRDiscriminator(in_size=32),
                    [lambda g: torch.rand(2, 3, 32, 32, generator=g) * 2 - 1], periodic=True)
    mmedit_shim.save_golden(str(OUT), **arrays)
    print(f"{OUT.relative_to(ROOT)}: {OUT.stat().st_size / 1e3:.0f} kB")

    g = torch.Generator().manual_seed(9)
    k = _half(torch.randn(2, 6, 4, 6, generator=g))
    refs = [_half(torch.randn(2, 6 * 2 ** (2 - i), 4 * 2 ** i, 6 * 2 ** i, generator=g)) for i in range(3)]
    q = _half(torch.randn(2, 6, 4, 6, generator=g))
    soft, tex = SearchTransformer()(q, k, refs)
    maps = [_half(torch.randn(t.shape, generator=g)) for t in tex]
    losses = {f"transferal/{crit}_{int(att)}": TransferalPerceptualLoss(0.3, att, crit)(maps, soft, tex)
              for crit in ("mse", "l1") for att in (True, False)}
    mmedit_shim.save_golden(str(OUT_SEARCH), query=q, key=k, **{f"ref.{i}": r for i, r in enumerate(refs)},
                            soft_attention=soft, **{f"texture.{i}": t for i, t in enumerate(tex)},
                            **{f"map.{i}": m for i, m in enumerate(maps)}, **losses)
    print(f"{OUT_SEARCH.relative_to(ROOT)}: {OUT_SEARCH.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
