"""``iconvsr`` and the EDVR blocks against MMEditing 0.x: key maps, keyframes, training forward,
``edvr_pretrained`` loading, and PCD alignment alone against mmedit's.

The whole IconVSR forward is checked against mmedit in test_arch_parity.py (goldens from
tests/golden/make_arch_goldens_iconvsr.py, which also holds the ``pcd_*`` case read here).
"""

import importlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from trainers.archs import build_arch
from trainers.archs.edvr_blocks import EDVRFeatureExtractor, PCDAlignment, TSAFusion
from trainers.archs.iconvsr import IconVSR

SHARED_KEYS = Path(__file__).resolve().parents[1] / "data" / "mmedit_checkpoint_keys"
GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden" / "archs_iconvsr.npz"
EDVR_CONFIGS = ["edvrm_x4_8x4_600k_reds", "edvrm_wotsa_x4_8x4_600k_reds", "edvrl_c128b40_8x8_lr2e-4_600k_reds4"]
EDVR_HEAD = ("reconstruction.", "upsample1.", "upsample2.", "conv_hr.", "conv_last.")  # EDVRNet past fusion


def _generator_map(config: str) -> dict:
    path = SHARED_KEYS / f"{config}.json"
    if not path.is_file():
        pytest.skip(f"shared key map {path} not present")
    return json.loads(path.read_text())["generator"]


def _shapes(module: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in module.state_dict().items()}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One intra-op thread: on the shared two-core runner two threads make these small convs slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny() -> IconVSR:
    torch.manual_seed(0)
    return IconVSR(num_blocks=1, keyframe_stride=2)


def test_iconvsr_reds4_key_map_matches_exactly():
    gen = _generator_map("iconvsr_reds4")
    net = build_arch("iconvsr", **gen["kwargs"])
    assert _shapes(net) == gen["keys"]
    assert list(net.state_dict()) == list(gen["keys"])  # same order as mmedit registers them
    assert sum(p.numel() for p in net.parameters()) == gen["num_params"]


@pytest.mark.parametrize("config", EDVR_CONFIGS)
def test_edvr_zoo_keys_extend_the_extractor(config):
    """EDVRNet = the feature extractor (PCD + TSA or 1x1 fusion) + a reconstruction head: every
    extractor key is in the zoo map with its shape, and the zoo's other keys are the head's."""
    gen = _generator_map(config)
    kw = {k: v for k, v in gen["kwargs"].items() if k not in ("out_channels", "num_blocks_reconstruction")}
    got = _shapes(EDVRFeatureExtractor(**kw))
    want = gen["keys"]
    assert {k: want.get(k) for k in got} == got
    assert all(k.startswith(EDVR_HEAD) for k in set(want) - set(got))


def test_pcd_and_tsa_keys_follow_edvrm():
    want = _generator_map("edvrm_x4_8x4_600k_reds")["keys"]
    for prefix, block in (("pcd_alignment.", PCDAlignment(64, 8)), ("fusion.", TSAFusion(64, 5, 2))):
        sub = {k.removeprefix(prefix): v for k, v in want.items() if k.startswith(prefix)}
        assert _shapes(block) == sub, prefix


@pytest.mark.parametrize(("t", "stride", "want"), [(6, 2, [0, 2, 4, 5]), (15, 5, [0, 5, 10, 14]),
                                                   (5, 5, [0, 4]), (11, 5, [0, 5, 10])])
def test_keyframes_every_stride_plus_the_last(tiny, t, stride, want):
    tiny.keyframe_stride = stride
    try:
        assert tiny.keyframe_indices(t) == want
    finally:
        tiny.keyframe_stride = 2


def test_forward_backward_tiny(tiny):
    x = torch.rand(1, 5, 3, 7, 9)  # keyframes 0, 2, 4; frames padded to 8x12 inside
    out = tiny.train()(x)
    assert out.shape == (1, 5, 3, 28, 36)
    out.square().mean().backward()
    grads = {n: p.grad for n, p in tiny.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    # the refill path is used: EDVR's last layers and both fusion convs get gradient
    for name in ("edvr.fusion.spatial_attn_add2.weight", "backward_fusion.weight", "forward_fusion.weight",
                 "edvr.pcd_alignment.cas_dcnpack.weight"):
        assert grads[name].abs().sum() > 0, name
    tiny.zero_grad(set_to_none=True)


def test_mirror_extended_clip_reuses_backward_flows(tiny):
    """A clip followed by its reverse skips the second SPyNet pass: forward-time step ``i`` then
    warps with backward flow ``-i``, which is the flow the skipped pass would give there."""
    half = torch.rand(1, 3, 3, 8, 8)
    clip = torch.cat([half, half.flip(1)], dim=1)
    with torch.no_grad():
        skipped, backward = tiny.compute_flow(clip, mirror_extended=True)
        forward, _ = tiny.compute_flow(clip, mirror_extended=False)
    assert skipped is None
    for i in range(1, clip.size(1)):
        torch.testing.assert_close(backward[:, -i], forward[:, i - 1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("kwargs", "shape", "match"), [
    (dict(padding=4), None, "padding must be 2 or 3"),
    (dict(mid_channels=32), None, "mid_channels must be 64"),
    (dict(keyframe_stride=0), None, "keyframe_stride"),
    (dict(padding=2), (1, 4, 3, 8, 8), "at least 5 frames"),
    (dict(padding=3), (1, 6, 3, 8, 8), "at least 7 frames"),
    (dict(), (4, 3, 8, 8), r"clip \[N, T, 3, H, W\]"),
])
def test_bad_arguments_and_inputs_are_one_line_value_errors(kwargs, shape, match):
    with pytest.raises(ValueError, match=match) as err:
        net = IconVSR(num_blocks=1, **kwargs)
        net(torch.rand(shape))
    assert "\n" not in str(err.value)


def _extractor_state(fill: float, **kwargs) -> dict[str, torch.Tensor]:
    return {k: torch.full_like(v, fill) for k, v in EDVRFeatureExtractor(**kwargs).state_dict().items()}


def test_edvr_pretrained_loads_strictly_as_mmcv_reads_it(tmp_path):
    bare, wrapped = tmp_path / "bare.pth", tmp_path / "mmcv.pth"
    torch.save(_extractor_state(0.0), bare)
    torch.save({"meta": {}, "state_dict": {"module." + k: v for k, v in _extractor_state(0.5).items()}}, wrapped)
    net = IconVSR(num_blocks=1, edvr_pretrained=str(bare))
    assert all((v == 0).all() for v in net.edvr.state_dict().values())
    net = IconVSR(num_blocks=1, edvr_pretrained=str(wrapped))
    assert all((v == 0.5).all() for v in net.edvr.state_dict().values())


@pytest.mark.parametrize("bad", ["seven_frames", "zoo_prefix", "missing", "not_torch", "url"])
def test_edvr_pretrained_wrong_file_is_a_one_line_value_error(tmp_path, bad):
    path = tmp_path / "edvr.pth"
    if bad == "seven_frames":  # a padding=3 (Vimeo) extractor into a padding=2 IconVSR
        torch.save(_extractor_state(0.0, num_frames=7, center_frame_idx=3), path)
    elif bad == "zoo_prefix":  # an EDVR-M zoo checkpoint is not the extractor's file
        torch.save({"state_dict": {"generator." + k: v for k, v in _extractor_state(0.0).items()}}, path)
    elif bad == "not_torch":
        path.write_text("not a checkpoint")
    path = "https://example.com/edvrm.pth" if bad == "url" else str(path)
    with pytest.raises(ValueError, match="edvr_pretrained") as err:
        IconVSR(num_blocks=1, edvr_pretrained=path)
    assert "\n" not in str(err.value)


def test_pcd_alignment_matches_mmedit():
    if not GOLDEN.is_file():
        pytest.skip("archs_iconvsr.npz not generated")
    with np.load(GOLDEN) as npz:
        data = {k: torch.from_numpy(npz[k]) if npz[k].dtype != object and npz[k].dtype.kind != "U" else str(npz[k])
                for k in npz.files if k.startswith("pcd_")}
    cases = sorted(k.removesuffix("/block") for k in data if k.endswith("/block"))
    assert cases
    for case in cases:
        module_name, _, cls_name = data[f"{case}/block"].rpartition(".")
        block = getattr(importlib.import_module(module_name), cls_name)(**json.loads(data[f"{case}/kwargs"]))
        prefix = f"{case}/state/"
        block.load_state_dict({k.removeprefix(prefix): v.float() for k, v in data.items() if k.startswith(prefix)},
                              strict=True)
        feats = [data[f"{case}/input.{i}"].float() for i in range(6)]
        with torch.no_grad():
            got = block.eval()(feats[:3], feats[3:])
        want = data[f"{case}/eval"]
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5 * want.abs().max().item())


def test_dcn_pack_warns_when_offsets_run_away(caplog):
    from trainers.archs.edvr_blocks import ModulatedDCNPack

    pack = ModulatedDCNPack(4, 4, 3, padding=1, deform_groups=2)
    x = torch.rand(1, 4, 6, 6)
    with caplog.at_level("WARNING", logger="trainers.archs.edvr_blocks"):
        plain = pack(x, x)
        assert not caplog.records
        torch.nn.init.constant_(pack.conv_offset.bias, 60.0)
        pack(x, x)
    assert "offset abs mean is 60.0" in caplog.text
    # zero-initialised offsets: a plain conv with every tap at sigmoid(0) = 0.5
    torch.testing.assert_close(plain, torch.nn.functional.conv2d(x, pack.weight * 0.5, pack.bias, padding=1))


def test_spynet_pretrained_is_passed_to_spynet(tmp_path):
    path = tmp_path / "spynet.pth"
    state = {k: torch.zeros_like(v) for k, v in IconVSR(num_blocks=1).spynet.state_dict().items()
             if k not in ("mean", "std")}  # the published SPyNet file has no mean/std
    torch.save({"state_dict": state}, path)
    net = IconVSR(num_blocks=1, spynet_pretrained=str(path))
    assert all((p == 0).all() for p in net.spynet.parameters())
