"""The video SR family's evaluation conventions on constructed cases (no training): Vimeo-90K-T's
mirror-and-average, per-clip averaging, chunked prediction, the cleaning target, LQ-only clips."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from trainers.metrics import psnr
from trainers.tasks.vsr import VSRConfig, VSRGANConfig, VSRGANTask, VSRTask, cleaning_target, forward_clip, mirrored


class FrameIndex(nn.Module):
    """Output frame t of a clip is the constant t / 100 at 4x the input size (and it records the
    lengths it was called with)."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, lq):
        self.calls.append(lq.shape[1])
        b, t, c, h, w = lq.shape
        idx = torch.arange(t, dtype=torch.float32).view(1, t, 1, 1, 1) / 100
        return idx.expand(b, t, c, 4 * h, 4 * w).clone()


class NearestX4(nn.Module):
    def forward(self, lq):
        return lq.repeat_interleave(4, -2).repeat_interleave(4, -1)


def _task(**eval_cfg) -> VSRTask:
    return VSRTask(VSRConfig.model_validate({"eval": eval_cfg}))


def test_vimeo_mirror_convention_averages_out3_and_out10():
    task = _task(frames="centre_mirror")
    lq = torch.rand(1, 7, 3, 4, 4)
    net = FrameIndex()
    pred = task.predict({"generator": net}, {"lq": lq})
    assert net.calls == [14] and pred.shape == (1, 1, 3, 16, 16)
    assert torch.allclose(pred, torch.full_like(pred, 0.5 * (3 + 10) / 100))
    assert torch.equal(mirrored(lq)[:, 7:], lq.flip(1))
    centre = _task(frames="centre").predict({"generator": FrameIndex()}, {"lq": lq})
    assert torch.allclose(centre, torch.full_like(centre, 3 / 100))


def test_centre_frame_is_scored_against_the_centre_gt():
    task = _task(frames="centre_mirror")
    gt = torch.rand(1, 7, 3, 16, 16)
    pred = gt[:, 3:4].clone()
    assert task.score(pred, {"lq": torch.rand(1, 7, 3, 4, 4), "gt": gt})["psnr"] == float("inf")


def test_a_clip_scores_the_mean_of_its_frames():
    task = _task(round=True)
    rng = np.random.default_rng(0)
    gt = torch.from_numpy(rng.random((1, 3, 3, 16, 16))).float()
    pred = (gt + torch.from_numpy(rng.normal(0, 0.02 * np.arange(1, 4).reshape(1, 3, 1, 1, 1), gt.shape)).float()).clamp(0, 1)
    per_frame = [psnr(np.round(pred[0, t].permute(1, 2, 0).double().numpy() * 255),
                      np.round(gt[0, t].permute(1, 2, 0).double().numpy() * 255)) for t in range(3)]
    assert task.score(pred, {"lq": gt, "gt": gt})["psnr"] == pytest.approx(np.mean(per_frame))
    assert len(set(np.round(per_frame, 3))) == 3  # the frames differ: a mean, not one frame's score


def test_max_seq_len_predicts_in_chunks():
    net = FrameIndex()
    out = forward_clip(net, torch.rand(1, 10, 3, 2, 2), max_seq_len=4)
    assert net.calls == [4, 4, 2] and out.shape == (1, 10, 3, 8, 8)
    assert torch.allclose(out[0, :, 0, 0, 0] * 100, torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0, 1.0]))


def test_cleaning_target_is_the_area_downsampled_gt():
    gt = torch.rand(2, 3, 3, 16, 16)
    want = gt.view(2, 3, 3, 4, 4, 4, 4).mean(dim=(4, 6))
    assert torch.allclose(cleaning_target(gt, 4), want, atol=1e-6)


def test_lq_only_clips_score_niqe_alone_and_psnr_refuses_them():
    lq = torch.rand(1, 2, 3, 32, 32)
    batch = {"lq": lq}
    pred = NearestX4()(lq)
    with pytest.raises(ValueError, match="LQ-only clip"):
        _task().score(pred, batch)
    gan = VSRGANTask(VSRGANConfig.model_validate({"gan": {"weight": 0.05}}))
    scores = gan.score(pred, batch)
    assert set(scores) == {"niqe"} and np.isfinite(scores["niqe"])
    assert gan.preview(pred, batch).shape == (2 * 128, 3 * 128, 3)  # frames 0 and 1: LQ | output | output


def test_preview_is_a_strip_of_first_middle_last_frames():
    task = _task()
    lq, gt = torch.rand(1, 5, 3, 8, 8), torch.rand(1, 5, 3, 32, 32)
    assert task.preview(NearestX4()(lq), {"lq": lq, "gt": gt}).shape == (3 * 32, 3 * 32, 3)


def test_sharpened_gt_needs_the_realbasicvsr_preset():
    with pytest.raises(ValueError, match="needs the realbasicvsr preset"):
        VSRConfig.model_validate({"sharpened_gt_in": ["pixel"]})
