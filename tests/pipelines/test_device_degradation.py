"""``task.data.degradation.device: gpu`` without Ray: what the stream ships and what the worker makes of it.

The worker-side stage runs on CPU torch here (no GPU on the test machine); that is the
same code a CUDA worker runs.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import degradations.realesrgan as resr
import trainers.samplers.sr as sr_sampler
from conftest import textured_image
from degradations.realesrgan import PARAMS_WIDTH, NoiseDraw, unpack_params
from degradations.seeding import sample_rng
from pipelines.stream import TrainTransform
from preprocessing.schema import encode_png
from trainers.device_degradation import DeviceDegradation
from trainers.samplers.sr import SRDataConfig, SRSampler
from trainers.tasks.sr import SRConfig

DATA = SRDataConfig(scale=4, gt_size=96, out_size=64, use_hflip=True, use_rot=True,
                    degradation={"preset": "realesrgan", "device": "gpu"})
CPU_DATA = DATA.model_copy(update={"degradation": sr_sampler.DegradationConfig(preset="realesrgan")})


def photos(n: int = 4) -> list[bytes]:
    return [encode_png(textured_image(120, 140, i)) for i in range(n)]


def sample(data: SRDataConfig, png: bytes, key: str) -> dict[str, np.ndarray]:
    return SRSampler(data).train({"gt.png": png, "__key__": key}, sample_rng(3, 0, key))


def shipped(data: SRDataConfig, items: list[bytes]) -> dict[str, torch.Tensor]:
    cols = [sample(data, b, f"k{i}") for i, b in enumerate(items)]
    return {k: torch.from_numpy(np.stack([c[k] for c in cols])) for k in ("gt", "params", "crop")}


def stage(data: SRDataConfig) -> DeviceDegradation:
    return DeviceDegradation(data.scale, data.out_size)


def test_the_stream_ships_numeric_columns():
    items = photos(3)
    batch = {"key": np.array(["k0", "k1", "k2"]), "epoch": np.zeros(3, np.int64),
             "names": np.array([["gt.png"]] * 3, dtype=object), "blobs": np.array([[b] for b in items], dtype=object)}
    out = TrainTransform(SRConfig(data=DATA), seed=3)(batch)
    assert set(out) == {"gt", "params", "crop", "skipped"} and out["skipped"].tolist() == [0, 0, 0]
    assert out["gt"].shape == (3, 96, 96, 3) and out["gt"].dtype == np.uint8
    assert out["params"].shape == (3, PARAMS_WIDTH) and out["params"].dtype == np.float64
    assert out["crop"].shape == (3, 2) and out["crop"].dtype == np.int64
    assert ((out["crop"] >= 0) & (out["crop"] <= (96 - 64) // 4)).all()
    for v in out["params"]:
        unpack_params(v)  # a valid parameter set


def test_same_pairs_as_the_cpu_path_when_noise_is_off(monkeypatch):
    # With the noise sigma forced to 0 nothing random is left in the degradation: the
    # device stage must give exactly the CPU path's samples (same parameters, same crop, same
    # USM target, same 8-bit quantisation; JPEG is bit-identical on both routes).
    quiet = NoiseDraw("gaussian", sigma=0.0)
    draw = resr.sample_params

    def no_noise(rng, cfg=resr.X4PLUS):
        return dataclasses.replace(draw(rng, cfg), noise1=quiet, noise2=quiet)

    monkeypatch.setattr(resr, "sample_params", no_noise)  # used by the realesrgan preset (CPU path)
    monkeypatch.setattr(sr_sampler, "sample_params", no_noise)  # used by the sampler's gpu route
    items = photos(4)
    out = stage(DATA)(shipped(DATA, items))
    assert out["lq"].shape == (4, 3, 16, 16) and out["gt"].shape == out["gt_usm"].shape == (4, 3, 64, 64)
    for i, b in enumerate(items):
        cpu = sample(CPU_DATA, b, f"k{i}")
        for key in ("lq", "gt", "gt_usm"):
            np.testing.assert_allclose(out[key][i].permute(1, 2, 0).numpy(), cpu[key] / 255, rtol=0, atol=1e-6)


def test_with_noise_only_the_realisation_differs():
    items = photos(4)
    out = stage(DATA)(shipped(DATA, items))
    for i, b in enumerate(items):
        cpu = sample(CPU_DATA, b, f"k{i}")
        for key in ("gt", "gt_usm"):
            np.testing.assert_allclose(out[key][i].permute(1, 2, 0).numpy(), cpu[key] / 255, rtol=0, atol=1e-6)
        d = np.abs(out["lq"][i].permute(1, 2, 0).numpy() - cpu["lq"] / 255).mean()
        assert d < 0.2  # measured 0.027-0.15 (a torch noise draw vs a numpy one, through the whole chain)
    again = stage(DATA)(shipped(DATA, items))
    assert torch.equal(out["lq"], again["lq"])  # deterministic per sample: resumes see the same data


def test_crop_cuts_the_full_outputs_at_the_shipped_corners():
    items = photos(3)
    ship = shipped(DATA, items)
    cropped = stage(DATA)(ship)
    full = DeviceDegradation(4, None)(ship)
    assert full["lq"].shape == (3, 3, 24, 24)
    for i, (t, l) in enumerate(ship["crop"].tolist()):
        assert torch.equal(cropped["lq"][i], full["lq"][i, :, t : t + 16, l : l + 16])
        for key in ("gt", "gt_usm"):
            assert torch.equal(cropped[key][i], full[key][i, :, 4 * t : 4 * t + 64, 4 * l : 4 * l + 64])
    assert torch.equal(full["gt_usm"], torch.round(full["gt_usm"] * 255) / 255)  # target on the 8-bit grid


def test_only_presets_with_a_torch_path_ship_parameters():
    with pytest.raises(ValueError, match="batched torch path"):
        SRDataConfig(degradation={"preset": "bicubic", "device": "gpu"})
