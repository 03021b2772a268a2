"""DIM (``dim``, ``plain_refiner``) and IndexNet (``indexnet``) against the MMEditing 0.x zoo key maps.

The key maps in tests/data/mmedit_checkpoint_keys were produced from the zoo configs
``dim_stage3_v16_pln_1x1_1000k_comp1k`` and ``indexnet_mobv2_1x16_78k_comp1k``; matching
them (keys, order, shapes, parameter counts) means the published checkpoints load with
strict=True. Forward parity with MMEditing itself is in test_arch_parity.py. Also here:
IndexNet's BN freezing semantics and the torchvision ImageNet weight mappings.
"""

import contextlib
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from trainers.archs import build_arch
from trainers.archs.dim import from_torchvision_vgg16
from trainers.archs.indexnet import from_torchvision_mobilenet_v2
from trainers.checkpoint_io import extract_net_state, load_checkpoint_file, load_strict

KEY_DIR = Path(__file__).resolve().parents[1] / "data" / "mmedit_checkpoint_keys"
DIM = json.loads((KEY_DIR / "dim_stage3_v16_pln_1x1_1000k_comp1k.json").read_text())
INDEXNET = json.loads((KEY_DIR / "indexnet_mobv2_1x16_78k_comp1k.json").read_text())

# ARCHS name -> (its key-map section, its checkpoint prefix)
NETWORKS = {
    "dim": (DIM["generator"], "backbone"),
    "plain_refiner": (DIM["other_modules"]["refiner"], "refiner"),
    "indexnet": (INDEXNET["generator"], "backbone"),
}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny tensors: intra-op threads only add OpenMP spinning, which on a busy machine costs seconds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def zoo_nets() -> dict[str, nn.Module]:
    """Each network built once with no arguments: the defaults are the zoo configs."""
    torch.manual_seed(0)
    return {name: build_arch(name) for name in NETWORKS}


def _flat_zoo_kwargs(name: str) -> dict:
    """The zoo config's constructor arguments in restoray's flat form.

    The decoders' ``in_channels`` is not an argument: like ``SimpleEncoderDecoder`` it
    follows the encoder's output width.
    """
    if name == "plain_refiner":
        return {}
    encoder = dict(NETWORKS[name][0]["resolved_init_args"]["encoder"])
    del encoder["type"]
    return encoder


@pytest.mark.parametrize("name", NETWORKS)
def test_state_dict_matches_zoo_key_map(name, zoo_nets):
    ref, _ = NETWORKS[name]
    state = zoo_nets[name].state_dict()
    assert list(state) == list(ref["keys"])  # order too: the checkpoint's
    assert {k: list(v.shape) for k, v in state.items()} == ref["keys"]
    assert sum(p.numel() for p in zoo_nets[name].parameters()) == ref["num_params"]
    assert sum(v.numel() for v in state.values()) - ref["num_params"] == ref.get("num_buffer_elems", 0)


def test_parameter_counts_are_the_published_ones(zoo_nets):
    counts = {name: sum(p.numel() for p in net.parameters()) for name, net in zoo_nets.items()}
    assert counts == {"dim": 26_200_001, "plain_refiner": 76_801, "indexnet": 5_953_515}


@pytest.mark.parametrize("name", NETWORKS)
def test_zoo_config_arguments_build_the_same_network(name, zoo_nets):
    model = build_arch(name, **_flat_zoo_kwargs(name))
    assert {k: v.shape for k, v in model.state_dict().items()} == {
        k: v.shape for k, v in zoo_nets[name].state_dict().items()}


def _fake_zoo_state(ref: dict, prefix: str) -> dict[str, torch.Tensor]:
    """Random tensors of the zoo's shapes under ``prefix``; BN ``num_batches_tracked`` stays int64."""
    ints = ref.get("non_float32_keys", {})
    return {prefix + k: torch.randint(0, 1000, shape) if ints.get(k) == "int64" else torch.randn(shape)
            for k, shape in ref["keys"].items()}


@contextlib.contextmanager
def _restored(net: nn.Module):
    """Puts ``net``'s weights back afterwards: the shared zoo networks must stay sanely initialised."""
    saved = {k: v.clone() for k, v in net.state_dict().items()}
    try:
        yield net
    finally:
        net.load_state_dict(saved)


def test_fake_zoo_checkpoints_load_strictly(tmp_path, zoo_nets):
    # mmcv's save_checkpoint layout. DIM stage 3 holds the backbone and the refiner (kept in
    # memory: 105 MB); the IndexNet one goes through a file (weights_only, int64 BN counters).
    dim_state = _fake_zoo_state(DIM["generator"], "backbone.") | _fake_zoo_state(
        DIM["other_modules"]["refiner"], "refiner.")
    index_state = _fake_zoo_state(INDEXNET["generator"], "backbone.")
    torch.save({"meta": {"iter": 78_000, "mmedit_version": "0.16.1"}, "state_dict": index_state},
               tmp_path / "indexnet.pth")
    checkpoints = {"dim": {"meta": {"iter": 1_000_000}, "state_dict": dim_state},
                   "indexnet": load_checkpoint_file(tmp_path / "indexnet.pth")}
    for name, ckpt, role in [("dim", "dim", "backbone"), ("plain_refiner", "dim", "refiner"),
                             ("indexnet", "indexnet", "backbone")]:
        with _restored(zoo_nets[name]) as net:
            state, source = extract_net_state(checkpoints[ckpt], role)
            assert source == f"zoo {role}"
            load_strict(net, state)
            written = dim_state if ckpt == "dim" else index_state
            for key, value in net.state_dict().items():
                assert torch.equal(value, written[f"{role}.{key}"]), (name, key)


def test_dim_forward_backward(zoo_nets):
    torch.manual_seed(1)
    backbone, refiner = zoo_nets["dim"].train(), zoo_nets["plain_refiner"].train()
    x = torch.rand(1, 4, 32, 32)
    raw_alpha = backbone(x)
    assert raw_alpha.shape == (1, 1, 32, 32)
    # The DIM mattor's wiring: sigmoid alpha, refiner on normalised RGB + alpha, residual on logits.
    pred_alpha = raw_alpha.sigmoid()
    refined = refiner(torch.cat([x[:, :3], pred_alpha], 1), raw_alpha)
    assert refined.shape == (1, 1, 32, 32) and 0 < refined.min() and refined.max() < 1
    (refined.mean() + pred_alpha.mean()).backward()
    for net in (backbone, refiner):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
        net.zero_grad(set_to_none=True)


def test_dim_variants_and_argument_checks():
    model = build_arch("dim", batch_norm=True, aspp=True, dilations=[1, 2, 3])
    assert model.encoder.out_channels == 256 and model.decoder.deconv6_1.in_channels == 256
    assert "encoder.layer1.1.running_mean" in model.state_dict() and "encoder.bn.weight" in model.state_dict()
    with pytest.raises(ValueError, match="dilations"):
        build_arch("dim", aspp=True)


def test_indexnet_forward_backward(zoo_nets):
    torch.manual_seed(2)
    model = zoo_nets["indexnet"].train()
    out = model(torch.rand(2, 4, 32, 32))
    assert out.shape == (2, 1, 32, 32)
    out.mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad(set_to_none=True)


def _layer_bns(model: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in model.encoder.layers.modules() if isinstance(m, nn.BatchNorm2d)]


def _other_bns(model: nn.Module) -> list[nn.BatchNorm2d]:
    layer_bns = set(map(id, _layer_bns(model)))
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d) and id(m) not in layer_bns]


def test_indexnet_freeze_bn_is_mmedits_construction_time_eval():
    """MMEditing's freeze_bn: MobileNetV2 BNs in eval mode when built, trained again after .train()."""
    model = build_arch("indexnet", aspp=False)
    assert not any(bn.training for bn in _layer_bns(model))
    assert all(bn.training for bn in _other_bns(model))
    model.train()
    assert all(bn.training for bn in model.modules() if isinstance(bn, nn.BatchNorm2d))
    assert all(p.requires_grad for p in model.parameters())


def test_indexnet_keep_bn_frozen_survives_train():
    torch.manual_seed(3)
    model = build_arch("indexnet", aspp=False, keep_bn_frozen=True).train()
    frozen, others = _layer_bns(model), _other_bns(model)
    assert not any(bn.training for bn in frozen) and all(bn.training for bn in others)
    before = {id(bn): bn.running_mean.clone() for bn in frozen + others}
    model(torch.rand(2, 4, 32, 32)).mean().backward()
    assert all(torch.equal(bn.running_mean, before[id(bn)]) for bn in frozen)
    assert all(not torch.equal(bn.running_mean, before[id(bn)]) for bn in others)
    assert all(not bn.weight.requires_grad and bn.weight.grad is None for bn in frozen)
    assert all(bn.weight.grad is not None for bn in others)
    model.eval().train()
    assert not any(bn.training for bn in frozen)
    with pytest.raises(ValueError, match="freeze_bn"):
        build_arch("indexnet", freeze_bn=False, keep_bn_frozen=True)


# torchvision's VGG16 "D" configuration: conv widths per stage.
_VGG16 = [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]]


def _torchvision_vgg16_state(batch_norm: bool) -> dict[str, torch.Tensor]:
    """torchvision ``vgg16``/``vgg16_bn`` key layout with random tensors (classifier on the meta device)."""
    state, index, c_in = {}, 0, 3
    for widths in _VGG16:
        for c_out in widths:
            state[f"features.{index}.weight"] = torch.randn(c_out, c_in, 3, 3) / (3 * c_in**0.5)
            state[f"features.{index}.bias"] = torch.randn(c_out)
            if batch_norm:
                for name in ("weight", "bias", "running_mean", "running_var"):
                    state[f"features.{index + 1}.{name}"] = torch.rand(c_out)
                state[f"features.{index + 1}.num_batches_tracked"] = torch.tensor(5)
            index += 3 if batch_norm else 2
            c_in = c_out
        index += 1  # max-pool
    for i, shape in ((0, (4096, 25088)), (3, (4096, 4096)), (6, (1000, 4096))):
        state[f"classifier.{i}.weight"] = torch.empty(shape, device="meta")
        state[f"classifier.{i}.bias"] = torch.empty(shape[0], device="meta")
    return state


def _torchvision_vgg16_features(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """torchvision's ``vgg16().features`` computed directly from its state dict (no BN variant)."""
    index = 0
    for widths in _VGG16:
        for _ in widths:
            x = torch.relu(nn.functional.conv2d(x, state[f"features.{index}.weight"], state[f"features.{index}.bias"],
                                                padding=1))
            index += 2
        x = nn.functional.max_pool2d(x, 2)
        index += 1
    return x


def test_from_torchvision_vgg16(zoo_nets):
    torch.manual_seed(4)
    tv = _torchvision_vgg16_state(batch_norm=False)
    with _restored(zoo_nets["dim"]) as model:
        _check_vgg16_mapping(model, tv, from_torchvision_vgg16(tv), batch_norm=False)
        # With the mapped weights the encoder computes torchvision's VGG16 features; the trimap is ignored.
        rgb = torch.rand(1, 3, 32, 32)
        out = torch.cat([rgb, torch.rand(1, 1, 32, 32)], 1)
        with torch.no_grad():
            for i in range(1, 6):
                out, _ = getattr(model.encoder, f"layer{i}")(out)
        torch.testing.assert_close(out, _torchvision_vgg16_features(tv, rgb), rtol=1e-5, atol=1e-5)


def test_from_torchvision_vgg16_bn():
    torch.manual_seed(5)
    tv = _torchvision_vgg16_state(batch_norm=True)
    _check_vgg16_mapping(build_arch("dim", batch_norm=True), tv, from_torchvision_vgg16(tv), batch_norm=True)


def _check_vgg16_mapping(model: nn.Module, tv: dict, mapped: dict, batch_norm: bool) -> None:
    """Shapes fit, only non-ImageNet parts stay unloaded, RGB filters copied, trimap filter zero."""
    expected = model.state_dict()
    assert len(mapped) == (26 + 65 if batch_norm else 26)
    assert all(mapped[k].shape == expected[k].shape for k in mapped)
    result = model.load_state_dict(mapped, strict=False)
    assert not result.unexpected_keys
    assert {k.split(".")[1] for k in result.missing_keys if k.startswith("encoder.")} <= {"conv6", "bn"}
    first = mapped["encoder.layer1.0.weight"]
    assert torch.equal(first[:, :3], tv["features.0.weight"]) and not first[:, 3].any()
    last = "encoder.layer5.6.weight" if batch_norm else "encoder.layer5.4.weight"
    assert torch.equal(mapped[last], tv["features.40.weight" if batch_norm else "features.28.weight"])


# torchvision MobileNetV2 inverted residuals: (expand ratio, input, output) per block, features.1 … 17.
_MOBILENET_V2_BLOCKS = [(1, 32, 16)] + [
    (6, c_in if b == 0 else c_out, c_out)
    for c_in, c_out, n in ((16, 24, 2), (24, 32, 3), (32, 64, 4), (64, 96, 3), (96, 160, 3), (160, 320, 1))
    for b in range(n)
]


def _bn(prefix: str, c: int) -> dict[str, torch.Tensor]:
    out = {f"{prefix}.{name}": torch.rand(c) for name in ("weight", "bias", "running_mean", "running_var")}
    return out | {f"{prefix}.num_batches_tracked": torch.tensor(9)}


def _torchvision_mobilenet_v2_state() -> dict[str, torch.Tensor]:
    """torchvision ``mobilenet_v2`` key layout (``Conv2dNormActivation`` blocks) with random tensors."""
    state = {"features.0.0.weight": torch.randn(32, 3, 3, 3)} | _bn("features.0.1", 32)
    for i, (t, c_in, c_out) in enumerate(_MOBILENET_V2_BLOCKS, start=1):
        p, hidden = f"features.{i}.conv", c_in * t
        if t == 1:
            state |= {f"{p}.0.0.weight": torch.randn(c_in, 1, 3, 3)} | _bn(f"{p}.0.1", c_in)
            state |= {f"{p}.1.weight": torch.randn(c_out, c_in, 1, 1)} | _bn(f"{p}.2", c_out)
        else:
            state |= {f"{p}.0.0.weight": torch.randn(hidden, c_in, 1, 1)} | _bn(f"{p}.0.1", hidden)
            state |= {f"{p}.1.0.weight": torch.randn(hidden, 1, 3, 3)} | _bn(f"{p}.1.1", hidden)
            state |= {f"{p}.2.weight": torch.randn(c_out, hidden, 1, 1)} | _bn(f"{p}.3", c_out)
    state |= {"features.18.0.weight": torch.randn(1280, 320, 1, 1)} | _bn("features.18.1", 1280)
    return state | {"classifier.1.weight": torch.randn(1000, 1280), "classifier.1.bias": torch.randn(1000)}


def test_from_torchvision_mobilenet_v2(zoo_nets):
    torch.manual_seed(5)
    tv = _torchvision_mobilenet_v2_state()
    mapped = from_torchvision_mobilenet_v2(tv)
    with _restored(zoo_nets["indexnet"]) as model:
        _check_mobilenet_v2_mapping(model, tv, mapped)


def _check_mobilenet_v2_mapping(model: nn.Module, tv: dict, mapped: dict) -> None:
    expected = model.state_dict()
    assert set(mapped) == {k for k in expected if k.startswith("encoder.layers.")}
    assert all(mapped[k].shape == expected[k].shape for k in mapped)
    # One tensor of each kind of block part, by hand.
    assert torch.equal(mapped["encoder.layers.1.0.conv.pointwise_conv.conv.weight"], tv["features.1.conv.1.weight"])
    assert torch.equal(mapped["encoder.layers.4.3.conv.1.depthwise_conv.bn.running_var"],
                       tv["features.10.conv.1.1.running_var"])
    assert torch.equal(mapped["encoder.layers.7.0.conv.1.pointwise_conv.bn.bias"], tv["features.17.conv.3.bias"])
    first = mapped["encoder.layers.0.conv.weight"]
    assert torch.equal(first[:, :3], tv["features.0.0.weight"]) and not first[:, 3].any()
    result = model.load_state_dict(mapped, strict=False)
    assert not result.unexpected_keys
    assert not any(k.startswith("encoder.layers.") for k in result.missing_keys)
