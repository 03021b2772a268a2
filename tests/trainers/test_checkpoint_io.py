"""Checkpoint reading: layouts, EMA preference, and one-line errors for bad files."""

import argparse

import numpy as np
import pytest
import torch

from trainers.checkpoint_io import CheckpointError, extract_generator_state, load_checkpoint_file

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


@pytest.mark.parametrize(
    ("ckpt", "prefer_ema", "expected", "source"),
    [
        (_zoo(with_ema=True), True, EMA, "zoo generator_ema"),
        (_zoo(with_ema=True), False, GEN, "zoo generator"),
        (_zoo(with_ema=False), True, GEN, "zoo generator"),
        (_restoray(EMA), True, EMA, "restoray ema"),
        (_restoray(EMA), False, GEN, "restoray model"),
        (_restoray(None), True, GEN, "restoray model"),
        (dict(GEN), True, GEN, "bare state_dict"),
        ({"module." + k: v for k, v in GEN.items()}, True, GEN, "bare state_dict"),
    ],
)
def test_extract_generator_state(ckpt, prefer_ema, expected, source):
    state, got_source = extract_generator_state(ckpt, prefer_ema=prefer_ema)
    assert got_source == source
    assert state.keys() == expected.keys()
    assert all(torch.equal(state[k], expected[k]) for k in expected)


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
    with pytest.raises(CheckpointError, match="Unsupported global"):
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
