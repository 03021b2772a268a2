"""``edvr`` and ``tdan`` against the MMEditing 0.x zoo: key maps, strict zoo loading, the TSA model's
start from the no-TSA one, TSA's init, forward/backward, TDAN's return convention, mmcv's DCNv1
layers, and one-line errors for windows and arguments that do not fit.

Key maps in tests/data/mmedit_checkpoint_keys are copies of the shared ones made from the zoo
configs (they also record the constructor arguments). Forward values are checked against mmedit
in test_arch_parity.py (tests/data/golden/archs_edvr.npz, from tests/golden/make_arch_goldens_edvr.py).
"""

import inspect
import math

import pytest
import torch

from arch_helpers import key_map, one_thread, zoo_build  # noqa: F401 (one_thread: the module's fixture)
from trainers.archs import build_arch
from trainers.archs.deform_conv import DeformConv2d, DeformConv2dPack
from trainers.archs.edvr import EDVRNet
from trainers.archs.tdan import TDANNet
from trainers.checkpoint_io import compare_state_dict, extract_net_state, load_strict

KEY_MAPS = {  # config (checkpoint name) -> ARCHS name
    "edvrm_wotsa_x4_8x4_600k_reds": "edvr",
    "edvrm_x4_8x4_600k_reds": "edvr",
    "edvrl_c128b40_8x8_lr2e-4_600k_reds4": "edvr",
    "tdan_vimeo90k_bix4_ft_lr5e-5_400k": "tdan",
}
TINY = {
    "edvr_wotsa": ("edvr", dict(mid_channels=8, num_frames=3, deform_groups=2, num_blocks_extraction=1,
                                num_blocks_reconstruction=1, center_frame_idx=1, with_tsa=False)),
    "edvr_tsa": ("edvr", dict(mid_channels=8, num_frames=5, deform_groups=2, num_blocks_extraction=1,
                              num_blocks_reconstruction=1, center_frame_idx=2, with_tsa=True)),
    "tdan": ("tdan", dict(mid_channels=8, num_blocks_before_align=1, num_blocks_after_align=1)),
}


def _tiny(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    arch, kwargs = TINY[name]
    return build_arch(arch, **kwargs)


def _window(t: int, h: int = 8, w: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.rand(2, t, 3, h, w, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------- zoo key maps
@pytest.mark.parametrize("config", KEY_MAPS)
def test_state_dict_matches_zoo(config):
    ref = key_map(config)["generator"]
    model = zoo_build(KEY_MAPS[config], config)
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert got == ref["keys"]
    assert list(got) == list(ref["keys"])  # mmedit's registration order too
    assert sum(p.numel() for p in model.parameters()) == ref["num_params"]
    assert not ref["buffer_keys"] and not list(model.buffers())


def test_tdan_zoo_config_uses_the_defaults():
    """TDAN's zoo config passes no arguments: the defaults are mmedit's resolved ones."""
    ref = key_map("tdan_vimeo90k_bix4_ft_lr5e-5_400k")["generator"]
    assert ref["kwargs"] == {}
    defaults = {k: p.default for k, p in inspect.signature(TDANNet.__init__).parameters.items() if k != "self"}
    assert defaults == ref["resolved_init_args"]


@pytest.mark.parametrize("config", KEY_MAPS)
def test_zero_zoo_checkpoint_loads_strictly(config):
    keys = key_map(config)["full_model_state_dict_keys"]
    ckpt = {"meta": {"mmedit_version": "0.16.1"}, "state_dict": {k: torch.zeros(s) for k, s in keys.items()}}
    state, source = extract_net_state(ckpt, "generator")
    assert source == "zoo generator"
    model = build_arch(KEY_MAPS[config], **key_map(config)["generator"]["kwargs"])
    load_strict(model, state)
    assert not any(p.any() for p in model.parameters())


def test_tsa_model_starts_from_the_wotsa_checkpoint_but_its_fusion():
    """The zoo's EDVR-M with TSA was initialised from the no-TSA model (mmcv ``load_from``, non-strict):
    every key but the 1x1 ``fusion`` conv carries over with its shape; the TSA keys start fresh."""
    wotsa = key_map("edvrm_wotsa_x4_8x4_600k_reds")["generator"]["keys"]
    report = compare_state_dict(zoo_build(KEY_MAPS["edvrm_x4_8x4_600k_reds"], "edvrm_x4_8x4_600k_reds"),
                                {k: torch.zeros(s) for k, s in wotsa.items()})
    assert sorted(report.unexpected) == ["fusion.bias", "fusion.weight"]
    assert report.missing and all(k.startswith("fusion.") for k in report.missing)
    assert not report.mismatched


def test_tsa_convmodules_get_mmedits_uniform_init():
    fusion = zoo_build(KEY_MAPS["edvrm_x4_8x4_600k_reds"], "edvrm_x4_8x4_600k_reds").fusion
    for name in ("feat_fusion", "spatial_attn1", "spatial_attn_l2", "spatial_attn_add1"):
        conv = getattr(fusion, name).conv
        fan_out = conv.weight.shape[0] * conv.weight[0, 0].numel()
        bound = math.sqrt(2 / (1 + 0.1 ** 2)) * math.sqrt(3 / fan_out)  # Kaiming-uniform, slope 0.1, fan_out
        w = conv.weight.detach().abs()
        assert w.max() <= bound and w.max() > 0.95 * bound and w.mean() > 0.45 * bound, name
        assert not conv.bias.any(), name


# ---------------------------------------------------------------------------------- forward / backward
@pytest.mark.parametrize("name", ["edvr_wotsa", "edvr_tsa"])
def test_edvr_forward_backward_tiny(name):
    model = _tiny(name).train()
    t = model.num_frames
    x = _window(t)
    out = model(x)
    assert out.shape == (2, 3, 32, 48)
    out.square().mean().backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    for key in ("pcd_alignment.dcn_pack.l3.conv_offset.weight", "pcd_alignment.cas_dcnpack.weight",
                "fusion.spatial_attn_add2.weight" if model.with_tsa else "fusion.weight", "conv_last.weight"):
        assert grads[key].abs().sum() > 0, key


def test_edvr_output_is_a_residual_over_the_upsampled_reference_frame():
    model = _tiny("edvr_wotsa").eval()
    torch.nn.init.zeros_(model.conv_last.weight)
    torch.nn.init.zeros_(model.conv_last.bias)
    x = _window(3)
    with torch.no_grad():
        out = model(x)
    want = torch.nn.functional.interpolate(x[:, 1], scale_factor=4, mode="bilinear", align_corners=False)
    torch.testing.assert_close(out, want)


def test_tdan_returns_output_and_aligned_lr_frames():
    model = _tiny("tdan").train()
    x = _window(5) - 0.5  # the zoo's x / 255 - 0.5 convention
    out, aligned = model(x)
    assert out.shape == (2, 3, 32, 48) and aligned.shape == (2, 5, 3, 8, 12)
    assert torch.equal(aligned[:, 2], x[:, 2])  # the centre frame is passed through, not aligned
    # mmedit's TDAN loss: HR pixel loss + 0.25 (BI) x MSE of the aligned frames against the centre one
    loss = (out.square().mean() + 0.25 * (aligned - x[:, 2:3].expand_as(aligned)).square().mean())
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    for key in ("align_1.conv_offset.weight", "align_2.conv_offset.weight", "align_2.weight", "to_rgb.weight",
                "reconstruct.4.weight", "feat_extract.0.conv.weight"):
        assert grads[key].abs().sum() > 0, key
    # feat_aggregate only feeds align_1's zero-initialised conv_offset: no gradient until that moves (as mmedit)
    assert not any(g.any() for n, g in grads.items() if n.startswith("feat_aggregate."))


def test_dcnv1_layers_start_as_plain_convs_and_pad_small_inputs():
    torch.manual_seed(0)
    pack = DeformConv2dPack(4, 6, 3, padding=1, deform_groups=2)
    assert set(pack.state_dict()) == {"weight", "conv_offset.weight", "conv_offset.bias"}
    x = torch.rand(1, 4, 5, 7)
    torch.testing.assert_close(pack(x), torch.nn.functional.conv2d(x, pack.weight, padding=1))
    layer = DeformConv2d(4, 6, 3, padding=1, deform_groups=2)  # mmcv pads a 2x2 input to 3x3 and crops back
    small = torch.rand(1, 4, 2, 2)
    out = layer(small, torch.zeros(1, 36, 2, 2))
    torch.testing.assert_close(out, torch.nn.functional.conv2d(small, layer.weight, padding=1))


# ---------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(("name", "shape", "match"), [
    ("edvr_tsa", (1, 3, 3, 8, 8), "num_frames=5 frames, got 3"),
    ("edvr_wotsa", (1, 5, 3, 8, 8), "num_frames=3 frames, got 5"),
    ("edvr_wotsa", (1, 3, 3, 8, 10), "multiples of 4, got 8x10"),
    ("edvr_wotsa", (3, 3, 8, 8), r"window \[N, T, C, H, W\]"),
    ("edvr_wotsa", (1, 3, 1, 8, 8), "3 channels per frame, got 1"),
    ("tdan", (1, 7, 3, 8, 8), "windows of 5 frames"),
    ("tdan", (1, 5, 1, 8, 8), "windows of 5 frames"),
])
def test_windows_that_do_not_fit_are_one_line_value_errors(name, shape, match):
    model = _tiny(name)
    with pytest.raises(ValueError, match=match) as err:
        model(torch.rand(shape))
    assert "\n" not in str(err.value)
    assert type(model).__name__ in str(err.value)


@pytest.mark.parametrize(("cls", "kwargs", "match"), [
    (EDVRNet, dict(in_channels=3, out_channels=1), "in_channels .3. must equal out_channels .1."),
    (EDVRNet, dict(num_frames=3, center_frame_idx=3), r"center_frame_idx must lie in \[0, 3\)"),
    (TDANNet, dict(in_channels=1), "in_channels must be 3"),
    (TDANNet, dict(mid_channels=12), "multiple of 8"),
    (DeformConv2d, dict(in_channels=4, out_channels=4, kernel_size=3, bias=True), "no bias"),
    (DeformConv2d, dict(in_channels=4, out_channels=4, kernel_size=3, deform_groups=3), "deform_groups 3"),
])
def test_bad_arguments_are_one_line_value_errors(cls, kwargs, match):
    with pytest.raises(ValueError, match=match) as err:
        cls(**kwargs)
    assert "\n" not in str(err.value)


pytestmark = pytest.mark.usefixtures("one_thread")
