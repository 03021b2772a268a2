"""The ``ttsr`` task at tiny sizes, without Ray: config checks (LTE start, GAN parts, names), the
step before and after ``pixel_init_steps`` (which losses, which networks move, discriminator
repeats), the [-1, 1] convention of the losses, preview layout and the inference batch."""

import copy

import numpy as np
import pytest
import torch

from pipelines.schema import ExperimentConfig
from trainers.archs import build_arch
from trainers.samplers.ttsr import make_views
from trainers.tasks.ttsr import TTSRConfig, TTSRTask

GAN_TASK = {"name": "ttsr", "allow_random_lte": True, "pixel_init_steps": 1, "disc_repeat": 2,
            "perceptual": {"layer_weights": {"2": 1.0}, "perceptual_weight": 1e-2, "style_weight": 0.0,
                           "criterion": "mse", "allow_random_init": True},
            "transferal": {"weight": 1e-2}, "gan": {"type": "vanilla", "weight": 1e-3}}
NETS = {"generator": {"name": "ttsr", "mid_channels": 8, "num_blocks": [1, 1, 1, 1]}, "extractor": {"name": "lte"},
        "discriminator": {"name": "ttsr_disc", "in_size": 32}}


def _experiment(task, nets, init_from=None):
    return {"name": "t", "task": task, "nets": nets, "data": {"train": "x", "val": "y"},
            "optim": {r: {"lr": 1e-4} for r in nets}, "train": {"total_steps": 2}, "init_from": init_from or {}}


def test_the_lte_needs_a_vgg19_start_or_an_explicit_random_one():
    nets = {k: v for k, v in NETS.items() if k != "discriminator"}
    with pytest.raises(ValueError, match=r"init_from\.extractor: the LTE starts from torchvision's VGG19"):
        ExperimentConfig.model_validate(_experiment({"name": "ttsr"}, nets))
    ExperimentConfig.model_validate(_experiment({"name": "ttsr"}, nets, {"extractor": {
        "source": "vgg19-dcbb9e9d.pth", "format": "torchvision"}}))
    ExperimentConfig.model_validate(_experiment({"name": "ttsr", "allow_random_lte": True}, nets))


@pytest.mark.parametrize("task, nets, match", [
    ({"name": "ttsr", "allow_random_lte": True}, NETS, "give both task.gan and a discriminator"),
    (GAN_TASK, {k: v for k, v in NETS.items() if k != "discriminator"}, "give both task.gan"),
    ({"name": "ttsr", "allow_random_lte": True}, {"generator": {"name": "edsr"}, "extractor": {"name": "lte"}},
     "nets.generator.name: the ttsr task takes ttsr"),
])
def test_bad_network_sets_are_one_line(task, nets, match):
    with pytest.raises(ValueError, match=match):
        ExperimentConfig.model_validate(_experiment(task, nets))


def _batch(n=2, size=32, seed=0):
    rng = np.random.default_rng(seed)
    views = [make_views(rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
                        rng.integers(0, 256, (size, size, 3), dtype=np.uint8), 4) for _ in range(n)]
    return {k: torch.from_numpy(np.stack([v[k] for v in views])).permute(0, 3, 1, 2).float() / 255 for k in views[0]}


@pytest.fixture(scope="module")
def built():
    """The networks, built once (init is most of the cost); each test works on a copy."""
    torch.manual_seed(0)
    return {r: build_arch(s["name"], **{k: v for k, v in s.items() if k != "name"}) for r, s in NETS.items()}


@pytest.fixture
def setup(built):
    def make(task_cfg):
        task = TTSRTask(TTSRConfig.model_validate(task_cfg))
        roles = [r for r in built if r != "discriminator" or task_cfg.get("gan")]
        nets = {r: copy.deepcopy(built[r]) for r in roles}
        opts = {r: torch.optim.Adam(n.parameters(), lr=1e-3) for r, n in nets.items()}
        return task, nets, opts
    return make


def test_pixel_phase_then_all_losses_and_repeated_discriminator_updates(setup):
    task, nets, opts = setup(GAN_TASK)
    batch = _batch(n=1)
    before = {r: {k: v.clone() for k, v in n.state_dict().items()} for r, n in nets.items()}
    logs = task.train_step(nets, opts, batch, step=0)
    assert set(logs) == {"loss/pix"}
    moved = {r: any(not torch.equal(v, before[r][k]) for k, v in n.state_dict().items()) for r, n in nets.items()}
    assert moved == {"generator": True, "extractor": True, "discriminator": False}
    logs = task.train_step(nets, opts, batch, step=1)
    assert set(logs) == {"loss/pix", "loss/perceptual", "loss/transferal", "loss/gan", "loss/d_real", "loss/d_fake"}
    assert opts["discriminator"].state[next(iter(nets["discriminator"].parameters()))]["step"] == 2  # disc_repeat
    assert all(torch.isfinite(v) for v in logs.values())


def test_pixel_loss_is_the_zoos_l1_on_minus_one_to_one_images(setup):
    task, nets, opts = setup({"name": "ttsr", "allow_random_lte": True})
    batch = _batch(n=1, size=16)
    with torch.no_grad():
        pred = task.predict(nets, batch)
    logs = task.train_step(nets, opts, batch, step=0)
    torch.testing.assert_close(logs["loss/pix"], 2 * (pred - batch["gt"]).abs().mean(), rtol=1e-5, atol=1e-6)
    assert pred.min() >= 0 and pred.max() <= 1


def test_preview_is_input_reference_output_gt_and_scores_are_finite(setup):
    task, nets, _ = setup({"name": "ttsr", "allow_random_lte": True})
    batch = _batch(n=1)
    pred = task.predict(nets, batch)
    picture = task.preview(pred, batch)
    assert picture.shape == (32, 4 * 32, 3) and picture.dtype == np.uint8
    np.testing.assert_array_equal(picture[:, 32:64], np.round(batch["ref"][0].permute(1, 2, 0).numpy() * 255))
    assert set(task.score(pred, batch)) == {"psnr", "ssim"}


def test_infer_batch_builds_the_zoo_test_views_and_rejects_tiny_references(setup):
    task, nets, _ = setup({"name": "ttsr", "allow_random_lte": True})
    rng = np.random.default_rng(0)
    batch = task.infer_batch({"image": rng.integers(0, 256, (6, 7, 3), dtype=np.uint8),
                              "ref": rng.integers(0, 256, (30, 41, 3), dtype=np.uint8)})
    assert batch["lq_up"].shape == (1, 3, 24, 28) and batch["ref"].shape == batch["ref_downup"].shape == (1, 3, 28, 40)
    out = task.infer_output(task.predict(nets, batch), batch)
    assert out.shape == (24, 28, 3) and out.dtype == np.uint8
    with pytest.raises(ValueError, match="too small"):
        task.infer_batch({"image": np.zeros((6, 7, 3), np.uint8), "ref": np.zeros((8, 8, 3), np.uint8)})
