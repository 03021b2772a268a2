"""Forward-parity goldens for the DeepFill v1 / v2 generators and discriminators, computed by
MMEditing 0.16.1's own modules.

Run with the interpreter that has mmedit (see ``mmedit_shim``), from the repository root::

    /work/mmedit-venv/bin/python tests/golden/make_arch_goldens_inpainting_deepfill.py

Writes ``tests/data/golden/archs_inpainting_deepfill.npz`` in the case format of
``make_arch_goldens.py`` (read by ``tests/trainers/test_arch_parity.py``): per case
``<c>/arch``, ``<c>/kwargs`` (restoray's flat constructor arguments), ``<c>/input`` or
``<c>/input.0``, ``.1`` (the v1 critics take the image and the local patch), ``<c>/state/…``,
``<c>/eval`` or ``<c>/eval.0``, ``.1`` … (the generators return a tuple), and for the
spectrally normalised v2 discriminator ``<c>/train`` and ``<c>/after_train/…``.

mmedit builds these networks from nested configs (``stage1.encoder.channel_factor``, the
necks' and decoders' ``in_channels`` …); ``_mmedit_generator`` / ``_mmedit_disc`` translate
restoray's flat arguments into them, and ``_check_translation`` first confirms that the
translation of the default arguments builds exactly the zoo's key map.

Sizes (tiny, but every structural constraint exercised):

* generators: width x0.125 (v2's refine decoder x0.25, as the zoo's v2 keeps that decoder at
  a different factor from the rest), inputs 72x80 (the attention case 80x72) (multiples of 8, and 72 / 4 = 18 > 16,
  which the reflect padding of the dilation-16 conv needs; non-square so that a swapped
  height/width in contextual attention's fuse step would show). Inputs are real
  ``[masked_img, ones, mask]`` stacks: an image in [-1, 1] with a rectangular hole (a
  different one per sample), zero in the hole. One v1 case also returns the attention.
* v1 critics: width caps 8 (global) / 16 (local), 64x64 images and 32x32 patches, so
  ``fc_in_channels`` = 8 * 4 * 4 = 128 and 16 * 2 * 2 = 64.
* v2 SN-PatchGAN: width cap 8, a 64x128 image + mask (output 1x2 per map).
"""

from __future__ import annotations

import json
import sys
import zlib
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests" / "golden"), str(ROOT)]
import mmedit_shim  # noqa: E402

mmedit_shim.install()

from make_arch_goldens import _randomise_, _stored  # noqa: E402  (same weight draw and storage)
from mmedit.models.builder import build_backbone, build_component  # noqa: E402

OUT = ROOT / "tests/data/golden/archs_inpainting_deepfill.npz"
KEYS = ROOT / "tests/data/mmedit_checkpoint_keys"

GEN_SHAPE = (2, 5, 72, 80)
GEN_HOLES = ((16, 48, 24, 56), (30, 62, 8, 40))  # per sample: top, bottom, left, right


def _cases() -> list[tuple[str, str, dict, list[tuple[int, ...]]]]:
    """``(case, arch, restoray kwargs, input shapes)``."""
    small = dict(channel_factor=0.125, stage2_decoder_channel_factor=0.125)
    return [
        ("deepfill_v1", "deepfill_v1", small, [GEN_SHAPE]),
        ("deepfill_v1_offset", "deepfill_v1", dict(small, return_offset=True), [(1, 5, 80, 72)]),
        ("deepfill_v2", "deepfill_v2", dict(channel_factor=0.125, stage2_decoder_channel_factor=0.25), [GEN_SHAPE]),
        (
            "deepfill_v1_disc",
            "deepfill_v1_disc",
            dict(global_max_channels=8, global_fc_in_channels=128, local_max_channels=16, local_fc_in_channels=64),
            [(2, 3, 64, 64), (2, 3, 32, 32)],
        ),
        ("deepfill_v2_disc", "deepfill_v2_disc", dict(max_channels=8), [(2, 4, 64, 128)]),
    ]


def _mmedit_generator(version: int, in_channels=5, channel_factor=None, stage2_decoder_channel_factor=1.0,
                      padding_mode="reflect", softmax_scale=10.0, return_offset=False) -> nn.Module:
    """mmedit's ``DeepFillEncoderDecoder`` for restoray's flat ``deepfill_v{version}`` arguments."""
    cf = channel_factor if channel_factor is not None else (1.0 if version == 1 else 0.75)
    conv = dict(conv_type="conv" if version == 1 else "gated_conv", padding_mode=padding_mode)
    out = {} if version == 1 else dict(out_act_cfg=dict(type="Tanh"))  # v1: mmedit's default clip
    width = int(128 * cf)

    def encoder(kind):
        return dict(type="DeepFillEncoder", in_channels=in_channels, encoder_type=kind, channel_factor=cf, **conv)

    def neck():
        return dict(type="GLDilationNeck", in_channels=width, act_cfg=dict(type="ELU"), **conv)

    cfg = dict(
        type="DeepFillEncoderDecoder",
        stage1=dict(
            type="GLEncoderDecoder",
            encoder=encoder("stage1"),
            decoder=dict(type="DeepFillDecoder", in_channels=width, channel_factor=cf, **out, **conv),
            dilation_neck=neck(),
        ),
        stage2=dict(
            type="DeepFillRefiner",
            encoder_attention=encoder("stage2_attention"),
            encoder_conv=encoder("stage2_conv"),
            dilation_neck=neck(),
            contextual_attention=dict(
                type="ContextualAttentionNeck",
                in_channels=width,
                contextual_attention_args=dict(softmax_scale=softmax_scale),
                **conv,
            ),
            decoder=dict(type="DeepFillDecoder", in_channels=2 * width,
                         channel_factor=stage2_decoder_channel_factor, **out, **conv),
        ),
        return_offset=return_offset,
    )
    return build_backbone(cfg)


def _mmedit_disc(arch: str, **kw) -> nn.Module:
    """mmedit's ``DeepFillv1Discriminators`` / ``MultiLayerDiscriminator`` for restoray's flat arguments."""
    lrelu = dict(type="LeakyReLU", negative_slope=0.2)
    if arch == "deepfill_v1_disc":
        def critic(where, max_channels, fc_in_channels):
            return dict(type="MultiLayerDiscriminator", in_channels=kw.get("in_channels", 3),
                        max_channels=kw.get(f"{where}_max_channels", max_channels),
                        fc_in_channels=kw.get(f"{where}_fc_in_channels", fc_in_channels),
                        fc_out_channels=kw.get("fc_out_channels", 1), num_convs=kw.get("num_convs", 4),
                        norm_cfg=None, act_cfg=dict(type="ELU"), out_act_cfg=lrelu)

        return build_component(dict(type="DeepFillv1Discriminators",
                                    global_disc_cfg=critic("global", 256, 256 * 16 * 16),
                                    local_disc_cfg=critic("local", 512, 512 * 8 * 8)))
    return build_component(dict(
        type="MultiLayerDiscriminator", in_channels=kw.get("in_channels", 4), max_channels=kw.get("max_channels", 256),
        num_convs=kw.get("num_convs", 6), fc_in_channels=None, kernel_size=kw.get("kernel_size", 5), norm_cfg=None,
        act_cfg=lrelu, out_act_cfg=lrelu, with_spectral_norm=kw.get("with_spectral_norm", True)))


def _reference(arch: str, kwargs: dict) -> nn.Module:
    if arch in ("deepfill_v1", "deepfill_v2"):
        return _mmedit_generator(int(arch[-1]), **kwargs)
    return _mmedit_disc(arch, **kwargs)


def _check_translation() -> None:
    """The default arguments must translate into the zoo networks (keys and shapes of the key maps)."""
    for version in (1, 2):
        ref = json.loads((KEYS / f"deepfillv{version}_256x256_8x2_places.json").read_text())
        for arch, section in ((f"deepfill_v{version}", "generator"), (f"deepfill_v{version}_disc", "discriminator")):
            got = {k: list(v.shape) for k, v in _reference(arch, {}).state_dict().items()}
            assert got == ref[section]["keys"], f"{arch}: translated defaults do not build the zoo network"


def _inputs(case: str, shapes: list[tuple[int, ...]]) -> list[torch.Tensor]:
    """Generators: ``[masked_img, ones, mask]`` with a box hole; otherwise images ``k / 256``."""
    if shapes[0][1] != 5:
        return [torch.randint(0, 256, s) / 256 for s in shapes]
    b, _, h, w = shapes[0]
    gt = torch.randint(0, 256, (b, 3, h, w)) / 128 - 1  # [-1, 1), exact in float16
    mask = torch.zeros(b, 1, h, w)
    for i, (top, bottom, left, right) in enumerate(GEN_HOLES[:b]):
        mask[i, :, top:bottom, left:right] = 1
    return [torch.cat([gt * (1 - mask), torch.ones_like(mask), mask], dim=1)]


def _has_spectral_norm(module: nn.Module) -> bool:
    return any(name.endswith("weight_u") for name, _ in module.named_buffers())


def _numbered(case: str, name: str, tensors) -> dict[str, torch.Tensor]:
    """``<case>/<name>`` for one tensor, ``<case>/<name>.<i>`` for a tuple."""
    if isinstance(tensors, torch.Tensor):
        return {f"{case}/{name}": tensors}
    return {f"{case}/{name}.{i}": t for i, t in enumerate(tensors)}


def _run_case(case: str, arch: str, kwargs: dict, shapes: list[tuple[int, ...]]) -> dict[str, object]:
    torch.manual_seed(zlib.crc32(case.encode()))
    model = _reference(arch, kwargs)
    _randomise_(model)
    if _has_spectral_norm(model):  # a trained discriminator's sigma estimate, not spectral_norm's random start
        with torch.no_grad():
            for _ in range(3):
                model.train()(*(torch.rand(s) for s in shapes))
    inputs = _inputs(case, shapes)
    out = {f"{case}/arch": arch, f"{case}/kwargs": json.dumps(kwargs)}
    out |= _numbered(case, "input", inputs[0].half() if len(inputs) == 1 else [x.half() for x in inputs])
    out |= {f"{case}/state/{k}": _stored(v) for k, v in model.state_dict().items()}
    # mmedit's v1 critics take one (global, local) tuple; every other module takes its tensor.
    call = (lambda m: m(tuple(inputs))) if arch == "deepfill_v1_disc" else (lambda m: m(*inputs))
    with torch.no_grad():
        out |= _numbered(case, "eval", call(model.eval()))
        if _has_spectral_norm(model):
            out |= _numbered(case, "train", call(model.train()))
            out |= {f"{case}/after_train/{k}": v.clone() for k, v in model.named_buffers()}
    return out


def main() -> None:
    _check_translation()
    arrays: dict[str, object] = {}
    for case in _cases():
        arrays |= _run_case(*case)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    mmedit_shim.save_golden(str(OUT), **arrays)
    print(f"{OUT.relative_to(ROOT)}: {len(_cases())} cases, {OUT.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
