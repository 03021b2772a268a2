"""The LIIF task: normalised L1 step, multi-scale packed prediction and scores, preview,
inference sizes, config errors."""

import numpy as np
import pytest
import torch

from trainers.archs import build_arch
from trainers.samplers.liif import LIIFDataConfig, LIIFSampler, make_coord
from trainers.tasks.liif import LIIFConfig, LIIFTask
from arch_helpers import one_thread  # noqa: F401 (the module's fixture)

TINY_NET = dict(encoder=dict(type="EDSR", mid_channels=8, num_blocks=1),
                imnet=dict(type="MLPRefiner", out_dim=3, hidden_list=[16]), eval_bsize=50)


def _cfg(**kw) -> LIIFConfig:
    base = dict(data=dict(lq_patch=6, sample_quantity=20), norm=dict(rgb_mean=[0.4, 0.5, 0.6], rgb_std=[0.5, 0.5, 0.5]),
                eval=dict(scales=[4, 2]))
    return LIIFConfig.model_validate(base | kw)


pytestmark = pytest.mark.usefixtures("one_thread")  # one intra-op thread (arch_helpers)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return build_arch("liif_edsr", **TINY_NET)


def test_train_step_is_l1_in_normalised_space(net):
    task = LIIFTask(_cfg())
    rng = np.random.default_rng(0)
    raw = {"lq": rng.integers(0, 256, (2, 6, 6, 3), dtype=np.uint8),
           "gt": rng.integers(0, 256, (2, 20, 3), dtype=np.uint8),
           "coord": rng.uniform(-1, 1, (2, 20, 2)).astype(np.float32), "cell": np.full((2, 20, 2), 0.1, np.float32)}
    batch = task.device_stage(raw)
    assert batch["gt"].dtype == torch.float32 and batch["lq"].shape == (2, 3, 6, 6)
    mean, std = torch.tensor([0.4, 0.5, 0.6]), 0.5
    with torch.no_grad():
        pred = net((batch["lq"] - mean.view(1, 3, 1, 1)) / std, batch["coord"], batch["cell"])
        want = (pred - (batch["gt"] - mean) / std).abs().mean()
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    logs = task.train_step({"generator": net}, {"generator": opt}, batch, 0)
    torch.testing.assert_close(logs["loss/l1"], want)


def test_multi_scale_prediction_scores_and_preview(net):
    cfg = _cfg()
    task, sampler = LIIFTask(cfg), LIIFSampler(cfg.data, cfg.eval.scales)
    import cv2

    img = np.random.default_rng(2).integers(0, 256, (27, 21, 3), dtype=np.uint8)
    sample = sampler.val({"gt.png": cv2.imencode(".png", img)[1].tobytes(), "__key__": "k"}, None)
    from trainers.tasks.common import to_batch

    batch = to_batch({k: v[None] for k, v in sample.items()})
    pred = task.predict({"generator": net.eval()}, batch)
    assert pred.shape == (1, 2, 3, 27, 21)
    assert pred[0, 0, :, 24:].abs().sum() == 0  # x4: 6x5 LQ -> 24x20 output, zeros beyond
    direct = task.decode(net, batch["lq_x2"], (26, 20))
    torch.testing.assert_close(pred[0, 1, :, :26, :20], direct[0])
    scores = task.score(pred, batch)
    assert set(scores) == {"psnr_x4", "ssim_x4", "psnr_x2", "ssim_x2"} and all(np.isfinite(list(scores.values())))
    assert set(scores) <= set(LIIFTask.metrics) and next(iter(LIIFTask.metrics)) == "psnr_x4"
    name, base = task.baseline(batch)
    assert name == "bicubic" and base.shape == pred.shape
    assert task.preview(pred, batch).shape == (27, 21 * 3, 3)


def test_chunked_decode_equals_the_generators_test_mode(net):
    """The task makes each chunk's coordinates itself (never the whole grid): the same output as
    the generator's own test mode on the full ``make_coord`` grid, chunked or not."""
    task = LIIFTask(_cfg())
    lq, (h, w) = torch.rand(1, 3, 5, 4), (17, 14)
    coord = torch.from_numpy(make_coord((h, w)))[None]
    cell = torch.ones_like(coord) * torch.tensor([2 / h, 2 / w])
    with torch.no_grad():
        ref = net(task._norm_image(lq), coord, cell, test_mode=True)
    ref = task._denorm_rgb(ref).clamp(0, 1).view(1, h, w, 3).permute(0, 3, 1, 2)
    chunked = task.decode(net, lq, (h, w))  # eval_bsize 50 < 238 queries
    net.eval_bsize = None
    try:
        whole = task.decode(net, lq, (h, w))
    finally:
        net.eval_bsize = 50
    torch.testing.assert_close(chunked, ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(whole, ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("infer, want", [(dict(scale=3.5), (35, 28)), (dict(scale=1), (10, 8)),
                                         (dict(size=[30, 41]), (41, 30))])
def test_infer_output_size(net, infer, want):
    task = LIIFTask(_cfg(infer=infer))
    batch = task.infer_batch({"image": np.zeros((10, 8, 3), np.uint8)})
    out = task.infer_output(task.predict({"generator": net.eval()}, batch), batch)
    assert out.shape == (*want, 3) and out.dtype == np.uint8


@pytest.mark.parametrize("kw, msg", [(dict(eval=dict(scales=[5])), "scales"), (dict(infer=dict(scale=0.5)), "scale"),
                                     (dict(infer=dict(size=[0, 4])), "positive"),
                                     (dict(norm=dict(rgb_std=[1, 0, 1])), "std")])
def test_bad_task_config(kw, msg):
    with pytest.raises(ValueError, match=msg):
        _cfg(**kw)


def test_size_below_input_is_one_line_error():
    task = LIIFTask(_cfg(infer=dict(size=[4, 4])))
    with pytest.raises(ValueError, match="smaller than the 8x10 input"):
        task.infer_batch({"image": np.zeros((10, 8, 3), np.uint8)})


def test_generator_must_be_a_liif_arch():
    with pytest.raises(ValueError, match="nets.generator.name"):
        LIIFTask.check_nets(_cfg(), {"generator": {"name": "edsr"}})
    assert LIIFDataConfig().sample_quantity == 2304
