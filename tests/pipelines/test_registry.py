"""The model registry: state dicts + architecture specs, and champions registered by earlier releases."""

from __future__ import annotations

import pytest
import torch
from mlflow.tracking import MlflowClient

from pipelines import registry
from trainers.archs import build_arch


def _run(uri: str, tmp_path) -> str:
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("reg")
    exp_id = exp.experiment_id if exp else client.create_experiment(
        "reg", artifact_location=(tmp_path / "artifacts").as_uri())
    return client.create_run(exp_id).info.run_id


def test_register_and_load_by_version_and_alias(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    torch.manual_seed(0)
    g = build_arch("edsr", mid_channels=8, num_blocks=1, upscale_factor=2)
    d = build_arch("unet_disc_sn", mid_channels=4)
    arch = {"generator": {"name": "edsr", "kwargs": {"mid_channels": 8, "num_blocks": 1, "upscale_factor": 2}},
            "discriminator": {"name": "unet_disc_sn", "kwargs": {"mid_channels": 4}}}
    version = registry.register(uri, _run(uri, tmp_path), "tiny", "sr_gan", arch,
                                {"generator": g.state_dict(), "discriminator": d.state_dict()})
    assert version == "1"
    again = registry.register(uri, _run(uri, tmp_path), "tiny", "sr_gan", arch, {"generator": g.state_dict()})
    assert again == "2"
    MlflowClient(tracking_uri=uri).set_registered_model_alias("tiny", "champion", "1")
    for ref in ("models:/tiny/1", "models:/tiny@champion"):
        payload = registry.load(uri, ref)
        assert payload["task"] == "sr_gan" and payload["arch"] == arch
        rebuilt = build_arch(payload["arch"]["generator"]["name"], **payload["arch"]["generator"]["kwargs"])
        rebuilt.load_state_dict(payload["nets"]["generator"], strict=True)
        assert all(torch.equal(a, b) for a, b in zip(rebuilt.state_dict().values(), g.state_dict().values()))
    assert set(registry.load(uri, "models:/tiny/2")["nets"]) == {"generator"}
    assert registry.find_version(uri, "tiny", "champion")["version"] == "1"
    assert registry.find_version(uri, "tiny", "nobody") is None and registry.find_version(uri, "nothing", "x") is None
    with pytest.raises(ValueError, match="models:/tiny/9: not in the registry"):
        registry.load(uri, "models:/tiny/9")
    with pytest.raises(ValueError, match="not a registry URI"):
        registry.load(uri, "models:/tiny")


def test_champions_registered_as_pickled_modules_still_load(tmp_path, monkeypatch):
    """Releases before the state-dict registry logged ``mlflow.pytorch`` pickled modules."""
    import os

    import mlflow
    import mlflow.pytorch

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = _run(uri, tmp_path)
    torch.manual_seed(1)
    model = build_arch("srcnn", upscale_factor=2)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # set_tracking_uri exports it: undone after the test
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(run_id=run_id):
        mlflow.pytorch.log_model(model, name="model", serialization_format="pickle",
                                 registered_model_name="legacy", pip_requirements=["torch"])
    mlflow.set_tracking_uri(None)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    payload = registry.load(uri, "models:/legacy/1")  # through the given URI alone
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert payload["format"] == "mlflow.pytorch" and set(payload["nets"]) == {"generator"}
    assert all(torch.equal(payload["nets"]["generator"][k], v) for k, v in model.state_dict().items())
