"""Checks made before Ray starts: a run name holds one model, and a config reads only what its shards hold."""

from __future__ import annotations

import pytest

from conftest import tiny_experiment
from pipelines.config import ConfigError
from pipelines.schema import ExperimentConfig
from pipelines.train_job import arch_spec, check_same_model


def _cfg(**nets) -> ExperimentConfig:
    raw = tiny_experiment("/tmp/train", "/tmp/val", "/tmp/runs")
    raw["nets"]["generator"].update(nets)
    return ExperimentConfig.model_validate(raw)


def test_same_model_resumes_and_schedule_changes_are_allowed():
    cfg = _cfg()
    held = {"model": {"task": "sr", "arch": arch_spec(cfg)}}
    check_same_model(cfg, held, "tiny_edsr")  # no error
    longer = ExperimentConfig.model_validate({**cfg.model_dump(mode="json"), "train": {
        **cfg.train.model_dump(mode="json"), "total_steps": 99}})
    check_same_model(longer, held, "tiny_edsr")


def test_other_architecture_or_task_is_refused_naming_the_field():
    held = {"model": {"task": "sr", "arch": arch_spec(_cfg())}}
    with pytest.raises(ConfigError, match=r"^nets.generator: run 'tiny_edsr' .* holds edsr\(.*mid_channels=8.*\), "
                                          r"this config has edsr\(.*mid_channels=16"):
        check_same_model(_cfg(mid_channels=16), held, "tiny_edsr")
    with pytest.raises(ConfigError, match=r"^task.name: .* was trained as 'sr_gan'"):
        check_same_model(_cfg(), {"model": {"task": "sr_gan", "arch": held["model"]["arch"]}}, "tiny_edsr")
    extra = {"model": {"task": "sr", "arch": {**held["model"]["arch"], "discriminator": {"name": "x", "kwargs": {}}}}}
    with pytest.raises(ConfigError, match=r"^nets.discriminator: .* holds x\(\), this config has no such network"):
        check_same_model(_cfg(), extra, "tiny_edsr")


def test_manifest_lists_the_members_every_sample_holds(tiny_shards):
    from preprocessing.shards import read_manifest

    assert read_manifest(tiny_shards["train"])["members"] == ["gt.png"]


def test_paired_preset_on_gt_only_shards_is_refused_before_ray(tiny_shards, tmp_path):
    import subprocess
    import sys

    from conftest import REPO, write_config

    cfg = write_config(tmp_path / "paired.yaml", tiny_experiment(tiny_shards["train"], tiny_shards["val"],
                                                                 str(tmp_path / "runs")))
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "train", str(cfg), "--workdir", str(tmp_path),
                           "task.data.degradation.preset=paired"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("restoray: config error: task.data.degradation.preset: reads the lq.png member")
    assert "adapter 'image_folder'" in err[0] and err[0].endswith("hold only gt.png")
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "mlflow.db").exists()  # no MLflow run was made


def test_cluster_check_names_the_field_and_fit_shrinks_requests_to_the_cluster(ray_session):
    import ray

    from pipelines.cluster import check_fits, fit_to_cluster

    raw = tiny_experiment("/tmp/train", "/tmp/val", "/tmp/runs")
    raw["scaling"] = {"num_workers": 2, "use_gpu": True, "cpus_per_worker": 8}
    raw["data"].update(transform_actors=4, cpus_per_actor=2)
    zoo_like = ExperimentConfig.model_validate(raw)
    have = ray.cluster_resources()
    assert not have.get("GPU")  # the test machine: CPUs only
    with pytest.raises(ConfigError, match=r"^scaling.use_gpu: training can never start on this cluster: it needs "
                                          r"2 GPU .*data.cpus_per_actor=2\). .*restoray train --fit"):
        check_fits(zoo_like)
    no_gpu = zoo_like.model_copy(update={"scaling": zoo_like.scaling.model_copy(update={"use_gpu": False})})
    with pytest.raises(ConfigError, match=r"^scaling.cpus_per_worker: .* it needs 24.26 CPU \(2 x 8 for the workers"):
        check_fits(no_gpu)

    fitted, changes = fit_to_cluster(zoo_like)
    check_fits(fitted)  # now it can start
    assert "scaling.use_gpu=True->False" in changes
    assert fitted.scaling.num_workers == 2 and fitted.data.transform_actors == 4  # what changes results is kept
    assert fitted.data.batch_size == zoo_like.data.batch_size
    total = 2 * fitted.scaling.cpus_per_worker + 4 * fitted.data.cpus_per_actor + 0.26
    assert total <= have["CPU"] + 1e-9
    assert fit_to_cluster(fitted)[1] == []  # a config that fits is left alone
