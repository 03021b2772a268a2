"""``restoray restore``: a whole folder or S3 prefix through a model as a Ray Data job.

Three Ray jobs in all (the S3 bucket end to end; a job that dies mid-way, then its re-run
through a killed model actor); everything else runs the stages in-process or stops before Ray.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from conftest import REPO, textured_image, tiny_experiment, write_config
from pipelines import cli, registry
from pipelines.cli import main
from pipelines.config import UsageError, load_experiment
from pipelines.image_io import decode_rgb
from pipelines.infer import restore_images, run_infer
from pipelines.restore import (
    ITEMS_PER_ACTOR, Item, RestoreOptions, plan_actors, plan_job, run_restore,
)
from pipelines.restore_model import resolve_model
from pipelines.restore_stages import ModelStage, read_stage, write_stage
from pipelines.train_job import arch_spec, build_nets
from preprocessing.storage import LocalStorage
from trainers.tasks import TASKS
from trainers.tasks.common import image_batch
from trainers.tasks.sr import SRTask


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny EDSR x4 experiment config, seeded weights as a zoo-style file, and the config object."""
    root = tmp_path_factory.mktemp("tiny_model")
    cfg_path = write_config(root / "tiny.yaml", tiny_experiment("unused/train", "unused/val", str(root / "runs")))
    cfg = load_experiment(cfg_path, check_paths=False)
    torch.manual_seed(3)
    state = build_nets(cfg)["generator"].state_dict()
    ckpt = root / "tiny_zoo.pth"
    torch.save({"meta": {}, "state_dict": {f"generator.{k}": v for k, v in state.items()}}, ckpt)
    return {"config": cfg_path, "cfg": cfg, "ckpt": ckpt, "state": state}


def _png(img: np.ndarray, suffix: str = ".png") -> bytes:
    ok, data = cv2.imencode(suffix, img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    assert ok
    return data.tobytes()


def _write(folder: Path, key: str, data: bytes) -> Path:
    path = folder / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _read(path: Path) -> np.ndarray:
    return decode_rgb(path.read_bytes(), str(path))


def _register(uri: str, root: Path, cfg, state, name: str) -> str:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("models") or None
    exp_id = exp.experiment_id if exp else client.create_experiment("models", (root / "artifacts").as_uri())
    run_id = client.create_run(exp_id).info.run_id
    return registry.register(uri, run_id, name, cfg.task.name, arch_spec(cfg), {"generator": state},
                             task_config=cfg.task.model_dump(mode="json"))


# --------------------------------------------------------------------------- end to end on S3


def test_s3_bucket_restored_with_a_registered_model(ray_session, s3_bucket, tiny, tmp_path, capsys):
    """Registry model, moto bucket, a corrupt input, outputs equal to infer's, a no-op re-run."""
    import boto3
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    version = _register(uri, tmp_path, tiny["cfg"], tiny["state"], "tiny_edsr")
    MlflowClient(tracking_uri=uri).set_registered_model_alias("tiny_edsr", "champion", version)
    s3 = boto3.client("s3")
    local = tmp_path / "photos"
    inputs = {"a/p0.png": _png(textured_image(40, 52, 1)), "a/p1.png": _png(textured_image(40, 52, 2)),
              "b/c/p2.jpg": _png(textured_image(36, 30, 3), ".jpg"), "broken.png": b"not an image",
              "notes.txt": b"not an image either"}
    for key, data in inputs.items():
        s3.put_object(Bucket=s3_bucket, Key=f"photos/{key}", Body=data)
        _write(local, key, data)
    src, dst = f"s3://{s3_bucket}/photos", f"s3://{s3_bucket}/restored"
    argv = ["restore", "--model", "models:/tiny_edsr@champion", src, dst, "--tracking-uri", uri]

    assert main(argv) == 1  # one input failed; the others are written
    out = capsys.readouterr().out
    assert "items 4: 3 written, 0 skipped (finished earlier), 1 failed; 1 non-image files ignored" in out
    assert "broken.png: not a readable image" in out

    # identical to `restoray infer` with the same model on the same files
    written, errors = run_infer(tiny["cfg"], "models:/tiny_edsr@champion", str(tmp_path / "infer"),
                                [str(local / k) for k in ("a/p0.png", "a/p1.png", "b/c/p2.jpg")], uri)
    assert not errors and len(written) == 3
    for key in ("a/p0.png", "a/p1.png", "b/c/p2.png"):
        body = s3.get_object(Bucket=s3_bucket, Key=f"restored/{key}")["Body"].read()
        got = decode_rgb(body, key)
        want = _read(tmp_path / "infer" / Path(key).name)
        assert got.shape == want.shape and np.array_equal(got, want), key

    manifest = json.loads(s3.get_object(Bucket=s3_bucket, Key="restored/_restore/manifest.json")["Body"].read())
    assert manifest["model"]["uri"] == "models:/tiny_edsr@champion" and manifest["model"]["version"] == version
    assert manifest["counts"] == {"listed": 4, "written": 3, "skipped": 0, "failed": 1, "ignored": 1, "outputs": 3}
    assert {o["output"]: o["out_size"] for o in manifest["outputs"]} == {
        "a/p0.png": [208, 160], "a/p1.png": [208, 160], "b/c/p2.png": [120, 144]}
    failures = json.loads(s3.get_object(Bucket=s3_bucket, Key="restored/_restore/failures.json")["Body"].read())
    assert failures == [{"source": "broken.png", "reason": "broken.png: not a readable image"}]

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("restoray-restore").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    m, tags = runs[0].data.metrics, runs[0].data.tags
    assert m["restore/written"] == 3 and m["restore/failed"] == 1 and m["restore/images_per_s"] > 0
    assert tags["restoray.model_version"] == version and runs[0].data.params["model"] == "models:/tiny_edsr@champion"

    # the corrupt file is removed; an output someone else wrote stays: finished outputs are skipped
    s3.delete_object(Bucket=s3_bucket, Key="photos/broken.png")
    sentinel = _png(np.zeros((2, 2, 3), np.uint8))
    s3.put_object(Bucket=s3_bucket, Key="restored/a/p1.png", Body=sentinel)
    t0 = time.monotonic()
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "items 3: 0 written, 3 skipped (finished earlier), 0 failed" in out and "nothing to do" in out
    assert time.monotonic() - t0 < 60
    assert s3.get_object(Bucket=s3_bucket, Key="restored/a/p1.png")["Body"].read() == sentinel

    # another model into the same DST is refused before anything runs
    other = {k: v + 0.01 for k, v in tiny["state"].items()}
    v2 = _register(uri, tmp_path, tiny["cfg"], other, "tiny_edsr")
    assert main(["restore", "--model", f"models:/tiny_edsr/{v2}", src, dst, "--tracking-uri", uri]) == 2
    assert "holds outputs of another model (models:/tiny_edsr@champion version 1" in capsys.readouterr().err


# --------------------------------------------------------------------------- failures mid-job


class FlakySR(SRTask):
    """SR whose prediction fails on demand, steered by marker files in ``markers``: while
    ``fail`` exists an all-black input raises OSError (an error the model stage does not take
    for a bad input: the job dies mid-way); while ``kill`` exists the first prediction removes
    it and kills its own actor process (Ray restarts the actor and retries its batch)."""

    markers = ""

    def predict(self, nets, batch):
        m = Path(self.markers)
        try:
            (m / "kill").unlink()
        except FileNotFoundError:
            pass
        else:
            os._exit(1)
        if (m / "fail").exists() and float(batch["lq"].amax()) == 0.0:
            time.sleep(1)  # give batches in flight on another actor a moment to land
            raise OSError("simulated failure mid-job")
        return super().predict(nets, batch)


def test_failed_job_then_killed_actor_rerun_redoes_nothing(ray_session, tiny, tmp_path):
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this module
    markers = tmp_path / "markers"
    markers.mkdir()
    FlakySR.markers = str(markers)
    model = resolve_model(str(tiny["ckpt"]), str(tiny["config"]), tracking="")
    model = dataclasses.replace(model, task_cls=FlakySR)
    src, dst = tmp_path / "in", tmp_path / "out"
    opts = RestoreOptions(num_actors=2, progress=False)
    # a first job finishes three images, so outputs exist before the failing one starts: Ray
    # Data may hand the poison's batch to an actor before any other (the pool can even scale
    # its second actor away), so "some outputs land first" cannot be left to the job's order
    for i in range(3):
        _write(src, f"p{i}.png", _png(textured_image(24, 28, i)))
    assert run_restore(model, str(src), str(dst), opts).written == 3
    for i in range(3, 7):
        _write(src, f"p{i}.png", _png(textured_image(24, 28, i)))
    _write(src, "z/poison.png", _png(np.zeros((24, 28, 3), np.uint8)))

    (markers / "fail").touch()
    with pytest.raises(Exception, match="simulated failure mid-job"):
        run_restore(model, str(src), str(dst), opts)
    # The failed job's model actors are released although the exception stays reachable:
    # pytest's log capture keeps Ray Data's record of it (with the exception as an argument)
    # until the test ends, as a notebook's sys.last_value or a record-keeping handler would;
    # before run_job cleared the exception's frames, an actor (0.75 CPU) outlived the test
    gc.collect()
    deadline = time.monotonic() + 30
    while ray_session.available_resources().get("CPU", 0.0) < 2.0 - 1e-6 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ray_session.available_resources().get("CPU", 0.0) == pytest.approx(2.0)
    finished = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in dst.rglob("*.png")}
    assert {dst / f"p{i}.png" for i in range(3)} <= set(finished)  # the first job's outputs stay
    assert dst / "z" / "poison.png" not in finished  # the poison's never landed
    assert all(_read(p).shape == (96, 112, 3) for p in finished)  # and each that exists is whole

    (markers / "fail").unlink()
    (markers / "kill").touch()
    summary = run_restore(model, str(src), str(dst), opts)
    assert not (markers / "kill").exists()  # an actor did die
    assert (summary.written, summary.skipped, summary.failed) == (8 - len(finished), len(finished), 0)
    assert all((p.stat().st_ino, p.stat().st_mtime_ns) == s for p, s in finished.items())  # not redone
    assert sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*.png")) == [
        *(f"p{i}.png" for i in range(7)), "z/poison.png"]
    assert not [p for p in dst.rglob("*") if p.name.endswith(".tmp")]


# --------------------------------------------------------------------------- the stages in-process


class GuidedSR(SRTask):
    """A stand-in for a family with an extra input no registered family reads (``guide``): SR of
    the image times the guide, so the job's pairing, reading and option are tested apart from
    any real family."""

    infer_inputs = ("image", "guide")

    def infer_batch(self, inputs):
        image, guide = inputs["image"], inputs["guide"]
        if image.shape[:2] != guide.shape:
            raise ValueError(f"guide {guide.shape[1]}x{guide.shape[0]} does not fit the {image.shape[1]}x"
                             f"{image.shape[0]} image")
        return {**image_batch(image, "lq"), "guide": torch.from_numpy(guide)[None, None].float() / 255}

    def predict(self, nets, batch):
        return super().predict(nets, {"lq": batch["lq"] * batch["guide"]})


def _run_stages(items: list[Item], model, storages, dst, batch_size: int) -> list[dict]:
    names = model.infer_inputs
    batch = {"key": np.array([i.key for i in items], dtype=object), "out": np.array([i.out for i in items], dtype=object),
             **{f"src_{n}": np.array([i.inputs[n] for i in items], dtype=object) for n in names}}
    out = write_stage(ModelStage(model, batch_size=batch_size)(read_stage(batch, storages, names)), dst)
    return [dict(zip(out, values)) for values in zip(*out.values())]


def test_an_extra_input_pairs_by_relative_path_and_stem(tiny, tmp_path, monkeypatch):
    model = dataclasses.replace(resolve_model(str(tiny["ckpt"]), str(tiny["config"]), tracking=""), task_cls=GuidedSR)
    src, masks, dst = LocalStorage(str(tmp_path / "in")), LocalStorage(str(tmp_path / "guides")), LocalStorage(
        str(tmp_path / "out"))
    images = {"a/x.png": textured_image(20, 24, 1), "a/y.png": textured_image(20, 24, 2),
              "b/z.png": textured_image(16, 12, 3), "b/w.png": textured_image(16, 12, 4)}
    for key, img in images.items():
        src.write_bytes(key, _png(img))
    rng = np.random.default_rng(0)
    mask = {k: (rng.uniform(size=img.shape[:2]) > 0.3).astype(np.uint8) * 255 for k, img in images.items()}
    masks.write_bytes("a/x.png", _png(mask["a/x.png"]))
    masks.write_bytes("a/y.bmp", _png(mask["a/y.png"], ".bmp"))
    masks.write_bytes("b/w.png", _png(np.zeros((5, 5), np.uint8)))  # the wrong size

    with pytest.raises(UsageError, match="needs a guide for each image: --guide"):
        plan_job(src, dst, model.infer_inputs, {}, "png")
    plan = plan_job(src, dst, model.infer_inputs, {"guide": (masks, None)}, "png")
    assert [(i.key, i.inputs["guide"]) for i in plan.todo] == [("a/x.png", "a/x.png"), ("a/y.png", "a/y.bmp"),
                                                             ("b/w.png", "b/w.png")]
    assert plan.failures == [{"source": "b/z.png", "reason": f"no guide b/z.* in {masks.uri()}"}]

    rows = {r["key"]: r for r in _run_stages(plan.todo, model, {"image": src, "guide": masks}, dst, batch_size=1)}
    assert "guide 5x5 does not fit the 12x16 image" in rows["b/w.png"]["error"] and not dst.exists("b/w.png")
    task = GuidedSR(model.task_cfg)
    nets = {"generator": build_nets(tiny["cfg"])["generator"].eval()}
    nets["generator"].load_state_dict(tiny["state"])
    for key in ("a/x.png", "a/y.png"):
        assert not rows[key]["error"]
        want = restore_images(task, nets, [{"image": images[key], "guide": mask[key]}], torch.device("cpu"))[0]
        assert np.array_equal(decode_rgb(dst.read_bytes(key), key), want), key

    # same-size inputs predicted as one batch: the rounding of a batched convolution may move a
    # few pixels by one level, nothing more
    batched = _run_stages(plan.todo[:2], model, {"image": src, "guide": masks}, LocalStorage(str(tmp_path / "b")), 4)
    for r in batched:
        diff = np.abs(decode_rgb((tmp_path / "b" / r["key"]).read_bytes(), "b").astype(int)
                      - decode_rgb(dst.read_bytes(r["key"]), "o").astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01

    # the command line grows one option per extra input a registered family reads
    assert "guide" not in cli.extra_input_names() and "--guide" not in cli._parser().format_help()
    monkeypatch.setitem(TASKS, "guided_sr", GuidedSR)
    args = cli._parser().parse_args(["restore", "--model", "m", "--guide", "guides/", "in/", "out/"])
    assert args.guide == "guides/" and "guide" in cli.extra_input_names()


def _soft_alpha(h: int, w: int, seed: int) -> np.ndarray:
    a = np.zeros((h, w), np.uint8)
    cv2.ellipse(a, (w // 2 + seed, h // 2), (w // 4, h // 3), 30.0 * seed, 0, 360, 255, -1)
    return cv2.GaussianBlur(a, (0, 0), 3)


def _trimap(h: int, w: int, seed: int) -> np.ndarray:
    alpha = _soft_alpha(h, w, seed)
    return np.where(alpha == 0, 0, np.where(alpha == 255, 255, 128)).astype(np.uint8)


def _hole(h: int, w: int, seed: int) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    mask[h // 4 + seed: h // 2 + seed, w // 5: w // 2] = 255
    return mask


FAMILIES = {  # family: (zoo config, main role, extra input, its maker, image size, a bad extra, its error)
    "matting": ("matting/baseline_r34_4x10_200k_comp1k", "backbone", "trimap", _trimap, (40, 56),
                np.full((40, 56), 100, np.uint8), "besides 0/128/255"),
    "inpainting": ("inpainting/deepfillv2_256x256_8x2_places", "generator", "mask", _hole, (80, 80),
                   np.where(_hole(80, 80, 0) > 0, 100, 0).astype(np.uint8), "not binary"),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_families_with_an_extra_input_restore_as_they_are(family, tmp_path, capsys):
    """Matting (image + trimap -> alpha) and inpainting (image + mask -> filled image) through the
    same stages with no change to the family or the job: outputs equal ``restoray infer``'s, a bad
    extra input is a failure entry, and ``--<extra>`` is on the command line because they read it."""
    zoo, role, extra, make, (h, w), bad, message = FAMILIES[family]
    config = REPO / "configs" / f"{zoo}.yaml"
    cfg = load_experiment(config, check_paths=False)
    torch.manual_seed(0)
    ckpt = tmp_path / "zoo.pth"
    torch.save({"meta": {}, "state_dict": {f"{role}.{k}": v for k, v in build_nets(cfg)[role].state_dict().items()}},
               ckpt)
    model = resolve_model(str(ckpt), str(config), tracking="")
    src, ext, dst = (LocalStorage(str(tmp_path / n)) for n in ("in", "extra", "out"))
    for i, key in enumerate(("a.png", "b.png", "c.png")):
        src.write_bytes(key, _png(textured_image(h, w, i)))
        ext.write_bytes(key, _png(make(h, w, i) if key != "c.png" else bad))

    plan = plan_job(src, dst, model.infer_inputs, {extra: (ext, None)}, "png")
    rows = {r["key"]: r for r in _run_stages(plan.todo, model, {"image": src, extra: ext}, dst, batch_size=4)}
    assert message in rows["c.png"]["error"] and not dst.exists("c.png")
    written, errors = run_infer(cfg, str(ckpt), str(tmp_path / "infer"), [str(tmp_path / "in" / k) for k in ("a.png", "b.png")],
                                extras={extra: str(tmp_path / "extra")})
    assert len(written) == 2 and not errors
    for key in ("a.png", "b.png"):
        got = cv2.imdecode(np.frombuffer(dst.read_bytes(key), np.uint8), cv2.IMREAD_UNCHANGED)
        want = cv2.imread(str(tmp_path / "infer" / key), cv2.IMREAD_UNCHANGED)
        assert got.shape[:2] == (h, w) and np.array_equal(got, want), key

    base = ["restore", "--model", str(ckpt), "--config", str(config), str(tmp_path / "in"), str(tmp_path / "o2"), "--dry-run"]
    assert main([*base, f"--{extra}", str(tmp_path / "extra")]) == 0
    assert f"restore a.png + {extra} a.png -> a.png" in capsys.readouterr().out
    assert main(base) == 2
    assert f"this model needs a {extra} for each image: --{extra}" in capsys.readouterr().err


def test_a_restoray_checkpoint_carries_its_config(tiny, tmp_path):
    cfg = tiny["cfg"]
    folder = tmp_path / "checkpoint_000003"
    folder.mkdir()
    torch.save({"format": "restoray/2", "config": cfg.model_dump(mode="json"), "arch": arch_spec(cfg),
                "nets": {"generator": {k: v + 1 for k, v in tiny["state"].items()}},
                "ema": {"generator": tiny["state"]}}, folder / "checkpoint.pt")
    model = resolve_model(str(folder), None, tracking="", tile=32, tile_overlap=8)
    assert model.source == "restoray generator ema" and model.task_cfg.eval.tile == 32
    assert model.task_cfg.data.scale == 4 and model.nets["generator"]["mid_channels"] == 8
    assert all(torch.equal(model.weights["generator"][k], v) for k, v in tiny["state"].items())
    with pytest.raises(UsageError, match="--tile-overlap: must be below the tile size"):
        resolve_model(str(folder), None, tracking="", tile=32, tile_overlap=32)
    with pytest.raises(UsageError, match="holds no restoray config"):
        resolve_model(str(tiny["ckpt"]), None, tracking="")


def test_actors_one_per_core_or_gpu_and_never_more_than_the_work():
    assert plan_actors({"CPU": 2.0}, None, None) == plan_actors({"CPU": 2.0}, None, None, 100)
    a = plan_actors({"CPU": 2.0}, None, None, 100)
    assert (a.count, a.threads, a.gpus) == (2, 1, 0.0) and a.count * a.cpus <= 1.5
    small = plan_actors({"CPU": 2.0}, None, None, ITEMS_PER_ACTOR)
    assert (small.count, small.threads) == (1, 2)  # one actor, every core's thread
    g = plan_actors({"CPU": 16.0, "GPU": 4.0}, None, None, 1000)
    assert (g.count, g.gpus, g.cpus) == (4, 1.0, 1.0)
    assert plan_actors({"CPU": 16.0, "GPU": 4.0}, None, 0.5, 1000).count == 8
    assert plan_actors({"CPU": 4.0, "GPU": 1.0}, None, 0.0, 1000).gpus == 0.0  # CPU actors asked for
    with pytest.raises(UsageError, match="need 2 GPUs; the cluster has 1"):
        plan_actors({"CPU": 8.0, "GPU": 1.0}, 2, 1.0)
    busy = plan_actors({"CPU": 2.0}, None, None, ITEMS_PER_ACTOR, free_cpus=1.0)  # the rest held by other work
    assert (busy.count, busy.threads) == (1, 2) and busy.cpus == pytest.approx(0.75)
    assert plan_actors({"CPU": 2.0}, None, None, 100, free_cpus=0.0).cpus == 0.05  # waits for the least


# --------------------------------------------------------------------------- the command line, before Ray


def test_dry_run_lists_the_plan_and_creates_nothing(tiny, tmp_path, capsys):
    src = tmp_path / "in"
    _write(src, "a/p0.png", _png(textured_image(20, 24, 0)))
    _write(src, "a/p0.jpg", _png(textured_image(20, 24, 1), ".jpg"))  # would also write a/p0.png
    _write(src, "b/q.webp", _png(textured_image(20, 24, 2), ".webp"))
    _write(src, ".hidden/x.png", b"skipped: hidden")
    dst = tmp_path / "out"
    base = ["restore", "--model", str(tiny["ckpt"]), "--config", str(tiny["config"]), str(src), str(dst), "--dry-run"]
    assert main(base) == 0
    out = capsys.readouterr().out
    assert "2 to restore, 0 finished (skipped), 1 cannot be restored, 1 other files ignored" in out
    assert "restore a/p0.png -> a/p0.png" in out and "restore b/q.webp -> b/q.png" in out
    assert "cannot  a/p0.jpg: its output a/p0.png is also a/p0.png's (use --format same)" in out
    assert not dst.exists()
    assert main([*base, "--format", "same"]) == 0
    out = capsys.readouterr().out
    assert "restore a/p0.jpg -> a/p0.jpg" in out and "restore b/q.webp -> b/q.webp" in out and "3 to restore" in out


def test_bad_command_lines_exit_2_with_one_line(tiny, tmp_path, capsys):
    src = tmp_path / "in"
    _write(src, "p.png", _png(textured_image(20, 24, 0)))
    model = ["--model", str(tiny["ckpt"]), "--config", str(tiny["config"])]
    cases = [
        (["--model", str(tmp_path / "missing.pth"), str(src), str(tmp_path / "o")], "model not found:"),
        ([*model, str(tmp_path / "nowhere"), str(tmp_path / "o")], "not found: " + str(tmp_path / "nowhere")),
        ([*model, str(src), str(src / "restored")], "is inside SRC"),
        ([*model, str(src), str(tmp_path)], f"is inside DST {tmp_path}: an output could replace a source"),
        (["--model", str(tiny["ckpt"]), str(src), str(tmp_path / "o")], "holds no restoray config"),
        ([*model, "--tile", "8", str(src), str(tmp_path / "o")], "--tile: Input should be greater than or equal to 16"),
        (["--model", "models:/nobody@champion", "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}", str(src),
          str(tmp_path / "o")], "models:/nobody@champion: not in the registry"),
    ]
    for args, expected in cases:
        assert main(["restore", *args, "--dry-run"]) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("restoray: error: ") and expected in err[-1], (args, err)
    # as a process: the exit code and a single line on stderr
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "restore", *model, str(src), str(src / "x")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"restoray: error: DST {src / 'x'} is inside SRC {src}: a re-run would read its own outputs"]


def test_config_file_tracking_uri_is_read(tiny, tmp_path):
    """--config's mlflow.tracking_uri is where the registry is looked up (no --tracking-uri)."""
    raw = yaml.safe_load(Path(tiny["config"]).read_text())
    raw["mlflow"]["tracking_uri"] = f"sqlite:///{tmp_path / 'cfg.db'}"
    cfg = write_config(tmp_path / "c.yaml", raw)
    src = tmp_path / "in"
    _write(src, "p.png", _png(textured_image(20, 24, 0)))
    rc = main(["restore", "--model", "models:/absent/1", "--config", str(cfg), str(src), str(tmp_path / "o"),
               "--dry-run"])
    assert rc == 2 and (tmp_path / "cfg.db").exists()


def test_bench_restore_quick(ray_session, tmp_path):
    from pipelines.bench_restore import format_table, write_bench_restore

    records = write_bench_restore(str(tmp_path / "bench.json"), quick=True)
    assert [r["case"] for r in records] == ["infer", "restore"]
    assert all(r["images"] == 6 and r["images_per_s"] > 0 and r["vs_infer"] > 0 for r in records)
    assert records[1]["startup_s"] is not None and records[0]["startup_s"] is None
    assert json.loads((tmp_path / "bench.json").read_text()) == records
    assert format_table(records).splitlines()[2].startswith("restore ")
