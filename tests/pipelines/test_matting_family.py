"""The matting family on real parts: every zoo config against its checkpoint key map, and
DIM (stages 1 -> 2 -> 3 through ``init_from``), GCA and IndexNet trained through matting shards,
a background shard set, Ray Data and TorchTrainer; then ``restoray eval`` and ``restoray infer
--trimap`` with the trained checkpoint.

The networks are the zoo's own (their widths are fixed) on 64 px crops, so a step costs well
under a second; two steps per run show the whole path works, not that it learns.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from conftest import REPO, textured_image, tiny_experiment, write_config, write_photos

pytestmark = pytest.mark.slow
RESTORAY = [sys.executable, "-m", "pipelines.cli"]
CONFIGS = REPO / "configs" / "matting"
KEYS = REPO / "tests" / "data" / "mmedit_checkpoint_keys"
# zoo config -> the key map holding its networks (DIM's stages 1 and 2 are stage 3's networks)
KEY_MAP = {
    "dim_stage1_v16_1x1_1000k_comp1k": "dim_stage3_v16_pln_1x1_1000k_comp1k",
    "dim_stage2_v16_pln_1x1_1000k_comp1k": "dim_stage3_v16_pln_1x1_1000k_comp1k",
    "dim_stage3_v16_pln_1x1_1000k_comp1k": "dim_stage3_v16_pln_1x1_1000k_comp1k",
    "gca_r34_4x10_200k_comp1k": "gca_r34_4x10_200k_comp1k",
    "gca_dimaug_r34_4x10_200k_comp1k": "gca_dimaug_r34_4x10_200k_comp1k",
    "baseline_r34_4x10_200k_comp1k": "baseline_r34_4x10_200k_comp1k",
    "baseline_dimaug_r34_4x10_200k_comp1k": "baseline_dimaug_r34_4x10_200k_comp1k",
    "indexnet_mobv2_1x16_78k_comp1k": "indexnet_mobv2_1x16_78k_comp1k",
    "indexnet_dimaug_mobv2_1x16_78k_comp1k": "indexnet_mobv2_1x16_78k_comp1k",
}


def _zoo_sections(key_map: str) -> dict[str, dict[str, list[int]]]:
    """role -> key -> shape of a zoo matting checkpoint (``backbone.``, ``refiner.``)."""
    ref = json.loads((KEYS / f"{key_map}.json").read_text())
    out = {"backbone": ref["generator"]["keys"]}
    for name, mod in (ref.get("other_modules") or {}).items():
        out[name] = mod["keys"]
    return out


def test_every_matting_zoo_config_is_here_and_matches_its_checkpoint():
    from pipelines.config import load_experiment
    from pipelines.train_job import build_nets
    from trainers.checkpoint_io import compare_state_dict

    assert {p.stem for p in CONFIGS.glob("*.yaml")} == set(KEY_MAP)
    for name, key_map in KEY_MAP.items():
        cfg = load_experiment(CONFIGS / f"{name}.yaml", check_paths=False)
        zoo = _zoo_sections(key_map)
        for role, net in build_nets(cfg, "meta").items():
            want = {k: torch.empty(shape, device="meta") for k, shape in zoo[role].items()}
            report = compare_state_dict(net, want)
            assert report.ok, f"{name} {role}: {report.summary()}"


def test_inspect_loads_a_zoo_layout_indexnet_file_strictly(tmp_path):
    """``restoray inspect`` on a file in the zoo's layout (mmcv's meta + state_dict, ``backbone.``)."""
    from pipelines.config import load_experiment
    from pipelines.infer import inspect_model

    zoo = _zoo_sections("indexnet_mobv2_1x16_78k_comp1k")["backbone"]
    ref = json.loads((KEYS / "indexnet_mobv2_1x16_78k_comp1k.json").read_text())["generator"]
    ints = set(ref.get("buffer_keys", [])) & {k for k in zoo if k.endswith("num_batches_tracked")}
    state = {f"backbone.{k}": torch.zeros(s, dtype=torch.int64 if k in ints else torch.float32) for k, s in zoo.items()}
    path = tmp_path / "indexnet_zoo.pth"
    torch.save({"meta": {"mmedit_version": "0.16.1"}, "state_dict": state}, path)
    cfg = load_experiment(CONFIGS / "indexnet_mobv2_1x16_78k_comp1k.yaml", check_paths=False)
    info = inspect_model(cfg, str(path))
    assert info["loads_strictly"] and info["nets"]["backbone"]["num_params"] == 5_953_515


# ----------------------------------------------------------------------------- data
def soft_alpha(h: int, w: int, seed: int) -> np.ndarray:
    """An ellipse with a blurred edge: solid fg, solid bg and a soft band between."""
    rng = np.random.default_rng(seed)
    a = np.zeros((h, w), np.uint8)
    centre = (int(rng.integers(w // 3, 2 * w // 3)), int(rng.integers(h // 3, 2 * h // 3)))
    cv2.ellipse(a, centre, (w // 4, h // 3), float(rng.uniform(0, 180)), 0, 360, 255, -1)
    return cv2.GaussianBlur(a, (0, 0), 3)


def _png(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2BGR))


def _trimap(alpha: np.ndarray) -> np.ndarray:
    t = np.full(alpha.shape, 128, np.uint8)
    t[alpha == 0] = 0
    t[alpha == 255] = 255
    return t


@pytest.fixture(scope="module")
def matting_shards(tmp_path_factory) -> dict[str, str]:
    """Training fg + alpha, a test set of composites with trimaps (matting_folder layout) and
    a background shard set, built without Ray (the shard job has its own tests)."""
    from shard_helpers import shard_dataset

    root = tmp_path_factory.mktemp("matting")
    for i in range(4):
        _png(root / f"raw/train/fg/fg{i}.png", textured_image(64, 80, seed=i))
        _png(root / f"raw/train/alpha/fg{i}.png", soft_alpha(64, 80, seed=i))
    for i in range(2):
        fg, bg, alpha = textured_image(40, 56, 20 + i), textured_image(40, 56, 30 + i), soft_alpha(40, 56, 40 + i)
        a = alpha[..., None] / 255.0
        _png(root / f"raw/test/merged/t{i}.png", (fg * a + bg * (1 - a)).astype(np.uint8))
        _png(root / f"raw/test/alpha/t{i}.png", alpha)
        _png(root / f"raw/test/trimap/t{i}.png", _trimap(alpha))
    write_photos(root / "raw/bg", 3, (72, 96), seed=50)
    out = {}
    for name, src, adapter, params in (
        ("train", "raw/train", "matting_folder", {"split": "train"}),
        ("val", "raw/test", "matting_folder", {"split": "test"}),
        ("bg", "raw/bg", "image_folder", {"crop": False}),
    ):
        shard_dataset(str(root / src), str(root / "shards" / name), adapter, params, items_per_shard=2)
        out[name] = str(root / "shards" / name)
    out["root"] = str(root)
    return out


def matting_experiment(shards: dict[str, str], storage: str, name: str, zoo: str, **sections) -> dict:
    """A zoo matting config on tiny crops, one worker, two steps."""
    import yaml

    zoo_cfg = yaml.safe_load((CONFIGS / f"{zoo}.yaml").read_text())
    task = zoo_cfg["task"]
    data = task["data"] | {"backgrounds": shards["bg"], "crop_sizes": [48, 64], "out_size": 64, "crop_size": 64}
    if data.get("foregrounds"):
        data["foregrounds"] = shards["train"]
    task["data"] = data
    cfg = tiny_experiment(
        shards["train"], shards["val"], storage, name=name, data={"batch_size": 2},
        train={"total_steps": 2, "log_every": 1, "val_every": 2, "checkpoint_every": 2},
        scaling={"num_workers": 1, "cpus_per_worker": 0.5},
    )
    cfg.update(task=task, nets=zoo_cfg["nets"], optim={role: {"name": "adam", "lr": 1e-5} for role in zoo_cfg["nets"]},
               ema={}, **sections)
    return cfg


def _checkpoint_file(out) -> str:
    return str(Path(out.checkpoint_dir) / "checkpoint.pt")


@pytest.fixture(scope="module")
def trained(ray_session, matting_shards, tmp_path_factory) -> dict:
    """DIM stage 1 -> 2 -> 3 (each from the previous stage, as the zoo's load_from), GCA, IndexNet."""
    from pipelines.config import load_experiment
    from pipelines.train_job import run_train

    tmp = tmp_path_factory.mktemp("matting_runs")
    results = {}

    def train(key: str, zoo: str, **sections):
        path = write_config(tmp / f"{key}.yaml", matting_experiment(matting_shards, str(tmp / "runs"), key, zoo, **sections))
        out = run_train(load_experiment(path), config_file=str(path), workdir=tmp, register=True)
        results[key] = {"out": out, "config": path}
        return out

    s1 = train("dim1", "dim_stage1_v16_1x1_1000k_comp1k", init_from={})
    s2 = train("dim2", "dim_stage2_v16_pln_1x1_1000k_comp1k", init_from={"backbone": _checkpoint_file(s1)})
    train("dim3", "dim_stage3_v16_pln_1x1_1000k_comp1k",
          init_from={"backbone": "models:/dim2/1", "refiner": "models:/dim2/1"})
    train("gca", "gca_r34_4x10_200k_comp1k", init_from={})
    train("indexnet", "indexnet_mobv2_1x16_78k_comp1k", init_from={})
    results["s2_state"] = torch.load(_checkpoint_file(s2), map_location="cpu", weights_only=True)
    results["s1_state"] = torch.load(_checkpoint_file(s1), map_location="cpu", weights_only=True)
    return results


def test_every_matting_model_trains_and_reports_its_metrics(trained):
    for key in ("dim1", "dim2", "dim3", "gca", "indexnet"):
        out = trained[key]["out"]
        assert out.metrics["step"] == 2, key
        logged = MlflowClient(tracking_uri=out.tracking_uri).get_run(out.mlflow_run_id).data.metrics
        for metric in ("val/sad", "val/mse", "val/grad", "val/conn"):
            assert metric in logged and np.isfinite(logged[metric]) and logged[metric] >= 0, (key, metric)
        losses = {k for k in logged if k.startswith("loss/")}
        want = {"dim1": {"loss/alpha", "loss/comp"}, "dim2": {"loss/refine"},
                "dim3": {"loss/alpha", "loss/comp", "loss/refine"}, "gca": {"loss/alpha"},
                "indexnet": {"loss/alpha", "loss/comp"}}[key]
        assert losses == want, (key, losses)
        artifacts = [a.path for a in MlflowClient(tracking_uri=out.tracking_uri).list_artifacts(out.mlflow_run_id, "val")]
        assert any(p.endswith(".png") for p in artifacts), (key, artifacts)


def test_dim_stages_hand_over_through_init_from(trained):
    """Stage 2 starts from stage 1's backbone and never changes it (freeze_backbone); stage 3
    starts from both of stage 2's networks (via the registry) and trains them."""
    s1, s2 = trained["s1_state"], trained["s2_state"]
    for k, v in s1["nets"]["backbone"].items():
        assert torch.equal(s2["nets"]["backbone"][k], v), k
    s3 = torch.load(_checkpoint_file(trained["dim3"]["out"]), map_location="cpu", weights_only=True)
    assert set(s3["nets"]) == {"backbone", "refiner"}
    changed = [k for k, v in s2["nets"]["refiner"].items() if not torch.equal(s3["nets"]["refiner"][k], v)]
    assert changed, "stage 3 did not train the refiner it started from"
    assert any(not torch.equal(s3["nets"]["backbone"][k], v) for k, v in s2["nets"]["backbone"].items())


def test_eval_scores_the_test_composites(trained, matting_shards):
    from pipelines.config import load_experiment
    from pipelines.evaluate import evaluate
    from pipelines.infer import load_nets

    run = trained["gca"]
    cfg = load_experiment(run["config"], check_paths=False)
    nets, _ = load_nets(cfg, _checkpoint_file(run["out"]))
    result = evaluate(cfg, nets, matting_shards["val"])
    assert result["num_samples"] == 2 and result["directions"]["sad"] == "min"
    for metric in ("sad", "mse", "grad", "conn"):
        assert np.isfinite(result[f"model_{metric}"])


def test_infer_with_a_trimap_writes_an_alpha_and_a_composite(trained, matting_shards, tmp_path):
    run = trained["indexnet"]
    root = Path(matting_shards["root"])
    image, trimap = root / "raw/test/merged/t0.png", root / "raw/test/trimap/t0.png"
    bg = root / "raw/bg/photo00.png"
    cmd = [*RESTORAY, "infer", str(run["config"]), str(image), "--trimap", str(trimap),
           "--checkpoint", _checkpoint_file(run["out"]), "--out", str(tmp_path / "out"), "--composite-on", str(bg)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    alpha = cv2.imread(str(tmp_path / "out/t0.png"), cv2.IMREAD_UNCHANGED)
    assert alpha.shape == (40, 56) and alpha.dtype == np.uint8
    tri = cv2.imread(str(trimap), cv2.IMREAD_GRAYSCALE)
    assert (alpha[tri == 0] == 0).all() and (alpha[tri == 255] == 255).all()
    assert cv2.imread(str(tmp_path / "out/t0_composite.png")).shape == (40, 56, 3)

    bad = tmp_path / "bad_trimap.png"
    cv2.imwrite(str(bad), np.full((40, 56), 100, np.uint8))
    small = tmp_path / "small_trimap.png"
    cv2.imwrite(str(small), np.zeros((20, 20), np.uint8))
    for wrong, message in ((bad, "besides 0/128/255"), (small, "must be the same size")):
        done = subprocess.run([*cmd[:7], str(wrong), *cmd[8:12]], cwd=REPO, capture_output=True, text=True, timeout=300)
        assert done.returncode != 0 and message in done.stdout + done.stderr, done.stdout + done.stderr


@pytest.mark.parametrize("zoo, builder", [
    ("dim_stage1_v16_1x1_1000k_comp1k", "vgg16"),
    ("indexnet_mobv2_1x16_78k_comp1k", "mobilenet_v2"),
    ("gca_r34_4x10_200k_comp1k", "resnet34"),
])
def test_init_from_a_torchvision_imagenet_file(zoo, builder, tmp_path):
    """``init_from: {source: <torchvision .pth>, format: torchvision}`` maps the classifier onto
    the encoder on the driver, fits the network, and a file of another architecture is refused
    in one line."""
    import yaml

    from pipelines.config import load_experiment
    from pipelines.train_job import imagenet_weights
    from trainers.checkpoint_io import CheckpointError, compare_state_dict
    from trainers.archs import build_arch

    sys.path.insert(0, str(REPO / "tests" / "trainers"))
    from test_archs_matting_dim import _torchvision_mobilenet_v2_state, _torchvision_vgg16_state
    from test_archs_matting_gca import _torchvision_resnet34_state

    states = {"vgg16": lambda: _torchvision_vgg16_state(False), "mobilenet_v2": _torchvision_mobilenet_v2_state,
              "resnet34": _torchvision_resnet34_state}
    path = tmp_path / f"{builder}.pth"
    torch.save(states[builder](), path)
    raw = yaml.safe_load((CONFIGS / f"{zoo}.yaml").read_text())
    raw["init_from"] = {"backbone": {"source": str(path), "format": "torchvision"}}
    cfg = load_experiment(write_config(tmp_path / "cfg.yaml", raw), check_paths=False)
    assert cfg.init_from["backbone"].strict is False
    state = imagenet_weights(cfg, "backbone", str(path))
    net = build_arch(**cfg.nets["backbone"])
    report = compare_state_dict(net, state)
    assert not report.unexpected and not report.mismatched, report.summary()
    first = next(k for k in state if k.startswith("encoder.") and state[k].ndim == 4)
    assert state[first].shape[1] == cfg.nets["backbone"]["in_channels"]  # widened to the trimap channels

    other = tmp_path / "other.pth"
    torch.save(states["vgg16" if builder != "vgg16" else "resnet34"](), other)
    with pytest.raises(CheckpointError, match="init_from.backbone: .* is not a torchvision file this arch"):
        imagenet_weights(cfg, "backbone", str(other))
