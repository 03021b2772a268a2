"""``dicnet`` and ``light_cnn`` against the DIC / DIC-GAN zoo key maps, strict zoo loading, the
LightCNN feature loss's weight sources, and forward/backward at tiny sizes.

The forward pass itself is checked against mmedit in test_arch_parity.py (archs_dic.npz).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import torch

from trainers.archs import build_arch
from trainers.archs.dicnet import FIVE_PARTS_68, reduce_to_five_heatmaps
from trainers.checkpoint_io import extract_net_state, load_strict
from trainers.losses.light_cnn import LightCNNFeatureLoss, load_light_cnn_feature
from arch_helpers import one_thread  # noqa: F401 (the module's fixture)

KEY_DIR = Path(__file__).resolve().parents[1] / "data" / "mmedit_checkpoint_keys"
CONFIGS = ("dic_x8c48b6_g4_150k_CelebAHQ", "dic_gan_x8c48b6_g4_500k_CelebAHQ")
TINY = dict(in_channels=3, out_channels=3, mid_channels=8, num_blocks=2, hg_mid_channels=16, num_steps=2,
            num_fusion_blocks=1)


pytestmark = pytest.mark.usefixtures("one_thread")  # one intra-op thread (arch_helpers)


@functools.cache
def _key_map(config: str) -> dict:
    return json.loads((KEY_DIR / f"{config}.json").read_text())


def _shapes(module: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in module.state_dict().items()}


@pytest.fixture(scope="module")
def zoo_dicnet() -> torch.nn.Module:
    return build_arch("dicnet", **_key_map(CONFIGS[0])["generator"]["kwargs"])


@pytest.mark.parametrize("config", CONFIGS)
def test_dicnet_matches_the_zoo_key_map(config, zoo_dicnet):
    ref = _key_map(config)["generator"]
    assert ref["kwargs"] == _key_map(CONFIGS[0])["generator"]["kwargs"]  # one module serves both
    assert _shapes(zoo_dicnet) == ref["keys"]
    assert sum(p.numel() for p in zoo_dicnet.parameters()) == ref["num_params"] == 21_803_849


def test_light_cnn_matches_the_zoo_key_map_and_the_feature_loss_keys():
    ref = _key_map(CONFIGS[1])
    disc = build_arch("light_cnn", **ref["discriminator"]["kwargs"])
    assert _shapes(disc) == ref["discriminator"]["keys"]
    assert sum(p.numel() for p in disc.parameters()) == ref["discriminator"]["num_params"]
    feature = load_light_cnn_feature(None, field="f", allow_random_init=True)
    assert {"model." + k: v for k, v in _shapes(feature).items()} == ref["other_modules"]["feature_loss"]["keys"]


def _fake_zoo_checkpoint(config: str) -> dict:
    """Random tensors of every key of the zoo checkpoint (all its modules), mmcv layout."""
    ref = _key_map(config)
    state = {"generator." + k: torch.randn(s) for k, s in ref["generator"]["keys"].items()}
    if ref.get("discriminator"):
        state |= {"discriminator." + k: torch.randn(s) for k, s in ref["discriminator"]["keys"].items()}
    for mod in ref["other_modules"].values():
        state |= {mod["checkpoint_prefix"] + k: torch.randn(s) for k, s in mod["keys"].items()}
    state["step_counter"] = torch.zeros(1)
    assert len(state) == ref["full_model_num_state_dict_keys"]
    return {"meta": {}, "state_dict": state}


@pytest.mark.parametrize("config", CONFIGS)
def test_zoo_checkpoints_load_strictly(config, zoo_dicnet):
    ckpt = _fake_zoo_checkpoint(config)
    state, source = extract_net_state(ckpt, "generator")
    load_strict(zoo_dicnet, state)
    assert source == "zoo generator"
    assert torch.equal(zoo_dicnet.conv_last[2].weight, ckpt["state_dict"]["generator.conv_last.2.weight"])
    if config == CONFIGS[1]:
        disc = build_arch("light_cnn", in_channels=3)
        load_strict(disc, extract_net_state(ckpt, "discriminator")[0])


def test_feature_loss_reads_the_extractor_from_a_dic_gan_checkpoint_or_a_bare_file(tmp_path):
    ckpt = _fake_zoo_checkpoint(CONFIGS[1])
    torch.save(ckpt, tmp_path / "dic_gan.pth")
    net = load_light_cnn_feature(str(tmp_path / "dic_gan.pth"), field="task.feature.weights")
    want = ckpt["state_dict"]["feature_loss.model.features.9.filter.weight"]
    assert torch.equal(net.features[9].filter.weight, want)
    assert not any(p.requires_grad for p in net.parameters()) and not net.train().training
    torch.save({"state_dict": {"features." + k.split("features.", 1)[1]: v for k, v in ckpt["state_dict"].items()
                               if k.startswith("feature_loss.")}}, tmp_path / "light_cnn_feature.pth")
    again = load_light_cnn_feature(str(tmp_path / "light_cnn_feature.pth"), field="f")
    assert torch.equal(again.features[9].filter.weight, want)


def test_feature_loss_weights_errors_are_one_line(tmp_path):
    with pytest.raises(ValueError, match=r"^task.feature.weights: not set") as err:
        LightCNNFeatureLoss(None, field="task.feature.weights")
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=r"^w: checkpoint not found"):
        LightCNNFeatureLoss(str(tmp_path / "missing.pth"), field="w")
    torch.save({"state_dict": {"generator.x": torch.zeros(1)}}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match=r"^w: .*no LightCNN 'features"):
        LightCNNFeatureLoss(str(tmp_path / "other.pth"), field="w")


def test_feature_loss_is_weighted_l1_of_features_with_gradients_to_pred_only():
    torch.manual_seed(0)
    loss_fn = LightCNNFeatureLoss(None, 0.1, "l1", allow_random_init=True)
    pred = torch.rand(1, 3, 32, 32, requires_grad=True)  # the trunk is fully convolutional
    gt = torch.rand(1, 3, 32, 32)
    loss = loss_fn(pred, gt)
    want = 0.1 * (loss_fn.model(pred) - loss_fn.model(gt)).abs().mean()
    torch.testing.assert_close(loss, want)
    loss.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss_fn.parameters())


def test_tiny_dicnet_forward_backward_shapes():
    torch.manual_seed(0)
    net = build_arch("dicnet", **TINY)
    srs, heatmaps = net(torch.rand(1, 3, 16, 16) - 0.45)
    assert [s.shape for s in srs] == [torch.Size([1, 3, 128, 128])] * 2
    assert [h.shape for h in heatmaps] == [torch.Size([1, 68, 32, 32])] * 2
    (srs[-1].abs().mean() + heatmaps[-1].pow(2).mean()).backward()
    assert net.conv_first[0].weight.grad.abs().sum() > 0
    assert net.block.fusion_block.conv_first[0].weight.grad.abs().sum() > 0  # attention path used


def test_dicnet_and_light_cnn_reject_other_sizes_in_one_line():
    with pytest.raises(ValueError, match=r"16x16 inputs .* got 32x32"):
        build_arch("dicnet", **TINY)(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match=r"128x128 faces, got 64x64"):
        build_arch("light_cnn", in_channels=3)(torch.rand(1, 3, 64, 64))


def test_light_cnn_forward_backward():
    disc = build_arch("light_cnn", in_channels=3)
    out = disc(torch.rand(1, 3, 128, 128))
    assert out.shape == (1, 1)
    out.sum().backward()
    assert disc.features[0].filter.weight.grad.abs().sum() > 0


def test_five_heatmaps_sum_each_part_of_the_peak_normalised_68():
    heat = torch.rand(2, 68, 4, 4)
    heat[:, 0] *= 0.01  # a weak map is scaled by 1/0.05, not by its own tiny peak
    five = reduce_to_five_heatmaps(heat, detach=False)
    peak = heat.amax(dim=(2, 3), keepdim=True).clamp_min(0.05)
    for part, (a, b) in enumerate(FIVE_PARTS_68):
        torch.testing.assert_close(five[:, part], (heat[:, a:b] / peak[:, a:b]).sum(1))
    with pytest.raises(ValueError, match="68 or 5 maps"):
        reduce_to_five_heatmaps(torch.rand(1, 7, 4, 4), detach=True)
