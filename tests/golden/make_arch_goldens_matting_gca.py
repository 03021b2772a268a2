"""Forward-parity goldens for ``gca`` and ``gca_baseline``, computed by MMEditing 0.16.1's modules.

Run with the interpreter that has mmedit (see ``mmedit_shim``), from the repository root::

    /work/mmedit-venv/bin/python tests/golden/make_arch_goldens_matting_gca.py

Writes ``tests/data/golden/archs_matting_gca.npz`` in the case format of ``make_arch_goldens.py``
(read by ``tests/trainers/test_arch_parity.py``): per case ``<c>/arch``, ``<c>/kwargs``,
``<c>/input``, ``<c>/state/<key>``, ``<c>/eval`` and, for the train cases, ``<c>/train`` and
``<c>/after_train/<buffer>``. The reference is mmedit's ``SimpleEncoderDecoder`` with
``ResGCAEncoder``/``ResGCADecoder`` (``gca``) or ``ResShortcutEnc``/``ResShortcutDec``
(``gca_baseline``), built from the same flat kwargs restoray takes.

Also writes the key maps of the zoo configs that ``../shared/reference`` has none for
(``baseline_r34``, ``baseline_dimaug_r34``, ``gca_dimaug_r34``) to
``tests/data/mmedit_checkpoint_keys/``, taken from the mmedit modules built with those
configs' arguments, and checks that mmedit's ``gca_r34`` build matches the shared key map.

Differences from ``make_arch_goldens.py``, all for size (mmedit hard-codes every width, so a
case cannot be narrowed: the zoo network has 25.2M parameters, 50 MB per case in float16):

* Conv weights are N(0, 1/fan_in) as there, but drawn for the first 1021 entries of the
  flattened weight only and repeated with that period, which zip's deflate stores in ~1% of
  the space. 1021 is prime and no weight has that many rows, so every output channel (row)
  starts at a different phase and every kernel tap of it differs: a transposed, flipped,
  shifted or channel-permuted weight still gives other outputs.
* After the warm-up forwards (spectral norm's power iteration, as in ``make_arch_goldens``,
  so that the eval-mode sigma is not a random vector's estimate), every float buffer is
  rounded to float16, so it is stored at half size as well.
* Inputs are batches of two (train-mode BN needs more than one value per channel at the
  1/32-size bottleneck) at 64x64: normalised-looking RGB ``k/64 - 2`` and a blocky trimap
  (8x8 blocks, so the 1/8-size unknown mask and the attention's known and unknown patches
  are all non-trivial), one-hot for 6 channels, the class index for 4.
* Train mode only changes BN and spectral norm, which both archs share, so two cases record
  it. The zoo layer counts are in ``gca_zoo`` and ``gca_baseline_zoo``; the 4-channel case
  (class-index trimap, the ``dimaug`` configs) has one block per stage, and
  ``baseline_dimaug`` differs from ``baseline`` only in input channels, which its key map
  (and ``test_archs_matting_gca.py``) checks, so it has no case of its own.
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

from mmedit.models.registry import BACKBONES  # noqa: E402

OUT = ROOT / "tests/data/golden/archs_matting_gca.npz"
KEY_DIR = ROOT / "tests/data/mmedit_checkpoint_keys"
SHARED_KEYS = ROOT.parent / "shared/reference/mmedit_checkpoint_keys/gca_r34_4x10_200k_comp1k.json"
PERIOD = 1021  # prime, above any weight's row count
SHAPE6, SHAPE4 = (2, 6, 64, 64), (2, 4, 64, 64)

# The zoo's backbone arguments (configs/mattors/gca/*_r34_4x10_200k_comp1k.py), in restoray's flat names.
ZOO = dict(layers=[3, 4, 4, 2], in_channels=6, with_spectral_norm=True, late_downsample=False,
           decoder_layers=[2, 3, 3, 2], decoder_kernel_size=3, decoder_with_spectral_norm=True)
DIMAUG = dict(in_channels=4)

# (case, arch, kwargs, input shape, train-mode outputs too). Train mode differs only in BN and
# spectral norm, shared by both archs, so the baseline cases check eval mode only.
CASES = [
    ("gca_zoo", "gca", {}, SHAPE6, True),
    ("gca_dimaug_d1", "gca", DIMAUG | dict(layers=[1, 1, 1, 1], decoder_layers=[1, 1, 1, 1]), SHAPE4, False),
    ("gca_late_nosn_k5", "gca", dict(layers=[1, 1, 1, 1], decoder_layers=[1, 1, 1, 2], late_downsample=True,
                                     with_spectral_norm=False, decoder_with_spectral_norm=False,
                                     decoder_kernel_size=5), SHAPE6, True),
    ("gca_baseline_zoo", "gca_baseline", {}, SHAPE6, False),
]
KEY_MAPS = [  # (config, arch, kwargs) for the configs without a shared key map
    ("baseline_r34_4x10_200k_comp1k", "gca_baseline", {}),
    ("baseline_dimaug_r34_4x10_200k_comp1k", "gca_baseline", DIMAUG),
    ("gca_dimaug_r34_4x10_200k_comp1k", "gca", DIMAUG),
]


def _mmedit_kwargs(arch: str, kwargs: dict) -> dict:
    """restoray's flat kwargs -> mmedit's ``SimpleEncoderDecoder`` config."""
    a = ZOO | kwargs
    guided = arch == "gca"
    encoder = dict(type="ResGCAEncoder" if guided else "ResShortcutEnc", block="BasicBlock", layers=a["layers"],
                   in_channels=a["in_channels"], with_spectral_norm=a["with_spectral_norm"],
                   late_downsample=a["late_downsample"])
    decoder = dict(type="ResGCADecoder" if guided else "ResShortcutDec", block="BasicBlockDec",
                   layers=a["decoder_layers"], kernel_size=a["decoder_kernel_size"],
                   with_spectral_norm=a["decoder_with_spectral_norm"], late_downsample=a["late_downsample"])
    return dict(type="SimpleEncoderDecoder", encoder=encoder, decoder=decoder)


def _reference(arch: str, kwargs: dict) -> nn.Module:
    return BACKBONES.build(_mmedit_kwargs(arch, kwargs))


def _half_exact(t: torch.Tensor) -> torch.Tensor:
    return t.half().float()


def _periodic_normal(numel: int, generator: torch.Generator) -> torch.Tensor:
    base = torch.randn(PERIOD, generator=generator)
    return base.repeat(math.ceil(numel / PERIOD))[:numel]


def _conv_fan_ins(module: nn.Module) -> dict[str, int]:
    """Conv weight name (``weight``, or spectral norm's ``weight_orig``) -> inputs summed per output value."""
    fan_ins = {}
    for prefix, m in module.named_modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            leaf = "weight_orig" if hasattr(m, "weight_orig") else "weight"
            taps = m.kernel_size[0] * m.kernel_size[1]
            if isinstance(m, nn.ConvTranspose2d):
                fan_ins[f"{prefix}.{leaf}"] = m.in_channels * taps // (m.stride[0] * m.stride[1])
            else:
                fan_ins[f"{prefix}.{leaf}"] = m.in_channels * taps
    return fan_ins


def _randomise_(module: nn.Module, generator: torch.Generator) -> None:
    """Periodic N(0, 1/fan_in) conv weights (see the module docstring), N(0, 0.1²) biases and BN shifts,
    BN scales 1 + N(0, 0.1²), BN running statistics away from (0, 1)."""
    fan_ins = _conv_fan_ins(module)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name in fan_ins:
                new = _periodic_normal(p.numel(), generator).view_as(p) / math.sqrt(fan_ins[name])
            elif name.endswith("weight"):
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


def _input(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Normalised-looking RGB plus an 8x8-block trimap with every class present at the attention's sampling."""
    b, c, h, w = shape
    rgb = torch.randint(0, 256, (b, 3, h, w), generator=generator) / 64 - 2
    classes = torch.randint(0, 3, (b, h // 8, w // 8), generator=generator)
    classes[:, 0, 0], classes[:, 2, 2], classes[:, 4, 4] = 1, 0, 2
    classes = classes.repeat_interleave(8, 1).repeat_interleave(8, 2)
    if c == 6:
        trimap = nn.functional.one_hot(classes, 3).permute(0, 3, 1, 2).float()
    else:
        trimap = classes[:, None].float()
    return torch.cat([rgb, trimap], dim=1)


def _warm_up_(model: nn.Module, shape: tuple[int, ...], generator: torch.Generator, steps: int = 3) -> None:
    """Train-mode forwards (power iteration, BN statistics), then float buffers rounded to float16 values."""
    with torch.no_grad():
        if any(name.endswith("weight_u") for name, _ in model.named_buffers()):
            for _ in range(steps):
                model.train()(_input(shape, generator))
        for b in model.buffers():
            if b.is_floating_point():
                b.copy_(_half_exact(b))


def _stored(t: torch.Tensor) -> torch.Tensor:
    if t.dtype == torch.float32 and torch.equal(_half_exact(t), t):
        return t.half()
    return t.clone()


def _run_case(case: str, arch: str, kwargs: dict, shape: tuple[int, ...], train: bool) -> dict[str, object]:
    generator = torch.Generator().manual_seed(zlib.crc32(case.encode()))
    model = _reference(arch, kwargs)
    _randomise_(model, generator)
    _warm_up_(model, shape, generator)
    x = _input(shape, generator)
    out = {f"{case}/arch": arch, f"{case}/kwargs": json.dumps(kwargs), f"{case}/input": x.half()}
    out |= {f"{case}/state/{k}": _stored(v) for k, v in model.state_dict().items()}
    with torch.no_grad():
        out[f"{case}/eval"] = model.eval()(x)
        if train:
            out[f"{case}/train"] = model.train()(x)
            out |= {f"{case}/after_train/{k}": v.clone() for k, v in model.named_buffers()}
    return out


def _key_map(config: str, arch: str, kwargs: dict) -> dict:
    """The shared key maps' layout (the fields a test reads), from mmedit's own modules."""
    model = _reference(arch, kwargs)
    state = model.state_dict()
    num_params = sum(p.numel() for p in model.parameters())
    return {
        "config": config,
        "derived_by": "tests/golden/make_arch_goldens_matting_gca.py: mmedit 0.16.1 modules built with the "
                      "config's backbone arguments (no zoo key map is shared for this config)",
        "mmedit_version": "0.16.1",
        "checkpoint_prefix": "backbone.",
        "generator": {
            "class": "SimpleEncoderDecoder",
            "kwargs": {k: v for k, v in _mmedit_kwargs(arch, kwargs).items() if k != "type"},
            "restoray": {"arch": arch, "kwargs": kwargs},
            "num_params": num_params,
            "num_buffer_elems": sum(v.numel() for v in state.values()) - num_params,
            "num_state_dict_keys": len(state),
            "keys": {k: list(v.shape) for k, v in state.items()},
            "non_float32_keys": {k: str(v.dtype).removeprefix("torch.") for k, v in state.items()
                                 if v.dtype != torch.float32},
        },
    }


def _check_shared_key_map() -> None:
    want = json.loads(SHARED_KEYS.read_text())["generator"]
    got = _reference("gca", {}).state_dict()
    assert {k: list(v.shape) for k, v in got.items()} == want["keys"], "mmedit's gca_r34 differs from the key map"


def main() -> None:
    _check_shared_key_map()
    for config, arch, kwargs in KEY_MAPS:
        path = KEY_DIR / f"{config}.json"
        path.write_text(json.dumps(_key_map(config, arch, kwargs), indent=1) + "\n")
        print(f"{path.relative_to(ROOT)}")
    arrays: dict[str, object] = {}
    for case in CASES:
        arrays |= _run_case(*case)
    mmedit_shim.save_golden(str(OUT), **arrays)
    print(f"{OUT.relative_to(ROOT)}: {len(CASES)} cases, {OUT.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
