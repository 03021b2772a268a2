"""``gca`` and ``gca_baseline`` against the MMEditing 0.x zoo: key maps, strict loading, forward,
init, and the torchvision ResNet-34 ImageNet mapping.

Key maps in tests/data/mmedit_checkpoint_keys: ``gca_r34_4x10_200k_comp1k.json`` is the shared
one made from the zoo config; the baseline and ``dimaug`` maps were derived from mmedit's own
modules by tests/golden/make_arch_goldens_matting_gca.py (the zoo ships none for them). The
forward pass itself is checked against mmedit in test_arch_parity.py.
"""

import functools
import json
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from trainers.archs import build_arch
from trainers.archs.gca import (
    DOWNSAMPLE,
    exact_power_vectors,
    from_torchvision_resnet34,
    imagenet_init_,
)
from trainers.checkpoint_io import extract_net_state, load_checkpoint_file, load_strict

KEY_DIR = Path(__file__).resolve().parents[1] / "data" / "mmedit_checkpoint_keys"
KEY_MAPS = {  # config -> ARCHS name
    "gca_r34_4x10_200k_comp1k": "gca",
    "gca_dimaug_r34_4x10_200k_comp1k": "gca",
    "baseline_r34_4x10_200k_comp1k": "gca_baseline",
    "baseline_dimaug_r34_4x10_200k_comp1k": "gca_baseline",
}
ZOO_PARAMS = 25_164_529


def _key_map(config: str) -> dict:
    return json.loads((KEY_DIR / f"{config}.json").read_text())


def _restoray_kwargs(mmedit: dict) -> dict:
    """mmedit's ``SimpleEncoderDecoder`` encoder/decoder arguments -> restoray's flat ones."""
    enc, dec = mmedit["encoder"], mmedit["decoder"]
    assert enc["block"] == "BasicBlock" and dec["block"] == "BasicBlockDec"
    assert enc.get("late_downsample", False) == dec.get("late_downsample", False)
    return dict(layers=tuple(enc["layers"]), in_channels=enc["in_channels"],
                with_spectral_norm=enc.get("with_spectral_norm", False),
                late_downsample=enc.get("late_downsample", False), decoder_layers=tuple(dec["layers"]),
                decoder_kernel_size=dec.get("kernel_size", 3),
                decoder_with_spectral_norm=dec.get("with_spectral_norm", False))


@functools.cache
def _zoo_build(config: str) -> torch.nn.Module:
    """One network per config for the whole module (tests here only load into it or read shapes)."""
    return build_arch(KEY_MAPS[config], **_restoray_kwargs(_key_map(config)["generator"]["kwargs"]))


def _fake_zoo_state(config: str) -> dict[str, torch.Tensor]:
    """Random tensors of the zoo's shapes under ``backbone.``; BN counters stay integer."""
    gen = _key_map(config)["generator"]
    ints = gen.get("non_float32_keys", {})
    return {"backbone." + k: torch.randint(0, 1000, shape) if k in ints else torch.randn(shape)
            for k, shape in gen["keys"].items()}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Two OpenMP threads on a shared two-core runner make LAPACK and the 25M-parameter convs
    several times slower than one; restored for the modules after this one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def zoo_gca() -> torch.nn.Module:
    return _zoo_build("gca_r34_4x10_200k_comp1k")


def test_key_maps_present():
    shared = _key_map("gca_r34_4x10_200k_comp1k")
    assert shared["generator"]["num_params"] == ZOO_PARAMS
    assert shared["checkpoint_prefix"] == "backbone."
    for config in KEY_MAPS:
        assert _key_map(config)["mmedit_version"] == "0.16.1"


@pytest.mark.parametrize("config", KEY_MAPS)
def test_defaults_are_the_zoo_config(config):
    """``{name: gca}`` / ``{name: gca_baseline}`` alone builds the zoo network (dimaug: in_channels=4)."""
    kwargs = _restoray_kwargs(_key_map(config)["generator"]["kwargs"])
    defaults = dict(layers=(3, 4, 4, 2), in_channels=4 if "dimaug" in config else 6, with_spectral_norm=True,
                    late_downsample=False, decoder_layers=(2, 3, 3, 2), decoder_kernel_size=3,
                    decoder_with_spectral_norm=True)
    assert kwargs == defaults


@pytest.mark.parametrize("config", KEY_MAPS)
def test_state_dict_matches_zoo(config):
    ref = _key_map(config)["generator"]
    model = _zoo_build(config)
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert got == ref["keys"]
    assert list(got) == list(ref["keys"])  # mmedit's registration order too
    assert sum(p.numel() for p in model.parameters()) == ref["num_params"]
    assert sum(v.numel() for v in model.state_dict().values()) - ref["num_params"] == ref["num_buffer_elems"]


def test_baseline_is_gca_without_attention():
    gca = set(_key_map("gca_r34_4x10_200k_comp1k")["generator"]["keys"])
    base = set(_key_map("baseline_r34_4x10_200k_comp1k")["generator"]["keys"])
    assert base < gca
    assert {k.split(".")[0] + "." + k.split(".")[1] for k in gca - base} == {
        "encoder.guidance_head", "encoder.gca", "decoder.gca"}


def test_fake_zoo_checkpoint_loads_strictly(tmp_path, zoo_gca):
    state = _fake_zoo_state("gca_r34_4x10_200k_comp1k")
    file = tmp_path / "gca_r34.pth"
    torch.save({"meta": {"iter": 200000, "mmedit_version": "0.16.1"}, "state_dict": state}, file)
    loaded, source = extract_net_state(load_checkpoint_file(file), "backbone")
    assert source == "zoo backbone"
    load_strict(zoo_gca, loaded)
    for key in ("encoder.conv1.conv.weight_orig", "decoder.gca.out_conv.bn.running_var",
                "encoder.layer4.1.conv2.bn.num_batches_tracked"):
        assert torch.equal(zoo_gca.state_dict()[key], state["backbone." + key])


@pytest.mark.parametrize("config", [c for c in KEY_MAPS if c != "gca_r34_4x10_200k_comp1k"])
def test_derived_key_maps_load_strictly(config):
    ckpt = {"meta": {}, "state_dict": _fake_zoo_state(config)}
    loaded, _ = extract_net_state(ckpt, "backbone")
    load_strict(_zoo_build(config), loaded)


@pytest.mark.parametrize("arch, in_channels", [("gca", 6), ("gca_baseline", 4)])
def test_forward_backward_tiny(arch, in_channels):
    model = build_arch(arch, in_channels=in_channels).train()
    x = torch.randn(2, in_channels, 32, 32)
    x[:, 3:] = torch.randint(0, 2, (2, in_channels - 3, 32, 32)).float()
    out = model(x)
    assert out.shape == (2, 1, 32, 32)
    ((out.tanh() + 1) / 2).mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.decoder.conv2.conv.weight.grad.abs().sum() > 0
    with torch.no_grad():
        assert model.eval()(x).shape == (2, 1, 32, 32)


def test_input_checks():
    model = build_arch("gca_baseline", layers=(1, 1, 1, 1), decoder_layers=(1, 1, 1, 1))
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.rand(1, 6, 48, 32))
    with pytest.raises(ValueError, match=r"\[B, 6, H, W\]"):
        model(torch.rand(1, 4, 32, 32))
    with pytest.raises(ValueError, match="in_channels"):
        build_arch("gca", in_channels=5)
    with pytest.raises(ValueError, match="layers"):
        build_arch("gca", layers=(3, 4, 4))
    assert DOWNSAMPLE == 32


@pytest.mark.parametrize("in_channels", [6, 4])
def test_unknown_mask_comes_from_the_trimap_channels(in_channels):
    """One-hot: channel 4 (unknown); class index: == 1; both sampled at pixel (8i, 8j)."""
    encoder = build_arch("gca", in_channels=in_channels, layers=(1, 1, 1, 1), decoder_layers=(1, 1, 1, 1)).encoder
    classes = torch.randint(0, 3, (1, 64, 64))
    trimap = F.one_hot(classes, 3).permute(0, 3, 1, 2).float() if in_channels == 6 else classes[:, None].float()
    x = torch.cat([torch.rand(1, 3, 64, 64), trimap], dim=1)
    with torch.no_grad():
        guide = encoder._guidance(x)
    assert torch.equal(guide["unknown"], (classes[:, None, ::8, ::8] == 1).float())
    assert guide["img_feat"].shape == (1, 128, 8, 8)


def test_init_follows_mmedit():
    fresh = build_arch("gca")
    blocks = [m for m in fresh.modules() if type(m).__name__ == "BasicBlock"]
    assert len(blocks) == 13 + 10
    assert all(not b.conv2.bn.weight.any() for b in blocks)  # residual branches start at zero
    assert torch.equal(fresh.encoder.conv1.bn.weight, torch.ones(32))
    assert torch.equal(fresh.encoder.gca.out_conv.bn.weight, torch.ones(128))  # reset from 1e-3
    assert not fresh.decoder.conv2.conv.bias.any()
    # Kaiming-normal over fan_out: ReLU gain in the encoder, LeakyReLU(0.2) gain in the decoder.
    enc = fresh.encoder.layer4[0].conv1.conv.weight_orig
    dec = fresh.decoder.layer1[1].conv1.conv.weight_orig
    assert abs(enc.std().item() / (2 / (512 * 9)) ** 0.5 - 1) < 0.05
    assert abs(dec.std().item() / (2 / 1.04 / (256 * 9)) ** 0.5 - 1) < 0.05


# ---------------------------------------------------------------------------------- ImageNet
def _bn(state: dict, prefix: str, channels: int, g: torch.Generator) -> None:
    state[f"{prefix}.weight"] = 1 + 0.1 * torch.randn(channels, generator=g)
    state[f"{prefix}.bias"] = 0.1 * torch.randn(channels, generator=g)
    state[f"{prefix}.running_mean"] = 0.1 * torch.randn(channels, generator=g)
    state[f"{prefix}.running_var"] = 0.5 + torch.rand(channels, generator=g)
    state[f"{prefix}.num_batches_tracked"] = torch.tensor(450000)


def _torchvision_resnet34_state() -> dict[str, torch.Tensor]:
    """Random tensors in torchvision's ``resnet34().state_dict()`` layout (21,797,672 parameters)."""
    g = torch.Generator().manual_seed(34)
    state = {"conv1.weight": torch.randn(64, 3, 7, 7, generator=g) * 0.05}
    _bn(state, "bn1", 64, g)
    in_planes = 64
    for stage, (planes, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3)), start=1):
        for b in range(blocks):
            p = f"layer{stage}.{b}"
            cin = in_planes if b == 0 else planes
            std = (2 / (9 * planes)) ** 0.5
            state[f"{p}.conv1.weight"] = torch.randn(planes, cin, 3, 3, generator=g) * std
            _bn(state, f"{p}.bn1", planes, g)
            state[f"{p}.conv2.weight"] = torch.randn(planes, planes, 3, 3, generator=g) * std
            _bn(state, f"{p}.bn2", planes, g)
            if b == 0 and stage > 1:
                state[f"{p}.downsample.0.weight"] = torch.randn(planes, cin, 1, 1, generator=g) * (2 / planes) ** 0.5
                _bn(state, f"{p}.downsample.1", planes, g)
        in_planes = planes
    state["fc.weight"] = torch.randn(1000, 512, generator=g) * 0.01
    state["fc.bias"] = torch.zeros(1000)
    return state


@pytest.fixture(scope="module")
def torchvision_state() -> dict[str, torch.Tensor]:
    state = _torchvision_resnet34_state()
    assert sum(v.numel() for k, v in state.items() if k.endswith(("weight", "bias"))) == 21_797_672
    return state


@pytest.fixture(scope="module")
def mapped(torchvision_state) -> dict[str, torch.Tensor]:
    return from_torchvision_resnet34(torchvision_state)


@pytest.fixture(scope="module")
def imagenet_gca(torchvision_state):
    """A small-depth gca (the widths are the zoo's) through :func:`imagenet_init_`."""
    torch.manual_seed(0)
    net = build_arch("gca", layers=(1, 1, 1, 1), decoder_layers=(1, 1, 1, 1))
    missing = imagenet_init_(net, torchvision_state)
    return net, missing


def test_mapping_covers_exactly_the_encoder_stages(mapped, torchvision_state, zoo_gca):
    stages = {k: v.shape for k, v in zoo_gca.state_dict().items() if k.startswith("encoder.layer")}
    assert {k: v.shape for k, v in mapped.items()} == stages
    assert torch.equal(mapped["encoder.layer3.3.conv2.conv.weight_orig"], torchvision_state["layer3.3.conv2.weight"])
    assert torch.equal(mapped["encoder.layer2.0.interpolation.1.conv.weight_orig"],
                       torchvision_state["layer2.0.downsample.0.weight"])
    assert torch.equal(mapped["encoder.layer4.1.conv1.bn.weight"], torchvision_state["layer4.1.bn1.weight"])


def test_mapping_sets_exact_power_vectors_and_rescales_bn(mapped, torchvision_state):
    weight = torchvision_state["layer2.1.conv2.weight"].reshape(128, -1)
    u, v = mapped["encoder.layer2.1.conv2.conv.weight_u"], mapped["encoder.layer2.1.conv2.conv.weight_v"]
    sigma = torch.linalg.matrix_norm(weight.double(), 2).item()
    assert (u @ weight @ v).item() == pytest.approx(sigma, rel=1e-5)
    torch.testing.assert_close(mapped["encoder.layer2.1.conv2.bn.running_var"],
                               torchvision_state["layer2.1.bn2.running_var"] / sigma**2)
    torch.testing.assert_close(mapped["encoder.layer2.1.conv2.bn.running_mean"],
                               torchvision_state["layer2.1.bn2.running_mean"] / sigma)
    weight = torchvision_state["layer4.0.conv2.weight"]
    plain = from_torchvision_resnet34(torchvision_state, layers=(1, 1, 1, 1), with_spectral_norm=False)
    assert torch.equal(plain["encoder.layer4.0.conv2.conv.weight"], weight)
    assert torch.equal(plain["encoder.layer4.0.conv2.bn.running_var"], torchvision_state["layer4.0.bn2.running_var"])


def _torchvision_block(x: torch.Tensor, state: dict, prefix: str) -> torch.Tensor:
    """torchvision's eval-mode ``BasicBlock`` without downsampling, from its state dict."""
    def bn(y, name):
        return F.batch_norm(y, state[f"{prefix}.{name}.running_mean"], state[f"{prefix}.{name}.running_var"],
                            state[f"{prefix}.{name}.weight"], state[f"{prefix}.{name}.bias"])
    out = F.relu(bn(F.conv2d(x, state[f"{prefix}.conv1.weight"], padding=1), "bn1"))
    out = bn(F.conv2d(out, state[f"{prefix}.conv2.weight"], padding=1), "bn2")
    return F.relu(out + x)


@pytest.mark.parametrize("stage, block, channels", [(1, 1, 64), (3, 2, 256)])
def test_mapped_blocks_compute_torchvision_function(mapped, torchvision_state, zoo_gca, stage, block, channels):
    """Spectral norm divides by sigma; the rescaled BN statistics undo it in eval mode."""
    zoo_gca.load_state_dict(mapped, strict=False)
    x = torch.randn(2, channels, 8, 8)
    with torch.no_grad():
        got = getattr(zoo_gca.encoder, f"layer{stage}")[block].eval()(x)
    want = _torchvision_block(x, torchvision_state, f"layer{stage}.{block}")
    torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-3 * want.abs().max().item())


def test_imagenet_init_applies_the_zoo_rules(imagenet_gca):
    net, missing = imagenet_gca
    conv1 = net.encoder.conv1.conv
    assert not conv1.weight_orig[:, 3:].any() and conv1.weight_orig[:, :3].any()  # trimap inputs start at zero
    u, v = exact_power_vectors(conv1.weight_orig)
    assert torch.equal(conv1.weight_u, u) and torch.equal(conv1.weight_v, v)
    assert not conv1.weight_v.view(6, 9)[3:].any()
    assert torch.allclose(net.encoder.gca.out_conv.bn.weight, torch.full((128,), 1e-3))
    assert torch.equal(net.decoder.gca.out_conv.bn.weight, torch.ones(128))
    assert not any(k.startswith("encoder.layer") for k in missing)
    assert {"encoder.conv1.conv.weight_orig", "encoder.shortcut.0.0.conv.weight_orig",
            "encoder.guidance_head.0.conv.weight_orig", "decoder.conv2.conv.weight"} <= set(missing)


def test_imagenet_init_baseline_and_errors(torchvision_state):
    net = build_arch("gca_baseline", in_channels=4, layers=(1, 1, 1, 1), decoder_layers=(1, 1, 1, 1),
                     with_spectral_norm=False)
    imagenet_init_(net, torchvision_state)
    assert not net.encoder.conv1.conv.weight[:, 3:].any()
    assert torch.equal(net.encoder.layer2[0].conv1.conv.weight, torchvision_state["layer2.0.conv1.weight"])
    with pytest.raises(ValueError, match="layer3.6.conv1.weight"):
        from_torchvision_resnet34(torchvision_state, layers=(3, 4, 7, 2))
    with pytest.raises(ValueError, match="torchvision ResNet-34"):
        from_torchvision_resnet34({"conv1.weight": torch.zeros(1)})
