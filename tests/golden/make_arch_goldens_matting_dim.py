"""Forward-parity goldens for the DIM and IndexNet matting archs (``dim``, ``plain_refiner``, ``indexnet``).

Run with the interpreter that has mmedit (see ``mmedit_shim``), from the repository root::

    /work/mmedit-venv/bin/python tests/golden/make_arch_goldens_matting_dim.py

Writes ``tests/data/golden/archs_matting_dim.npz`` in the case format of
``make_arch_goldens.py`` (read by ``tests/trainers/test_arch_parity.py``): per case
``<c>/arch``, ``<c>/kwargs`` (restoray's constructor kwargs), ``<c>/input`` or
``<c>/input.0``, ``<c>/input.1`` (the refiner takes two), ``<c>/state/<key>``,
``<c>/eval``, and, where BN statistics make train mode differ, ``<c>/train`` and
``<c>/after_train/<key>`` (every buffer after that forward).

The reference is MMEditing 0.16.1's ``SimpleEncoderDecoder`` / ``PlainRefiner`` built from
the same kwargs as restoray's builder (its defaults filled in from restoray's signature,
decoder kwargs un-prefixed). ``keep_bn_frozen`` has no MMEditing counterpart: for it the
reference is run in train mode with the BNs of ``encoder.layers`` put back in eval mode,
the state MMEditing's ``freeze_bn`` leaves them in before the first ``.train()``.

These networks cannot be made small (VGG16's and MobileNetV2's widths are fixed), so to
keep the file small each parameter and buffer is a short seeded random pattern tiled over
the tensor (period 127, a prime, so neighbouring filters differ) and scaled to O(1)
activations; deflate then stores 26M parameters in a few hundred kB. Values are rounded
to float16-exact numbers and stored as float16, inputs are ``k / 256``. Cases with an ASPP
(``Dropout(0.5)``) have no train-mode golden: dropout draws from the global RNG.
"""

from __future__ import annotations

import inspect
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

from mmedit.models.backbones import SimpleEncoderDecoder  # noqa: E402
from mmedit.models.components import PlainRefiner  # noqa: E402

from trainers.archs import ARCHS  # noqa: E402  (signatures only: the defaults the kwargs leave out)

OUT = ROOT / "tests/data/golden/archs_matting_dim.npz"
PERIOD = 127

# (case, arch, kwargs, input shapes, train-mode golden)
CASES: list[tuple[str, str, dict, list[tuple[int, ...]], bool]] = [
    ("dim_zoo", "dim", {}, [(1, 4, 32, 64)], False),
    ("dim_bn", "dim", {"batch_norm": True}, [(2, 4, 32, 32)], True),
    ("dim_bn_aspp", "dim", {"batch_norm": True, "aspp": True, "dilations": [1, 2, 3]}, [(1, 4, 64, 96)], False),
    ("plain_refiner_zoo", "plain_refiner", {}, [(2, 4, 16, 24), (2, 1, 16, 24)], False),
    ("plain_refiner_c8", "plain_refiner", {"conv_channels": 8}, [(1, 4, 8, 8), (1, 1, 8, 8)], False),
    ("indexnet_zoo", "indexnet", {}, [(1, 4, 64, 96)], False),
    ("indexnet_holistic", "indexnet", {"index_mode": "holistic", "aspp": False}, [(2, 4, 32, 64)], True),
    ("indexnet_o2o_os16_frozen", "indexnet",
     {"index_mode": "o2o", "out_stride": 16, "aspp": False, "keep_bn_frozen": True, "use_nonlinear": False,
      "use_context": False, "decoder_kernel_size": 3, "decoder_separable_conv": True}, [(2, 4, 32, 64)], True),
]


def _full_kwargs(arch: str, kwargs: dict) -> dict:
    """restoray's defaults overridden by ``kwargs``: both implementations get every value explicitly."""
    params = inspect.signature(ARCHS[arch]).parameters
    return {name: p.default for name, p in params.items()} | kwargs


def _reference(arch: str, kwargs: dict) -> nn.Module:
    """MMEditing's module for restoray's ``arch`` built with ``kwargs``."""
    kw = _full_kwargs(arch, kwargs)
    if arch == "plain_refiner":
        return PlainRefiner(**kw)
    if arch == "dim":
        encoder = dict(type="VGG16", in_channels=kw["in_channels"], batch_norm=kw["batch_norm"], aspp=kw["aspp"],
                       dilations=kw["dilations"])
        return SimpleEncoderDecoder(encoder, dict(type="PlainDecoder", in_channels=512))
    encoder = dict(type="IndexNetEncoder", **{k: kw[k] for k in (
        "in_channels", "out_stride", "index_mode", "aspp", "freeze_bn", "use_nonlinear", "use_context")})
    decoder = dict(type="IndexNetDecoder", in_channels=160, kernel_size=kw["decoder_kernel_size"],
                   separable_conv=kw["decoder_separable_conv"])
    return SimpleEncoderDecoder(encoder, decoder)


def _half_exact(t: torch.Tensor) -> torch.Tensor:
    return t.half().float()


def _tiled_randn(like: torch.Tensor) -> torch.Tensor:
    """Standard normals, a random ``PERIOD``-long pattern repeated from a random phase."""
    n = like.numel()
    pattern = torch.randn(min(n, PERIOD))
    start = int(torch.randint(0, pattern.numel(), ()))
    reps = math.ceil((n + start) / pattern.numel())
    return pattern.repeat(reps)[start:start + n].reshape(like.shape)


def _randomise_(module: nn.Module) -> None:
    """Weights N(0, 1/fan_in), BN scales 1 + N(0, 0.1^2), biases/shifts N(0, 0.1^2), BN stats off (0, 1)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            z = _tiled_randn(p)
            if p.ndim > 1:
                new = z / math.sqrt(p[0].numel())
            elif name.endswith("weight"):
                new = 1 + 0.1 * z
            else:
                new = 0.1 * z
            p.copy_(_half_exact(new))
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(_half_exact(0.1 * _tiled_randn(b)))
            elif name.endswith("running_var"):
                b.copy_(_half_exact(0.5 + _tiled_randn(b).abs() * 0.5))
            elif name.endswith("num_batches_tracked"):
                b.fill_(7)


def _inputs(arch: str, shapes: list[tuple[int, ...]]) -> list[torch.Tensor]:
    """``k / 256`` images; the refiner's second input is logits ``k / 32 - 4``."""
    xs = [torch.randint(0, 256, shapes[0]) / 256]
    if arch == "plain_refiner":
        xs.append(torch.randint(0, 256, shapes[1]) / 32 - 4)
    return xs


def _train_mode(model: nn.Module, kwargs: dict) -> nn.Module:
    model.train()
    if kwargs.get("keep_bn_frozen"):
        for m in model.encoder.layers.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
    return model


def _numbered(case: str, name: str, tensors: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    if len(tensors) == 1:
        return {f"{case}/{name}": tensors[0]}
    return {f"{case}/{name}.{i}": t for i, t in enumerate(tensors)}


def _stored(t: torch.Tensor) -> torch.Tensor:
    if t.dtype == torch.float32 and torch.equal(_half_exact(t), t):
        return t.half()
    return t.clone()


def _run_case(case: str, arch: str, kwargs: dict, shapes: list[tuple[int, ...]], train: bool) -> dict:
    torch.manual_seed(zlib.crc32(case.encode()))
    model = _reference(arch, kwargs)
    _randomise_(model)
    xs = _inputs(arch, shapes)
    out = {f"{case}/arch": arch, f"{case}/kwargs": json.dumps(kwargs)}
    out |= _numbered(case, "input", [x.half() for x in xs])
    out |= {f"{case}/state/{k}": _stored(v) for k, v in model.state_dict().items()}
    with torch.no_grad():
        out[f"{case}/eval"] = model.eval()(*xs)
        if train:
            out[f"{case}/train"] = _train_mode(model, kwargs)(*xs)
            out |= {f"{case}/after_train/{k}": v.clone() for k, v in model.named_buffers()}
    return out


def main() -> None:
    arrays: dict[str, object] = {}
    for case in CASES:
        arrays |= _run_case(*case)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    mmedit_shim.save_golden(str(OUT), **arrays)
    print(f"{OUT.relative_to(ROOT)}: {len(CASES)} cases, {OUT.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
