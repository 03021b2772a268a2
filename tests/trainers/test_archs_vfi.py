"""``cain`` and ``flavr`` (frame interpolation) against the MMEditing 0.x zoo: key maps, strict zoo
loading, init, forward/backward at tiny sizes, output shapes, CAIN's padding mode, bad inputs.

Key maps in tests/data/mmedit_checkpoint_keys are copies of the shared ones made from the zoo
configs ``cain_b5_g1b32_vimeo90k_triplet`` and ``flavr_in4out1_g8b4_vimeo90k_septuplet`` (they
also record the constructor arguments). Forward values are checked against mmedit 0.16.1's own
``CAINNet`` / ``FLAVRNet`` in test_arch_parity.py (tests/data/golden/archs_vfi.npz, made by
tests/golden/make_arch_goldens_vfi.py).
"""

import math

import pytest
import torch

from arch_helpers import key_map, one_thread, zoo_build  # noqa: F401 (one_thread: the module's fixture)
from trainers.archs import build_arch
from trainers.checkpoint_io import CheckpointError, extract_net_state, load_strict

KEY_MAPS = {  # config -> ARCHS name
    "cain_b5_g1b32_vimeo90k_triplet": "cain",
    "flavr_in4out1_g8b4_vimeo90k_septuplet": "flavr",
}
TINY = {
    "cain": dict(depth=2, reduction=16, num_block_groups=1, num_block_layers=1),  # 48 channels
    "flavr": dict(num_input_frames=4, num_output_frames=1, mid_channels_list=[16, 16, 8, 8],
                  encoder_layers_list=[1, 1, 1, 1]),
}
FRAMES = {"cain": 2, "flavr": 4}


def _clip(n: int, t: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, t, 3, h, w, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------- zoo key maps
@pytest.mark.parametrize("config", KEY_MAPS)
def test_state_dict_matches_zoo(config):
    ref = key_map(config)["generator"]
    model = zoo_build(KEY_MAPS[config], config)
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert got == ref["keys"]
    assert list(got) == list(ref["keys"])  # mmedit's registration order too
    assert sum(p.numel() for p in model.parameters()) == ref["num_params"]
    assert sorted(k for k, _ in model.named_buffers()) == sorted(ref["buffer_keys"])


@pytest.mark.parametrize("config", KEY_MAPS)
def test_zero_zoo_checkpoint_loads_strictly(config):
    """A zoo-layout file of zeros (``generator.`` prefix, mmcv's ``state_dict`` wrapper) loads strictly."""
    keys = key_map(config)["full_model_state_dict_keys"]
    ckpt = {"meta": {"mmedit_version": "0.16.1"}, "state_dict": {k: torch.zeros(s) for k, s in keys.items()}}
    state, source = extract_net_state(ckpt, "generator")
    assert source == "zoo generator"
    model = build_arch(KEY_MAPS[config], **TINY[KEY_MAPS[config]])  # the tiny one must refuse it
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_strict(model, state)
    model = zoo_build(KEY_MAPS[config], config)
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    load_strict(model, state)
    assert not any(p.any() for p in model.parameters())
    model.load_state_dict(saved)  # the cached zoo-size model is shared with the other tests


def test_flavr_init_follows_mmcv():
    """Encoder convs (their gates' too) Kaiming-normal fan_out for ReLU, zero bias; ``feature_fuse``
    Kaiming-normal fan_out for LeakyReLU 0.2; the decoder keeps PyTorch's default init."""
    model = zoo_build(KEY_MAPS["flavr_in4out1_g8b4_vimeo90k_septuplet"], "flavr_in4out1_g8b4_vimeo90k_septuplet")
    stem = model.encoder.stem_layer.conv.weight  # [64, 3, 3, 7, 7]
    want = math.sqrt(2 / (64 * 3 * 7 * 7))
    assert abs(stem.std().item() / want - 1) < 0.05
    fuse = model.feature_fuse.conv.weight  # [64, 256, 1, 1]
    want = math.sqrt(2 / (1 + 0.2 ** 2)) / math.sqrt(64)
    assert abs(fuse.std().item() / want - 1) < 0.05
    assert not model.encoder.layer2[0].fg.attn_layer[0].bias.any()
    assert model.decoder.layer0.conv[1].attn_layer[0].bias.any()


# ---------------------------------------------------------------------------------- forward / backward
@pytest.mark.parametrize("arch", TINY)
def test_forward_backward_tiny(arch):
    model = build_arch(arch, **TINY[arch]).train()
    clip = _clip(2, FRAMES[arch], 16, 24)
    before = clip.clone()
    out = model(clip)
    assert out.shape == (2, 3, 16, 24)
    assert torch.equal(clip, before)  # mmedit's CAIN changes its input in place; the port does not
    out.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.conv_first.weight.grad.abs().sum() > 0 if arch == "cain" else \
        model.encoder.stem_layer.conv.weight.grad.abs().sum() > 0


def test_flavr_several_output_frames_and_other_modes():
    model = build_arch("flavr", num_input_frames=3, num_output_frames=2, mid_channels_list=[8, 8, 8, 8],
                       encoder_layers_list=[1, 1, 1, 1], join_type="add", up_mode="trilinear", bias=True)
    assert model(_clip(1, 3, 8, 16)).shape == (1, 2, 3, 8, 16)


@pytest.mark.parametrize("h, w", [(10, 14), (2, 12), (16, 16)])
def test_cain_padding_flag_returns_the_input_size(h, w):
    """Padding to a multiple of 2**padding and cropping back: any size, reflection or replication."""
    model = build_arch("cain", **TINY["cain"], padding=4).eval()
    with torch.no_grad():
        out = model(_clip(1, 2, h, w), padding_flag=True)
    assert out.shape == (1, 3, h, w)
    if (h, w) == (16, 16):  # already a multiple: padding changes nothing
        torch.testing.assert_close(out, model(_clip(1, 2, h, w)), rtol=0, atol=0)


def test_cain_adds_the_mean_of_the_frame_means():
    """With the body's last conv zeroed, the network outputs exactly the two frames' average colour."""
    model = build_arch("cain", **TINY["cain"]).eval()
    torch.nn.init.zeros_(model.conv_last.weight)
    torch.nn.init.zeros_(model.conv_last.bias)
    clip = _clip(2, 2, 8, 8)
    with torch.no_grad():
        out = model(clip)
    want = clip.mean((3, 4), keepdim=True).mean(1).expand_as(out)
    torch.testing.assert_close(out, want, rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("arch, shape, match", [
    ("cain", (1, 3, 3, 8, 8), "2 frames"),
    ("cain", (1, 1, 3, 8, 8), "2 frames"),
    ("cain", (1, 2, 1, 8, 8), "2 frames"),
    ("cain", (1, 2, 3, 10, 8), "divisible by 4"),
    ("flavr", (1, 3, 3, 16, 16), "4 RGB frames"),
    ("flavr", (1, 2, 3, 16, 16), "4 RGB frames"),
    ("flavr", (1, 4, 3, 12, 16), "divisible by 8"),
])
def test_bad_input_is_one_line_value_error(arch, shape, match):
    model = build_arch(arch, **TINY[arch])
    with pytest.raises(ValueError, match=match) as info:
        model(torch.zeros(shape))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("arch, kwargs, match", [
    ("cain", dict(norm="gn"), "norm must be"),
    ("cain", dict(padding=1), "padding"),
    ("flavr", dict(norm_cfg={"type": "BN3d"}), "norm_cfg must be None"),
    ("flavr", dict(join_type="sum"), "join_type"),
    ("flavr", dict(up_mode="bilinear"), "up_mode"),
    ("flavr", dict(mid_channels_list=[8, 8, 8]), "4 mid_channels_list"),
])
def test_bad_constructor_argument_is_one_line_value_error(arch, kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        build_arch(arch, **TINY[arch] | kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("config", KEY_MAPS)
def test_zoo_arguments_pass_config_validation(config):
    """The builder signature is the config schema: the zoo's arguments validate, norm layers do not."""
    from pipelines.schema import check_net

    kwargs = key_map(config)["generator"]["kwargs"]
    assert check_net({"name": KEY_MAPS[config], **kwargs})["name"] == KEY_MAPS[config]
    bad = {"norm": "gn"} if KEY_MAPS[config] == "cain" else {"norm_cfg": {"type": "BN3d"}}
    with pytest.raises(ValueError, match="refuses these arguments"):
        check_net({"name": KEY_MAPS[config], **kwargs, **bad})


pytestmark = pytest.mark.usefixtures("one_thread")
