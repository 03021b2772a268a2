"""``tof`` (TOFlow video SR) and ``tof_vfi`` (TOFlow frame interpolation) against the MMEditing 0.x
zoo: key maps, strict zoo loading, the flow network's ``pretrained`` file, forward/backward, the
input conventions (window order, centre-frame reference, reflection padding and crop) and bad inputs.

Key maps in tests/data/mmedit_checkpoint_keys are copies of the shared ones made from the zoo
configs (they also record the constructor arguments). Forward values are checked against mmedit
in test_arch_parity.py (tests/data/golden/archs_tof.npz).
"""

import functools
import json
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from trainers.archs import build_arch
from trainers.archs.tof import TOFlowSPyNet
from trainers.checkpoint_io import extract_net_state, load_strict

KEY_DIR = Path(__file__).resolve().parents[1] / "data" / "mmedit_checkpoint_keys"
KEY_MAPS = {  # config -> ARCHS name
    "tof_x4_vimeo90k_official": "tof",
    "tof_vfi_spynet_chair_nobn_1xb1_vimeo90k": "tof_vfi",
}
VFI_BN = dict(flow_cfg=dict(norm_cfg=dict(type="BN"), pretrained=None))


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: these small convs gain nothing from two on a shared two-core runner."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _key_map(config: str) -> dict:
    return json.loads((KEY_DIR / f"{config}.json").read_text())


@functools.cache
def _zoo_build(config: str) -> torch.nn.Module:
    return build_arch(KEY_MAPS[config], **_key_map(config)["generator"]["kwargs"])


def _clip(n: int, t: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, t, 3, h, w, generator=torch.Generator().manual_seed(seed))


def _zero_flows_(spynet: TOFlowSPyNet) -> None:
    """Zero residues at every level: the flow is exactly zero, warps are the identity."""
    for level in spynet.basic_module:
        torch.nn.init.zeros_(level.basic_module[-1].conv.weight)
        torch.nn.init.zeros_(level.basic_module[-1].conv.bias)


# ---------------------------------------------------------------------------------- zoo key maps
@pytest.mark.parametrize("config", KEY_MAPS)
def test_state_dict_matches_zoo(config):
    ref = _key_map(config)["generator"]
    assert ref["kwargs"].get("flow_cfg", {}).get("pretrained") is None
    model = _zoo_build(config)
    state = model.state_dict()
    got = {k: list(v.shape) for k, v in state.items()}
    assert got == ref["keys"]
    assert list(got) == list(ref["keys"])  # mmedit's registration order too
    assert sum(p.numel() for p in model.parameters()) == ref["num_params"]
    assert sorted(k for k, _ in model.named_buffers()) == sorted(ref["buffer_keys"])
    assert {k: str(v.dtype).removeprefix("torch.") for k, v in state.items()
            if v.dtype != torch.float32} == ref["non_float32_keys"]


@pytest.mark.parametrize("config", KEY_MAPS)
def test_zoo_checkpoint_loads_strictly(config):
    """A zoo-layout file (``generator.`` prefix, the map's shapes and dtypes) loads, values and all."""
    ref = _key_map(config)
    dtypes = {k: getattr(torch, v) for k, v in ref["generator"]["non_float32_keys"].items()}
    gen = torch.Generator().manual_seed(1)
    state = {k: torch.randn(s, generator=gen).to(dtypes.get(k.removeprefix("generator."), torch.float32))
             for k, s in ref["full_model_state_dict_keys"].items()}
    net_state, source = extract_net_state({"meta": {"mmedit_version": "0.16.1"}, "state_dict": state}, "generator")
    assert source == "zoo generator"
    model = build_arch(KEY_MAPS[config], **ref["generator"]["kwargs"])
    load_strict(model, net_state)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[f"generator.{key}"]), key


def test_flow_networks_differ_as_the_zoo():
    """VSR: batch norm in the flow network, zero padding in its warps; VFI zoo: neither."""
    vsr = _zoo_build("tof_x4_vimeo90k_official")
    vfi = _zoo_build("tof_vfi_spynet_chair_nobn_1xb1_vimeo90k")
    assert vsr.adapt_official_weights and vsr.ref_idx == 0
    assert vsr.spynet.warp_padding == "zeros" and vfi.spynet.warp_padding == "border"
    assert len(vsr.spynet.basic_module) == len(vfi.spynet.basic_module) == 4
    bns = [m for m in vsr.spynet.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 16 and not any(isinstance(m, torch.nn.BatchNorm2d) for m in vfi.modules())
    bn_vfi = build_arch("tof_vfi", **VFI_BN)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in bn_vfi.modules()) == 16
    assert bn_vfi.spynet.basic_module[0].basic_module[0].conv.bias is None  # mmcv's bias="auto"
    assert torch.equal(vfi.mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))
    assert torch.equal(vfi.std.flatten(), torch.tensor([0.229, 0.224, 0.225]))


# ---------------------------------------------------------------------------------- flow_cfg.pretrained
def _flow_weights(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return TOFlowSPyNet(norm=False).state_dict()


@pytest.mark.parametrize("layout", ["mmcv", "bare", "module_prefix"])
def test_vfi_pretrained_flow_file_loads(tmp_path, layout):
    weights = _flow_weights(1)
    payload = {"meta": {}, "state_dict": weights} if layout == "mmcv" else weights
    if layout == "module_prefix":
        payload = {f"module.{k}": v for k, v in weights.items()}
    path = tmp_path / "spynet_chair.pth"
    torch.save(payload, path)
    torch.manual_seed(2)
    model = build_arch("tof_vfi", flow_cfg=dict(norm_cfg=None, pretrained=str(path)))
    for key, value in weights.items():
        assert torch.equal(model.spynet.state_dict()[key], value), key
    with torch.device("meta"):  # a config check builds there: the file is read and checked
        assert build_arch("tof_vfi", flow_cfg=dict(norm_cfg=None, pretrained=str(path))).mean.is_meta


@pytest.mark.parametrize("kwargs, match", [
    (dict(flow_cfg=dict(norm_cfg=None, pretrained="MISSING")), "not found"),
    (dict(flow_cfg=dict(norm_cfg=None, pretrained="BN_FILE")), "unexpected"),
    (dict(flow_cfg=dict(norm_cfg=None, pretrained="https://example.com/spynet.pth")), "local file"),
    (dict(flow_cfg=dict(norm_cfg=None, pretrained=3)), "path or None"),
    (dict(flow_cfg=dict(norm_cfg=dict(type="GN"))), "norm_cfg"),
    (dict(flow_cfg=dict(norm_cfg=None, pretrained=None, extra=1)), "flow_cfg must be a dict"),
    (dict(rgb_mean=[0.5, 0.5]), "3 values"),
])
def test_vfi_bad_arguments_are_one_line_value_errors(tmp_path, kwargs, match):
    bn_file = tmp_path / "bn.pth"
    torch.save(TOFlowSPyNet(norm=True).state_dict(), bn_file)
    flow_cfg = kwargs.get("flow_cfg", {})
    if flow_cfg.get("pretrained") in ("MISSING", "BN_FILE"):
        name = "missing.pth" if flow_cfg["pretrained"] == "MISSING" else "bn.pth"
        kwargs = dict(flow_cfg=dict(norm_cfg=None, pretrained=str(tmp_path / name)))
    with pytest.raises(ValueError, match=match) as info:
        build_arch("tof_vfi", **kwargs)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------- forward / backward
@pytest.mark.parametrize("arch, kwargs, shape, out_shape", [
    ("tof", dict(adapt_official_weights=True), (2, 7, 16, 16), (2, 3, 16, 16)),
    ("tof_vfi", {}, (2, 2, 12, 20), (2, 3, 12, 20)),  # reflection-padded to 16x32 inside
    ("tof_vfi", VFI_BN, (2, 2, 16, 16), (2, 3, 16, 16)),
])
def test_forward_backward_tiny(arch, kwargs, shape, out_shape):
    model = build_arch(arch, **kwargs).train()
    out = model(_clip(*shape))
    assert out.shape == out_shape and torch.isfinite(out).all()
    out.mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, missing
    assert any(p.grad.abs().sum() > 0 for n, p in model.named_parameters() if n.startswith("spynet."))


def test_vsr_returns_the_centre_frame_plus_residue_in_window_order():
    """conv4 zeroed: the output is exactly the centre frame (de-normalised), whatever the order flag;
    the official order feeds conv1 frames 3, 0, 1, 2, 4, 5, 6, the natural one 0..6."""
    lrs = _clip(1, 7, 16, 16, seed=3)
    for adapt, order in ((True, [3, 0, 1, 2, 4, 5, 6]), (False, list(range(7)))):
        model = build_arch("tof", adapt_official_weights=adapt).eval()
        _zero_flows_(model.spynet)
        seen = []
        model.conv1.register_forward_hook(lambda _m, args, _o: seen.append(args[0]))
        with torch.no_grad():
            torch.nn.init.zeros_(model.conv4.weight)
            torch.nn.init.zeros_(model.conv4.bias)
            out = model(lrs)
        torch.testing.assert_close(out, lrs[:, 3], rtol=0, atol=1e-6)
        normalised = (lrs - model.mean.unsqueeze(1)) / model.std.unsqueeze(1)
        # zero flows warp exactly up to grid_sample's coordinate rounding
        torch.testing.assert_close(seen[0], normalised[:, order].reshape(1, 21, 16, 16), rtol=0, atol=1e-5)


def test_vfi_pads_by_reflection_and_crops_back():
    """Output at 20x28 = the output on the frames reflect-padded to 32x32 by hand, cropped; with
    zero flows and a zero residue, equal frames come back unchanged."""
    model = build_arch("tof_vfi").eval()
    pair = _clip(1, 2, 20, 28, seed=4)
    padded = F.pad(pair.view(2, 3, 20, 28), [0, 4, 0, 12], mode="reflect").view(1, 2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(pair), model(padded)[..., :20, :28], rtol=0, atol=1e-6)
        _zero_flows_(model.spynet)
        torch.nn.init.zeros_(model.resnet.res_block[-1].weight)
        torch.nn.init.zeros_(model.resnet.res_block[-1].bias)
        same = torch.cat([pair[:, :1], pair[:, :1]], dim=1)
        torch.testing.assert_close(model(same), pair[:, 0], rtol=0, atol=1e-6)
        torch.testing.assert_close(model(pair), pair.mean(dim=1), rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("shape, match", [
    ((1, 6, 3, 16, 16), r"\[N, 7, 3, H, W\]"),
    ((1, 7, 1, 16, 16), r"\[N, 7, 3, H, W\]"),
    ((7, 3, 16, 16), r"\[N, 7, 3, H, W\]"),
    ((1, 7, 3, 24, 16), "multiples of 16"),
    ((1, 7, 3, 16, 40), "multiples of 16"),
])
def test_vsr_bad_input_is_one_line_value_error(shape, match):
    with pytest.raises(ValueError, match=match) as info:
        _zoo_build("tof_x4_vimeo90k_official")(torch.rand(*shape))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("shape, match", [
    ((1, 3, 3, 16, 16), r"\[N, 2, 3, H, W\]"),
    ((1, 2, 4, 16, 16), r"\[N, 2, 3, H, W\]"),
    ((2, 3, 16, 16), r"\[N, 2, 3, H, W\]"),
    ((1, 2, 3, 8, 32), "at least 9x9"),
    ((1, 2, 3, 16, 5), "at least 9x9"),
])
def test_vfi_bad_input_is_one_line_value_error(shape, match):
    with pytest.raises(ValueError, match=match) as info:
        _zoo_build("tof_vfi_spynet_chair_nobn_1xb1_vimeo90k")(torch.rand(*shape))
    assert "\n" not in str(info.value)
