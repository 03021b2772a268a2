"""The image SR sampler: what each degradation route ships, seeded per sample."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from degradations.bench import synthetic_gt
from degradations.seeding import sample_rng
from degradations.usm import usm_sharp
from trainers.samplers.sr import SRDataConfig, SRSampler, to_float, to_uint8


def _members(size: int = 120) -> dict:
    img = (synthetic_gt(size, np.random.default_rng(0)) * 255).round().astype(np.uint8)
    return {"gt.png": cv2.imencode(".png", img[..., ::-1])[1].tobytes(), "__key__": "k0"}


def _data(**kw) -> SRDataConfig:
    base = {"scale": 4, "gt_size": 96, "out_size": 64, "use_hflip": True, "use_rot": False,
            "degradation": {"preset": "realesrgan"}}
    return SRDataConfig(**{**base, **kw})


def test_realesrgan_ships_plain_and_sharpened_gt_cropped_together():
    sampler = SRSampler(_data())
    out = sampler.train(_members(), sample_rng(1, 0, "k0"))
    assert set(out) == {"lq", "gt", "gt_usm"}
    assert out["lq"].shape == (16, 16, 3) and out["gt"].shape == out["gt_usm"].shape == (64, 64, 3)
    assert all(v.dtype == np.uint8 for v in out.values())
    again = sampler.train(_members(), sample_rng(1, 0, "k0"))
    assert all(np.array_equal(out[k], again[k]) for k in out)
    # the USM target is the plain GT, sharpened (before the crop, so the crop cuts both alike)
    uncropped = SRSampler(_data(out_size=None)).train(_members(), sample_rng(1, 0, "k0"))
    assert uncropped["lq"].shape == (24, 24, 3) and uncropped["gt"].shape == (96, 96, 3)
    sharpened = to_uint8(usm_sharp(to_float(uncropped["gt"])))
    assert np.array_equal(uncropped["gt_usm"], sharpened) and not np.array_equal(sharpened, uncropped["gt"])


def test_gpu_route_ships_gt_parameters_and_crop_corner():
    out = SRSampler(_data(degradation={"preset": "realesrgan", "device": "gpu"})).train(
        _members(), sample_rng(1, 0, "k0"))
    assert set(out) == {"gt", "params", "crop"}
    assert out["gt"].shape == (96, 96, 3) and out["params"].dtype == np.float64
    assert out["crop"].dtype == np.int64 and 0 <= out["crop"].min() and out["crop"].max() <= 24 - 16


def test_bicubic_ships_no_sharpened_gt():
    out = SRSampler(_data(degradation={"preset": "bicubic"}, out_size=None)).train(_members(), sample_rng(0, 0, "k0"))
    assert set(out) == {"lq", "gt"}


def test_out_size_is_checked():
    assert _data(gt_size=400, out_size=256).out_size == 256
    for bad in (258, 404):
        with pytest.raises(ValueError, match="out_size"):
            _data(gt_size=400, out_size=bad)


def test_paired_needs_the_lq_member():
    sampler = SRSampler(_data(degradation={"preset": "paired"}, out_size=None))
    with pytest.raises(ValueError, match="no lq.png"):
        sampler.train(_members(), sample_rng(0, 0, "k0"))
