"""The frame-interpolation family on real parts: every vfi zoo config against its checkpoint key
map; CAIN trained through Vimeo-90K-triplet-layout clip shards (ranged frame reads), Ray Data and
TorchTrainer; ``evaluate`` against the blend baseline; ``restoray infer`` doubling the frame count
and frame rate of a generated mp4, making the middle of two images, and refusing a one-frame
video and a pair of different sizes in one line (tiny widths, a few steps)."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from conftest import REPO, textured_image, tiny_experiment, write_config

pytestmark = pytest.mark.slow
RESTORAY = [sys.executable, "-m", "pipelines.cli"]
CONFIGS = REPO / "configs" / "vfi"
KEYS = REPO / "tests" / "data" / "mmedit_checkpoint_keys"
ZOO = {"cain_b5_g1b32_vimeo90k_triplet", "flavr_in4out1_g8b4_vimeo90k_septuplet",
       "tof_vfi_spynet_chair_nobn_1xb1_vimeo90k"}
TINY_CAIN = {"name": "cain", "num_block_groups": 1, "num_block_layers": 1, "depth": 1, "reduction": 4, "padding": 3}


def test_every_vfi_zoo_config_is_here_and_loads_its_checkpoint_keys_strictly():
    from pipelines.config import load_experiment
    from pipelines.train_job import build_nets
    from trainers.checkpoint_io import compare_state_dict

    assert {p.stem for p in CONFIGS.glob("*.yaml")} == ZOO
    for name in sorted(ZOO):
        ref = json.loads((KEYS / f"{name}.json").read_text())["generator"]
        cfg = load_experiment(CONFIGS / f"{name}.yaml", check_paths=False)
        assert cfg.task.name == "vfi"
        net = build_nets(cfg, "meta")["generator"]
        report = compare_state_dict(net, {k: torch.empty(s, device="meta") for k, s in ref["keys"].items()})
        assert report.ok, f"{name}: {report.summary()}"
        args = {k: v for k, v in cfg.nets["generator"].items() if k != "name"}
        assert args == ref["kwargs"], name  # the zoo's own constructor arguments
    _every_shard_path_is_made_by_a_vimeo_shard_config_of_the_right_layout()
    plateaus = {name: load_experiment(CONFIGS / f"{name}.yaml", check_paths=False).schedule["generator"]
                for name in sorted(ZOO) if not name.startswith("tof")}
    assert {n: (s.name, s.metric, s.mode, s.factor, s.patience, s.cooldown) for n, s in plateaus.items()} == {
        "cain_b5_g1b32_vimeo90k_triplet": ("plateau", "psnr", "max", 0.5, 5, 0),
        "flavr_in4out1_g8b4_vimeo90k_septuplet": ("plateau", "psnr", "max", 0.5, 10, 20)}  # lr_config Reduce


def _every_shard_path_is_made_by_a_vimeo_shard_config_of_the_right_layout():
    import yaml

    from pipelines.config import load_experiment
    from preprocessing.adapters import get_adapter

    shards = {}
    for path in (REPO / "configs" / "data").glob("*.yaml"):
        c = yaml.safe_load(path.read_text())
        shards[c["dest"]] = get_adapter(c["adapter"]).resolve_params(c.get("params")) | {"adapter": c["adapter"]}
    for name in sorted(ZOO):
        cfg = load_experiment(CONFIGS / f"{name}.yaml", check_paths=False)
        layout = "triplet" if len(cfg.task.data.input_frames) == 2 else "septuplet"
        for field, split in (("train", "train"), ("val", "test")):
            params = shards[getattr(cfg.data, field)]
            assert (params["adapter"], params["layout"], params["split"]) == ("vimeo90k", layout, split), (name, field)


def _frames(n: int, seed: int, hw=(40, 40)) -> list[np.ndarray]:
    """A textured picture panning 2 px per frame, so the middle frame is a real in-between."""
    big = textured_image(hw[0] + 2 * n, hw[1] + 2 * n, seed)
    return [np.ascontiguousarray(big[2 * t:2 * t + hw[0], 2 * t:2 * t + hw[1]]) for t in range(n)]


def _write_triplets(root: Path, seqs: list[str], lists: str, seed: int) -> None:
    for i, seq in enumerate(seqs):
        folder = root / "sequences" / seq
        folder.mkdir(parents=True, exist_ok=True)
        for t, f in enumerate(_frames(3, seed + i)):
            cv2.imwrite(str(folder / f"im{t + 1}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    (root / f"tri_{lists}list.txt").write_text("\n".join(seqs) + "\n")


@pytest.fixture(scope="module")
def triplet_shards(tmp_path_factory) -> dict[str, str]:
    from shard_helpers import shard_dataset

    root = tmp_path_factory.mktemp("vimeo_triplet")
    _write_triplets(root / "raw", ["00001/0001", "00001/0002", "00002/0001"], "train", 0)
    _write_triplets(root / "raw", ["00003/0001", "00003/0002"], "test", 10)
    out = {}
    for split in ("train", "test"):
        shard_dataset(str(root / "raw"), str(root / split), "vimeo90k", {"layout": "triplet", "split": split},
                      items_per_shard=2)
        out[split] = str(root / split)
    return out


@pytest.fixture(scope="module")
def trained(ray_session, triplet_shards, tmp_path_factory) -> dict:
    from pipelines.config import load_experiment
    from pipelines.train_job import run_train

    tmp = tmp_path_factory.mktemp("vfi_runs")
    cfg = tiny_experiment(
        triplet_shards["train"], triplet_shards["test"], str(tmp / "runs"), name="tiny_cain",
        task={"name": "vfi", "data": {"crop_size": 32}, "pixel": {"name": "l1"}},
        nets={"generator": dict(TINY_CAIN)},
        data={"batch_size": 2, "transform_batch_size": 2},
        optim={"generator": {"name": "adam", "lr": 1e-3, "betas": [0.9, 0.99]}},
        schedule={"generator": {"name": "plateau", "metric": "psnr", "factor": 0.5, "patience": 0}},
        ema={},
        train={"total_steps": 2, "log_every": 1, "val_every": 2, "checkpoint_every": 2},
        scaling={"num_workers": 1, "cpus_per_worker": 0.5},
    )
    path = write_config(tmp / "cain.yaml", cfg)
    out = run_train(load_experiment(path), config_file=str(path), workdir=tmp, register=False)
    return {"out": out, "config": path, "ckpt": str(Path(out.checkpoint_dir) / "checkpoint.pt")}


def test_cain_trains_on_triplet_shards_and_logs_the_interpolation_preview(trained):
    out = trained["out"]
    assert out.metrics["step"] == 2
    client = MlflowClient(tracking_uri=out.tracking_uri)
    logged = client.get_run(out.mlflow_run_id).data.metrics
    assert {"loss/l1", "val/psnr", "val/ssim"} <= set(logged) and np.isfinite(logged["val/psnr"])
    previews = [a.path for a in client.list_artifacts(out.mlflow_run_id, "val") if a.path.endswith(".png")]
    picture = cv2.imread(client.download_artifacts(out.mlflow_run_id, previews[0]))
    assert picture.shape == (40, 4 * 40, 3)  # frame 0 | synthesised | frame 1 | GT
    plateau = torch.load(trained["ckpt"], map_location="cpu", weights_only=True)["schedulers"]["generator"]
    assert plateau["num_validations"] == 1 and plateau["best"] == pytest.approx(logged["val/psnr"])  # fed val/psnr


def test_evaluate_scores_the_model_and_the_blend_baseline(trained):
    from pipelines.config import load_experiment
    from pipelines.evaluate import evaluate
    from pipelines.infer import load_nets

    cfg = load_experiment(trained["config"])
    result = evaluate(cfg, load_nets(cfg, trained["ckpt"], trained["out"].tracking_uri)[0])
    assert result["num_samples"] == 2 and [r["key"] for r in result["per_sample"]] == ["00003_0001", "00003_0002"]
    assert all(np.isfinite(r[k]) for r in result["per_sample"] for k in ("model_psnr", "blend_psnr", "model_ssim"))
    assert result["directions"] == {"psnr": "max", "ssim": "max"}


def test_infer_doubles_the_frame_count_and_rate_of_an_mp4(trained, tmp_path):
    from pipelines.video_io import VideoWriter, read_video

    src = tmp_path / "in.mp4"
    frames = _frames(5, seed=5, hw=(24, 32))
    with VideoWriter(src, Fraction(30000, 1001), None, (24, 32)) as w:
        for f in frames:
            w.write(f)
    decoded = list(read_video(src)[0])
    out = tmp_path / "out.mp4"
    proc = subprocess.run([*RESTORAY, "infer", str(trained["config"]), "--checkpoint", trained["ckpt"],
                           "--out", str(out), str(src)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "9 frames 32x24 at 60000/1001 fps" in proc.stdout and "4 synthesised" in proc.stdout
    doubled, meta = read_video(out)
    doubled = list(doubled)
    assert len(doubled) == 9 and meta.fps == Fraction(60000, 1001) and doubled[0].shape == (24, 32, 3)
    for t in range(5):  # the originals at the even positions (up to the codec's loss): nearest to their source
        errors = [np.abs(doubled[2 * t].astype(int) - d).mean() for d in decoded]
        assert int(np.argmin(errors)) == t, (t, errors)


def test_infer_makes_the_middle_of_two_images_and_refuses_bad_inputs(trained, tmp_path, capsys):
    from pipelines.cli import main
    from pipelines.video_io import VideoWriter

    a, b = _frames(2, seed=3, hw=(20, 28))
    for name, img in (("a.png", a), ("b.png", b), ("big.png", np.zeros((24, 28, 3), np.uint8))):
        cv2.imwrite(str(tmp_path / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    base = ["infer", str(trained["config"]), "--checkpoint", trained["ckpt"]]
    assert main([*base, "--out", str(tmp_path / "mid"), str(tmp_path / "a.png"), str(tmp_path / "b.png")]) == 0
    mid = cv2.imread(str(tmp_path / "mid" / "a_b.png"))
    assert mid.shape == (20, 28, 3)
    capsys.readouterr()
    assert main([*base, "--out", str(tmp_path / "m.png"), str(tmp_path / "a.png"), str(tmp_path / "big.png")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "frame 1 is 24x28, frame 0 is 20x28" in err
    assert main([*base, "--out", str(tmp_path / "m.png"), str(tmp_path / "a.png")]) == 2
    assert "two images, got 1" in capsys.readouterr().err
    one = tmp_path / "one.mp4"
    with VideoWriter(one, 25, None, (20, 28)) as w:
        w.write(a)
    assert main([*base, "--out", str(tmp_path / "o.mp4"), str(one)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "one.mp4: a video with one frame has no gap to interpolate" in err
