"""The inpainting task's step for every inpaintor on tiny networks: which losses it logs, which
networks each step trains (DeepFill v1's critic schedule, Global&Local's three phases), and the
evaluation and inference conventions (raw output scored, composite written, bad masks refused)."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from trainers.archs import build_arch
from trainers.optim import build_optimizer
from trainers.tasks.inpainting import InpaintingConfig, InpaintingTask, local_patches

DATA = {"size": [80, 80], "crop_size": [80, 80], "mask": {"type": "bbox", "max_bbox_shape": [32, 32],
                                                          "max_bbox_delta": 8, "min_margin": 8}}
PERCEPTUAL = {"layer_weights": {"2": 0.05}, "layer_weights_style": {"2": 120.0}, "vgg_type": "vgg16",
              "allow_random_init": True}
TINY = {
    "deepfill_v1": ({"name": "deepfill_v1", "channel_factor": 0.125, "stage2_decoder_channel_factor": 0.125},
                    {"name": "deepfill_v1_disc", "global_max_channels": 8, "global_fc_in_channels": 200,
                     "local_max_channels": 16, "local_fc_in_channels": 64},
                    {"gan": {"weight": 1e-4, "gp_weight": 10.0, "disc_shift_weight": 1e-3}, "disc_steps": 2,
                     "local_size": 32}),
    "deepfill_v2": ({"name": "deepfill_v2", "channel_factor": 0.125, "stage2_decoder_channel_factor": 0.25},
                    {"name": "deepfill_v2_disc", "max_channels": 8}, {"gan": {"weight": 0.1}}),
    "gl": ({"name": "gl"}, {"name": "gl_disc", "max_channels": 16, "global_num_convs": 5, "local_num_convs": 4,
                            "global_fc_in_channels": 144, "local_fc_in_channels": 64},
           {"gan": {"weight": 1e-3}, "l1_valid": 0.0, "local_size": 32, "iter_tc": 1, "iter_td": 2}),
    "pconv": ({"name": "pconv", "num_layers": 4}, None,
              {"l1_hole": 6.0, "perceptual": PERCEPTUAL, "tv_weight": 0.1}),
    "aot": ({"name": "aot", "encoder_channels": 8, "neck_channels": 16, "decoder_channels": 8, "num_aotblock": 1},
            {"name": "aot_disc", "base_channels": 8, "num_conv": 3},
            {"gan": {"weight": 0.01}, "perceptual": PERCEPTUAL | {"vgg_type": "vgg19"}, "channel_order": "rgb"}),
}


def _setup(inpaintor: str, **extra):
    gen, disc, task_args = TINY[inpaintor]
    cfg = InpaintingConfig(inpaintor=inpaintor, data=DATA, **(task_args | extra))
    torch.manual_seed(0)
    nets = {"generator": build_arch(**gen)}
    if disc:
        nets["disc"] = build_arch(**disc)
    opts = {r: build_optimizer(n.parameters(), {"name": "adam", "lr": 1e-3, "betas": (0.9, 0.999), "weight_decay": 0})
            for r, n in nets.items()}
    task = InpaintingTask(cfg)
    InpaintingTask.check_nets(cfg, {r: {"name": (gen if r == "generator" else disc)["name"]} for r in nets})
    return task, nets, opts


def _batch(n: int = 2, size: int = 80) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    gt = torch.randint(0, 256, (n, 3, size, size), generator=g).float() / 255
    mask = torch.zeros(n, 1, size, size)
    boxes = []
    for b in range(n):
        top, left = 10 + 5 * b, 12 + 3 * b
        mask[b, :, top:top + 24, left:left + 20] = 1
        boxes.append([top - 2, left - 2, 28, 24])
    return {"gt": gt, "mask": mask, "mask_bbox": torch.tensor(boxes, dtype=torch.int32)}


def _params(net) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def _changed(before, net) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))


EXPECTED = {
    "deepfill_v1": {"loss/d_fake", "loss/d_fake_local", "loss/d_real", "loss/d_real_local", "loss/d_shift_fake",
                    "loss/d_shift_fake_local", "loss/d_shift_real", "loss/d_shift_real_local", "loss/d_gp",
                    "loss/d_gp_local", "loss/stage1_l1_hole", "loss/stage1_l1_valid", "loss/stage2_l1_hole",
                    "loss/stage2_l1_valid", "loss/g_gan"},
    "deepfill_v2": {"loss/d_fake", "loss/d_real", "loss/stage1_l1_hole", "loss/stage1_l1_valid",
                    "loss/stage2_l1_hole", "loss/stage2_l1_valid", "loss/g_gan"},
    "pconv": {"loss/l1_hole", "loss/l1_valid", "loss/comp_percep", "loss/comp_style", "loss/percep", "loss/style",
              "loss/tv"},
    "aot": {"loss/d_fake", "loss/d_real", "loss/l1_hole", "loss/l1_valid", "loss/percep", "loss/style", "loss/g_gan"},
}


@pytest.mark.parametrize("inpaintor", ["deepfill_v1", "deepfill_v2", "pconv", "aot"])
def test_step_logs_the_zoo_losses_and_trains(inpaintor):
    task, nets, opts = _setup(inpaintor)
    batch = _batch()
    before = {r: _params(n) for r, n in nets.items()}
    logs = {}
    for step in range(2):
        logs |= task.train_step(nets, opts, batch, step)
    assert set(logs) == EXPECTED[inpaintor]
    assert all(torch.isfinite(v) for v in logs.values())
    assert all(_changed(before[r], n) for r, n in nets.items())


def test_deepfill_v1_generator_steps_once_per_disc_steps():
    task, nets, opts = _setup("deepfill_v1")
    batch = _batch()
    g0, d0 = _params(nets["generator"]), _params(nets["disc"])
    logs = task.train_step(nets, opts, batch, 0)  # (0 + 1) % 2 != 0: critic only
    assert not _changed(g0, nets["generator"]) and _changed(d0, nets["disc"]) and "loss/g_gan" not in logs
    logs = task.train_step(nets, opts, batch, 1)
    assert _changed(g0, nets["generator"]) and "loss/g_gan" in logs


def test_global_local_phases_train_the_right_networks():
    """iter_tc 1, iter_td 2: step 0 (iteration 1) generator only on the hole L1; step 1
    (iteration 2) discriminator only; step 2 both, the generator with the adversarial term."""
    task, nets, opts = _setup("gl")
    batch = _batch()
    expect = [({"loss/l1_hole"}, True, False), ({"loss/d_fake", "loss/d_real"}, False, True),
              ({"loss/d_fake", "loss/d_real", "loss/l1_hole", "loss/g_gan"}, True, True)]
    for step, (keys, g_trains, d_trains) in enumerate(expect):
        g0, d0 = _params(nets["generator"]), _params(nets["disc"])
        logs = task.train_step(nets, opts, batch, step)
        assert set(logs) == keys, step
        assert _changed(g0, nets["generator"]) == g_trains and _changed(d0, nets["disc"]) == d_trains, step
    # start_iter moves the phases (the Places config starts in the joint phase)
    task, nets, opts = _setup("gl", start_iter=350000)
    assert "loss/g_gan" in task.train_step(nets, opts, batch, 0)


def test_local_patch_grows_the_box_about_its_centre():
    img = torch.arange(80 * 80, dtype=torch.float32).view(1, 1, 80, 80)
    (patch,) = local_patches([img], [(30, 40, 10, 12)], 32)
    assert patch.shape == (1, 1, 32, 32) and patch[0, 0, 0, 0] == img[0, 0, 30 - 11, 40 - 10]
    (patch,) = local_patches([img], [(2, 3, 10, 12)], 32)  # clamped at the top/left only
    assert patch[0, 0, 0, 0] == img[0, 0, 0, 0]


def test_predict_scores_the_raw_output_and_writes_the_composite():
    task, nets, _ = _setup("deepfill_v2")
    batch = {k: v[:1] for k, v in _batch().items() if k != "mask_bbox"}
    pred = task.predict({k: v.eval() for k, v in nets.items()}, batch)
    assert pred.shape == (1, 3, 80, 80)
    scores = task.score(pred, batch)
    assert set(scores) == {"l1", "psnr", "ssim"} and all(np.isfinite(v) for v in scores.values())
    out = task.infer_output(pred, batch)
    gt = (batch["gt"][0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    known = batch["mask"][0, 0].numpy() == 0
    assert out.shape == (80, 80, 3) and (out[known] == gt[known]).all()
    assert task.preview(pred, batch).shape == (80, 320, 3)


def test_infer_batch_refuses_bad_masks():
    task, _, _ = _setup("pconv")
    image = np.zeros((40, 48, 3), np.uint8)
    good = np.zeros((40, 48), np.uint8)
    good[10:20, 10:20] = 255
    assert task.infer_batch({"image": image, "mask": good})["mask"].sum() == 100
    for mask, message in ((good[:20], "same size"), (good // 2 + 1, "not binary"), (good * 0, "no hole"),
                          (np.full_like(good, 255), "all hole")):
        with pytest.raises(ValueError, match=message):
            task.infer_batch({"image": image, "mask": mask})


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="gan"):
        InpaintingConfig(inpaintor="pconv", data=DATA, gan={"weight": 0.1})
    with pytest.raises(ValueError, match="gan"):
        InpaintingConfig(inpaintor="aot", data=DATA)
    cfg = InpaintingConfig(inpaintor="deepfill_v2", data=DATA, gan={"weight": 0.1})
    with pytest.raises(ValueError, match="nets.disc.name"):
        InpaintingTask.check_nets(cfg, {"generator": {"name": "deepfill_v2"}, "disc": {"name": "gl_disc"}})
    with pytest.raises(ValueError, match="nets.generator.name"):
        InpaintingTask.check_nets(cfg, {"generator": {"name": "gl"}, "disc": {"name": "deepfill_v2_disc"}})


def test_batch_norms_sync_across_cuda_workers_only():
    """GL and PConv trained with SyncBN on several GPUs: the loop converts their batch norms for
    several CUDA workers and leaves them alone otherwise; the state dict keeps its keys."""
    from torch import nn

    from trainers.loop import sync_batchnorm

    net = build_arch("pconv", num_layers=4)
    keys = list(net.state_dict())
    for world, device in ((1, "cuda"), (2, "cpu")):
        assert sync_batchnorm(net, InpaintingTask, world, torch.device(device)) is net
    synced = sync_batchnorm(net, InpaintingTask, 2, torch.device("cuda"))
    assert any(isinstance(m, nn.SyncBatchNorm) for m in synced.modules())
    assert list(synced.state_dict()) == keys
    frozen = [m for n, m in synced.named_modules() if n.startswith("encoder") and isinstance(m, nn.SyncBatchNorm)]
    assert frozen and not any(p.requires_grad for m in frozen for p in m.parameters())
    synced.train()
    assert not any(m.training for m in frozen)  # stage 2's frozen encoder BN survives the conversion
