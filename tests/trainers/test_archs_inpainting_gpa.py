"""Global&Local, PConv and AOT-GAN against their zoo checkpoint key maps; partial convolution
against its definition; PConv's frozen encoder BN.

The key maps in tests/data/mmedit_checkpoint_keys (gl_*, pconv_*, AOT-GAN_*) were produced
from the real zoo configs with MMEditing 0.16.1: every key and shape of the checkpoint,
parameter counts and the networks' constructor arguments. Forward parity with mmedit itself
is in test_arch_parity.py (goldens from tests/golden/make_arch_goldens_inpainting_gpa.py).
"""

import inspect
import json
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from pipelines.schema import check_net
from trainers.archs import ARCHS, build_arch
from trainers.archs.partial_conv import PartialConv2d
from trainers.checkpoint_io import extract_net_state, load_strict

KEY_DIR = Path(__file__).resolve().parents[1] / "data" / "mmedit_checkpoint_keys"
CONFIGS = {
    "gl_256x256_8x12_places": {"generator": "gl", "discriminator": "gl_disc"},
    "pconv_256x256_stage2_4x2_places": {"generator": "pconv"},
    "AOT-GAN_512x512_4x12_places": {"generator": "aot", "discriminator": "aot_disc"},
}
NETWORKS = [(config, section, name) for config, nets in CONFIGS.items() for section, name in nets.items()]
IDS = [f"{name}-{config}" for config, _, name in NETWORKS]
OURS = ("gl", "gl_disc", "pconv", "aot", "aot_disc")
# Parameter counts as the model-zoo spec states them (millions, two decimals).
SPEC_MILLIONS = {"gl": 6.07, "gl_disc": 45.06, "pconv": 25.78, "aot": 15.20, "aot_disc": 2.76}


@pytest.fixture(autouse=True)
def _seeded():
    """Random weights and inputs, the same on every run and whatever ran before."""
    torch.manual_seed(0)


def _key_map(config: str) -> dict:
    return json.loads((KEY_DIR / f"{config}.json").read_text())


def _flat_args(section: dict) -> dict:
    """restoray's flat constructor arguments for mmedit's nested zoo arguments of one network."""
    kw = section["resolved_init_args"]
    cls = section["class"]
    if cls == "GLEncoderDecoder":
        norms = {kw[part].get("norm_cfg") is not None for part in ("encoder", "decoder", "dilation_neck")}
        assert len(norms) == 1, "restoray has one switch for the three parts' BN"
        return {"with_norm": norms.pop(), "out_act": kw["decoder"].get("out_act", "clip")}
    if cls == "GLDiscs":
        g, loc = kw["global_disc_cfg"], kw["local_disc_cfg"]
        for shared in ("in_channels", "max_channels", "fc_out_channels", "norm_cfg"):
            assert g[shared] == loc[shared]
        return {
            "in_channels": g["in_channels"], "max_channels": g["max_channels"],
            "global_num_convs": g["num_convs"], "local_num_convs": loc["num_convs"],
            "global_fc_in_channels": g["fc_in_channels"], "local_fc_in_channels": loc["fc_in_channels"],
            "fc_out_channels": g["fc_out_channels"], "with_norm": g["norm_cfg"] is not None,
        }
    if cls == "PConvEncoderDecoder":
        enc = kw["encoder"]
        frozen = enc.get("norm_eval", False)
        assert frozen == (enc["norm_cfg"].get("requires_grad", True) is False), "the zoo sets both or neither"
        return {"freeze_encoder_bn": frozen}
    if cls == "AOTEncoderDecoder":
        neck = kw["dilation_neck"]
        assert kw["encoder"] == {"type": "AOTEncoder"} and kw["decoder"] == {"type": "AOTDecoder"}
        return {"dilation_rates": tuple(neck["dilation_rates"]), "num_aotblock": neck["num_aotblock"]}
    if cls == "SoftMaskPatchDiscriminator":
        return {k: kw[k] for k in ("in_channels", "base_channels", "num_conv", "with_spectral_norm")}
    raise KeyError(cls)


def _defaults(name: str) -> dict:
    params = inspect.signature(ARCHS[name].__init__).parameters.values()
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}


def _fake_zoo_checkpoint(ref: dict) -> dict:
    """A zoo-layout checkpoint (``state_dict`` with ``generator.``, ``disc.``, ``loss_percep.`` keys).

    Each tensor is filled with its key's index (cheaper than random numbers for 50M entries, and
    just as telling: a tensor that lands under another key shows up).
    """
    int_keys = set()
    for section, prefix in (("generator", "generator."), ("discriminator", "disc.")):
        if ref.get(section):
            int_keys |= {prefix + k for k in ref[section]["non_float32_keys"]}
    state = {
        k: torch.full(shape, i, dtype=torch.int64 if k in int_keys else torch.float32)
        for i, (k, shape) in enumerate(ref["full_model_state_dict_keys"].items())
    }
    return {"meta": {"iter": 500000}, "state_dict": state}


# --------------------------------------------------------------------------- registry and key maps


def test_registered_and_named_after_their_files():
    for name in OURS:
        assert ARCHS[name].__module__ == f"trainers.archs.{name}"
    for config in CONFIGS:
        assert _key_map(config)["mmedit_version"] == "0.16.1"


@pytest.mark.parametrize("config, section, name", NETWORKS, ids=IDS)
def test_defaults_are_the_zoo_config(config, section, name):
    flat = _flat_args(_key_map(config)[section])
    defaults = _defaults(name)
    assert {k: defaults[k] for k in flat} == flat


@pytest.mark.parametrize("config, section, name", NETWORKS, ids=IDS)
def test_state_dict_matches_zoo(config, section, name):
    ref = _key_map(config)[section]
    model = build_arch(name, **_flat_args(ref))
    state = model.state_dict()
    assert list(state) == list(ref["keys"])  # same keys in the same order
    assert {k: list(v.shape) for k, v in state.items()} == ref["keys"]
    assert {k: str(v.dtype).removeprefix("torch.") for k, v in state.items() if v.dtype != torch.float32} == (
        ref["non_float32_keys"]
    )
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == ref["num_params"]
    assert round(n_params / 1e6, 2) == SPEC_MILLIONS[name]
    # Persistent buffers: BN statistics, spectral norm's u/v, partial conv's all-ones mask kernels.
    assert sum(v.numel() for v in state.values()) - n_params == ref["num_buffer_elems"]


@pytest.mark.parametrize("config", CONFIGS)
def test_fake_zoo_checkpoint_loads_strictly(config):
    ref = _key_map(config)
    ckpt = _fake_zoo_checkpoint(ref)
    for section, name in CONFIGS[config].items():
        role = "generator" if section == "generator" else "disc"
        assert ref["checkpoint_prefix" if role == "generator" else "discriminator_checkpoint_prefix"] == role + "."
        state, source = extract_net_state(ckpt, role)
        assert source == f"zoo {role}"
        model = build_arch(name)
        load_strict(model, state)
        for key, value in model.state_dict().items():
            assert torch.equal(value, ckpt["state_dict"][f"{role}.{key}"]), key
    # PConv and AOT-GAN checkpoints also carry the perceptual loss's VGG, which is no network here.
    percep = [k for k in ckpt["state_dict"] if k.startswith("loss_percep.")]
    assert bool(percep) == ("loss_percep" in ref["other_modules"])


def test_pconv_stage1_is_the_same_architecture():
    """Stage 1 (trainable encoder BN) and stage 2 checkpoints have the same keys and shapes."""
    ref = _key_map("pconv_256x256_stage2_4x2_places")["generator"]
    stage1 = build_arch("pconv", freeze_encoder_bn=False)
    assert {k: list(v.shape) for k, v in stage1.state_dict().items()} == ref["keys"]


@pytest.mark.parametrize("name", OURS)
def test_config_schema_accepts_defaults(name):
    assert check_net({"name": name}) == {"name": name}


def test_config_schema_coerces_yaml_lists():
    assert check_net({"name": "aot", "dilation_rates": [1, 2, 4, 8]})["dilation_rates"] == (1, 2, 4, 8)


# --------------------------------------------------------------------------- forward / backward


def _backward_reaches_every_parameter(model: nn.Module, out: torch.Tensor) -> None:
    out.float().square().mean().backward()
    for key, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), key


def test_gl_forward_backward():
    model = build_arch("gl").train()
    x = torch.cat([torch.rand(2, 3, 16, 16) * 2 - 1, torch.zeros(2, 1, 16, 16)], dim=1)
    x[:, 3, 4:12, 4:12] = 1
    out = model(x)
    assert out.shape == (2, 3, 16, 16)
    assert out.min() >= -1 and out.max() <= 1
    _backward_reaches_every_parameter(model, out)


def test_gl_disc_forward_backward_and_calling_conventions():
    model = build_arch("gl_disc", max_channels=16, global_num_convs=5, local_num_convs=4,
                       global_fc_in_channels=64, local_fc_in_channels=64)
    img, patch = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 32, 32)
    out = model(img, patch)
    assert out.shape == (2, 1)
    with torch.no_grad():
        assert torch.equal(model.eval()((img, patch)), model.eval()(img, patch))  # mmedit passes one tuple
    _backward_reaches_every_parameter(model.train(), model(img, patch))


def test_gl_disc_refuses_wrong_patch_size():
    model = build_arch("gl_disc", max_channels=16, global_num_convs=5, local_num_convs=4,
                       global_fc_in_channels=64, local_fc_in_channels=64)
    with pytest.raises(ValueError, match="fc_in_channels"):
        model(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64))


def test_gl_disc_linear_init():
    model = build_arch("gl_disc", max_channels=16, global_fc_in_channels=64, local_fc_in_channels=64)
    for linear in (model.global_disc.fc.linear, model.local_disc.fc.linear, model.fc):
        assert linear.weight.std().item() == pytest.approx(0.02, rel=0.1)
        assert not linear.bias.any()


def test_pconv_forward_backward():
    model = build_arch("pconv", num_layers=4).train()
    valid = torch.ones(2, 3, 32, 32)
    valid[:, :, 8:24, 8:24] = 0
    x = torch.rand(2, 3, 32, 32) * valid
    out, final_mask = model(x, valid)
    assert out.shape == final_mask.shape == (2, 3, 32, 32)
    assert torch.equal(final_mask, torch.ones_like(final_mask))  # the holes have closed by the output
    _backward_reaches_every_parameter(model, out)


def test_pconv_refuses_fewer_than_four_layers():
    with pytest.raises(ValueError, match="num_layers"):
        build_arch("pconv", num_layers=3)


def test_aot_forward_backward():
    model = build_arch("aot", encoder_channels=8, neck_channels=16, decoder_channels=8, num_aotblock=2)
    mask = torch.zeros(1, 1, 40, 40)
    mask[..., 10:30, 10:30] = 1
    out = model(torch.cat([torch.rand(1, 3, 40, 40) * (1 - mask) + mask, mask], dim=1))
    assert out.shape == (1, 3, 40, 40) and out.abs().max() <= 1  # tanh (float32 rounds to 1 when saturated)
    _backward_reaches_every_parameter(model, out)


def test_aot_refuses_branches_that_do_not_fill_the_width():
    with pytest.raises(ValueError, match="neck_channels"):
        build_arch("aot", neck_channels=16, dilation_rates=(1, 2, 4))


def test_aot_disc_zoo_output_size_and_init():
    model = build_arch("aot_disc")
    # N(0, 0.02) must reach the spectrally normalised weights' ``weight_orig``.
    for i in range(4):
        assert model.model[i].conv.weight_orig.std().item() == pytest.approx(0.02, rel=0.1)
    assert model.model[4].weight.std().item() == pytest.approx(0.02, rel=0.1)
    x = torch.rand(1, 3, 64, 64)
    out = model.train()(x)
    assert out.shape == (1, 1, 64 // 8 - 2, 64 // 8 - 2)
    _backward_reaches_every_parameter(model, out)


# --------------------------------------------------------------------------- partial convolution


def _partial_conv_by_definition(conv: PartialConv2d, x: torch.Tensor, mask: torch.Tensor):
    """Window by window: ``W . (X * M) * sum(1) / sum(M) + b`` where ``sum(M) > 0``, else 0 (mask 0)."""
    k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
    mask = mask.expand_as(x)  # single-channel masks apply to every channel
    xp, mp = F.pad(x * mask, (p, p, p, p)), F.pad(mask, (p, p, p, p))
    b, cin, h, w = x.shape
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    out = torch.zeros(b, conv.out_channels, ho, wo, dtype=torch.float64)
    new_mask = torch.zeros(b, 1, ho, wo, dtype=torch.float64)
    window_numel = (cin if conv.multi_channel else 1) * k * k
    for n in range(b):
        for i in range(ho):
            for j in range(wo):
                xs = xp[n, :, i * s:i * s + k, j * s:j * s + k].double()
                ms = mp[n, :, i * s:i * s + k, j * s:j * s + k].double()
                valid = ms.sum() if conv.multi_channel else ms[0].sum()
                if valid == 0:
                    continue
                for o in range(conv.out_channels):
                    out[n, o, i, j] = (conv.weight[o].double() * xs).sum() * window_numel / valid
                    if conv.bias is not None:
                        out[n, o, i, j] += conv.bias[o].double()
                new_mask[n, 0, i, j] = 1
    return out.float(), new_mask.float()


@pytest.mark.parametrize("multi_channel", [True, False], ids=["multi_channel", "single_channel"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("stride", [1, 2])
def test_partial_conv_matches_its_definition(multi_channel, bias, stride):
    torch.manual_seed(0)
    conv = PartialConv2d(2, 3, 3, stride=stride, padding=1, bias=bias, multi_channel=multi_channel)
    with torch.no_grad():
        conv.weight.copy_(torch.randn_like(conv.weight))
        if bias:
            conv.bias.copy_(torch.randn_like(conv.bias))
    x = torch.randn(1, 2, 7, 7)
    mask = torch.ones(1, 2 if multi_channel else 1, 7, 7)
    mask[..., 0:4, 0:4] = 0  # a hole larger than the window: some outputs see no valid input
    if multi_channel:
        mask[:, 1, 5:, 5:] = 0  # a hole in one channel only
    out, new_mask = conv(x, mask)
    want_out, want_mask = _partial_conv_by_definition(conv, x, mask)
    assert (want_mask == 0).any() and (want_mask == 1).any()
    torch.testing.assert_close(out, want_out, rtol=1e-5, atol=1e-5)
    want_mask = want_mask.expand_as(out) if multi_channel else want_mask
    assert torch.equal(new_mask, want_mask)
    assert (out[want_mask.expand_as(out) == 0] == 0).all()


def test_partial_conv_hand_computed_border_window():
    """One 3x3 window at the top-left corner: 4 of its 9 inputs exist (padding), 3 of those valid."""
    conv = PartialConv2d(1, 1, 3, padding=1, bias=True, multi_channel=True)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.fill_(0.5)
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    mask = torch.tensor([[[[1.0, 1.0], [1.0, 0.0]]]])
    out, new_mask = conv(x, mask)
    # Valid inputs 1 + 2 + 3 = 6, scaled by sum(1) / sum(M) = 9 / 3, plus the bias.
    assert out[0, 0, 0, 0].item() == pytest.approx(6 * 9 / 3 + 0.5)
    assert torch.equal(new_mask, torch.ones(1, 1, 2, 2))


def test_partial_conv_eps_and_soft_masks():
    """``sum(1) / (sum(M) + 1e-8)``; the updated mask is ``clamp(sum(M), 0, 1)`` (soft masks pass on)."""
    conv = PartialConv2d(1, 1, 1, bias=False, multi_channel=True)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    x = torch.ones(1, 1, 1, 2)
    mask = torch.tensor([[[[0.25, 1e-9]]]], dtype=torch.float64).float()
    out, new_mask = conv(x, mask)
    assert new_mask.flatten().tolist() == pytest.approx([0.25, 1e-9])
    # out = x * M * (1 / (M + eps)) * clamp(M, 0, 1)
    assert out.flatten().tolist() == pytest.approx([0.25 / (0.25 + 1e-8) * 0.25, 1e-9 * 1e-9 / (1e-9 + 1e-8)])
    assert conv.eps == 1e-8


def test_partial_conv_without_mask_is_a_plain_conv_and_mask_has_no_grad():
    conv = PartialConv2d(2, 2, 3, padding=1)
    x = torch.randn(1, 2, 5, 5, requires_grad=True)
    torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight, conv.bias, padding=1))
    mask = torch.ones(1, 2, 5, 5)
    mask[..., 2, 2] = 0
    mask.requires_grad_(True)
    out, new_mask = conv(x, mask)
    assert not new_mask.requires_grad
    out.sum().backward()
    assert (x.grad[..., 2, 2] == 0).all()  # a hole contributes nothing


def test_partial_conv_mask_path_survives_float16_autocast():
    """An all-hole window must give 0, not 0 * (9 / (0 + eps)) = NaN with eps underflowing in float16."""
    conv = PartialConv2d(2, 2, 3, padding=1)
    mask = torch.ones(1, 2, 8, 8)
    mask[..., :5, :5] = 0
    with torch.autocast("cpu", dtype=torch.float16):
        out, new_mask = conv(torch.randn(1, 2, 8, 8), mask)
    assert torch.isfinite(out).all() and (out[..., 1, 1] == 0).all()
    assert new_mask.dtype == torch.float32 and new_mask[..., 1, 1].eq(0).all()
    half = PartialConv2d(2, 2, 3, padding=1).half()  # a half model keeps half masks
    out, new_mask = half(torch.randn(1, 2, 8, 8).half(), mask.half())
    assert out.dtype == new_mask.dtype == torch.float16 and torch.isfinite(out).all()


def test_partial_conv_checks_mask_channels():
    with pytest.raises(ValueError, match="mask"):
        PartialConv2d(3, 4, 3, multi_channel=True)(torch.rand(1, 3, 5, 5), torch.ones(1, 1, 5, 5))


# --------------------------------------------------------------------------- PConv's frozen encoder BN


def _bns(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@pytest.mark.parametrize("sync", [False, True], ids=["bn", "syncbn"])
def test_pconv_stage2_encoder_bn_stays_frozen_through_train(sync):
    model = build_arch("pconv", num_layers=4, freeze_encoder_bn=True)
    if sync:  # what a multi-GPU trainer does to match the zoo's SyncBN
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.train()
    enc, dec = _bns(model.encoder), _bns(model.decoder)
    assert len(enc) == 3 and len(dec) == 3  # enc1 and dec1 have no BN
    assert not any(bn.training for bn in enc) and all(bn.training for bn in dec)
    assert not any(p.requires_grad for bn in enc for p in bn.parameters())
    assert all(p.requires_grad for bn in dec for p in bn.parameters())
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    valid = (torch.rand(2, 3, 32, 32) > 0.2).float()
    out, _ = model(torch.rand(2, 3, 32, 32) * valid, valid)
    out.mean().backward()
    after = model.state_dict()
    for key, value in before.items():
        assert torch.equal(value, after[key]) == key.startswith("encoder."), key
    assert all(bn.weight.grad is None for bn in enc)
    assert model.train().training and not enc[0].training  # a second .train() changes nothing


def test_pconv_stage1_trains_every_bn():
    model = build_arch("pconv", num_layers=4, freeze_encoder_bn=False).train()
    assert all(bn.training for bn in _bns(model))
    assert all(p.requires_grad for p in model.parameters())
    assert not any(bn.training for bn in _bns(model.eval()))
