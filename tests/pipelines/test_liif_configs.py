"""configs/sr/liif_*.yaml against the zoo: the checkpoint architecture, the recipe, the shards
they read, and a strict load of a zoo-shaped checkpoint through ``inspect_model``."""

import json
from pathlib import Path

import pytest
import torch

from pipelines.config import load_experiment, read_yaml
from pipelines.schema import ShardConfig
from preprocessing.adapters import get_adapter

REPO = Path(__file__).resolve().parents[2]
KEYS = REPO / "tests" / "data" / "mmedit_checkpoint_keys"
NAMES = {"liif_edsr_norm_c64b16_g1_1000k_div2k": ((0.4488, 0.4371, 0.404), (1.0, 1.0, 1.0)),
         "liif_rdn_norm_c64b16_g1_1000k_div2k": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))}


def _cfg(name):
    return load_experiment(REPO / "configs" / "sr" / f"{name}.yaml", check_paths=False)


def _plain(v):
    return json.loads(json.dumps(v))


@pytest.mark.parametrize("name", sorted(NAMES))
def test_config_builds_the_zoo_architecture(name):
    from trainers.archs import build_arch

    ref = json.loads((KEYS / f"{name}.json").read_text())["generator"]
    cfg = _cfg(name)
    kwargs = {k: v for k, v in cfg.nets["generator"].items() if k != "name"}
    assert _plain(kwargs) == _plain(ref["resolved_init_args"])
    with torch.device("meta"):
        net = build_arch(cfg.nets["generator"]["name"], **kwargs)
    assert {k: list(v.shape) for k, v in net.state_dict().items()} == ref["keys"]


@pytest.mark.parametrize("name", sorted(NAMES))
def test_config_reproduces_the_zoo_recipe(name):
    cfg = _cfg(name)
    t, opt, d = cfg.task, cfg.optim["generator"], cfg.task.data
    assert (t.name, t.pixel.name, t.pixel.weight) == ("liif", "l1", 1.0)
    assert (d.scale_min, d.scale_max, d.lq_patch, d.sample_quantity) == (1, 4, 48, 2304)
    assert d.use_hflip and d.use_rot
    assert (t.norm.rgb_mean, t.norm.rgb_std) == NAMES[name]
    assert t.eval.scales == [2, 3, 4, 6, 18, 30] and t.eval.round
    assert (cfg.train.total_steps, opt.lr, opt.betas, cfg.data.batch_size, cfg.scaling.num_workers) == (
        1_000_000, 1e-4, (0.9, 0.999), 16, 1)
    assert cfg.schedule["generator"].model_dump() == {
        "name": "multistep", "milestones": [200000, 400000, 600000, 800000], "gamma": 0.5}
    assert (cfg.train.val_every, cfg.train.checkpoint_every) == (3000, 3000)
    assert cfg.nets["generator"]["eval_bsize"] == 30000
    text = (REPO / "configs" / "sr" / f"{name}.yaml").read_text()
    assert text.startswith(f"# Reproduces the MMEditing model-zoo config `{name}`") and "Set5" in text
    shards = {c.dest: c for c in (ShardConfig.model_validate(read_yaml(p)) for p in
                                  [REPO / "configs/data/div2k_train_hr.yaml", REPO / "configs/data/set5_hr.yaml"])}
    for uri in (cfg.data.train, cfg.data.val):
        assert shards[uri].adapter == "image_folder"
        assert get_adapter("image_folder").resolve_params(shards[uri].params)["crop"] is False  # whole images


def test_zoo_shaped_checkpoint_loads_strictly(tmp_path):
    from pipelines.infer import inspect_model

    name = "liif_edsr_norm_c64b16_g1_1000k_div2k"
    ref = json.loads((KEYS / f"{name}.json").read_text())
    state = {"generator." + k: torch.zeros(s) for k, s in ref["generator"]["keys"].items()}
    torch.save({"meta": {}, "state_dict": state}, tmp_path / "zoo.pth")
    info = inspect_model(_cfg(name), str(tmp_path / "zoo.pth"))
    assert info["loads_strictly"] and info["nets"]["generator"]["num_params"] == ref["full_model_num_params"]
