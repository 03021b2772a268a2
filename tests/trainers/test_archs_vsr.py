"""``spynet``, ``basicvsr``, ``realbasicvsr`` and ``basicvsr_pp`` against the MMEditing 0.x zoo:
key maps, strict zoo loading, SPyNet's ``pretrained`` file, forward/backward, clip lengths,
RealBasicVSR's cleaning rounds and ``return_lqs``, BasicVSR++'s same-size input.

Key maps in tests/data/mmedit_checkpoint_keys are copies of the shared ones made from the zoo
configs (they also record the constructor arguments). Forward values are checked against mmedit
in test_arch_parity.py (tests/data/golden/archs_vsr.npz).
"""


import pytest
import torch

from arch_helpers import key_map, one_thread, zoo_build  # noqa: F401 (one_thread: the module's fixture)
from trainers.archs import build_arch
from trainers.archs.basicvsr import is_mirror_extended
from trainers.archs.flow import flow_warp
from trainers.archs.spynet import SPyNet
from trainers.checkpoint_io import extract_net_state, load_strict

KEY_MAPS = {  # config -> ARCHS name
    "basicvsr_reds4": "basicvsr",
    "realbasicvsr_c64b20_1x30x8_lr5e-5_150k_reds": "realbasicvsr",
    "basicvsr_plusplus_c64n7_8x1_600k_reds4": "basicvsr_pp",
}
TINY = {
    "basicvsr": dict(mid_channels=8, num_blocks=1),
    "realbasicvsr": dict(mid_channels=8, num_propagation_blocks=1, num_cleaning_blocks=1),
    "basicvsr_pp": dict(mid_channels=8, num_blocks=1),
}


def _clip(n: int, t: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, t, 3, h, w, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------- zoo key maps
@pytest.mark.parametrize("config", KEY_MAPS)
def test_state_dict_matches_zoo(config):
    ref = key_map(config)["generator"]
    assert ref["kwargs"].get("spynet_pretrained") is None
    model = zoo_build(KEY_MAPS[config], config)
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert got == ref["keys"]
    assert list(got) == list(ref["keys"])  # mmedit's registration order too
    assert sum(p.numel() for p in model.parameters()) == ref["num_params"]
    assert sorted(k for k, _ in model.named_buffers()) == sorted(ref["buffer_keys"])


@pytest.mark.parametrize("config", KEY_MAPS)
def test_zero_zoo_checkpoint_loads_strictly(config):
    """A zoo-layout file of zeros (``generator.`` and, for RealBasicVSR, ``generator_ema.``) loads."""
    keys = key_map(config)["full_model_state_dict_keys"]
    ckpt = {"meta": {"mmedit_version": "0.16.1"}, "state_dict": {k: torch.zeros(s) for k, s in keys.items()}}
    state, source = extract_net_state(ckpt, "generator")
    assert source == ("zoo generator_ema" if "realbasicvsr" in config else "zoo generator")
    model = zoo_build(KEY_MAPS[config], config)
    load_strict(model, state)
    assert not any(p.any() for p in model.parameters())


def test_spynet_is_frozen_in_realbasicvsr_only():
    real = zoo_build(KEY_MAPS["realbasicvsr_c64b20_1x30x8_lr5e-5_150k_reds"], "realbasicvsr_c64b20_1x30x8_lr5e-5_150k_reds")
    assert not any(p.requires_grad for p in real.basicvsr.spynet.parameters())
    assert all(p.requires_grad for p in real.image_cleaning.parameters())
    assert all(p.requires_grad for p in zoo_build(KEY_MAPS["basicvsr_reds4"], "basicvsr_reds4").spynet.parameters())
    fixed = build_arch("realbasicvsr", **TINY["realbasicvsr"], is_fix_cleaning=True)
    assert not any(p.requires_grad for p in fixed.image_cleaning.parameters())
    assert all(p.requires_grad for p in fixed.basicvsr.backward_resblocks.parameters())


# ---------------------------------------------------------------------------------- SPyNet
def test_spynet_buffers_and_names():
    net = SPyNet()
    assert torch.equal(net.mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))
    assert torch.equal(net.std.flatten(), torch.tensor([0.229, 0.224, 0.225]))
    assert list(net.state_dict())[:3] == ["mean", "std", "basic_module.0.basic_module.0.conv.weight"]
    assert sum(p.numel() for p in net.parameters()) == 6 * 240_050  # the zoo file's count


def _spynet_weights(seed: int) -> dict[str, torch.Tensor]:
    """What mmedit's spynet file holds: the basic_module weights only (no mean/std)."""
    torch.manual_seed(seed)
    return {k: v for k, v in SPyNet().state_dict().items() if k.startswith("basic_module.")}


@pytest.mark.parametrize("layout", ["mmcv", "bare", "module_prefix", "with_buffers"])
def test_spynet_pretrained_loads_the_file(tmp_path, layout):
    weights = _spynet_weights(1)
    if layout == "mmcv":
        payload = {"meta": {"epoch": 1}, "state_dict": weights}
    elif layout == "module_prefix":
        payload = {"state_dict": {f"module.{k}": v for k, v in weights.items()}}
    elif layout == "with_buffers":
        payload = SPyNet().state_dict() | weights
    else:
        payload = weights
    path = tmp_path / "spynet.pth"
    torch.save(payload, path)
    torch.manual_seed(2)
    net = SPyNet(pretrained=str(path))
    for key, value in weights.items():
        assert torch.equal(net.state_dict()[key], value), key
    with torch.device("meta"):  # a config check: the file is read and checked, nothing copied
        assert SPyNet(pretrained=str(path)).mean.is_meta
    # the networks pass spynet_pretrained through
    vsr = build_arch("basicvsr", **TINY["basicvsr"], spynet_pretrained=path)
    assert torch.equal(vsr.spynet.basic_module[5].basic_module[4].conv.bias,
                       weights["basic_module.5.basic_module.4.conv.bias"])


@pytest.mark.parametrize("content, match", [
    (None, "not found"),
    (b"not a torch file", "cannot load"),
    ("missing", "missing"),
    ("extra", "unexpected"),
    ("shape", "shape"),
    ("zoo_basicvsr", "unexpected"),
])
def test_spynet_bad_pretrained_file_is_one_line_value_error(tmp_path, content, match):
    path = tmp_path / "spynet.pth"
    weights = _spynet_weights(3)
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "missing":
        torch.save({k: v for k, v in weights.items() if "basic_module.5." not in k}, path)
    elif content == "extra":
        torch.save(weights | {"extra.weight": torch.zeros(1)}, path)
    elif content == "shape":
        torch.save(weights | {"basic_module.0.basic_module.0.conv.bias": torch.zeros(33)}, path)
    elif content == "zoo_basicvsr":  # a whole BasicVSR checkpoint is not a SPyNet file
        torch.save({"state_dict": {f"generator.spynet.{k}": v for k, v in weights.items()}}, path)
    for device in ("cpu", "meta"):
        with torch.device(device), pytest.raises(ValueError, match=match) as info:
            SPyNet(pretrained=str(path))
        assert "\n" not in str(info.value) and "spynet pretrained" in str(info.value)
    with pytest.raises(ValueError, match="path or None"):
        SPyNet(pretrained=42)


def test_spynet_any_size_and_zero_flow_for_equal_frames():
    """Sizes off multiples of 32 come back at the input size; a trained-looking property holds
    structurally: equal frames with zero residue modules give exactly zero flow."""
    net = SPyNet().eval()
    with torch.no_grad():
        a = torch.rand(2, 3, 20, 36)
        assert net(a, torch.rand(2, 3, 20, 36)).shape == (2, 2, 20, 36)
        for level in net.basic_module:
            torch.nn.init.zeros_(level.basic_module[-1].conv.weight)
            torch.nn.init.zeros_(level.basic_module[-1].conv.bias)
        assert not net(a, a).any()


def test_flow_warp_moves_by_the_flow_and_checks_sizes():
    x = torch.arange(2 * 5 * 6, dtype=torch.float32).view(1, 2, 5, 6)
    flow = torch.zeros(1, 5, 6, 2)
    flow[..., 0] = 1.0  # sample one pixel to the right
    out = flow_warp(x, flow)  # grid normalisation rounds: exact up to float32 noise
    torch.testing.assert_close(out[..., :-1], x[..., 1:], rtol=0, atol=1e-4)
    torch.testing.assert_close(out[..., -1], torch.zeros_like(x[..., -1]), rtol=0, atol=1e-4)  # zeros outside
    torch.testing.assert_close(flow_warp(x, flow, padding_mode="border")[..., -1], x[..., -1], rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="differs from flow size"):
        flow_warp(x, torch.zeros(1, 4, 6, 2))


# ---------------------------------------------------------------------------------- forward / backward
@pytest.mark.parametrize("arch", TINY)
def test_forward_backward_tiny(arch):
    model = build_arch(arch, **TINY[arch]).train()
    lqs = _clip(2, 2, 12, 16)
    out = model(lqs)
    assert out.shape == (2, 2, 3, 48, 64)
    out.mean().backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for _, p in trainable)
    head = model.basicvsr if arch == "realbasicvsr" else model
    assert head.conv_last.weight.grad.abs().sum() > 0
    if arch == "realbasicvsr":  # the cleaning loss and the SR loss both reach the cleaning module
        assert model.image_cleaning[0].main[0].weight.grad.abs().sum() > 0
    spynet_grads = [p.grad for n, p in trainable if n.startswith("spynet.")]
    if arch != "realbasicvsr":  # the flow network trains, through the warps
        assert any(g.abs().sum() > 0 for g in spynet_grads)


@pytest.mark.parametrize("arch", TINY)
def test_single_frame_clip_works(arch):
    """mmedit runs T=1 (no flow, propagation from zeros); so does the port."""
    model = build_arch(arch, **TINY[arch]).eval()
    with torch.no_grad():
        out = model(_clip(1, 1, 8, 8))
    assert out.shape == (1, 1, 3, 32, 32) and torch.isfinite(out).all()


@pytest.mark.parametrize("arch", TINY)
def test_bad_clip_shape_is_value_error(arch):
    model = build_arch(arch, **TINY[arch])
    for bad in (torch.rand(1, 3, 8, 8), torch.rand(1, 2, 4, 8, 8), torch.rand(1, 0, 3, 8, 8)):
        with pytest.raises(ValueError, match=r"\[N, T, 3, H, W\]"):
            model(bad)


def test_mirror_extension_is_decided_per_clip():
    """Mirrored clips (a, b, b, a) reuse the backward flows; mmedit's BasicVSR++ never clears
    the flag, the port decides for every clip."""
    half = _clip(1, 2, 8, 8)
    mirrored = torch.cat([half, half.flip(1)], dim=1)
    assert is_mirror_extended(mirrored) and not is_mirror_extended(_clip(1, 4, 8, 8))
    assert not is_mirror_extended(mirrored[:, :3])
    for arch in ("basicvsr", "basicvsr_pp"):
        model = build_arch(arch, **TINY[arch]).eval()
        with torch.no_grad():
            model(mirrored)
            assert model.is_mirror_extended
            model(_clip(1, 4, 8, 8))
            assert not model.is_mirror_extended


# ---------------------------------------------------------------------------------- RealBasicVSR
def _count_cleaning_rounds(model, lqs, **forward_kwargs):
    calls = []
    handle = model.image_cleaning.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        out = model(lqs, **forward_kwargs)
    handle.remove()
    return len(calls), out


def test_realbasicvsr_cleaning_rounds_and_return_lqs():
    lqs = _clip(1, 2, 8, 8)
    model = build_arch("realbasicvsr", **TINY["realbasicvsr"]).eval()
    rounds, out = _count_cleaning_rounds(model, lqs)
    assert rounds == 1 and isinstance(out, torch.Tensor)  # zoo threshold 255: exactly one round
    rounds, (out2, cleaned) = _count_cleaning_rounds(model, lqs, return_lqs=True)
    assert rounds == 1 and torch.equal(out2, out) and cleaned.shape == lqs.shape
    with torch.no_grad():
        assert torch.equal(cleaned, lqs + model.image_cleaning(lqs.view(-1, 3, 8, 8)).view_as(lqs))
    model.dynamic_refine_thres = 0.0  # never small enough: the three-round cap
    assert _count_cleaning_rounds(model, lqs)[0] == 3


def test_realbasicvsr_sequential_cleaning_same_values_input_untouched():
    batched = build_arch("realbasicvsr", **TINY["realbasicvsr"], dynamic_refine_thres=0)
    sequential = build_arch("realbasicvsr", **TINY["realbasicvsr"], dynamic_refine_thres=0,
                            is_sequential_cleaning=True)
    sequential.load_state_dict(batched.state_dict())
    lqs = _clip(1, 2, 8, 8)
    before = lqs.clone()
    out_s, clean_s = sequential(lqs, return_lqs=True)
    assert torch.equal(lqs, before)  # mmedit writes the cleaned frames into the caller's tensor
    (out_s.mean() + clean_s.mean()).backward()  # and cannot backpropagate; the port can
    with torch.no_grad():
        out_b, clean_b = batched(lqs, return_lqs=True)
    torch.testing.assert_close(clean_s, clean_b, rtol=0, atol=1e-6)
    torch.testing.assert_close(out_s, out_b, rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------------- BasicVSR++
def test_basicvsr_pp_same_size_input():
    model = build_arch("basicvsr_pp", **TINY["basicvsr_pp"], is_low_res_input=False).eval()
    with torch.no_grad():
        assert model(_clip(1, 2, 16, 24)).shape == (1, 2, 3, 16, 24)
    with pytest.raises(ValueError, match="divisible by 4"):
        model(_clip(1, 2, 18, 24))


def test_basicvsr_pp_offsets_start_as_flow_warping():
    """Zero-initialised offset convs: the alignment starts as pure flow-guided sampling, mask 0.5."""
    model = build_arch("basicvsr_pp", **TINY["basicvsr_pp"])
    for align in model.deform_align.values():
        assert align.deform_groups == 16 and align.max_residue_magnitude == 10
        assert align.conv_offset[-1].out_channels == 27 * 16
        assert not align.conv_offset[-1].weight.any() and not align.conv_offset[-1].bias.any()


@pytest.mark.parametrize("mirrored", [False, True])
def test_basicvsr_pp_cpu_cache_path_on_cpu(monkeypatch, mirrored):
    """The cache's code path (moves are no-ops on a CPU) gives the same values, mirrored clips too."""
    model = build_arch("basicvsr_pp", **TINY["basicvsr_pp"]).eval()
    half = _clip(1, 2, 8, 8)
    lqs = torch.cat([half, half.flip(1)], dim=1) if mirrored else _clip(1, 4, 8, 8)
    with torch.no_grad():
        plain = model(lqs)
        monkeypatch.setattr(model, "uses_cpu_cache", lambda _: True)
        cached = model(lqs)
    assert model.cpu_cache
    torch.testing.assert_close(cached, plain, rtol=0, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_basicvsr_pp_cpu_cache_changes_no_value():
    """Clips longer than ``cpu_cache_length`` keep features on the CPU between uses (CUDA only);
    mirrored clips too (mmedit's cache fails on them)."""
    cached = build_arch("basicvsr_pp", **TINY["basicvsr_pp"], cpu_cache_length=2).cuda().eval()
    plain = build_arch("basicvsr_pp", **TINY["basicvsr_pp"]).cuda().eval()
    plain.load_state_dict(cached.state_dict())
    half = _clip(1, 2, 16, 16)
    for lqs in (_clip(1, 4, 16, 16), torch.cat([half, half.flip(1)], dim=1)):
        with torch.no_grad():
            out_cached = cached(lqs.cuda())
            out_plain = plain(lqs.cuda())
        assert cached.cpu_cache and not plain.cpu_cache
        assert out_cached.device.type == "cpu" and out_plain.is_cuda  # as mmedit: cached outputs stay on the CPU
        torch.testing.assert_close(out_cached, out_plain.cpu(), rtol=0, atol=1e-5)


pytestmark = pytest.mark.usefixtures("one_thread")
