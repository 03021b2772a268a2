"""The ``dic`` task: zoo configs (recipe, strict zoo loading through ``restoray inspect``), the
training step against mmedit's DIC.train_step order, evaluation, preview and inference I/O."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pipelines.cli import main
from pipelines.config import ConfigError, load_experiment
from trainers.archs import build_arch
from trainers.tasks.dic import DICConfig, DICTask, draw_landmarks, heatmap_peaks
from arch_helpers import one_thread  # noqa: F401 (the module's fixture)

REPO = Path(__file__).resolve().parents[2]
KEYS = REPO / "tests" / "data" / "mmedit_checkpoint_keys"
ZOO = {  # config -> (folder, total steps, milestones, gan)
    "dic_x8c48b6_g4_150k_CelebAHQ": ("sr", 150_000, [10_000, 20_000, 40_000, 80_000], False),
    "dic_gan_x8c48b6_g4_500k_CelebAHQ": ("sr_gan", 500_000, [100_000, 200_000, 300_000, 400_000], True),
}
TINY = dict(in_channels=3, out_channels=3, mid_channels=8, num_blocks=2, hg_mid_channels=16, num_steps=2,
            num_fusion_blocks=1)


pytestmark = pytest.mark.usefixtures("one_thread")  # one intra-op thread (arch_helpers)


def _config(name: str):
    folder = ZOO[name][0]
    return load_experiment(REPO / "configs" / folder / f"{name}.yaml", check_paths=False)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_config_reproduces_the_recipe(name):
    folder, total, milestones, gan = ZOO[name]
    cfg = _config(name)
    ref = json.loads((KEYS / f"{name}.json").read_text())
    t = cfg.task
    assert {k: v for k, v in cfg.nets["generator"].items() if k != "name"} == ref["generator"]["kwargs"]
    assert cfg.train.total_steps == total and cfg.data.batch_size == 2 and cfg.scaling.num_workers == 4
    assert cfg.schedule["generator"].model_dump() == {"name": "multistep", "milestones": milestones, "gamma": 0.5}
    assert (t.pixel.name, t.pixel.weight, t.align.name, t.align.weight) == ("l1", 1.0, "mse", 0.1)
    assert t.align.reference_code_quirk  # mmedit 0.16.1 trains the heatmaps with its pixel loss
    assert (t.data.gt_size, t.data.scale, t.data.heatmap_size, t.data.sigma) == (128, 8, 32, 1.0)
    assert (t.eval.crop_border, t.eval.convert_to, t.eval.round) == (8, "rgb", True)
    assert t.img_mean == pytest.approx((129.795 / 255, 108.12 / 255, 96.39 / 255), abs=1e-3)
    assert (cfg.train.val_every, cfg.train.checkpoint_every) == (2000, 2000)
    assert cfg.optim["generator"].lr == 1e-4
    if gan:
        assert ref["train_cfg"] == {"fix_iter": t.fix_iter, "disc_steps": t.disc_steps}
        assert (t.feature.weight, t.feature.criterion, t.gan.type, t.gan.weight) == (0.1, "l1", "vanilla", 5e-3)
        assert cfg.optim["discriminator"].lr == 1e-5 and cfg.nets["discriminator"]["name"] == "light_cnn"
    else:
        assert t.feature is None and t.gan is None and "discriminator" not in cfg.nets
    shards = {p.stem: p.read_text() for p in (REPO / "configs" / "data").glob("celeba_hq_dic_*.yaml")}
    assert f"dest: {cfg.data.train}" in shards["celeba_hq_dic_train"] and "landmarks:" in shards["celeba_hq_dic_train"]
    assert f"dest: {cfg.data.val}" in shards["celeba_hq_dic_val"]


def _fake_zoo_file(path: Path, name: str) -> Path:
    full = json.loads((KEYS / f"{name}.json").read_text())["full_model_state_dict_keys"]
    torch.save({"meta": {"mmedit_version": "0.16.1"}, "state_dict": {k: torch.zeros(s) for k, s in full.items()}}, path)
    return path


@pytest.mark.parametrize("name", sorted(ZOO))
def test_inspect_loads_the_zoo_checkpoint_strictly(tmp_path, capsys, name):
    folder = ZOO[name][0]
    ckpt = _fake_zoo_file(tmp_path / f"{name}.pth", name)
    assert main(["inspect", str(REPO / "configs" / folder / f"{name}.yaml"), "--checkpoint", str(ckpt), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["loads_strictly"] is True
    for role in ("generator", "discriminator") if ZOO[name][3] else ("generator",):
        assert info["nets"][role]["present"] and info["nets"][role]["loads_strictly"], role


def _task(**changes) -> DICTask:
    cfg = DICConfig.model_validate({"data": {}, **changes})
    return DICTask(cfg)


def _batch(n: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"lq": torch.rand(n, 3, 16, 16, generator=g), "gt": torch.rand(n, 3, 128, 128, generator=g),
            "heatmap": torch.rand(n, 68, 32, 32, generator=g)}


def _nets(gan: bool) -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    nets = {"generator": build_arch("dicnet", **TINY)}
    if gan:
        nets["discriminator"] = build_arch("light_cnn", in_channels=3)
    return nets


def _adams(nets):
    return {k: torch.optim.Adam(v.parameters(), lr=1e-4) for k, v in nets.items()}


def test_generator_loss_is_every_steps_pixel_and_heatmap_loss_on_mean_subtracted_images():
    task, nets, batch = _task(), _nets(False), _batch()
    before = copy.deepcopy(nets["generator"])
    logs = task.train_step(nets, _adams(nets), batch, step=0)
    mean = torch.tensor([0.509, 0.424, 0.378]).view(1, 3, 1, 1)
    with torch.no_grad():
        srs, hms = before(batch["lq"] - mean)
    for t in range(2):
        torch.testing.assert_close(logs[f"loss/pixel_v{t}"], (srs[t] - (batch["gt"] - mean)).abs().mean())
        torch.testing.assert_close(logs[f"loss/align_v{t}"], 0.1 * (hms[t] - batch["heatmap"]).pow(2).mean())
    assert set(logs) == {"loss/pixel_v0", "loss/pixel_v1", "loss/align_v0", "loss/align_v1"}
    quirk = _task(align={"reference_code_quirk": True}).train_step(_nets(False), _adams(_nets(False)), batch, 0)
    torch.testing.assert_close(quirk["loss/align_v1"], (hms[1] - batch["heatmap"]).abs().mean())


def test_gan_parts_start_at_fix_iter_and_the_discriminator_steps_disc_steps_times():
    gan = dict(feature={"allow_random_init": True}, gan={"type": "vanilla", "weight": 5e-3}, fix_iter=3, disc_steps=2)
    task, nets, batch = _task(**gan), _nets(True), _batch()
    opts = _adams(nets)
    d_before = copy.deepcopy(nets["discriminator"].state_dict())
    early = task.train_step(nets, opts, batch, step=2)
    assert "loss/gan" not in early and "loss/feature" not in early and "loss/d_real" not in early
    assert all(torch.equal(v, nets["discriminator"].state_dict()[k]) for k, v in d_before.items())
    calls = []
    opts["discriminator"].register_step_post_hook(lambda *a: calls.append("d"))
    opts["generator"].register_step_post_hook(lambda *a: calls.append("g"))
    late = task.train_step(nets, opts, batch, step=3)
    assert {"loss/gan", "loss/feature", "loss/d_real", "loss/d_fake"} <= set(late)
    assert calls == ["g", "d", "d"]  # generator first, then disc_steps discriminator updates
    assert opts["discriminator"].state[next(iter(nets["discriminator"].parameters()))]["step"] == 2


def test_check_nets_and_config_errors_name_the_field():
    cfg = DICConfig()
    with pytest.raises(ValueError, match="nets.discriminator: a discriminator needs task.gan"):
        DICTask.check_nets(cfg, {"generator": {"name": "dicnet"}, "discriminator": {"name": "light_cnn"}})
    with pytest.raises(ValueError, match="nets.generator.name: task dic trains a dicnet"):
        DICTask.check_nets(cfg, {"generator": {"name": "edsr"}})
    with pytest.raises(ValueError, match="weights: required"):
        DICConfig.model_validate({"feature": {}})
    with pytest.raises(ConfigError, match=r"task.feature: weights: required"):
        load_experiment(REPO / "configs/sr_gan/dic_gan_x8c48b6_g4_500k_CelebAHQ.yaml", check_paths=False,
                        overrides=["task.feature.weights=null"])


def test_predict_score_preview_and_infer_io():
    task, nets = _task(), _nets(False)
    nets["generator"].eval()
    batch = _batch()
    pred = task.predict(nets, batch)
    assert pred.shape == (1, 3, 128, 128) and task.last_heatmaps.shape == (1, 68, 32, 32)
    scores = task.score(pred, batch)
    assert set(scores) == {"psnr", "ssim"} and np.isfinite(scores["psnr"])
    picture = task.preview(pred, batch)
    assert picture.shape == (128, 4 * 128, 3) and picture.dtype == np.uint8
    face = (np.random.default_rng(0).random((256, 200, 3)) * 255).astype(np.uint8)
    assert task.infer_batch({"image": face})["lq"].shape == (1, 3, 16, 16)
    assert task.infer_batch({"image": face[:16, :16]})["lq"].shape == (1, 3, 16, 16)
    assert task.infer_output(pred, batch).shape == (128, 128, 3)


def test_landmark_drawing_marks_the_heatmap_peaks():
    maps = torch.zeros(2, 32, 32)
    maps[0, 5, 10] = 1.0  # (x 10, y 5)
    maps[1, 30, 2] = 1.0
    points = heatmap_peaks(maps, 128)
    np.testing.assert_allclose(points, [[42, 22], [10, 122]])
    drawn = draw_landmarks(np.zeros((128, 128, 3), np.uint8), points)
    assert tuple(drawn[22, 42]) == (0, 255, 0) and tuple(drawn[122, 10]) == (0, 255, 0) and drawn[64, 64].sum() == 0
