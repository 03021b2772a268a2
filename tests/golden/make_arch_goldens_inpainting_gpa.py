"""Forward-parity goldens for the Global&Local, PConv and AOT-GAN architectures, computed by
MMEditing 0.16.1's own modules.

Run with the interpreter that has mmedit (see ``mmedit_shim``), from the repository root::

    /work/mmedit-venv/bin/python tests/golden/make_arch_goldens_inpainting_gpa.py

Writes ``tests/data/golden/archs_inpainting_gpa.npz`` in the format of ``make_arch_goldens.py``
(read by ``tests/trainers/test_arch_parity.py``): per case ``<c>/arch``, ``<c>/kwargs`` (restoray's
flat constructor arguments; :func:`_reference` turns them into mmedit's nested configs),
``<c>/state/<key>``, the inputs ``<c>/input.0``, ``<c>/input.1`` … and the outputs ``<c>/eval``
(``<c>/eval.0``, ``.1`` for PConv's ``(image, mask)`` pair); for networks with BN or spectral
norm also ``<c>/train`` and ``<c>/after_train/<key>``.

Sizes. The discriminators and AOT-GAN's generator take width arguments, so their cases are
tiny (the GL discriminators' ``fc_out_channels`` stays 1024 because mmedit fixes the final
layer at 2048 inputs; ``max_channels=16``, 64/32 px inputs and 5/4 convs make 2x2 maps and
``fc_in_channels`` 64; with the zoo's 6/5 convs the maps are 1x1).
The Global&Local and PConv generators have their widths written into mmedit's code, so their
cases run the real widths (GL: all 6.07M parameters; PConv: ``num_layers=5``, 11.6M, which has
every kind of layer of the zoo's 7) on small inputs. To keep the file small their larger
weights are sparse: each output unit gets about ``FAN_NNZ`` random nonzero inputs (a random
pattern, so a swapped or misrouted channel still changes the output), scaled for unit gain.
The GL input is 72 px so that the 18 px bottleneck lets the dilation-16 conv see more than its
centre tap.

Everything else as in ``make_arch_goldens.py``: float16-exact parameters and inputs, BN
running statistics away from (0, 1), spectral norm warmed up by three training forwards.
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
import make_arch_goldens as base  # noqa: E402  (installs the mmedit shim; shared storage helpers)
import mmedit_shim  # noqa: E402

from mmedit.models.registry import BACKBONES, COMPONENTS  # noqa: E402

from trainers.archs import ARCHS  # noqa: E402  (names only: which mmedit class each ARCHS entry ports)

OUT = ROOT / "tests/data/golden/archs_inpainting_gpa.npz"
FAN_NNZ = 8  # nonzero inputs per output unit in sparse layers
DENSE_UP_TO = 4096  # weights with at most this many entries stay dense

REFERENCE_CLASS = {
    "gl": "GLEncoderDecoder", "gl_disc": "GLDiscs", "pconv": "PConvEncoderDecoder",
    "aot": "AOTEncoderDecoder", "aot_disc": "SoftMaskPatchDiscriminator",
}


def _bn(on: bool) -> dict | None:
    return dict(type="BN") if on else None


def _reference(arch: str, kw: dict) -> nn.Module:
    """mmedit's network for restoray's flat ``kw`` (BN for the zoo's SyncBN: same maths on one process)."""
    assert ARCHS[arch].__name__ == REFERENCE_CLASS[arch]
    if arch == "gl":
        norm = _bn(kw["with_norm"])
        return BACKBONES.get("GLEncoderDecoder")(
            encoder=dict(type="GLEncoder", norm_cfg=norm),
            decoder=dict(type="GLDecoder", norm_cfg=norm, out_act=kw["out_act"]),
            dilation_neck=dict(type="GLDilationNeck", norm_cfg=norm))
    if arch == "gl_disc":
        common = dict(in_channels=kw["in_channels"], max_channels=kw["max_channels"],
                      fc_out_channels=kw["fc_out_channels"], norm_cfg=_bn(kw["with_norm"]))
        return COMPONENTS.get("GLDiscs")(
            global_disc_cfg=dict(common, num_convs=kw["global_num_convs"], fc_in_channels=kw["global_fc_in_channels"]),
            local_disc_cfg=dict(common, num_convs=kw["local_num_convs"], fc_in_channels=kw["local_fc_in_channels"]))
    if arch == "pconv":
        frozen = kw["freeze_encoder_bn"]
        return BACKBONES.get("PConvEncoderDecoder")(
            encoder=dict(type="PConvEncoder", in_channels=kw["in_channels"], num_layers=kw["num_layers"],
                         norm_cfg=dict(type="BN", requires_grad=not frozen), norm_eval=frozen),
            decoder=dict(type="PConvDecoder", num_layers=kw["num_layers"], interpolation=kw["interpolation"],
                         norm_cfg=dict(type="BN")))
    if arch == "aot":
        return BACKBONES.get("AOTEncoderDecoder")(
            encoder=dict(type="AOTEncoder", in_channels=kw["in_channels"], mid_channels=kw["encoder_channels"],
                         out_channels=kw["neck_channels"]),
            decoder=dict(type="AOTDecoder", in_channels=kw["neck_channels"], mid_channels=kw["decoder_channels"],
                         out_channels=kw["out_channels"]),
            dilation_neck=dict(type="AOTBlockNeck", in_channels=kw["neck_channels"],
                               dilation_rates=tuple(kw["dilation_rates"]), num_aotblock=kw["num_aotblock"]))
    if arch == "aot_disc":
        return COMPONENTS.get("SoftMaskPatchDiscriminator")(**kw)
    raise KeyError(arch)


# --------------------------------------------------------------------------- inputs


def _image(shape: tuple[int, ...]) -> torch.Tensor:
    """8-bit image levels mapped to [-1, 1) as ``k / 128 - 1`` (exact in float16)."""
    return torch.randint(0, 256, shape) / 128 - 1


def _box_mask(b: int, h: int, w: int, top: int, left: int, size: int) -> torch.Tensor:
    """``[b, 1, h, w]``, 1 inside a square hole (the inpaintor's convention), per-sample offset."""
    mask = torch.zeros(b, 1, h, w)
    for i in range(b):
        mask[i, :, top + 3 * i:top + 3 * i + size, left + 2 * i:left + 2 * i + size] = 1
    return mask


def _gl_input(b: int, size: int) -> list[torch.Tensor]:
    mask = _box_mask(b, size, size, size // 4, size // 3, size // 2)
    return [torch.cat([_image((b, 3, size, size)) * (1 - mask), mask], dim=1)]


def _pconv_input(b: int, size: int, per_channel: bool) -> list[torch.Tensor]:
    """``(masked image, validity mask)``: a square hole wider than enc1's 7x7 window and scattered
    holes; with ``per_channel``, holes that differ between channels (the multi-channel mask path)
    and a last sample that is all hole (every partial conv's "no valid input" branch: zero output
    and mask all the way through)."""
    hole = _box_mask(b, size, size, 4, 6, 12).expand(b, 3, size, size).clone()
    hole = torch.maximum(hole, (torch.rand(b, 3 if per_channel else 1, size, size) < 0.1).float())
    if per_channel:
        hole[-1] = 1
    valid = 1 - hole
    return [_image((b, 3, size, size)) * valid, valid]


def _aot_input(b: int, size: int) -> list[torch.Tensor]:
    mask = _box_mask(b, size, size, 10, 14, 20)
    return [torch.cat([_image((b, 3, size, size)) * (1 - mask) + mask, mask], dim=1)]


def _cases() -> list[tuple[str, str, dict, callable]]:
    """``(case, arch, kwargs, make_inputs)``; kwargs spell out every argument."""
    gl = dict(with_norm=True, out_act="clip")
    gl_disc = dict(in_channels=3, max_channels=16, global_num_convs=6, local_num_convs=5,
                   global_fc_in_channels=16 * 2 * 2, local_fc_in_channels=16 * 2 * 2, fc_out_channels=1024,
                   with_norm=True)
    pconv = dict(in_channels=3, num_layers=5, interpolation="nearest", freeze_encoder_bn=True)
    aot = dict(in_channels=4, out_channels=3, encoder_channels=8, neck_channels=16, decoder_channels=8,
               dilation_rates=[1, 2, 4, 8], num_aotblock=2)
    aot_disc = dict(in_channels=3, base_channels=8, num_conv=3, with_spectral_norm=True)
    return [
        ("gl", "gl", gl, lambda: _gl_input(1, 72)),
        ("gl_nonorm_sigmoid", "gl", dict(gl, with_norm=False, out_act="sigmoid"), lambda: _gl_input(1, 32)),
        ("gl_disc", "gl_disc", dict(gl_disc, global_num_convs=5, local_num_convs=4),
         lambda: [_image((2, 3, 64, 64)), _image((2, 3, 32, 32))]),
        ("gl_disc_nonorm_1x1", "gl_disc", dict(gl_disc, with_norm=False, global_fc_in_channels=16,
                                                local_fc_in_channels=16),
         lambda: [_image((2, 3, 64, 64)), _image((2, 3, 32, 32))]),
        ("pconv_stage2", "pconv", pconv, lambda: _pconv_input(2, 32, per_channel=False)),
        ("pconv_stage1", "pconv", dict(pconv, num_layers=4, freeze_encoder_bn=False),
         lambda: _pconv_input(2, 32, per_channel=True)),
        ("aot", "aot", aot, lambda: _aot_input(1, 48)),
        ("aot_rates_1_3", "aot", dict(aot, neck_channels=8, dilation_rates=[1, 3, 1, 3], num_aotblock=1),
         lambda: _aot_input(2, 40)),
        ("aot_disc", "aot_disc", aot_disc, lambda: [_image((2, 3, 32, 32))]),
        ("aot_disc_deep_nosn", "aot_disc", dict(aot_disc, base_channels=4, num_conv=4, with_spectral_norm=False),
         lambda: [_image((1, 3, 64, 64))]),
    ]


# --------------------------------------------------------------------------- weights


def _fan_in(m: nn.Module) -> int | None:
    """Inputs summed into one output value (transposed convs: per output pixel)."""
    if isinstance(m, nn.ConvTranspose2d):
        return m.in_channels * m.kernel_size[0] * m.kernel_size[1] // (m.stride[0] * m.stride[1])
    if isinstance(m, nn.Conv2d):
        return m.in_channels * m.kernel_size[0] * m.kernel_size[1]
    if isinstance(m, nn.Linear):
        return m.in_features
    return None


def _weights_with_fan_in(module: nn.Module) -> dict[int, int]:
    """``id(weight parameter) -> fan-in``; under spectral norm the parameter is ``weight_orig``."""
    out = {}
    for m in module.modules():
        fan = _fan_in(m)
        if fan is not None:
            weight = m._parameters.get("weight_orig", m._parameters.get("weight"))
            out[id(weight)] = fan
    return out


def _randomise_(module: nn.Module) -> None:
    """``make_arch_goldens._randomise_`` with He-scaled, and for large layers sparse, weights."""
    base._randomise_(module)  # BN statistics, scales and biases as the other goldens
    fans = _weights_with_fan_in(module)
    with torch.no_grad():
        for p in module.parameters():
            if id(p) not in fans:
                continue
            fan = fans[id(p)]
            density = 1.0 if p.numel() <= DENSE_UP_TO else min(1.0, FAN_NNZ / fan)
            new = torch.randn_like(p) * math.sqrt(2 / (density * fan))
            if density < 1:  # where(), not a product: -0.0 would cost as much to store as a value
                new = torch.where(torch.rand_like(p) < density, new, torch.zeros_like(new))
            p.copy_(base._half_exact(new))


def _warm_up_power_iteration_(module: nn.Module, inputs: list[torch.Tensor], steps: int = 3) -> None:
    if any(name.endswith("weight_u") for name, _ in module.named_buffers()):
        with torch.no_grad():
            for _ in range(steps):
                module.train()(*[torch.rand_like(x) for x in inputs])


def _call(model: nn.Module, arch: str, inputs: list[torch.Tensor]):
    """mmedit's calling convention: GLDiscs takes its two images as one tuple."""
    return model(tuple(inputs)) if arch == "gl_disc" else model(*inputs)


def _outputs(name: str, out) -> dict[str, torch.Tensor]:
    if isinstance(out, (tuple, list)):
        return {f"{name}.{i}": t for i, t in enumerate(out)}
    return {name: out}


def _run_case(case: str, arch: str, kwargs: dict, make_inputs) -> dict[str, object]:
    torch.manual_seed(zlib.crc32(case.encode()))
    model = _reference(arch, kwargs)
    _randomise_(model)
    inputs = make_inputs()
    _warm_up_power_iteration_(model, inputs)
    out = {f"{case}/arch": arch, f"{case}/kwargs": json.dumps(kwargs)}
    out |= {f"{case}/input.{i}": x.half() for i, x in enumerate(inputs)}
    out |= {f"{case}/state/{k}": base._stored(v) for k, v in model.state_dict().items()}
    with torch.no_grad():
        out |= _outputs(f"{case}/eval", _call(model.eval(), arch, inputs))
        if any(True for _ in model.buffers()):  # BN statistics or spectral norm: train mode differs
            out |= _outputs(f"{case}/train", _call(model.train(), arch, inputs))
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
