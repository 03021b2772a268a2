"""Checkpoint reading: layouts, EMA preference, and one-line errors for bad files."""

import argparse

import numpy as np
import pytest
import torch

from trainers.checkpoint_io import (
    CheckpointError,
    extract_generator_state,
    extract_net_state,
    load_checkpoint_file,
    roles,
    upgrade,
)

GEN = {"conv.weight": torch.ones(2, 2)}
EMA = {"conv.weight": torch.full((2, 2), 2.0)}


def _zoo(with_ema: bool) -> dict:
    state = {"generator." + k: v for k, v in GEN.items()}
    state["discriminator.fc.weight"] = torch.zeros(1)
    if with_ema:
        state.update({"generator_ema." + k: v for k, v in EMA.items()})
    return {"meta": {}, "state_dict": state}


def _restoray(ema: dict | None) -> dict:
    return {"format": "restoray/1", "model": GEN, "ema": ema, "optimizer": {}, "scheduler": {}, "step": 3,
            "data_position": {}, "config": {}}


DISC = {"fc.weight": torch.full((1,), 3.0)}


def _restoray_v2() -> dict:
    return {"format": "restoray/2", "nets": {"generator": GEN, "discriminator": DISC},
            "ema": {"generator": EMA}, "optimizers": {}, "schedulers": {}, "step": 3, "samples_seen": 9}


@pytest.mark.parametrize(
    ("ckpt", "prefer_ema", "expected", "source"),
    [
        (_zoo(with_ema=True), True, EMA, "zoo generator_ema"),
        (_zoo(with_ema=True), False, GEN, "zoo generator"),
        (_zoo(with_ema=False), True, GEN, "zoo generator"),
        (_restoray(EMA), True, EMA, "restoray generator ema"),
        (_restoray(EMA), False, GEN, "restoray generator"),
        (_restoray(None), True, GEN, "restoray generator"),
        (_restoray_v2(), True, EMA, "restoray generator ema"),
        (_restoray_v2(), False, GEN, "restoray generator"),
        (dict(GEN), True, GEN, "bare state_dict"),
        ({"module." + k: v for k, v in GEN.items()}, True, GEN, "bare state_dict"),
    ],
)
def test_extract_generator_state(ckpt, prefer_ema, expected, source):
    state, got_source = extract_generator_state(ckpt, prefer_ema=prefer_ema)
    assert got_source == source
    assert state.keys() == expected.keys()
    assert all(torch.equal(state[k], expected[k]) for k in expected)


def test_discriminator_from_zoo_and_v2_files():
    state, source = extract_net_state(_zoo(with_ema=True), "discriminator")
    assert source == "zoo discriminator" and list(state) == ["fc.weight"]
    state, source = extract_net_state(_restoray_v2(), "discriminator")
    assert source == "restoray discriminator" and torch.equal(state["fc.weight"], DISC["fc.weight"])
    with pytest.raises(CheckpointError, match="no 'discriminator' network"):
        extract_net_state(_restoray(EMA), "discriminator")
    with pytest.raises(CheckpointError, match="holds one network"):
        extract_net_state(dict(GEN), "discriminator")


def test_roles_of_each_layout():
    assert roles(_zoo(with_ema=True)) == ["discriminator", "generator"]
    assert roles(_restoray_v2()) == ["generator", "discriminator"]
    assert roles(_restoray(None)) == ["generator"]
    assert roles(dict(GEN)) == ["generator"]


def test_v1_checkpoint_upgrades_to_v2():
    v1 = _restoray(EMA) | {"pair_pool": [{"filled": 4, "lq": torch.zeros(4), "gt": torch.zeros(4)}],
                           "samples_seen": 12}
    v2 = upgrade(v1)
    assert v2["format"] == "restoray/2" and v2["step"] == 3 and v2["samples_seen"] == 12
    assert v2["nets"] == {"generator": GEN} and v2["ema"] == {"generator": EMA}
    assert v2["optimizers"] == {"generator": {}} and v2["schedulers"] == {"generator": {}}
    assert v2["pair_pool"] is None  # v1 pools held post-degradation pairs: the pool refills
    with pytest.raises(CheckpointError, match="unsupported"):
        upgrade({"format": "restoray/9"})


def test_unknown_layout():
    with pytest.raises(CheckpointError, match="unknown checkpoint layout"):
        extract_generator_state({"weights": [1, 2]})
    with pytest.raises(CheckpointError, match="no generator"):
        extract_generator_state({"meta": {}, "state_dict": {}})


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint_file(tmp_path / "nope.pth")


def test_not_a_torch_file(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot load") as info:
        load_checkpoint_file(bad)
    assert "\n" not in str(info.value)


def test_code_execution_is_refused(tmp_path):
    # Any class outside tensors/containers must be refused, not instantiated.
    file = tmp_path / "pickled_object.pth"
    torch.save({"state_dict": {}, "meta": {"args": argparse.Namespace(lr=1e-4)}}, file)
    with pytest.raises(CheckpointError, match="carries pickled code or objects .GLOBAL argparse.Namespace"):
        load_checkpoint_file(file)


def test_non_dict_top_level(tmp_path):
    file = tmp_path / "tensor.pth"
    torch.save(torch.zeros(1), file)
    with pytest.raises(CheckpointError, match="expected a dict"):
        load_checkpoint_file(file)


def test_numpy_meta_and_legacy_format_load(tmp_path):
    # Old mmcv checkpoints: legacy (pre-1.6) serialisation, numpy scalars in meta.
    file = tmp_path / "legacy.pth"
    meta = {"best_psnr": np.float64(30.2), "iter": np.int64(300000)}
    ckpt = {"meta": meta, "state_dict": {"generator.w": torch.ones(1)}}
    torch.save(ckpt, file, _use_new_zipfile_serialization=False)
    loaded = load_checkpoint_file(f"file://{file}")
    assert loaded["meta"]["best_psnr"] == pytest.approx(30.2)
    assert extract_generator_state(loaded)[1] == "zoo generator"
