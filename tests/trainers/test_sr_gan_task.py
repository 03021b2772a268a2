"""The GAN SR step without Ray: which networks move when, against which targets, and its scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainers.archs import build_arch
from trainers.metrics import tensor_to_image
from trainers.niqe import niqe
from trainers.tasks.sr_gan import SRGANConfig, SRGANTask

GEN = dict(in_channels=3, out_channels=3, mid_channels=8, num_blocks=1, growth_channels=4, upscale_factor=4)


def _task(**kw) -> SRGANTask:
    cfg = {"data": {"scale": 4, "gt_size": 32, "degradation": {"preset": "bicubic"}},
           "pixel": {"name": "l1", "weight": 1.0},
           "perceptual": {"layer_weights": {"2": 1.0}, "style_weight": 0.0, "norm_img": False,
                          "allow_random_init": True},
           "gan": {"type": "vanilla", "weight": 0.1}, "eval": {"crop_border": 4}, **kw}
    return SRGANTask(SRGANConfig.model_validate(cfg))


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    nets = {"generator": build_arch("rrdbnet", **GEN), "discriminator": build_arch("unet_disc_sn", mid_channels=4)}
    opts = {r: torch.optim.Adam(n.parameters(), lr=1e-3) for r, n in nets.items()}
    batch = {"lq": torch.rand(2, 3, 8, 8), "gt": torch.rand(2, 3, 32, 32)}
    return nets, opts, batch


def _snapshot(net):
    return [p.detach().clone() for p in net.parameters()]


def _moved(before, net) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))


@pytest.mark.parametrize("relativistic", [False, True])
def test_step_updates_both_networks_and_logs_every_term(relativistic):
    task = _task(gan={"type": "vanilla", "weight": 0.1, "relativistic": relativistic})
    nets, opts, batch = _setup()
    g0, d0 = _snapshot(nets["generator"]), _snapshot(nets["discriminator"])
    logs = task.train_step(nets, opts, batch, step=0)
    assert set(logs) == {"loss/g_pix", "loss/g_percep", "loss/g_gan", "loss/d_real", "loss/d_fake",
                         "disc/real_pred", "disc/fake_pred"}
    assert all(torch.isfinite(v) for v in logs.values())
    assert _moved(g0, nets["generator"]) and _moved(d0, nets["discriminator"])
    assert all(p.requires_grad for p in nets["discriminator"].parameters())  # unfrozen after the G step


def test_disc_steps_and_init_steps_hold_the_generator():
    task = _task(disc_steps=2, disc_init_steps=3)
    nets, opts, batch = _setup()
    for step, generator_trains in [(0, False), (1, False), (2, False), (3, False), (4, True), (5, False)]:
        g0, d0 = _snapshot(nets["generator"]), _snapshot(nets["discriminator"])
        logs = task.train_step(nets, opts, batch, step=step)
        assert _moved(g0, nets["generator"]) is generator_trains, step
        assert _moved(d0, nets["discriminator"]), step  # the discriminator trains every step
        assert ("loss/g_gan" in logs) is generator_trains


def test_sharpened_targets_feed_the_chosen_losses(monkeypatch):
    """Real-ESRGAN: pixel and perceptual against gt_usm, the GAN loss against the plain gt."""
    task = _task(data={"scale": 4, "gt_size": 32, "degradation": {"preset": "realesrgan"}},
                 sharpened_gt_in=["pixel", "perceptual"])
    assert task.target == {"pixel": "gt_usm", "perceptual": "gt_usm", "gan": "gt"}
    nets, opts, batch = _setup()
    batch["gt_usm"] = torch.rand(2, 3, 32, 32)
    seen = {}
    import trainers.tasks.sr_gan as module

    real_pixel = module.pixel_loss
    monkeypatch.setattr(module, "pixel_loss", lambda name, p, t: seen.setdefault("pixel", t) is t and real_pixel(name, p, t))
    real_d = nets["discriminator"].forward
    nets["discriminator"].forward = lambda x: seen.setdefault("d_inputs", []).append(x) or real_d(x)
    task.train_step(nets, opts, batch, step=0)
    assert seen["pixel"] is batch["gt_usm"]
    assert any(x is batch["gt"] for x in seen["d_inputs"]) and not any(x is batch["gt_usm"] for x in seen["d_inputs"])


def test_modified_vgg_needs_128_px_patches():
    with pytest.raises(ValueError, match="modified_vgg judges 128 px patches, the GT patch is 32 px"):
        SRGANTask.check_nets(_task().cfg, {"generator": {"upscale_factor": 4}, "discriminator": {"name": "modified_vgg"}})


def test_scores_include_niqe_and_nan_for_an_image_under_one_block():
    task = _task()
    rng = np.random.default_rng(0)
    textured = torch.from_numpy(rng.random((1, 3, 200, 208), dtype=np.float32))
    scores = task.score(textured, {"gt": textured.clone()})
    assert scores["psnr"] == float("inf") and scores["ssim"] == pytest.approx(1.0)
    assert scores["niqe"] == pytest.approx(niqe(tensor_to_image(textured[0], round=True), crop_border=4))
    small = task.score(textured[..., :64, :64], {"gt": textured[..., :64, :64]})
    assert np.isnan(small["niqe"])
    assert SRGANTask.metrics == {"psnr": "max", "ssim": "max", "niqe": "min"}


def test_missing_vgg_weights_is_a_config_error():
    with pytest.raises(ValueError, match=r"vgg_weights: required .*vgg19-dcbb9e9d\.pth"):
        SRGANConfig.model_validate({"perceptual": {"layer_weights": {"34": 1.0}}, "gan": {"weight": 0.1}})
    cfg = SRGANConfig.model_validate({"perceptual": {"layer_weights": {"34": 1.0}, "vgg_weights": "/no/vgg19-dcbb9e9d.pth"},
                                      "gan": {"weight": 0.1}})
    with pytest.raises(ValueError, match=r"task\.perceptual\.vgg_weights: /no/vgg19-dcbb9e9d\.pth not found"):
        SRGANTask.preflight(cfg)
