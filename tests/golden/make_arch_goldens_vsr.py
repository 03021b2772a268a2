"""Forward-parity goldens for the video SR archs (``spynet``, ``basicvsr``, ``realbasicvsr``,
``basicvsr_pp``), computed by MMEditing 0.16.1's modules.

Run with the interpreter that has mmedit (see ``mmedit_shim``), from the repository root::

    /work/mmedit-venv/bin/python tests/golden/make_arch_goldens_vsr.py

Writes ``tests/data/golden/archs_vsr.npz`` in the case format of ``make_arch_goldens.py``
(read by ``tests/trainers/test_arch_parity.py``): per case ``<c>/arch``, ``<c>/kwargs``, the
inputs (``<c>/input`` or ``<c>/input.0``, ``.1`` for SPyNet's two frames), optional
``<c>/forward_kwargs`` (JSON keyword arguments of the forward call: ``return_lqs``),
``<c>/state/<key>`` and the outputs (``<c>/eval``, or ``<c>/eval.0``, ``.1`` for RealBasicVSR's
``(outputs, lqs)``). The references are ``SPyNet``, ``BasicVSRNet``, ``RealBasicVSRNet`` and
``BasicVSRPlusPlus`` built with the same kwargs restoray takes (SPyNet's ``pretrained=None``).

What differs from ``make_arch_goldens.py``, and why:

* SPyNet has fixed widths (1.44M parameters in every case) and BasicVSR++'s offset convs end
  in 27 x 16 deform groups = 432 channels whatever the width, so conv weights are N(0, 1/fan_in)
  drawn for the first 439 entries of the flattened weight and repeated with that period (the
  trick of ``make_arch_goldens_matting_gca.py``, with a shorter period: deflate then stores a
  SPyNet in ~40 kB). 439 is prime and above every row (output-channel) count, so no two rows
  start at the same phase. Biases N(0, 0.1²). All values are rounded to float16 and stored as such. SPyNet's last conv per level is then
  scaled so that the clips' flows are a few pixels (not zero, not far outside the frame), and
  BasicVSR++'s offset convs (zero-initialised in the zoo) get random weights too, so the
  tanh-bounded residue, the mask and the flow-guided offsets all matter.
* mmedit's ``BasicVSRNet.forward`` and ``BasicVSRPlusPlus.forward`` assert an LR size of at
  least 64x64, which would make each output 12x larger than needed. The reference methods are
  recompiled here from their own source with ``optimize=1`` (what ``python -O`` does: asserts
  dropped, nothing else changed), so the clips can be 16x16; SPyNet still resizes them up to
  32x32, which the cases are meant to exercise. restoray does not repeat that assertion.
* Clips are ``[1, T, 3, H, W]`` 8-bit-valued frames in [0, 1] (``k/256``, exact in float16):
  T=3 at 16x16 for the main cases; the mirror-extended cases (frames a, b, b, a: the
  forward flows are taken from the backward ones) are T=4 at 8x12, BasicVSR++ with
  ``is_low_res_input=False`` takes 32x48 frames (bicubic x1/4 for the flows, strided convs
  for the features). SPyNet alone gets pairs at 16x20 and 40x64.
* None of these networks has batch norm, dropout or anything else that depends on the
  mode; the script checks that train-mode outputs equal eval-mode ones, and records no train
  cases. ``cpu_cache_length`` only acts on CUDA inputs, so it has no case.
"""

from __future__ import annotations

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

from mmedit.models.backbones.sr_backbones import basicvsr_net, real_basicvsr_net  # noqa: E402

OUT = ROOT / "tests/data/golden/archs_vsr.npz"
PERIOD = 439  # prime, above any weight's row count (BasicVSR++ offset convs: 432)
FLOW_TARGET = 2.0  # mean |flow| in pixels that SPyNet's scaled last convs aim at

TINY = dict(mid_channels=8)
# (case, arch, kwargs, input spec, forward kwargs). Input spec: ("pair", (n, h, w)) for SPyNet,
# ("clip", (n, t, h, w)) or ("mirror", (n, t, h, w)) for the video networks.
CASES = [
    ("spynet_16x20", "spynet", {}, ("pair", (2, 16, 20)), {}),
    ("spynet_40x64", "spynet", {}, ("pair", (1, 40, 64)), {}),
    ("basicvsr_c8b1", "basicvsr", TINY | dict(num_blocks=1), ("clip", (1, 3, 16, 16)), {}),
    ("basicvsr_c8b2_mirror", "basicvsr", TINY | dict(num_blocks=2), ("mirror", (1, 4, 8, 12)), {}),
    ("realbasicvsr_c8_lqs", "realbasicvsr", TINY | dict(num_propagation_blocks=1, num_cleaning_blocks=1),
     ("clip", (1, 3, 16, 16)), dict(return_lqs=True)),
    # threshold 0: three cleaning rounds, one frame at a time
    ("realbasicvsr_c8_seq3", "realbasicvsr", TINY | dict(num_propagation_blocks=1, num_cleaning_blocks=2,
                                                          dynamic_refine_thres=0, is_sequential_cleaning=True),
     ("clip", (1, 2, 8, 12)), {}),
]


def _without_asserts(cls: type, name: str = "forward") -> None:
    """Replaces ``cls.<name>`` by the same source compiled with ``optimize=1`` (asserts dropped)."""
    source = textwrap.dedent(inspect.getsource(getattr(cls, name)))
    module = sys.modules[cls.__module__]
    namespace: dict = {}
    exec(compile(source, inspect.getsourcefile(cls), "exec", optimize=1), module.__dict__, namespace)
    setattr(cls, name, namespace[name])


def _reference(arch: str, kwargs: dict) -> nn.Module:
    if arch == "spynet":
        return basicvsr_net.SPyNet(pretrained=None)
    if arch == "basicvsr":
        return basicvsr_net.BasicVSRNet(**kwargs)
    if arch == "realbasicvsr":
        return real_basicvsr_net.RealBasicVSRNet(**kwargs)
    if arch == "basicvsr_pp":
        from mmedit.models.backbones.sr_backbones import basicvsr_pp
        return basicvsr_pp.BasicVSRPlusPlus(**kwargs)
    raise ValueError(arch)


def _half_exact(t: torch.Tensor) -> torch.Tensor:
    return t.half().float()


def _periodic_normal(numel: int, generator: torch.Generator) -> torch.Tensor:
    base = torch.randn(PERIOD, generator=generator)
    return base.repeat(math.ceil(numel / PERIOD))[:numel]


def _randomise_(module: nn.Module, generator: torch.Generator) -> None:
    """Periodic N(0, 1/fan_in) conv weights (deformable ones included), N(0, 0.1²) biases."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() == 4:
                new = _periodic_normal(p.numel(), generator).view_as(p) / math.sqrt(p[0].numel())
            else:
                new = 0.1 * torch.randn(p.shape, generator=generator)
            p.copy_(_half_exact(new))


def _spynets(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, basicvsr_net.SPyNet)]


def _tame_flows_(spynet: nn.Module, pairs: tuple[torch.Tensor, torch.Tensor]) -> None:
    """Scales every level's last conv by one factor so the mean |flow| on ``pairs`` is FLOW_TARGET."""
    with torch.no_grad():
        for _ in range(3):  # the flow is not linear in the factor (warps), so iterate
            mean = spynet(*pairs).abs().mean().item()
            factor = FLOW_TARGET / max(mean, 1e-6)
            for level in spynet.basic_module:
                last = level.basic_module[-1].conv
                last.weight.mul_(factor)
                last.bias.mul_(factor)
        for p in spynet.parameters():
            p.copy_(_half_exact(p))


def _frames(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """8-bit-valued frames, smooth enough (a blurred random field) that flows mean something."""
    *lead, h, w = shape
    coarse = torch.rand(*lead, 3, (h + 3) // 4, (w + 3) // 4, generator=generator)
    flat = coarse.reshape(-1, 3, *coarse.shape[-2:])
    smooth = nn.functional.interpolate(flat, size=(h, w), mode="bicubic", align_corners=False)
    noisy = smooth + 0.05 * torch.randn(smooth.shape, generator=generator)
    return (noisy.clamp(0, 255 / 256) * 256).floor().div(256).reshape(*lead, 3, h, w)


def _inputs(spec: tuple[str, tuple[int, ...]], generator: torch.Generator) -> list[torch.Tensor]:
    kind, dims = spec
    if kind == "pair":
        n, h, w = dims
        ref = _frames((n, h, w), generator)
        supp = torch.roll(ref, shifts=(1, -2), dims=(2, 3))  # a global shift plus new noise
        supp = ((supp + 0.02 * torch.randn(supp.shape, generator=generator)).clamp(0, 255 / 256) * 256).floor() / 256
        return [ref, supp]
    n, t, h, w = dims
    if kind == "mirror":
        half = _frames((n, t // 2, h, w), generator)
        return [torch.cat([half, half.flip(1)], dim=1)]
    first = _frames((n, 1, h, w), generator)
    clip = [first[:, 0]]
    for _ in range(t - 1):  # each frame the previous one moved by a pixel, plus noise
        moved = torch.roll(clip[-1], shifts=(1, 1), dims=(2, 3))
        clip.append(((moved + 0.02 * torch.randn(moved.shape, generator=generator)).clamp(0, 255 / 256)
                     * 256).floor() / 256)
    return [torch.stack(clip, dim=1)]


def _flow_pairs(inputs: list[torch.Tensor], arch: str, kwargs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The frame pairs the network's SPyNet will see (LR clips, or x1/4 bicubic for HR input)."""
    if arch == "spynet":
        return inputs[0], inputs[1]
    clip = inputs[0]
    n, t, c, h, w = clip.shape
    if not kwargs.get("is_low_res_input", True):
        clip = nn.functional.interpolate(clip.view(-1, c, h, w), scale_factor=0.25, mode="bicubic").view(
            n, t, c, h // 4, w // 4)
        h, w = h // 4, w // 4
    return clip[:, :-1].reshape(-1, c, h, w), clip[:, 1:].reshape(-1, c, h, w)


def _stored(t: torch.Tensor) -> torch.Tensor:
    if t.dtype == torch.float32 and torch.equal(_half_exact(t), t):
        return t.half()
    return t.clone()


def _outputs(model: nn.Module, inputs: list[torch.Tensor], forward_kwargs: dict) -> list[torch.Tensor]:
    with torch.no_grad():
        out = model(*[x.clone() for x in inputs], **forward_kwargs)
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _run_case(case: str, arch: str, kwargs: dict, spec: tuple, forward_kwargs: dict) -> dict[str, object]:
    generator = torch.Generator().manual_seed(zlib.crc32(case.encode()))
    model = _reference(arch, kwargs)
    _randomise_(model, generator)
    inputs = _inputs(spec, generator)
    for spynet in _spynets(model):
        _tame_flows_(spynet.eval(), _flow_pairs(inputs, arch, kwargs))
    with torch.no_grad():
        flows = _spynets(model)[0](*_flow_pairs(inputs, arch, kwargs))
    out = {f"{case}/arch": arch, f"{case}/kwargs": json.dumps(kwargs)}
    if forward_kwargs:
        out[f"{case}/forward_kwargs"] = json.dumps(forward_kwargs)
    if len(inputs) == 1:
        out[f"{case}/input"] = inputs[0].half()
    else:
        out |= {f"{case}/input.{i}": x.half() for i, x in enumerate(inputs)}
    out |= {f"{case}/state/{k}": _stored(v) for k, v in model.state_dict().items()}
    evals = _outputs(model.eval(), inputs, forward_kwargs)
    trains = _outputs(model.train(), inputs, forward_kwargs)
    assert all(torch.equal(a, b) for a, b in zip(evals, trains)), f"{case}: train mode differs from eval"
    if len(evals) == 1:
        out[f"{case}/eval"] = evals[0]
    else:
        out |= {f"{case}/eval.{i}": y for i, y in enumerate(evals)}
    print(f"{case}: mean |flow| {flows.abs().mean():.2f}, max {flows.abs().max():.2f}; outputs "
          + ", ".join(f"{list(y.shape)} max {y.abs().max():.3g}" for y in evals))
    return out


def main() -> None:
    _without_asserts(basicvsr_net.BasicVSRNet)
    arrays: dict[str, object] = {}
    for case in CASES:
        arrays |= _run_case(*case)
    mmedit_shim.save_golden(str(OUT), **arrays)
    print(f"{OUT.relative_to(ROOT)}: {len(CASES)} cases, {OUT.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
