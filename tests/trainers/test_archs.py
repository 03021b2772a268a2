"""Architectures against the MMEditing 0.x zoo checkpoint key maps, and strict zoo loading.

The JSON files in tests/data/mmedit_checkpoint_keys were produced from the real
zoo configs (constructor args, key -> shape map, parameter count), so matching
them means the published checkpoints load with strict=True. GAN configs have a
``discriminator`` section too, checked the same way.
"""

import importlib
import json
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from trainers.archs import ARCHS, build_arch
from trainers.checkpoint_io import (
    CheckpointError,
    compare_state_dict,
    extract_generator_state,
    load_checkpoint_file,
    load_strict,
)

KEY_DIR = Path(__file__).resolve().parents[1] / "data" / "mmedit_checkpoint_keys"
# Image SR key maps; the other families' maps (generators named ``SimpleEncoderDecoder``,
# ``DeepFillEncoderDecoder`` …) are checked by their own ``test_archs_<family>.py``.
SR_FAMILY = ("srcnn", "edsr", "rdn", "msrresnet", "esrgan", "srgan", "realesr")
REFERENCES = sorted(p for p in KEY_DIR.glob("*.json") if p.name.startswith(SR_FAMILY))
DISC_REFERENCES = [p for p in REFERENCES if json.loads(p.read_text()).get("discriminator")]
# Every network a zoo checkpoint holds that restoray builds: (key map, section).
NETWORKS = [(p, "generator") for p in REFERENCES] + [(p, "discriminator") for p in DISC_REFERENCES]
ARCH_OF_CLASS = {cls.__name__: name for name, cls in ARCHS.items()}


def _load_reference(path: Path, section: str = "generator") -> tuple[str, dict]:
    """``(ARCHS name, section of the key map)`` for the zoo's generator or discriminator."""
    net = json.loads(path.read_text())[section]
    return ARCH_OF_CLASS[net["class"]], net


def _generator_copies(path: Path) -> dict[str, dict]:
    """Prefix -> key map of every copy of the generator in the zoo checkpoint.

    EMA-trained models (Real-ESRNet/Real-ESRGAN) store a second copy under
    ``generator_ema.``; discriminator and loss modules are left out of the fake.
    """
    ref = json.loads(path.read_text())
    cls = ref["generator"]["class"]
    copies = {ref["checkpoint_prefix"]: ref["generator"]["keys"]}
    for mod in ref["other_modules"].values():
        if mod["class"] == cls:
            copies[mod["checkpoint_prefix"]] = mod["keys"]
    return copies


def _fake_zoo_state(
    keys: dict[str, list[int]], prefix: str = "generator.", dtypes: dict[str, str] | None = None
) -> dict[str, torch.Tensor]:
    """Random tensors of the zoo's shapes; integer entries (BN ``num_batches_tracked``) stay integer."""
    dtypes = dtypes or {}
    return {
        prefix + k: torch.randint(0, 1000, shape) if dtypes.get(k) == "int64" else torch.randn(shape)
        for k, shape in keys.items()
    }


def test_reference_files_present():
    assert len(REFERENCES) == 13
    assert len(DISC_REFERENCES) == 3
    assert {_load_reference(p, section)[0] for p, section in NETWORKS} == {
        "srcnn", "edsr", "rdn", "msrresnet", "rrdbnet", "modified_vgg", "unet_disc_sn"}


def test_archs_named_after_their_files():
    for name, cls in ARCHS.items():
        assert cls.__module__ == f"trainers.archs.{name}"
        assert importlib.import_module(cls.__module__) is not None


def test_build_arch_unknown_name_lists_known():
    with pytest.raises(ValueError, match="edsr.*msrresnet.*rdn.*srcnn"):
        build_arch("nope")


@pytest.mark.parametrize("path, section", NETWORKS, ids=[f"{p.stem}-{s}" for p, s in NETWORKS])
def test_state_dict_matches_zoo(path, section):
    name, ref = _load_reference(path, section)
    model = build_arch(name, **ref["resolved_init_args"])
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert got == ref["keys"]
    assert sum(p.numel() for p in model.parameters()) == ref["num_params"]
    # Persistent buffers: BN running statistics, spectral norm's power-iteration vectors.
    assert sum(v.numel() for v in model.state_dict().values()) - ref["num_params"] == ref["num_buffer_elems"]


@pytest.mark.parametrize("path", REFERENCES, ids=lambda p: p.stem)
def test_fake_zoo_checkpoint_loads_strictly(path, tmp_path):
    name, ref = _load_reference(path)
    model = build_arch(name, **ref["resolved_init_args"])
    copies = _generator_copies(path)
    state = {}
    for prefix, keys in copies.items():
        state.update(_fake_zoo_state(keys, prefix))
    file = tmp_path / "zoo.pth"
    torch.save({"meta": {"iter": 1000}, "state_dict": state}, file)

    # The zoo evaluates the EMA copy where there is one.
    prefix = "generator_ema." if "generator_ema." in copies else "generator."
    loaded, source = extract_generator_state(load_checkpoint_file(file))
    assert source == f"zoo {prefix[:-1]}"
    load_strict(model, loaded)
    first = next(iter(ref["keys"]))
    assert torch.equal(model.state_dict()[first], state[prefix + first])


@pytest.mark.parametrize("path", REFERENCES, ids=lambda p: p.stem)
def test_forward_shape(path):
    name, ref = _load_reference(path)
    args = ref["resolved_init_args"]
    model = build_arch(name, **args).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 12, 12))
    scale = args["upscale_factor"]
    assert out.shape == (1, 3, 12 * scale, 12 * scale)


@pytest.mark.parametrize("path", DISC_REFERENCES, ids=lambda p: p.stem)
def test_fake_zoo_discriminator_loads_strictly(path, tmp_path):
    name, ref = _load_reference(path, "discriminator")
    prefix = json.loads(path.read_text())["discriminator_checkpoint_prefix"]
    gen_keys = _load_reference(path)[1]["keys"]
    state = _fake_zoo_state(gen_keys) | _fake_zoo_state(ref["keys"], prefix, ref["non_float32_keys"])
    file = tmp_path / "zoo.pth"
    torch.save({"meta": {"iter": 1000}, "state_dict": state}, file)

    zoo_state = load_checkpoint_file(file)["state_dict"]
    disc_state = {k[len(prefix):]: v for k, v in zoo_state.items() if k.startswith(prefix)}
    model = build_arch(name, **ref["kwargs"])
    load_strict(model, disc_state)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[prefix + key]), key


@pytest.mark.parametrize("path", DISC_REFERENCES, ids=lambda p: p.stem)
def test_discriminator_forward_shape(path):
    name, ref = _load_reference(path, "discriminator")
    model = build_arch(name, **ref["kwargs"]).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 128, 128))
    # ModifiedVGG judges the whole image, the U-Net every pixel.
    assert out.shape == ((2, 1) if name == "modified_vgg" else (2, 1, 128, 128))


def test_modified_vgg_refuses_other_sizes():
    model = build_arch("modified_vgg", in_channels=3, mid_channels=4)
    with pytest.raises(ValueError, match="128x128"):
        model(torch.rand(1, 3, 96, 96))


def test_unet_disc_sn_power_iteration_runs_in_training_only():
    model = build_arch("unet_disc_sn", in_channels=3, mid_channels=4)
    x = torch.rand(1, 3, 16, 16)
    u = model.conv_1.weight_u.clone()
    with torch.no_grad():
        model.eval()(x)
        assert torch.equal(model.conv_1.weight_u, u)
        model.train()(x)
        assert not torch.equal(model.conv_1.weight_u, u)


def test_key_report_flags_missing_extra_and_mismatched():
    _, ref = _load_reference(KEY_DIR / "edsr_x2c64b16_1x16_300k_div2k.json")
    model = build_arch("edsr", **ref["resolved_init_args"])
    state = {k: torch.zeros(s) for k, s in ref["keys"].items()}
    del state["conv_last.bias"]
    state["extra.weight"] = torch.zeros(1)
    state["conv_first.weight"] = torch.zeros(64, 3, 5, 5)

    report = compare_state_dict(model, state)
    assert not report.ok
    assert report.missing == ["conv_last.bias"]
    assert report.unexpected == ["extra.weight"]
    assert report.mismatched == [("conv_first.weight", (64, 3, 3, 3), (64, 3, 5, 5))]
    with pytest.raises(CheckpointError, match="1 missing.*1 unexpected.*1 shape mismatch"):
        load_strict(model, state)


def test_wrong_scale_checkpoint_is_reported():
    x4 = _fake_zoo_state(_load_reference(KEY_DIR / "edsr_x4c64b16_1x16_300k_div2k.json")[1]["keys"])
    model = build_arch("edsr", in_channels=3, out_channels=3, upscale_factor=2)
    state, _ = extract_generator_state({"meta": {}, "state_dict": x4})
    report = compare_state_dict(model, state)
    assert report.unexpected == ["upsample.1.upsample_conv.weight", "upsample.1.upsample_conv.bias"]


def test_edsr_normalisation_is_not_in_state_dict_and_round_trips():
    model = build_arch("edsr", in_channels=3, out_channels=3, mid_channels=8, num_blocks=1, upscale_factor=2)
    assert not any(k in ("mean", "std") for k in model.state_dict())
    for p in model.parameters():
        torch.nn.init.zeros_(p)
    # With every weight zero the network predicts 0 in normalised space, i.e. the mean.
    out = model(torch.rand(1, 3, 4, 4))
    expected = torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1).expand(1, 3, 8, 8)
    assert torch.allclose(out, expected)


def test_msrresnet_adds_bilinear_input():
    model = build_arch("msrresnet", in_channels=3, out_channels=3, mid_channels=8, num_blocks=1, upscale_factor=4)
    torch.nn.init.zeros_(model.conv_last.weight)
    torch.nn.init.zeros_(model.conv_last.bias)
    x = torch.rand(1, 3, 5, 6)
    expected = F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)
    assert torch.allclose(model(x), expected)


def test_srcnn_works_on_bicubic_upsampled_input():
    model = build_arch("srcnn", channels=(3, 4, 4, 3), kernel_sizes=(1, 1, 1), upscale_factor=3)
    with torch.no_grad():
        # conv1/conv2 pass (non-negative) channels through; conv3 maps them back.
        for conv in (model.conv1, model.conv2):
            conv.weight.zero_()
            conv.bias.zero_()
            conv.weight[:3, :3, 0, 0] = torch.eye(3)
        model.conv3.weight.zero_()
        model.conv3.bias.zero_()
        model.conv3.weight[:, :3, 0, 0] = torch.eye(3)
    x = torch.rand(1, 3, 6, 5)
    expected = F.interpolate(x, scale_factor=3, mode="bicubic", align_corners=False).clamp(min=0)
    assert torch.allclose(model(x), expected, atol=1e-6)


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_rrdbnet_scales_pixel_unshuffle_the_input(scale):
    model = build_arch("rrdbnet", in_channels=3, out_channels=3, mid_channels=8, num_blocks=1,
                       growth_channels=4, upscale_factor=scale).eval()
    # x1/x2 fold the input into channels first, so the fixed x4 head lands on the right scale.
    assert model.conv_first.in_channels == 3 * (4 // scale) ** 2
    with torch.no_grad():
        out = model(torch.rand(2, 3, 8, 12))
    assert out.shape == (2, 3, 8 * scale, 12 * scale)


def test_rrdbnet_init_is_scaled_down():
    model = build_arch("rrdbnet", in_channels=3, out_channels=3, mid_channels=16, num_blocks=2, growth_channels=8)
    conv = model.body[1].rdb3.conv5
    # Kaiming-normal std is sqrt(2 / fan_in); the zoo scales it by 0.1. Biases start at zero.
    expected = 0.1 * (2 / conv.weight[0].numel()) ** 0.5
    assert abs(conv.weight.std().item() - expected) < 0.2 * expected
    assert not conv.bias.any()


def test_unsupported_scales_raise():
    with pytest.raises(ValueError):
        build_arch("edsr", in_channels=3, out_channels=3, upscale_factor=5)
    with pytest.raises(ValueError):
        build_arch("rdn", in_channels=3, out_channels=3, upscale_factor=8)
    with pytest.raises(ValueError):
        build_arch("msrresnet", in_channels=3, out_channels=3, upscale_factor=8)
    with pytest.raises(ValueError):
        build_arch("rrdbnet", in_channels=3, out_channels=3, upscale_factor=3)
