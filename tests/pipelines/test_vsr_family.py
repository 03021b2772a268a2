"""The recurrent video SR family on real parts: every zoo config against its checkpoint key map;
BasicVSR trained through REDS-layout clip shards (ranged frame reads), Ray Data and
TorchTrainer, SIGKILLed after its first checkpoint and resumed to the same weights as an
uninterrupted run; RealBasicVSR's GAN stage with the ``realbasicvsr`` preset; then ``restoray
eval`` per clip and ``restoray infer`` on a generated mp4 (tiny widths, a few steps)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from conftest import REPO, kill_after_first_checkpoint, textured_image, tiny_experiment, write_config

pytestmark = pytest.mark.slow
RESTORAY = [sys.executable, "-m", "pipelines.cli"]
CONFIGS = REPO / "configs" / "vsr"
KEYS = REPO / "tests" / "data" / "mmedit_checkpoint_keys"
KEY_MAP = {  # the Vimeo-90K configs build the networks of the REDS key maps, but for IconVSR's
    "basicvsr_reds4": "basicvsr_reds4",
    "basicvsr_vimeo90k_bi": "basicvsr_reds4",
    "basicvsr_vimeo90k_bd": "basicvsr_reds4",
    "iconvsr_reds4": "iconvsr_reds4",
    "iconvsr_vimeo90k_bi": "iconvsr_vimeo90k_bi",  # padding 3: 7-frame TSA (tests/golden/make_vsr_key_maps.py)
    "iconvsr_vimeo90k_bd": "iconvsr_vimeo90k_bi",
    "basicvsr_plusplus_c64n7_8x1_600k_reds4": "basicvsr_plusplus_c64n7_8x1_600k_reds4",
    "basicvsr_plusplus_c64n7_4x2_300k_vimeo90k_bi": "basicvsr_plusplus_c64n7_8x1_600k_reds4",
    "basicvsr_plusplus_c64n7_4x2_300k_vimeo90k_bd": "basicvsr_plusplus_c64n7_8x1_600k_reds4",
    "realbasicvsr_wogan_c64b20_2x30x8_lr1e-4_300k_reds": "realbasicvsr_c64b20_1x30x8_lr5e-5_150k_reds",
    "realbasicvsr_c64b20_1x30x8_lr5e-5_150k_reds": "realbasicvsr_c64b20_1x30x8_lr5e-5_150k_reds",
}
TINY_BASICVSR = {"name": "basicvsr", "mid_channels": 4, "num_blocks": 1}


def test_every_vsr_zoo_config_is_here_and_matches_its_checkpoint():
    from pipelines.config import load_experiment
    from pipelines.train_job import build_nets
    from trainers.checkpoint_io import compare_state_dict

    recurrent = {p.stem for p in CONFIGS.glob("*.yaml") if "name: vsr_window" not in p.read_text()}  # window: own test
    assert recurrent == set(KEY_MAP)
    for name, key_map in KEY_MAP.items():
        ref = json.loads((KEYS / f"{key_map}.json").read_text())
        zoo = {"generator": ref["generator"]["keys"]} | ({"discriminator": ref["discriminator"]["keys"]}
                                                          if ref.get("discriminator") else {})
        cfg = load_experiment(CONFIGS / f"{name}.yaml", check_paths=False)
        nets = build_nets(cfg, "meta")
        for role, net in nets.items():
            report = compare_state_dict(net, {k: torch.empty(s, device="meta") for k, s in zoo[role].items()})
            assert report.ok, f"{name} {role}: {report.summary()}"
        if key_map == name or name.startswith("iconvsr_vimeo90k"):  # the zoo's own constructor arguments
            args = {k: v for k, v in ref["generator"]["kwargs"].items() if not k.endswith("_pretrained")}
            assert {k: v for k, v in cfg.nets["generator"].items() if k != "name"} == args, name


def _frames(n: int, seed: int, hw=(64, 64)) -> list[np.ndarray]:
    """A textured picture panning 2 px per frame: the flow networks see motion."""
    big = textured_image(hw[0] + 2 * n, hw[1] + 2 * n, seed)
    return [np.ascontiguousarray(big[2 * t:2 * t + hw[0], 2 * t:2 * t + hw[1]]) for t in range(n)]


def _write_reds_clip(root: Path, clip: str, frames: list[np.ndarray]) -> None:
    for kind, scale in (("train_sharp", 1), ("train_sharp_bicubic/X4", 4)):
        folder = root / kind / clip
        folder.mkdir(parents=True, exist_ok=True)
        for t, f in enumerate(frames):
            img = cv2.resize(f, (f.shape[1] // scale, f.shape[0] // scale), interpolation=cv2.INTER_AREA) if scale > 1 else f
            cv2.imwrite(str(folder / f"{t:08d}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))


@pytest.fixture(scope="module")
def clip_shards(tmp_path_factory) -> dict[str, str]:
    """A REDS layout: clips 001/002 train (8 frames), REDS4's 000/011 validation (5 and 6 frames:
    clips of different lengths give rows with different member columns, as Vid4's do)."""
    from shard_helpers import shard_dataset

    root = tmp_path_factory.mktemp("reds")
    for i, clip in enumerate(("000", "001", "002", "011")):
        _write_reds_clip(root / "raw", clip, _frames({"000": 5, "011": 6}.get(clip, 8), seed=i))
    out = {}
    for name, split in (("train", "train"), ("val", "reds4")):
        shard_dataset(str(root / "raw"), str(root / name), "reds", {"split": split, "lq": True, "crop": False},
                      items_per_shard=1)
        out[name] = str(root / name)
    out["root"] = str(root)
    return out


def vsr_experiment(shards: dict[str, str], storage: str, name: str, **sections) -> dict:
    cfg = tiny_experiment(
        shards["train"], shards["val"], storage, name=name,
        task={"name": "vsr", "data": {"scale": 4, "gt_size": 32, "num_input_frames": 3, "degradation": {"preset": "paired"}},
              "pixel": {"name": "charbonnier"}, "eval": {"crop_border": 0}},
        nets={"generator": dict(TINY_BASICVSR)},
        data={"batch_size": 2, "transform_batch_size": 2},
        optim={"generator": {"name": "adam", "lr": 1e-3, "betas": [0.9, 0.99], "lr_mult": {"spynet": 0.125},
                             "frozen_until_step": {"spynet": 2}}},
        ema={},
        # a plateau schedule that halves the rate at every validation after the first (threshold 10:
        # nothing counts as better), so the SIGKILL test below also covers its state across a resume
        schedule={"generator": {"name": "plateau", "metric": "psnr", "factor": 0.5, "patience": 0, "threshold": 10.0}},
        train={"total_steps": 4, "log_every": 1, "val_every": 1, "checkpoint_every": 2},
        scaling={"num_workers": 1, "cpus_per_worker": 0.5},
    )
    for section, values in sections.items():
        cfg[section] = values
    return cfg


def _ckpt(trained) -> str:
    return str(Path(trained["out"].checkpoint_dir) / "checkpoint.pt")


@pytest.fixture(scope="module")
def trained(ray_session, clip_shards, tmp_path_factory) -> dict:
    from pipelines.config import load_experiment
    from pipelines.train_job import run_train

    tmp = tmp_path_factory.mktemp("vsr_runs")
    path = write_config(tmp / "basicvsr.yaml", vsr_experiment(clip_shards, str(tmp / "runs"), "tiny_basicvsr"))
    out = run_train(load_experiment(path), config_file=str(path), workdir=tmp, register=True)
    return {"out": out, "config": path, "tmp": tmp}


def test_basicvsr_trains_on_clip_shards_and_logs_a_frame_strip(trained):
    out = trained["out"]
    assert out.metrics["step"] == 4
    client = MlflowClient(tracking_uri=out.tracking_uri)
    logged = client.get_run(out.mlflow_run_id).data.metrics
    assert {"loss/charbonnier", "val/psnr", "val/ssim"} <= set(logged) and np.isfinite(logged["val/psnr"])
    previews = [a.path for a in client.list_artifacts(out.mlflow_run_id, "val") if a.path.endswith(".png")]
    assert previews
    strip = cv2.imread(client.download_artifacts(out.mlflow_run_id, previews[0]))
    assert strip.shape == (3 * 64, 3 * 64, 3)  # first, middle, last frame; LQ | output | GT


def test_spynet_is_frozen_then_trains_at_its_lr_multiplier(trained):
    """frozen_until_step 2 of 4 and lr_mult 0.125: after 4 steps SPyNet moved less than the rest
    would at full rate, and the optimizer holds its parameters in a group at lr x 0.125."""
    state = torch.load(Path(trained["out"].checkpoint_dir) / "checkpoint.pt", map_location="cpu", weights_only=True)
    groups = state["optimizers"]["generator"]["param_groups"]
    assert sorted(round(g["lr"] / max(x["lr"] for x in groups), 6) for g in groups) == [0.125, 1.0]
    moments = state["optimizers"]["generator"]["state"]
    spy = next(g for g in groups if g["lr"] < max(x["lr"] for x in groups))
    assert {int(moments[i]["step"]) for i in spy["params"] if i in moments} == {2}  # two of four steps trained
    rest = next(g for g in groups if g is not spy)
    assert {int(moments[i]["step"]) for i in rest["params"] if i in moments} == {4}


def test_killed_video_run_resumes_bit_identical(trained, clip_shards, tmp_path):
    """The same experiment SIGKILLed after its first committed checkpoint and resumed by
    the same command ends with every weight, optimizer state and plateau-schedule state equal to
    the uninterrupted run's."""
    storage = tmp_path / "b"
    path = write_config(tmp_path / "b.yaml", vsr_experiment(clip_shards, str(storage), "tiny_basicvsr"))
    cmd = [*RESTORAY, "train", str(path), "--workdir", str(storage), "--no-register"]
    kill_after_first_checkpoint(cmd, storage, "tiny_basicvsr", tmp_path / "b.log")
    second = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, (second.stdout + second.stderr)[-3000:]
    resumed = re.search(r"resuming run 'tiny_basicvsr' from step (\d+)", second.stdout)
    assert resumed and 1 <= int(resumed.group(1)) < 4, second.stdout[-2000:]  # killed mid-run, resumed there
    final = json.loads(second.stdout[second.stdout.index("{\n"):])
    a = torch.load(Path(trained["out"].checkpoint_dir) / "checkpoint.pt", map_location="cpu", weights_only=True)
    b = torch.load(Path(final["checkpoint"]) / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert a["step"] == b["step"] == 4 and a["samples_seen"] == b["samples_seen"]
    assert a["schedulers"] == b["schedulers"]  # the plateau schedule's counters and rate, across the kill
    lrs = sorted(g["lr"] for g in a["optimizers"]["generator"]["param_groups"])
    assert lrs == pytest.approx([1e-3 * 0.125 * 0.5**3, 1e-3 * 0.5**3])  # halved at validations 2, 3 and 4
    for k, v in a["nets"]["generator"].items():
        assert torch.equal(v, b["nets"]["generator"][k]), k
    for i, st in a["optimizers"]["generator"]["state"].items():
        for name, t in st.items():
            assert torch.equal(torch.as_tensor(t), torch.as_tensor(b["optimizers"]["generator"]["state"][i][name])), (i, name)


def test_eval_prints_per_clip_scores(trained, clip_shards, tmp_path):
    proc = subprocess.run([*RESTORAY, "eval", str(trained["config"]), "--checkpoint", _ckpt(trained),
                           "--json", str(tmp_path / "r.json")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "r.json").read_text())
    table = proc.stdout.splitlines()[-4:]
    assert [line.split()[0] for line in table] == ["sample", "000", "011", "mean"] and "model_psnr" in table[0]
    assert report["num_samples"] == 2 and [r["key"] for r in report["per_sample"]] == ["000", "011"]
    assert all(np.isfinite(r["model_psnr"]) and np.isfinite(r["bicubic_psnr"]) for r in report["per_sample"])
    assert report["model_psnr"] == pytest.approx(np.mean([r["model_psnr"] for r in report["per_sample"]]))


def test_infer_restores_an_mp4_into_an_mp4_with_its_frame_rate(trained, tmp_path):
    from pipelines.video_io import VideoWriter, read_video

    src = tmp_path / "in.mp4"
    frames = _frames(9, seed=5, hw=(24, 32))
    with VideoWriter(src, Fraction(30000, 1001), None, (24, 32)) as w:
        for f in frames:
            w.write(f)
    out = tmp_path / "out.mp4"
    proc = subprocess.run([*RESTORAY, "infer", str(trained["config"]), "--checkpoint", _ckpt(trained),
                           "--out", str(out), str(src), "--max-seq-len", "4"], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "frames 9-9" in proc.stdout  # chunks of 4, 4 and 1
    restored, meta = read_video(out)
    restored = list(restored)
    assert len(restored) == 9 and restored[0].shape == (96, 128, 3) and meta.fps == Fraction(30000, 1001)
    clip = tmp_path / "clip"  # a frame folder in -> a frame folder out, one PNG per frame
    clip.mkdir()
    for t, f in enumerate(frames[:5]):
        cv2.imwrite(str(clip / f"im{t + 1}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    folder = tmp_path / "frames"
    proc = subprocess.run([*RESTORAY, "infer", str(trained["config"]), "--checkpoint", _ckpt(trained),
                           "--out", str(folder), str(clip)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in (folder / "clip").iterdir()) == [f"{t:08d}.png" for t in range(5)]
    assert cv2.imread(str(folder / "clip" / "00000004.png")).shape == (96, 128, 3)


def test_infer_refuses_a_file_that_is_not_a_video(trained, tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    proc = subprocess.run([*RESTORAY, "infer", str(trained["config"]), "--checkpoint", _ckpt(trained),
                           "--out", str(tmp_path / "o.mp4"), str(bad)], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "notes.mp4" in proc.stderr


def test_realbasicvsr_gan_stage_trains_with_the_clip_preset(ray_session, clip_shards, tmp_path):
    """RealBasicVSR's GAN stage: GT-only clips, the realbasicvsr degradation mirrored 3 -> 6 frames,
    pixel + cleaning + perceptual + GAN losses, the U-Net discriminator on frames, EMA."""
    from pipelines.config import load_experiment
    from pipelines.train_job import run_train

    task = {"name": "vsr_gan",
            "data": {"scale": 4, "gt_size": 32, "num_input_frames": 3, "mirror": True,
                     "degradation": {"preset": "realbasicvsr"}},
            "pixel": {"name": "l1"}, "cleaning": {"name": "l1"},
            "perceptual": {"layer_weights": {"2": 0.1, "7": 0.1}, "style_weight": 0.0, "norm_img": False,
                           "allow_random_init": True},
            "gan": {"type": "vanilla", "weight": 0.05}, "sharpened_gt_in": ["pixel", "perceptual"]}
    cfg = vsr_experiment(clip_shards, str(tmp_path / "runs"), "tiny_realbasicvsr", task=task,
                         nets={"generator": {"name": "realbasicvsr", "mid_channels": 4, "num_propagation_blocks": 1,
                                             "num_cleaning_blocks": 1, "dynamic_refine_thres": 255},
                               "discriminator": {"name": "unet_disc_sn", "in_channels": 3, "mid_channels": 4}},
                         optim={"generator": {"name": "adam", "lr": 5e-5, "betas": [0.9, 0.99]},
                                "discriminator": {"name": "adam", "lr": 1e-4, "betas": [0.9, 0.99]}},
                         ema={"generator": {"decay": 0.999}},
                         train={"total_steps": 2, "log_every": 1, "val_every": 2, "checkpoint_every": 2})
    path = write_config(tmp_path / "rbvsr.yaml", cfg)
    out = run_train(load_experiment(path), config_file=str(path), workdir=tmp_path, register=False)
    logged = MlflowClient(tracking_uri=out.tracking_uri).get_run(out.mlflow_run_id).data.metrics
    want = {"loss/g_pix", "loss/clean", "loss/g_percep", "loss/g_gan", "loss/d_real", "loss/d_fake", "val/psnr", "val/niqe"}
    assert want <= set(logged), sorted(logged)
    assert all(np.isfinite(logged[k]) for k in want - {"val/niqe"})  # NIQE is NaN under one 96 px block


def test_runs_with_deformable_convs_log_which_implementation():
    from pipelines.config import load_experiment
    from pipelines.train_job import runtime_params
    from trainers.archs.deform_conv import deform_conv_backend

    pp = load_experiment(CONFIGS / "basicvsr_plusplus_c64n7_8x1_600k_reds4.yaml", check_paths=False)
    assert runtime_params(pp) == {"runtime.deform_conv": deform_conv_backend()}
    assert runtime_params(load_experiment(CONFIGS / "basicvsr_reds4.yaml", check_paths=False)) == {}


def test_init_from_into_fills_spynet_and_edvr_from_their_own_files(tmp_path):
    """IconVSR's two pretrained parts, each file holding one submodule (mmedit's spynet file is a
    bare SPyNet state; a whole-network checkpoint with the part under its prefix works too)."""
    from pipelines.config import load_experiment
    from pipelines.train_job import build_nets, submodule_weights
    from trainers.checkpoint_io import CheckpointError

    cfg = load_experiment(CONFIGS / "iconvsr_reds4.yaml", ["nets.generator.num_blocks=1"], check_paths=False)
    net = build_nets(cfg)["generator"]
    torch.save({"state_dict": net.spynet.state_dict()}, tmp_path / "spynet.pth")
    torch.save({"state_dict": {"generator." + k: v for k, v in net.state_dict().items()}, "meta": {}}, tmp_path / "whole.pth")
    sources = [s.model_copy(update={"source": str(tmp_path / f)}) for s, f in
               zip(cfg.init_from["generator"], ("spynet.pth", "whole.pth"))]
    state = submodule_weights(build_nets(cfg, "meta")["generator"], "generator", sources, "")
    assert set(state) == {k for k in net.state_dict() if k.startswith(("spynet.", "edvr."))}
    assert torch.equal(state["spynet.basic_module.0.basic_module.0.conv.weight"],
                       net.spynet.basic_module[0].basic_module[0].conv.weight)
    torch.save({"state_dict": {"conv.weight": torch.zeros(1)}}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match=r"^init_from.generator: .*other.pth does not fit spynet: "):
        submodule_weights(net, "generator", [sources[0].model_copy(update={"source": str(tmp_path / "other.pth")})], "")
