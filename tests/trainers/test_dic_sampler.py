"""The DIC sampler against mmedit 0.16.1's pipeline (tests/data/golden/dic_sampler.npz, made by
tests/golden/make_dic_sampler_goldens.py) and against the heatmap's definition."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from preprocessing.schema import GT, LANDMARKS, encode_png
from trainers.samplers.dic import DICDataConfig, DICSampler, facial_heatmaps

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden" / "dic_sampler.npz"


def _members(image: np.ndarray, points: np.ndarray | None, size=None) -> dict[str, bytes]:
    out = {GT: encode_png(image), "__key__": "face1"}
    if points is not None:
        out[LANDMARKS] = json.dumps({"points": points.tolist(),
                                     "image_size": list(size or image.shape[:2])}).encode()
    return out


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as npz:
        return {k: npz[k] for k in npz.files}


def test_training_sample_matches_mmedits_pipeline(golden):
    sample = DICSampler(DICDataConfig()).train(_members(golden["image"], golden["landmarks"]),
                                               np.random.default_rng(0))
    assert sample["gt"].dtype == np.uint8 and sample["lq"].dtype == np.uint8
    np.testing.assert_array_equal(sample["gt"], golden["gt"])
    np.testing.assert_array_equal(sample["lq"], golden["lq"])
    assert sample["heatmap"].shape == (68, 32, 32) and sample["heatmap"].dtype == np.float32
    np.testing.assert_allclose(sample["heatmap"][:8], golden["heatmap"].transpose(2, 0, 1), rtol=1e-6, atol=1e-7)


def test_validation_sample_is_the_same_pair_without_heatmaps(golden):
    sample = DICSampler(DICDataConfig()).val(_members(golden["image"], None), np.random.default_rng(0))
    assert set(sample) == {"lq", "gt"}
    np.testing.assert_array_equal(sample["lq"], golden["lq"])


def test_heatmap_peaks_sit_at_the_landmarks():
    rng = np.random.default_rng(3)
    # integer heatmap positions (x, y) in a 200 x 160 (h x w) image: x * 160 / 32, y * 200 / 32
    cells = np.stack([rng.integers(0, 32, 68), rng.integers(0, 32, 68)], 1)
    points = cells * np.array([160 / 32, 200 / 32])
    maps = facial_heatmaps(points, (200, 160), 32, 1.0)
    for (x, y), m in zip(cells, maps):
        assert np.unravel_index(m.argmax(), m.shape) == (y, x)  # rows are y
        assert m[y, x] == pytest.approx(1.0)
        if x + 1 < 32:
            assert m[y, x + 1] == pytest.approx(np.exp(-0.5), rel=1e-6)  # sigma 1: one pixel away
    off = facial_heatmaps(np.array([[10.3 * 5, 20.8 * 6.25]]), (200, 160), 32, 1.0)[0]
    assert np.unravel_index(off.argmax(), off.shape) == (21, 10)  # nearest cell to (10.3, 20.8)


def test_landmarks_of_a_non_square_face_follow_the_resize():
    """A bright dot drawn at each landmark stays under its heatmap's peak after the 128 px resize."""
    img = np.zeros((96, 64, 3), np.uint8)
    points = np.array([[8.0, 12.0], [40.0, 60.0], [56.0, 84.0]] + [[32.0, 48.0]] * 65, np.float32)
    for x, y in points[:3]:
        cv2.circle(img, (int(x), int(y)), 3, (255, 255, 255), -1)
    sample = DICSampler(DICDataConfig()).train(_members(img, points), np.random.default_rng(0))
    for i in range(3):
        y, x = np.unravel_index(sample["heatmap"][i].argmax(), (32, 32))
        patch = sample["gt"][y * 4: y * 4 + 4, x * 4: x * 4 + 4].astype(int)
        assert patch.mean() > 120, (i, x, y)


@pytest.mark.parametrize("members, message", [
    (lambda img, pts: _members(img, pts[:67]), r"^sample face1: landmarks.json holds 67 points, expected 68$"),
    (lambda img, pts: _members(img, None), r"^sample face1: no landmarks.json member"),
    (lambda img, pts: _members(img, pts, size=(512, 512)), r"^sample face1: landmarks are for a 512x512 image"),
    (lambda img, pts: {"__key__": "face1"}, r"^sample face1: no gt.png member$"),
])
def test_bad_samples_are_one_line_errors(golden, members, message):
    with pytest.raises(ValueError, match=message):
        DICSampler(DICDataConfig()).train(members(golden["image"], golden["landmarks"]), np.random.default_rng(0))
