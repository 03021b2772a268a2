"""``data.degradation.device: gpu`` without Ray: what the stream ships and what the worker makes of it.

The worker-side stage runs on CPU torch here (no GPU on the test machine); that is the
same code a CUDA worker runs.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import degradations.realesrgan as resr
import pipelines.transforms as transforms
from conftest import textured_image
from degradations.realesrgan import PARAMS_WIDTH, NoiseDraw, unpack_params
from pipelines.stream import TrainTransform
from preprocessing.schema import encode_png
from trainers.device_degradation import DeviceDegradation

DATA = {"scale": 4, "gt_size": 96, "out_size": 64, "use_hflip": True, "use_rot": True,
        "degradation": {"preset": "realesrgan", "device": "gpu", "pool_size": 0}}


def photos(n: int = 4) -> list[bytes]:
    return [encode_png(textured_image(120, 140, i)) for i in range(n)]


def shipped(data: dict, items: list[bytes]) -> dict[str, torch.Tensor]:
    cols = [transforms.train_gt_params(b, f"k{i}", 0, 3, data) for i, b in enumerate(items)]
    return {name: torch.from_numpy(np.stack([c[j] for c in cols])) for j, name in enumerate(("gt", "params", "crop"))}


def test_the_stream_ships_numeric_columns():
    items = photos(3)
    batch = {"key": np.array(["k0", "k1", "k2"]), "epoch": np.zeros(3, np.int64),
             "gt": np.array(items, dtype=object), "lq": np.array([b""] * 3, dtype=object)}
    out = TrainTransform(DATA, seed=3)(batch)
    assert set(out) == {"gt", "params", "crop"}
    assert out["gt"].shape == (3, 96, 96, 3) and out["gt"].dtype == np.uint8
    assert out["params"].shape == (3, PARAMS_WIDTH) and out["params"].dtype == np.float64
    assert out["crop"].shape == (3, 2) and out["crop"].dtype == np.int64
    assert ((out["crop"] >= 0) & (out["crop"] <= (96 - 64) // 4)).all()
    for v in out["params"]:
        unpack_params(v)  # a valid parameter set


def test_same_pairs_as_the_cpu_path_when_noise_is_off(monkeypatch):
    # With the noise sigma forced to 0 nothing random is left in the degradation: the
    # device stage must give exactly the CPU path's pairs (same parameters, same crop, same
    # USM target, same 8-bit quantisation; JPEG is bit-identical on both routes).
    quiet = NoiseDraw("gaussian", sigma=0.0)
    sample = resr.sample_params

    def no_noise(rng, cfg=resr.X4PLUS):
        return dataclasses.replace(sample(rng, cfg), noise1=quiet, noise2=quiet)

    monkeypatch.setattr(resr, "sample_params", no_noise)  # used by the realesrgan preset (CPU path)
    monkeypatch.setattr(transforms, "sample_params", no_noise)  # used by train_gt_params (device path)
    items = photos(4)
    out = DeviceDegradation(DATA)(shipped(DATA, items))
    assert out["lq"].shape == (4, 3, 16, 16) and out["gt"].shape == (4, 3, 64, 64)
    for i, b in enumerate(items):
        lq, gt = transforms.train_pair(b, None, f"k{i}", 0, 3, DATA)
        np.testing.assert_allclose(out["lq"][i].permute(1, 2, 0).numpy(), lq / 255, rtol=0, atol=1e-6)
        np.testing.assert_allclose(out["gt"][i].permute(1, 2, 0).numpy(), gt / 255, rtol=0, atol=1e-6)


def test_with_noise_only_the_realisation_differs():
    items = photos(4)
    out = DeviceDegradation(DATA)(shipped(DATA, items))
    for i, b in enumerate(items):
        lq, gt = transforms.train_pair(b, None, f"k{i}", 0, 3, DATA)
        np.testing.assert_allclose(out["gt"][i].permute(1, 2, 0).numpy(), gt / 255, rtol=0, atol=1e-6)
        d = np.abs(out["lq"][i].permute(1, 2, 0).numpy() - lq / 255).mean()
        assert d < 0.2  # measured 0.027-0.15 (a torch noise draw vs a numpy one, through the whole chain)
    again = DeviceDegradation(DATA)(shipped(DATA, items))
    assert torch.equal(out["lq"], again["lq"])  # deterministic per sample: resumes see the same data


def test_crop_cuts_the_full_outputs_at_the_shipped_corners():
    items = photos(3)
    ship = shipped(DATA, items)
    cropped = DeviceDegradation(DATA)(ship)
    full = DeviceDegradation(dict(DATA, out_size=None))(ship)
    assert full["lq"].shape == (3, 3, 24, 24)
    for i, (t, l) in enumerate(ship["crop"].tolist()):
        assert torch.equal(cropped["lq"][i], full["lq"][i, :, t : t + 16, l : l + 16])
        assert torch.equal(cropped["gt"][i], full["gt"][i, :, 4 * t : 4 * t + 64, 4 * l : 4 * l + 64])
    assert torch.equal(full["gt"], torch.round(full["gt"] * 255) / 255)  # target on the 8-bit grid


def test_only_presets_with_a_torch_path_ship_parameters():
    data = dict(DATA, degradation={"preset": "bicubic", "device": "gpu", "pool_size": 0})
    with pytest.raises(ValueError, match="no torch path for preset 'bicubic'"):
        transforms.train_gt_params(photos(1)[0], "k", 0, 0, data)
