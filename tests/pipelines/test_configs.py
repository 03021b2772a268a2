"""Every YAML under configs/ validates; zoo configs reproduce the zoo; bad configs fail early and clearly.

The zoo SR configs are checked against the MMEditing checkpoint key maps in
tests/data/mmedit_checkpoint_keys (constructor arguments, parameter count,
state-dict keys) and against the schedules of the 0.x configs they reproduce,
so a typo in a 1M-iteration config is caught here rather than after a week of
training. Errors must be ConfigError with one line naming the field path, and
the CLI must turn them into exit code 2 before Ray starts.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipelines.config import ConfigError, apply_overrides, load_experiment, load_shard_config, read_yaml
from pipelines.schema import ExperimentConfig, ShardConfig
from preprocessing.adapters import get_adapter

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"
KEYS = REPO / "tests" / "data" / "mmedit_checkpoint_keys"
ALL_YAML = sorted(CONFIGS.rglob("*.yaml")) + sorted(CONFIGS.rglob("*.yml"))
EDSR_X4 = CONFIGS / "sr" / "edsr_x4c64b16_1x16_300k_div2k.yaml"

_COSINE_1M = {"name": "cosine_restart", "periods": [250_000] * 4, "restart_weights": [1.0] * 4, "min_lr": 1e-7}
_STEP_300K = {"name": "multistep", "milestones": [200_000], "gamma": 0.5}
_STEP_1M = {"name": "multistep", "milestones": [200_000, 400_000, 600_000, 800_000], "gamma": 0.5}

# zoo config -> (total iterations, Adam lr, lr schedule, GT patch size), from the mmedit 0.x configs.
ZOO_SR = {
    "srcnn_x4k915_1x16_1000k_div2k": (1_000_000, 2e-4, _COSINE_1M, 128),
    "edsr_x2c64b16_1x16_300k_div2k": (300_000, 1e-4, _STEP_300K, 96),
    "edsr_x3c64b16_1x16_300k_div2k": (300_000, 1e-4, _STEP_300K, 144),
    "edsr_x4c64b16_1x16_300k_div2k": (300_000, 1e-4, _STEP_300K, 196),
    "rdn_x2c64b16_g1_1000k_div2k": (1_000_000, 1e-4, _STEP_1M, 64),
    "rdn_x3c64b16_g1_1000k_div2k": (1_000_000, 1e-4, _STEP_1M, 96),
    "rdn_x4c64b16_g1_1000k_div2k": (1_000_000, 1e-4, _STEP_1M, 128),
    # Named 300k, but its config (msrresnet_x4c64b16_g1_1000k_div2k.py) runs 1M iterations.
    "msrresnet_x4c64b16_1x16_300k_div2k": (1_000_000, 2e-4, _COSINE_1M, 128),
    "esrgan_psnr_x4c64b23g32_1x16_1000k_div2k": (1_000_000, 2e-4, _COSINE_1M, 128),
}


def _id(path: Path) -> str:
    return path.name


def _plain(value):
    """Tuples -> lists, recursively, so pydantic dumps compare with JSON."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def config_kind(path: Path) -> str:
    """``shard`` for configs under a ``data/`` folder, else ``experiment``."""
    return "shard" if path.parent.name == "data" else "experiment"


def generator_kwargs(cfg: ExperimentConfig) -> dict:
    return {k: v for k, v in cfg.nets["generator"].items() if k != "name"}


def _load_shard_configs() -> list[ShardConfig]:
    return [ShardConfig.model_validate(read_yaml(p)) for p in ALL_YAML if config_kind(p) == "shard"]


# --------------------------------------------------------------------------- every file


def test_configs_folder_has_the_expected_files():
    assert not list(CONFIGS.rglob("*.yml")), "use the .yaml extension"
    assert {p.stem for p in (CONFIGS / "sr").glob("*.yaml")} >= set(ZOO_SR)
    assert {p.stem for p in (CONFIGS / "data").glob("*.yaml")} >= {
        "div2k_train_x2", "div2k_train_x3", "div2k_train_x4", "set5_x4", "set14_x4", "image_folder_example",
    }


@pytest.mark.parametrize("path", ALL_YAML, ids=_id)
def test_config_file_validates(path: Path):
    if config_kind(path) == "shard":
        # Schema only: load_shard_config also requires a local `source` to exist,
        # and the raw datasets are placeholders here.
        cfg = ShardConfig.model_validate(read_yaml(path))
        get_adapter(cfg.adapter).resolve_params(cfg.params)
    else:
        cfg = load_experiment(path, check_paths=False)
        assert cfg.name == path.stem, "an experiment config is named after its file"
        assert set(cfg.optim) == set(cfg.nets)


# --------------------------------------------------------------------------- zoo SR configs


@pytest.mark.parametrize("name", sorted(ZOO_SR))
def test_zoo_sr_config_builds_the_checkpoint_architecture(name: str):
    from trainers.archs import build_arch

    ref = json.loads((KEYS / f"{name}.json").read_text())["generator"]
    cfg = load_experiment(CONFIGS / "sr" / f"{name}.yaml", check_paths=False)
    kwargs = generator_kwargs(cfg)

    assert _plain(kwargs) == _plain(ref["resolved_init_args"])
    model = build_arch(cfg.nets["generator"]["name"], **kwargs)
    assert sum(p.numel() for p in model.parameters()) == ref["num_params"]
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == ref["keys"]


@pytest.mark.parametrize("name", sorted(ZOO_SR))
def test_zoo_sr_config_reproduces_the_zoo_recipe(name: str):
    total, lr, schedule, gt_size = ZOO_SR[name]
    path = CONFIGS / "sr" / f"{name}.yaml"
    cfg = load_experiment(path, check_paths=False)
    t, opt = cfg.task, cfg.optim["generator"]
    scale = t.data.scale

    assert (cfg.train.total_steps, opt.lr, t.data.gt_size) == (total, lr, gt_size)
    assert cfg.schedule["generator"].model_dump() == schedule
    assert (opt.name, opt.betas, opt.weight_decay) == ("adam", (0.9, 0.999), 0.0)
    assert (t.name, t.pixel.name, t.pixel.weight) == ("sr", "l1", 1.0)
    assert (cfg.data.batch_size, cfg.scaling.num_workers) == (16, 1)  # "1x16"
    assert t.data.use_hflip and t.data.use_rot
    assert t.data.degradation.preset == "paired"  # DIV2K's official MATLAB-bicubic LR
    assert (t.eval.crop_border, t.eval.convert_to) == (scale, "rgb")
    assert (cfg.train.val_every, cfg.train.checkpoint_every) == (5000, 5000)
    assert not cfg.ema
    assert cfg.data.train == f"data/shards/div2k_train_x{scale}"
    assert cfg.data.val == f"data/shards/set5_x{scale}"

    text = path.read_text()
    assert text.startswith(f"# Reproduces the MMEditing model-zoo config `{name}`")
    assert "Set5" in text and f"restoray train configs/sr/{name}.yaml" in text


def test_edsr_x3_x4_start_from_the_x2_model_like_the_zoo():
    """mmcv's load_from is non-strict: the x2 upsampler does not fit x3/x4 and is skipped."""
    for scale in (3, 4):
        cfg = load_experiment(CONFIGS / "sr" / f"edsr_x{scale}c64b16_1x16_300k_div2k.yaml", check_paths=False)
        init = cfg.init_from["generator"]
        assert init.source.endswith("edsr_x2c64b16_1x16_300k_div2k_20200604-19fe95ea.pth") and not init.strict
    assert not load_experiment(CONFIGS / "sr" / "edsr_x2c64b16_1x16_300k_div2k.yaml", check_paths=False).init_from

def test_every_sr_shard_path_is_made_by_a_shard_config():
    """`restoray shard configs/data/<x>.yaml` produces what the SR configs read, at their scale."""
    shards = {c.dest: c for c in _load_shard_configs()}
    for path in sorted((CONFIGS / "sr").glob("*.yaml")):
        cfg = load_experiment(path, check_paths=False)
        if cfg.task.name != "sr":  # other families (dic, ttsr, liif) check their shard paths in their own tests
            continue
        data = cfg.task.data
        paired = data.degradation.preset == "paired"
        for field, adapter in (("train", "div2k" if paired else "image_folder"), ("val", "set5_14")):
            uri = getattr(cfg.data, field)
            assert uri in shards, f"{path.name}: data.{field} {uri} is not the dest of any configs/data/*.yaml"
            shard = shards[uri]
            assert shard.adapter == adapter
            params = get_adapter(shard.adapter).resolve_params(shard.params)
            if "scale" in params:  # paired adapters are made for one scale
                assert params["scale"] == data.scale
            else:  # GT-only sub-images must hold a whole training patch
                assert params["crop_size"] >= data.gt_size


def test_realesrnet_config_reproduces_the_zoo_recipe():
    from trainers.archs import build_arch

    name = "realesrnet_c64b23g32_12x4_lr2e-4_1000k_df2k_ost"
    cfg = load_experiment(CONFIGS / "sr" / f"{name}.yaml", check_paths=False)
    ref = json.loads((KEYS / f"{name}.json").read_text())["generator"]
    assert _plain(generator_kwargs(cfg)) == _plain(ref["resolved_init_args"])
    assert sum(p.numel() for p in build_arch("rrdbnet", **generator_kwargs(cfg)).parameters()) == ref["num_params"]
    t, opt = cfg.task, cfg.optim["generator"]
    assert t.data.degradation.preset == "realesrgan" and t.sharpened_gt_in == ["pixel"]
    assert (t.data.gt_size, t.data.out_size, cfg.data.batch_size, cfg.scaling.num_workers) == (400, 256, 12, 4)
    assert (opt.lr, opt.betas, cfg.schedule["generator"].name) == (2e-4, (0.9, 0.99), "constant")
    assert cfg.train.total_steps == 1_000_000 and cfg.ema["generator"].decay == 0.999
    assert (t.eval.crop_border, t.eval.convert_to) == (0, "rgb")  # reported "RGB, no crop"
    assert cfg.init_from["generator"].source.endswith("esrgan_psnr_x4c64b23g32_1x16_1000k_div2k_20200420-bf5c993c.pth")


def test_div2k_shard_configs_follow_the_zoo_preprocessing():
    for scale in (2, 3, 4):
        cfg = ShardConfig.model_validate(read_yaml(CONFIGS / "data" / f"div2k_train_x{scale}.yaml"))
        params = get_adapter("div2k").resolve_params(cfg.params)
        assert (cfg.adapter, cfg.source, cfg.dest) == ("div2k", "data/raw/DIV2K", f"data/shards/div2k_train_x{scale}")
        assert (params["crop_size"], params["step"], params["thresh_size"], params["scale"]) == (480, 240, 0, scale)
        assert params["lq_dir"] == f"DIV2K_train_LR_bicubic/X{scale}"
        assert params["image_codec"] == "qoi"  # training sets: the faster lossless member codec


def test_image_folder_example_reads_from_s3():
    cfg = ShardConfig.model_validate(read_yaml(CONFIGS / "data" / "image_folder_example.yaml"))
    assert cfg.adapter == "image_folder" and cfg.source == "s3://my-bucket/photos"


# --------------------------------------------------------------------------- overrides


def test_overrides_apply_with_the_schema_types():
    cfg = load_experiment(
        EDSR_X4,
        ["train.total_steps=10", "optim.generator.lr=1e-3", "optim.generator.betas=[0.9,0.99]",
         "task.eval.tile=256", "schedule.generator.milestones=[5]", "task.data.degradation.preset=bicubic",
         "run.name=my-run", "nets.generator.num_blocks=4", "ema.generator.decay=0.99"],
        check_paths=False,
    )
    assert cfg.train.total_steps == 10 and type(cfg.train.total_steps) is int
    opt = cfg.optim["generator"]
    assert opt.lr == 1e-3 and type(opt.lr) is float  # PyYAML reads "1e-3" as a string
    assert opt.betas == (0.9, 0.99)
    assert cfg.task.eval.tile == 256
    assert cfg.schedule["generator"].milestones == [5]
    assert cfg.task.data.degradation.preset == "bicubic"
    assert cfg.nets["generator"]["num_blocks"] == 4 and cfg.ema["generator"].decay == 0.99
    assert cfg.run_name == "my-run"


def test_overrides_do_not_touch_the_file_and_can_add_sections():
    raw = read_yaml(EDSR_X4)
    before = copy.deepcopy(raw)
    out = apply_overrides(raw, ["ema.generator.decay=0.99"])
    assert out["ema"] == {"generator": {"decay": 0.99}}
    assert read_yaml(EDSR_X4) == before


def test_s3_shard_paths_are_not_checked_locally():
    cfg = load_experiment(EDSR_X4, ["data.train=s3://bucket/div2k", "data.val=s3://bucket/set5"])
    assert cfg.data.train == "s3://bucket/div2k"


def test_local_shard_paths_are_checked(tmp_path: Path):
    train, val = tmp_path / "train", tmp_path / "val"
    train.mkdir()
    (train / "manifest.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"data\.val: no manifest\.json"):
        load_experiment(EDSR_X4, [f"data.train={train}", f"data.val={val}"])
    val.mkdir()
    (val / "manifest.json").write_text("{}")
    assert load_experiment(EDSR_X4, [f"data.train={train}", f"data.val={val}"]).data.val == str(val)


# --------------------------------------------------------------------------- bad configs


def _write(tmp_path: Path, raw, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    path.write_text(raw if isinstance(raw, str) else yaml.safe_dump(raw))
    return path


def _edsr_raw() -> dict:
    return read_yaml(EDSR_X4)


def _mutated(fn) -> dict:
    raw = _edsr_raw()
    fn(raw)
    return raw


def _assert_one_line_naming(err: ConfigError, *names: str):
    msg = str(err)
    assert "\n" not in msg, msg
    for name in names:
        assert name in msg, f"{name!r} not in {msg!r}"


BAD_EXPERIMENTS = {
    # id: (raw-config mutation or None, overrides, strings the message must contain)
    "unknown-key-override": (None, ["train.totl_steps=5"], ["train.totl_steps", "Extra inputs"]),
    "unknown-key-in-file": (lambda r: r["task"]["data"].update(gt_sise=96), [], ["task.data.gt_sise"]),
    "unknown-top-level-key": (lambda r: r.update(optimizer={}), [], ["optimizer"]),
    "wrong-type": (None, ["train.total_steps=abc"], ["train.total_steps", "integer"]),
    "wrong-tuple-length": (None, ["optim.generator.betas=[0.9]"], ["optim.generator.betas"]),
    "out-of-range": (None, ["optim.generator.lr=-1"], ["optim.generator.lr"]),
    "bad-literal": (None, ["task.eval.convert_to=ycbcr"], ["task.eval.convert_to"]),
    "unknown-arch": (None, ["nets.generator.name=edsrr"], ["nets.generator.name", "edsrr", "known: "]),
    "unknown-arch-argument": (None, ["nets.generator.num_blockz=4"], ["nets.generator.num_blockz", "Extra"]),
    "arch-argument-type": (None, ["nets.generator.mid_channels=abc"], ["nets.generator.mid_channels", "integer"]),
    "arch-own-constraint": (None, ["nets.generator.upscale_factor=5"],
                            ["nets.generator", "edsr refuses these arguments", "scales 2^n and 3"]),
    "arch-needs-a-name": (lambda r: r["nets"]["generator"].pop("name"), [], ["nets.generator.name", "missing"]),
    "missing-network": (lambda r: r["nets"].update(discriminator={"name": "modified_vgg"}), [],
                        ["nets", "task sr needs these networks: generator"]),
    "optimizer-for-no-network": (None, ["optim.discriminator.lr=1e-4"], ["optim.discriminator", "no such network"]),
    "network-without-optimizer": (lambda r: r.update(optim={}), [], ["optim.generator", "needs an optimizer"]),
    "ema-for-no-network": (None, ["ema.critic.decay=0.9"], ["ema.critic", "no such network"]),
    "unknown-task": (None, ["task.name=xx"], ["task", "'xx'"]),
    "unknown-schedule": (None, ["schedule.generator.name=poly"], ["schedule.generator", "poly"]),
    "missing-required-field": (lambda r: r["train"].pop("total_steps"), [], ["train.total_steps", "required"]),
    "missing-required-section": (lambda r: r.pop("data"), [], ["data", "required"]),
    "missing-data-train": (lambda r: r["data"].pop("train"), [], ["data.train", "required"]),
    "upscale-mismatch": (None, ["nets.generator.upscale_factor=2"],
                         ["nets.generator.upscale_factor", "is 2", "task.data.scale is 4"]),
    "gt-size-not-divisible": (None, ["task.data.gt_size=98"], ["task.data", "gt_size 98", "scale 4"]),
    "cosine-lengths-differ": (
        None, ["schedule.generator={name: cosine_restart, periods: [10, 10], restart_weights: [1]}"],
        ["schedule.generator", "restart_weights"],
    ),
    "malformed-override": (None, ["train.total_steps"], ["train.total_steps", "a.b.c=value"]),
    "gpu-degradation-without-torch-path": (
        None, ["task.data.degradation.device=gpu"], ["task.data.degradation", "torch path", "'paired'"],
    ),
    "unknown-degradation-device": (None, ["task.data.degradation.device=tpu"], ["task.data.degradation.device"]),
    "unknown-preset": (None, ["task.data.degradation.preset=bicubik"],
                       ["task.data.degradation.preset", "'bicubik'", "known: bd, bicubic"]),
    "clip-preset-for-image-task": (
        None, ["task.data.degradation.preset=realbasicvsr"],
        ["task.data.degradation.preset", "realbasicvsr degrades clips and needs a video task"],
    ),
    "sharpened-gt-without-usm-preset": (None, ["task.sharpened_gt_in=[pixel]"],
                                        ["task.sharpened_gt_in", "unsharp-masked GT", "'paired'"]),
    "pool-not-divisible-by-batch": (None, ["data.pool_size=20"], ["data", "pool_size 20", "batch_size 16"]),
    "negative-pool": (None, ["data.pool_size=-16"], ["data.pool_size"]),
    "override-through-a-scalar": (None, ["train.total_steps.x=1"], ["train.total_steps.x", "not a section"]),
    "tune-metric-the-task-lacks": (lambda r: r.update(tune={"metric": "val/sad", "space": {"optim.generator.lr": {
        "choice": [1e-4]}}}), [], ["tune.metric", "val/psnr"]),
    "retrain-metric-the-task-lacks": (lambda r: r.update(retrain={"source": "x", "metric": "sad"}), [],
                                      ["retrain.metric", "psnr, ssim"]),
    "unknown-retrain-adapter": (lambda r: r.update(retrain={"source": "x", "adapter": "folder"}), [],
                                ["retrain.adapter", "unknown adapter 'folder'"]),
}


@pytest.mark.parametrize("case", sorted(BAD_EXPERIMENTS))
def test_bad_experiment_config_names_the_field(tmp_path: Path, case: str):
    mutate, overrides, names = BAD_EXPERIMENTS[case]
    raw = _mutated(mutate) if mutate else _edsr_raw()
    path = _write(tmp_path, raw)
    with pytest.raises(ConfigError) as err:
        load_experiment(path, overrides, check_paths=False)
    _assert_one_line_naming(err.value, *names)


def test_realesrgan_degradation_on_the_worker_device_with_a_pool_validates():
    path = CONFIGS / "sr" / "realesrnet_c64b23g32_12x4_lr2e-4_1000k_df2k_ost.yaml"
    cfg = load_experiment(path, ["task.data.degradation.device=gpu", "data.pool_size=180"], check_paths=False)
    assert cfg.task.data.degradation.device == "gpu" and cfg.data.pool_size == 180  # 180 = 15 x 12
    assert load_experiment(path, check_paths=False).data.pool_size == 0  # off by default


def test_union_field_errors_use_the_user_visible_path(tmp_path: Path):
    """The union tag (task name, schedule name) is not part of the path users write."""
    with pytest.raises(ConfigError) as err:
        load_experiment(_write(tmp_path, _edsr_raw()), ["task.pixel.name=l3"], check_paths=False)
    _assert_one_line_naming(err.value, ": task.pixel.name: ")
    with pytest.raises(ConfigError) as err:
        load_experiment(_write(tmp_path, _edsr_raw()), ["schedule.generator.gamma=x"], check_paths=False)
    _assert_one_line_naming(err.value, ": schedule.generator.gamma: ")


def test_network_arguments_are_the_builders_own():
    """No pydantic class per architecture: the constructor signature is the schema, so every
    architecture in ARCHS is configurable with exactly its arguments."""
    import inspect

    from pipelines.schema import arch_arguments
    from trainers.archs import ARCHS

    for name, cls in ARCHS.items():
        params = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        assert list(arch_arguments(name).model_fields) == params, name

def test_missing_shards_name_data_train(tmp_path: Path):
    path = _write(tmp_path, _mutated(lambda r: r["data"].update(train=str(tmp_path / "nope"))))
    with pytest.raises(ConfigError) as err:
        load_experiment(path)
    _assert_one_line_naming(err.value, "data.train", "manifest.json", "restoray shard")


@pytest.mark.parametrize("text, expected", [
    ("- a\n- b\n", "top level must be a mapping"),
    ("just a string\n", "top level must be a mapping"),
    ("", "top level must be a mapping"),
    ("name: [unclosed\n", "not valid YAML"),
], ids=["list", "scalar", "empty", "syntax-error"])
def test_non_mapping_or_invalid_yaml(tmp_path: Path, text: str, expected: str):
    path = _write(tmp_path, text)
    for load in (load_experiment, load_shard_config):
        with pytest.raises(ConfigError) as err:
            load(path)
        _assert_one_line_naming(err.value, str(path), expected)


def test_missing_file(tmp_path: Path):
    for load in (load_experiment, load_shard_config):
        with pytest.raises(ConfigError) as err:
            load(tmp_path / "nope.yaml")
        _assert_one_line_naming(err.value, "nope.yaml", "not found")


def _shard_raw(tmp_path: Path, **changes) -> dict:
    raw = read_yaml(CONFIGS / "data" / "div2k_train_x4.yaml")
    raw.update(source=str(tmp_path), dest=str(tmp_path / "shards"))
    raw.update(changes)
    return raw


def test_shard_config_loads_when_source_exists(tmp_path: Path):
    cfg = load_shard_config(_write(tmp_path, _shard_raw(tmp_path)), ["items_per_shard=2"])
    assert cfg.items_per_shard == 2 and cfg.params["scale"] == 4


@pytest.mark.parametrize("changes, names", [
    ({"adapter": "div2kk"}, ["adapter", "unknown adapter 'div2kk'", "set5_14"]),
    ({"params": {"scale": 4, "crop_sise": 480}}, ["crop_sise", "unknown parameter"]),
    ({"params": {"scale": 4, "crop_size": 482}}, ["crop_size=482", "divisible"]),
    ({"items_per_shard": 0}, ["items_per_shard"]),
    ({"sourse": "x"}, ["sourse"]),
], ids=["unknown-adapter", "unknown-adapter-param", "bad-adapter-param", "out-of-range", "unknown-key"])
def test_bad_shard_config_names_the_field(tmp_path: Path, changes: dict, names: list[str]):
    with pytest.raises(ConfigError) as err:
        load_shard_config(_write(tmp_path, _shard_raw(tmp_path, **changes)))
    _assert_one_line_naming(err.value, *names)


def test_bad_adapter_param_names_params(tmp_path: Path):
    with pytest.raises(ConfigError) as err:
        load_shard_config(_write(tmp_path, _shard_raw(tmp_path, params={"crop_sise": 480})))
    _assert_one_line_naming(err.value, "params")


def test_shard_source_must_exist(tmp_path: Path):
    path = _write(tmp_path, _shard_raw(tmp_path, source=str(tmp_path / "raw")))
    with pytest.raises(ConfigError) as err:
        load_shard_config(path)
    _assert_one_line_naming(err.value, "source", "does not exist")


def test_experiment_and_shard_schemas_do_not_mix(tmp_path: Path):
    with pytest.raises(ConfigError):
        load_experiment(CONFIGS / "data" / "div2k_train_x4.yaml", check_paths=False)
    with pytest.raises(ConfigError):
        load_shard_config(EDSR_X4)


def test_experiment_configs_load_as_experiments():
    assert isinstance(load_experiment(EDSR_X4, check_paths=False), ExperimentConfig)


# --------------------------------------------------------------------------- CLI


def _cli(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    return proc, time.monotonic() - start


def _assert_config_error_exit(proc: subprocess.CompletedProcess, elapsed: float, *names: str):
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("restoray: config error: ")
    for name in names:
        assert name in lines[0], lines[0]
    assert "Started a local Ray instance" not in out  # validation happens before Ray starts
    assert elapsed < 110  # well inside _cli's 120 s timeout: no wait for anything (not a speed target)


def test_cli_train_bad_config_exits_2_before_ray(tmp_path: Path):
    path = _write(tmp_path, _mutated(lambda r: r["train"].update(totl_steps=5)))
    _assert_config_error_exit(*_cli("train", str(path)), "train.totl_steps")


def test_cli_train_bad_override_exits_2(tmp_path: Path):
    _assert_config_error_exit(*_cli("train", str(EDSR_X4), "train.total_steps=abc"), "train.total_steps")


def test_cli_train_missing_shards_exits_2(tmp_path: Path):
    _assert_config_error_exit(
        *_cli("train", str(EDSR_X4), f"data.train={tmp_path / 'none'}", "--workdir", str(tmp_path)),
        "data.train",
    )


def test_cli_shard_unknown_adapter_param_exits_2(tmp_path: Path):
    path = _write(tmp_path, _shard_raw(tmp_path, params={"scale": 4, "crop_sise": 480}))
    _assert_config_error_exit(*_cli("shard", str(path)), "crop_sise")


def test_cli_missing_config_file_exits_2(tmp_path: Path):
    _assert_config_error_exit(*_cli("train", str(tmp_path / "nope.yaml")), "nope.yaml")
