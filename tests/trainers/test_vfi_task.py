"""The ``vfi`` task: evaluation padding and crop-back on sizes that are not the networks'
multiples, scoring, preview, the blend baseline, one training step, and the cross-checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trainers.archs.cain import CAINNet
from trainers.archs.flavr import FLAVRNet
from trainers.tasks import get_task
from trainers.tasks.vfi import VFIConfig, VFITask, centred_padding, synthesise

TINY_CAIN = dict(num_block_groups=1, num_block_layers=1, depth=1, reduction=4, padding=3)
TINY_FLAVR = dict(num_input_frames=4, num_output_frames=1, mid_channels_list=[16, 8, 8, 4],
                  encoder_layers_list=[1, 1, 1, 1])


def _task(**data) -> VFITask:
    return VFITask(VFIConfig(data=data) if data else VFIConfig())


def test_vfi_is_registered():
    assert get_task("vfi") is VFITask


@pytest.mark.parametrize("hw", [(13, 21), (8, 8), (17, 9)])
def test_cain_evaluates_with_its_own_padding_and_keeps_the_size(hw):
    torch.manual_seed(0)
    net = CAINNet(**TINY_CAIN).eval()
    x = torch.rand(1, 2, 3, *hw)
    with torch.no_grad():
        out = synthesise(net, x)
        assert out.shape == (1, 3, *hw)
        torch.testing.assert_close(out, net(x, padding_flag=True))
    if hw[0] % 2:
        with pytest.raises(ValueError, match="divisible"):
            net(x)  # what training-mode forward would say: the task's padding is what makes it work


@pytest.mark.parametrize("hw", [(13, 21), (16, 24), (9, 30)])
def test_flavr_is_padded_to_8_centred_by_reflection_and_cropped_back(hw):
    torch.manual_seed(0)
    net = FLAVRNet(**TINY_FLAVR).eval()
    x = torch.rand(2, 4, 3, *hw)
    with torch.no_grad():
        out = synthesise(net, x)
        left, right, top, bottom = centred_padding(*hw, 8)
        padded = F.pad(x.flatten(0, 1), (left, right, top, bottom), mode="reflect").unflatten(0, (2, 4))
        ref = net(padded)[..., top:top + hw[0], left:left + hw[1]]
    assert out.shape == (2, 3, *hw)
    torch.testing.assert_close(out, ref)
    assert centred_padding(13, 21, 8) == (1, 2, 1, 2)  # the odd pixel right / down


def test_predict_clamps_and_score_follows_mmedits_rounded_rgb_metrics():
    task = _task()
    gt = torch.rand(1, 3, 12, 12)

    class Echo(torch.nn.Module):  # "synthesises" the GT pushed out of range
        def forward(self, inputs):
            return gt * 1.4 - 0.2

    batch = {"inputs": torch.rand(1, 2, 3, 12, 12), "gt": gt}
    pred = task.predict({"generator": Echo()}, batch)
    assert pred.min() >= 0 and pred.max() <= 1
    assert task.score(gt.clone(), batch)["psnr"] == float("inf")
    nearly = (gt * 255).round() / 255 + 0.4 / 255  # rounds back to the same uint8 image
    assert task.score(nearly.clamp(0, 1), batch)["ssim"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="does not match the GT"):
        task.score(torch.rand(1, 3, 10, 12), batch)


def test_preview_and_blend_baseline_use_the_frames_around_the_target():
    task = _task(input_frames=[0, 2, 4, 6], target_frame=3)
    inputs = torch.stack([torch.full((3, 4, 5), v) for v in (0.1, 0.2, 0.6, 0.9)])[None]
    batch = {"inputs": inputs, "gt": torch.full((1, 3, 4, 5), 0.4)}
    pic = task.preview(torch.full((1, 3, 4, 5), 0.5), batch)
    assert pic.shape == (4, 20, 3) and pic.dtype == np.uint8
    assert pic[0, ::5, 0].tolist() == [51, 128, 153, 102]  # frame 0 | synthesised | frame 1 | GT
    name, blend = task.baseline(batch)
    assert name == "blend" and torch.allclose(blend, torch.full((1, 3, 4, 5), 0.4))


def test_one_training_step_moves_the_generator():
    torch.manual_seed(0)
    task, net = _task(), CAINNet(**TINY_CAIN)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in net.parameters()]
    batch = {"inputs": torch.rand(2, 2, 3, 16, 16), "gt": torch.rand(2, 3, 16, 16)}
    logs = task.train_step({"generator": net}, {"generator": opt}, batch, 0)
    assert set(logs) == {"loss/l1"} and torch.isfinite(logs["loss/l1"])
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_check_nets_ties_the_input_frames_to_the_network():
    tri, sep = VFIConfig(), VFIConfig(data={"input_frames": [0, 2, 4, 6], "target_frame": 3})
    VFITask.check_nets(tri, {"generator": {"name": "cain"}})
    VFITask.check_nets(sep, {"generator": {"name": "flavr", "num_input_frames": 4}})
    with pytest.raises(ValueError, match="cain takes 2 input frames, the data gives 4"):
        VFITask.check_nets(sep, {"generator": {"name": "cain"}})
    with pytest.raises(ValueError, match="flavr takes 4 input frames, the data gives 2"):
        VFITask.check_nets(tri, {"generator": {"name": "flavr", "num_input_frames": 4}})
    with pytest.raises(ValueError, match="num_output_frames"):
        VFITask.check_nets(sep, {"generator": {"name": "flavr", "num_input_frames": 4, "num_output_frames": 2}})


def test_inference_io_and_window_shape_check():
    task = _task()
    window = np.random.default_rng(0).integers(0, 256, (2, 9, 11, 3), dtype=np.uint8)
    batch = task.infer_batch({"video": window})
    assert batch["inputs"].shape == (1, 2, 3, 9, 11)
    torch.manual_seed(0)
    mid = task.interpolate({"generator": CAINNet(**TINY_CAIN).eval()}, batch["inputs"])
    out = task.infer_output(mid, batch)
    assert out.shape == (1, 9, 11, 3) and out.dtype == np.uint8
    with pytest.raises(ValueError, match=r"must be \[B, 2, 3, H, W\]"):
        task.interpolate({"generator": None}, torch.rand(1, 3, 3, 9, 11))
