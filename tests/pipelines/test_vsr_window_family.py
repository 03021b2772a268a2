"""The sliding-window video SR family on real parts: every EDVR/TDAN zoo config against its
checkpoint key map; EDVR-M (TSA, fusion-only start) and TDAN (its normalisation and aligned-LR
loss) trained through REDS-layout clip shards (ranged reads of the window's frames only), Ray Data
and TorchTrainer; then ``restoray infer`` of a generated mp4 with the EDVR checkpoint (tiny
widths, a few steps)."""

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

from conftest import REPO, tiny_experiment, write_config
from test_vsr_family import _frames, _write_reds_clip

pytestmark = pytest.mark.slow
RESTORAY = [sys.executable, "-m", "pipelines.cli"]
CONFIGS = REPO / "configs" / "vsr"
KEYS = REPO / "tests" / "data" / "mmedit_checkpoint_keys"
KEY_MAP = {  # config -> its key map; EDVR-L without TSA and the other TDANs have none of their own
    "edvrm_wotsa_x4_8x4_600k_reds": "edvrm_wotsa_x4_8x4_600k_reds",
    "edvrm_x4_8x4_600k_reds": "edvrm_x4_8x4_600k_reds",
    "edvrl_wotsa_c128b40_8x8_lr2e-4_600k_reds4": "edvrl_c128b40_8x8_lr2e-4_600k_reds4",
    "edvrl_c128b40_8x8_lr2e-4_600k_reds4": "edvrl_c128b40_8x8_lr2e-4_600k_reds4",
    "tdan_vimeo90k_bix4_lr1e-4_400k": "tdan_vimeo90k_bix4_ft_lr5e-5_400k",
    "tdan_vimeo90k_bix4_ft_lr5e-5_400k": "tdan_vimeo90k_bix4_ft_lr5e-5_400k",
    "tdan_vimeo90k_bdx4_ft_lr5e-5_800k": "tdan_vimeo90k_bix4_ft_lr5e-5_400k",
    "tof_x4_vimeo90k_official": "tof_x4_vimeo90k_official",
}
WOTSA_L = "edvrl_wotsa_c128b40_8x8_lr2e-4_600k_reds4"


def _window_configs() -> set[str]:
    return {p.stem for p in CONFIGS.glob("*.yaml") if "name: vsr_window" in p.read_text()}


def test_every_window_zoo_config_is_here_and_matches_its_checkpoint():
    """Each config builds its zoo network with the key map's constructor arguments and state keys.
    EDVR-L without TSA: the TSA model's map less its fusion module, whose 1x1 conv has the shape of
    EDVR-M-without-TSA's at twice the width."""
    from pipelines.config import load_experiment
    from pipelines.train_job import build_nets
    from trainers.checkpoint_io import compare_state_dict

    assert _window_configs() == set(KEY_MAP)
    m_wotsa = json.loads((KEYS / "edvrm_wotsa_x4_8x4_600k_reds.json").read_text())["generator"]["keys"]
    for name, key_map in KEY_MAP.items():
        ref = json.loads((KEYS / f"{key_map}.json").read_text())["generator"]
        zoo, args = dict(ref["keys"]), dict(ref["kwargs"])
        if name == WOTSA_L:
            zoo = {k: v for k, v in zoo.items() if not k.startswith("fusion.")}
            zoo |= {k: [2 * s[0], 2 * s[1], *s[2:]] if len(s) > 1 else [2 * s[0]]
                    for k, s in m_wotsa.items() if k.startswith("fusion.")}
            args["with_tsa"] = False
        cfg = load_experiment(CONFIGS / f"{name}.yaml", check_paths=False)
        net = build_nets(cfg, "meta")["generator"]
        report = compare_state_dict(net, {k: torch.empty(s, device="meta") for k, s in zoo.items()})
        assert report.ok, f"{name}: {report.summary()}"
        assert {k: v for k, v in cfg.nets["generator"].items() if k != "name"} == args, name


def test_window_configs_follow_the_zoo_recipes():
    from pipelines.config import load_experiment

    cfgs = {n: load_experiment(CONFIGS / f"{n}.yaml", check_paths=False) for n in KEY_MAP}
    for name, cfg in cfgs.items():
        t, o = cfg.task, cfg.optim["generator"]
        if name.startswith("edvr"):
            assert (t.pixel.name, t.pixel.reduction, t.eval.padding, t.eval.convert_to) == (
                "charbonnier", "sum", "reflection_circle", "rgb")
            tsa = cfg.nets["generator"]["with_tsa"]
            assert o.train_only_until_step == ({"fusion": 50000 if "edvrm" in name else 5000} if tsa else {})
            assert bool(cfg.init_from) == tsa and all(not s.strict for s in cfg.init_from.get("generator", []))
        elif name.startswith("tof"):
            assert (t.upsample_lq, t.data.num_input_frames, t.eval.padding, t.eval.convert_to, t.eval.crop_border) == (
                True, 7, "reflection_circle", "rgb", 0)
        else:
            assert (t.normalize, t.pixel.name, t.eval.padding, t.eval.crop_border, t.eval.convert_to) == (
                "tdan", "mse", "reflection", 8, "y")
            assert t.aligned.weight == (0.01 if "bdx4" in name else 0.25)
            assert (t.data.window, t.data.num_input_frames) == ("centre", 5)


@pytest.fixture(scope="module")
def clip_shards(tmp_path_factory) -> dict[str, str]:
    """REDS layout: clips 001/002 train (8 frames), REDS4's 000/011 validation (5 and 6 frames)."""
    from shard_helpers import shard_dataset

    root = tmp_path_factory.mktemp("reds_window")
    for i, clip in enumerate(("000", "001", "002", "011")):
        _write_reds_clip(root / "raw", clip, _frames({"000": 5, "011": 6}.get(clip, 8), seed=i))
    out = {}
    for name, split in (("train", "train"), ("val", "reds4")):
        shard_dataset(str(root / "raw"), str(root / name), "reds", {"split": split, "lq": True, "crop": False},
                      items_per_shard=1)
        out[name] = str(root / name)
    return out


TINY_EDVR = {"name": "edvr", "mid_channels": 8, "num_frames": 5, "deform_groups": 2, "num_blocks_extraction": 1,
             "num_blocks_reconstruction": 1, "center_frame_idx": 2, "with_tsa": True}
TINY_TDAN = {"name": "tdan", "mid_channels": 8, "num_blocks_before_align": 1, "num_blocks_after_align": 1}


def window_experiment(shards, storage: str, name: str, task: dict, generator: dict, optim: dict) -> dict:
    return tiny_experiment(
        shards["train"], shards["val"], storage, name=name, task=task, nets={"generator": generator},
        data={"batch_size": 2, "transform_batch_size": 2},
        optim={"generator": {"name": "adam", "lr": 1e-3, "betas": [0.9, 0.999]} | optim}, ema={},
        train={"total_steps": 2, "log_every": 1, "val_every": 2, "checkpoint_every": 2},
        scaling={"num_workers": 1, "cpus_per_worker": 0.5},
    )


def _train(tmp: Path, cfg: dict):
    from pipelines.config import load_experiment
    from pipelines.train_job import run_train

    path = write_config(tmp / f"{cfg['name']}.yaml", cfg)
    return run_train(load_experiment(path), config_file=str(path), workdir=tmp, register=False), path


@pytest.fixture(scope="module")
def edvr_run(ray_session, clip_shards, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("edvr_runs")
    task = {"name": "vsr_window",
            "data": {"scale": 4, "gt_size": 32, "num_input_frames": 5, "degradation": {"preset": "paired"}},
            "pixel": {"name": "charbonnier", "reduction": "sum"}, "eval": {"padding": "reflection_circle"}}
    cfg = window_experiment(clip_shards, str(tmp / "runs"), "tiny_edvr", task, TINY_EDVR,
                            {"train_only_until_step": {"fusion": 1}})
    out, path = _train(tmp, cfg)
    return {"out": out, "config": path}


def test_edvr_tsa_trains_on_window_samples_fusion_first(edvr_run):
    out = edvr_run["out"]
    assert out.metrics["step"] == 2
    client = MlflowClient(tracking_uri=out.tracking_uri)
    logged = client.get_run(out.mlflow_run_id).data.metrics
    assert {"loss/charbonnier", "val/psnr", "val/ssim"} <= set(logged) and np.isfinite(logged["val/psnr"])
    previews = [a.path for a in client.list_artifacts(out.mlflow_run_id, "val") if a.path.endswith(".png")]
    strip = cv2.imread(client.download_artifacts(out.mlflow_run_id, previews[0]))
    assert strip.shape == (64, 7 * 64, 3)  # the middle frame's 5 LQ window frames | output | GT
    state = torch.load(Path(out.checkpoint_dir) / "checkpoint.pt", map_location="cpu", weights_only=True)
    from trainers.archs import ARCHS

    params = [n for n, _ in ARCHS["edvr"](**{k: v for k, v in TINY_EDVR.items() if k != "name"}).named_parameters()]
    moments = state["optimizers"]["generator"]["state"]
    steps = {params[i].split(".")[0] == "fusion": int(s["step"]) for i, s in moments.items()}
    assert steps == {True: 2, False: 1}  # fusion trained both steps, the rest from step 1


def test_tdan_trains_with_its_normalisation_and_aligned_loss(ray_session, clip_shards, tmp_path):
    task = {"name": "vsr_window",
            "data": {"scale": 4, "gt_size": 32, "num_input_frames": 5, "window": "centre",
                     "degradation": {"preset": "paired"}},
            "pixel": {"name": "mse"}, "aligned": {"name": "mse", "weight": 0.25}, "normalize": "tdan",
            "eval": {"padding": "reflection", "crop_border": 2, "convert_to": "y"}}
    out, _ = _train(tmp_path, window_experiment(clip_shards, str(tmp_path / "runs"), "tiny_tdan", task, TINY_TDAN, {}))
    assert out.metrics["step"] == 2
    logged = MlflowClient(tracking_uri=out.tracking_uri).get_run(out.mlflow_run_id).data.metrics
    want = {"loss/mse", "loss/aligned", "val/psnr", "val/ssim"}
    assert want <= set(logged) and all(np.isfinite(logged[k]) for k in want), sorted(logged)


def test_infer_restores_every_frame_of_an_mp4(edvr_run, tmp_path):
    from pipelines.video_io import VideoWriter, read_video

    src = tmp_path / "in.mp4"
    with VideoWriter(src, Fraction(25), None, (24, 32)) as w:
        for f in _frames(7, seed=5, hw=(24, 32)):
            w.write(f)
    out = tmp_path / "out.mp4"
    ckpt = str(Path(edvr_run["out"].checkpoint_dir) / "checkpoint.pt")
    infer = [*RESTORAY, "infer", str(edvr_run["config"]), "--checkpoint", ckpt, "--out", str(out), str(src)]
    proc = subprocess.run([*infer, "--max-seq-len", "5"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "frames 1-7" in proc.stdout  # the 2-frame tail is too short for reflection_circle: one chunk
    restored, meta = read_video(out)
    restored = list(restored)
    assert len(restored) == 7 and restored[0].shape == (96, 128, 3) and meta.fps == Fraction(25)
    short = subprocess.run([*infer, "--max-seq-len", "3"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert short.returncode == 1 and short.stderr.strip().count("\n") == 0
    assert "--max-seq-len: at least 5 frames" in short.stderr


def test_video_chunks_merge_a_tail_too_short_for_the_window():
    from pipelines.infer_video import chunks

    frames = [np.full((1, 1, 3), t, np.uint8) for t in range(13)]
    assert [len(c) for c in chunks(iter(frames[:11]), 5, 5)] == [5, 6]
    assert [len(c) for c in chunks(iter(frames[:10]), 5, 5)] == [5, 5]
    assert [len(c) for c in chunks(iter(frames[:13]), 4, 1)] == [4, 4, 4, 1]
    assert [int(f[0, 0, 0]) for c in chunks(iter(frames), 5, 5) for f in c] == list(range(13))


def test_eval_scores_every_frame_of_each_clip(edvr_run, tmp_path):
    ckpt = str(Path(edvr_run["out"].checkpoint_dir) / "checkpoint.pt")
    proc = subprocess.run([*RESTORAY, "eval", str(edvr_run["config"]), "--checkpoint", ckpt,
                           "--json", str(tmp_path / "r.json")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "r.json").read_text())
    assert [r["key"] for r in report["per_sample"]] == ["000", "011"]
    assert all(np.isfinite(r["model_psnr"]) and np.isfinite(r["bicubic_psnr"]) for r in report["per_sample"])
