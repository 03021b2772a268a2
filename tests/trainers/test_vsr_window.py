"""The sliding-window VSR family on constructed data: frame selection against mmedit's goldens
(training windows, the four edge paddings), the window sampler's samples and member lists, the
task's per-frame restoration from padded windows, TDAN's normalisation and aligned-LR loss, and
the optimizer's ``train_only_until_step`` (EDVR-TSA's fusion-only start)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torch import nn

from preprocessing.schema import META, frame_member
from test_vsr_sampler import LegacyDraws, clip, coordinate_clip
from trainers.samplers.vsr import (PADDINGS, VSRWindowDataConfig, VSRWindowSampler, centre_window, padded_indices,
                                   window_indices)
from trainers.tasks.vsr_window import AlignedLossConfig, VSRWindowConfig, VSRWindowTask, aligned_loss

GOLDEN = json.loads((Path(__file__).resolve().parents[1] / "data/golden/vsr_window.json").read_text())


@pytest.mark.parametrize("case", sorted(GOLDEN["padding"]))
def test_padded_windows_match_mmedit(case):
    mode, total, num = case.split("/")
    got = [padded_indices(t, int(total), int(num), mode) for t in range(int(total))]
    assert got == GOLDEN["padding"][case]


def test_training_windows_match_mmedit_draws_for_a_given_key():
    for case, want in GOLDEN["random"].items():
        seed, total, num, intervals, key = case.split("/")
        got = window_indices(int(total), int(num), [int(i) for i in intervals.split(",")], LegacyDraws(int(seed)),
                             centre=int(key))
        assert got == want, case


def test_training_window_centres_cover_exactly_the_fitting_frames():
    rng = np.random.default_rng(0)
    centres = {window_indices(10, 5, [1], rng)[2] for _ in range(400)}
    assert centres == set(range(2, 8))
    wide = [window_indices(10, 5, [2], rng) for _ in range(100)]
    assert {w[2] for w in wide} == {4, 5} and all(np.diff(w).tolist() == [2] * 4 for w in wide)
    with pytest.raises(ValueError, match=r"^clip c: 4 frames are too few for a window of 5 frames at interval 1$"):
        window_indices(4, 5, [1], rng, "c")


def test_centre_window_is_vimeo90k_im2_to_im6():
    assert centre_window(7, 5) == [1, 2, 3, 4, 5] and centre_window(7, 7) == list(range(7))
    with pytest.raises(ValueError, match="too few"):
        centre_window(3, 5)


def test_padding_refuses_a_clip_too_short_and_unknown_modes():
    for mode in ("reflection", "reflection_circle", "circle"):
        with pytest.raises(ValueError, match=rf"^a clip of 1 frames is too short for a window of 5 frames with {mode}"):
            padded_indices(0, 1, 5, mode)
    assert padded_indices(0, 1, 5, "replicate") == [0] * 5  # replicate pads any length
    with pytest.raises(ValueError, match="padding must be one of"):
        padded_indices(0, 5, 5, "zeros")


def _paired_clip(t=10, h=8, w=8, scale=4):
    gt = coordinate_clip(t, h * scale, w * scale)
    return gt, gt[:, ::scale, ::scale].copy()


def test_sampler_returns_the_window_and_its_centre_gt_and_reads_only_those_frames():
    gt, lq = _paired_clip()
    members = clip(gt, lq)
    cfg = VSRWindowDataConfig(gt_size=16, num_input_frames=5, interval_list=[1, 2], use_hflip=False, use_rot=False,
                              degradation={"preset": "paired"})
    sampler = VSRWindowSampler(cfg)
    for seed in range(8):
        wanted = sampler.train_members(members, np.random.default_rng(seed))
        out = sampler.train(members, np.random.default_rng(seed))
        lq_times = [int(f[0, 0, 2]) // 10 for f in out["lq"]]
        assert out["lq"].shape == (5, 4, 4, 3) and out["gt"].shape == (16, 16, 3)
        assert int(out["gt"][0, 0, 2]) // 10 == lq_times[2]  # the GT is the window's centre frame
        step = lq_times[1] - lq_times[0]
        assert step in (1, 2) and np.diff(lq_times).tolist() == [step] * 4
        assert wanted == [META, *(frame_member("lq", t) for t in lq_times), frame_member("gt", lq_times[2])]
        y, x = int(out["lq"][0, 0, 0, 0]), int(out["lq"][0, 0, 0, 1])  # the LQ crop's corner, on the GT grid
        assert (int(out["gt"][0, 0, 0]), int(out["gt"][0, 0, 1])) == (y, x)
        partial = {k: v for k, v in members.items() if k in wanted or k == "__key__"}
        assert all(np.array_equal(a, b) for a, b in zip(sampler.train(partial, np.random.default_rng(seed)).values(),
                                                         out.values()))


def test_centre_window_sampler_with_degradation_from_gt():
    gt, _ = _paired_clip(t=7)
    cfg = VSRWindowDataConfig(gt_size=16, num_input_frames=5, window="centre", degradation={"preset": "bicubic"})
    sampler = VSRWindowSampler(cfg)
    members = clip(gt)
    assert sampler.train_members(members, np.random.default_rng(0)) == [META, *(frame_member("gt", t) for t in range(1, 6))]
    out = sampler.train(members, np.random.default_rng(0))
    assert out["lq"].shape == (5, 4, 4, 3) and out["gt"].shape == (16, 16, 3)
    assert int(out["gt"][..., 2].max()) == 30  # frame 3 (B = 10 t), whatever the flips


def test_window_config_refuses_what_a_window_cannot_be():
    for bad, match in (({"num_input_frames": 4}, "odd"), ({"mirror": True}, "mirror"),
                       ({"degradation": {"preset": "realbasicvsr"}}, "clip preset"),
                       ({"window": "centre", "interval_list": [1, 2]}, "interval_list")):
        with pytest.raises(ValidationError, match=match):
            VSRWindowDataConfig(**bad)


class PickFrame(nn.Module):
    """A fake window network: returns window frame ``k`` upsampled x4 (nearest), so an output
    says which clip frame sat at window position ``k``."""

    def __init__(self, k: int, tdan: bool = False):
        super().__init__()
        self.k, self.tdan, self.seen = k, tdan, []
        self.w = nn.Parameter(torch.ones(()))

    def forward(self, x):
        self.seen.append(x.detach().clone())
        out = self.w * x[:, self.k].repeat_interleave(4, -1).repeat_interleave(4, -2)
        return (out, x) if self.tdan else out


def _clip_tensor(t=7, h=4, w=4):
    return (torch.arange(t, dtype=torch.float32) / 20).view(1, t, 1, 1, 1).expand(2, t, 3, h, w).clone()


@pytest.mark.parametrize("padding", PADDINGS)
def test_every_frame_is_restored_from_its_padded_window(padding):
    cfg = VSRWindowConfig(eval={"padding": padding, "window_batch": 3})
    task = VSRWindowTask(cfg)
    lq = _clip_tensor()
    for k in range(5):
        out = task.restore_clip({"generator": PickFrame(k)}, {"lq": lq})
        assert out.shape == (2, 7, 3, 16, 16)
        got = (out[:, :, 0, 0, 0] * 20).round().long()
        want = [padded_indices(t, 7, 5, padding)[k] for t in range(7)]
        assert got[0].tolist() == want and got[1].tolist() == want
    centre = VSRWindowTask(VSRWindowConfig(eval={"padding": padding, "frames": "centre"}))
    assert centre.predict({"generator": PickFrame(2)}, {"lq": lq}).shape == (2, 1, 3, 16, 16)


def test_a_clip_too_short_for_the_window_is_a_one_line_error():
    task = VSRWindowTask(VSRWindowConfig(eval={"padding": "reflection"}))
    with pytest.raises(ValueError, match=r"^a clip of 2 frames is too short for a window of 5 frames with reflection"):
        task.restore_clip({"generator": PickFrame(0)}, {"lq": _clip_tensor(t=2)})


def test_tdan_normalisation_shifts_input_and_output_by_half():
    task = VSRWindowTask(VSRWindowConfig(normalize="tdan", data={"num_input_frames": 5}))
    net = PickFrame(2, tdan=True)
    lq = _clip_tensor(t=5)
    out = task.predict({"generator": net}, {"lq": lq})
    windows = net.seen[0].view(2, 5, 5, 3, 4, 4)  # [B, frame, window position, ...]
    for t in range(5):
        assert torch.allclose(windows[:, t], lq[:, padded_indices(t, 5, 5, "reflection_circle")] - 0.5)
    assert torch.allclose(out[:, 2, :, 0, 0], lq[:, 2, :, 0, 0])  # (x - 0.5) + 0.5 on the centre frame
    plain = VSRWindowTask(VSRWindowConfig())
    assert torch.allclose(plain.predict({"generator": PickFrame(2)}, {"lq": lq}), out)


def test_aligned_loss_is_weighted_mse_against_the_repeated_centre_frame():
    window = torch.rand(2, 5, 3, 4, 4)
    cfg = AlignedLossConfig(name="mse", weight=0.25)
    same = window[:, 2:3].expand(-1, 5, -1, -1, -1)
    assert aligned_loss(same, window, cfg).item() == 0.0
    shifted = same + 0.1  # every aligned frame off by 0.1: MSE 0.01, times the weight
    assert aligned_loss(shifted, window, cfg).item() == pytest.approx(0.25 * 0.01, rel=1e-5)


def test_tdan_train_step_logs_both_losses_and_the_shift_cancels():
    task = VSRWindowTask(VSRWindowConfig(normalize="tdan", pixel={"name": "mse"}, aligned={"weight": 0.25}))
    net = PickFrame(2, tdan=True)
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    lq = _clip_tensor(t=5)
    gt = lq[:, 2].repeat_interleave(4, -1).repeat_interleave(4, -2)
    logs = task.train_step({"generator": net}, {"generator": opt}, {"lq": lq, "gt": gt}, 0)
    # w = 1: output (x_c - 0.5) + 0.5 equals the GT; aligned = the shifted window itself
    want_aligned = 0.25 * ((lq - lq[:, 2:3]) ** 2).mean()
    assert logs["loss/mse"].item() == pytest.approx(0.0, abs=1e-12)
    assert logs["loss/aligned"].item() == pytest.approx(want_aligned.item(), rel=1e-5)
    with pytest.raises(ValueError, match="returns no aligned LR frames"):
        task.train_step({"generator": PickFrame(2)}, {"generator": opt}, {"lq": lq, "gt": gt}, 0)


def test_edvr_pixel_loss_sums():
    task = VSRWindowTask(VSRWindowConfig())  # charbonnier, reduction sum (EDVR's zoo configs)
    net = PickFrame(2)
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    lq = _clip_tensor(t=5)
    gt = torch.zeros(2, 3, 16, 16)
    logs = task.train_step({"generator": net}, {"generator": opt}, {"lq": lq, "gt": gt}, 0)
    want = torch.sqrt((lq[:, 2].repeat_interleave(4, -1).repeat_interleave(4, -2)) ** 2 + 1e-12).sum()
    assert logs["loss/charbonnier"].item() == pytest.approx(want.item(), rel=1e-5)


def test_check_nets_ties_the_window_to_the_network():
    cfg = VSRWindowConfig(data={"num_input_frames": 7})
    with pytest.raises(ValueError, match="num_input_frames 7 != nets.generator.num_frames 5"):
        VSRWindowTask.check_nets(cfg, {"generator": {"name": "edvr", "num_frames": 5}})
    with pytest.raises(ValueError, match="center_frame_idx 2: the window's centre is 3"):
        VSRWindowTask.check_nets(cfg, {"generator": {"name": "edvr", "num_frames": 7, "center_frame_idx": 2}})
    with pytest.raises(ValueError, match="tdan takes 5-frame windows"):
        VSRWindowTask.check_nets(cfg, {"generator": {"name": "tdan"}})
    with pytest.raises(ValueError, match="only tdan returns aligned"):
        VSRWindowTask.check_nets(VSRWindowConfig(aligned={}), {"generator": {"name": "edvr"}})


def test_train_only_until_step_freezes_everything_but_the_prefix():
    from trainers.optim import add_step_hooks

    net = nn.Sequential()
    net.add_module("conv_first", nn.Linear(2, 2))
    net.add_module("fusion", nn.Linear(2, 2))
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    step = {"now": 0}
    add_step_hooks(opt, net, {}, None, lambda: step["now"], train_only_until_step={"fusion": 2})
    before = {k: v.clone() for k, v in net.state_dict().items()}
    for now in range(3):
        step["now"] = now
        opt.zero_grad()
        net(torch.ones(1, 2)).sum().backward()
        opt.step()
        moved = {k.split(".")[0] for k, v in net.state_dict().items() if not torch.equal(v, before[k])}
        assert moved == ({"fusion"} if now < 2 else {"fusion", "conv_first"}), now
    assert int(opt.state[net.conv_first.weight]["step"]) == 1 and int(opt.state[net.fusion.weight]["step"]) == 3
    with pytest.raises(ValueError, match="train_only_until_step: 'tsa' matches no parameter"):
        add_step_hooks(opt, net, {}, None, lambda: 0, train_only_until_step={"tsa": 5})


def test_tof_input_is_the_matlab_bicubic_upsampled_window():
    from degradations.matlab_resize import imresize
    from trainers.archs import ARCHS

    cfg = VSRWindowConfig(data={"num_input_frames": 7}, upsample_lq=True, eval={"window_batch": 4})
    task = VSRWindowTask(cfg)
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (7, 4, 4, 3), dtype=np.uint8)
    lq = torch.from_numpy(frames).permute(0, 3, 1, 2)[None].float() / 255
    up = task.net_input(lq)
    want = np.stack([imresize(f, scale=4) for f in frames])
    assert up.shape == (1, 7, 3, 16, 16)
    assert np.array_equal((up[0].permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8), want)
    net = ARCHS["tof"](adapt_official_weights=True).eval()
    out = task.restore_clip({"generator": net}, {"lq": lq})
    assert out.shape == (1, 7, 3, 16, 16) and torch.isfinite(out).all()
    VSRWindowTask.check_nets(cfg, {"generator": {"name": "tof"}})
    with pytest.raises(ValueError, match="task.upsample_lq: tof takes LQ frames already upsampled"):
        VSRWindowTask.check_nets(VSRWindowConfig(data={"num_input_frames": 7}), {"generator": {"name": "tof"}})
    with pytest.raises(ValueError, match="tof takes 7-frame windows"):
        VSRWindowTask.check_nets(VSRWindowConfig(upsample_lq=True), {"generator": {"name": "tof"}})
    with pytest.raises(ValueError, match="edvr upsamples x4 itself"):
        VSRWindowTask.check_nets(VSRWindowConfig(upsample_lq=True), {"generator": {"name": "edvr"}})


def test_preview_is_the_middle_frame_window_output_and_gt():
    task = VSRWindowTask(VSRWindowConfig(eval={"padding": "reflection"}))
    lq = _clip_tensor(t=6)
    gt = lq.repeat_interleave(4, -1).repeat_interleave(4, -2)
    pred = task.predict({"generator": PickFrame(2)}, {"lq": lq})
    img = task.preview(pred, {"lq": lq, "gt": gt})
    assert img.shape == (16, 7 * 16, 3)
    panels = [int(img[0, 16 * k, 0]) for k in range(7)]  # frame t -> 255 t / 20
    want = [round(255 * f / 20) for f in (*padded_indices(3, 6, 5, "reflection"), 3, 3)]
    assert panels == want
