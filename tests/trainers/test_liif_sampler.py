"""The LIIF sampler against its definition and against mmedit 0.16.1's pipeline objects
(tests/data/golden/liif_sampler.npz, made by tests/golden/make_liif_sampler_goldens.py)."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from trainers.samplers.liif import Draws, LIIFDataConfig, LIIFSampler, draw, train_sample, val_pair

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden" / "liif_sampler.npz"
ZOO = LIIFDataConfig()


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN) as npz:
        return {k: npz[k] for k in npz.files}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_train_sample_equals_mmedit_pipeline(golden, seed):
    g = {k.removeprefix(f"train{seed}/"): v for k, v in golden.items() if k.startswith(f"train{seed}/")}
    d = Draws(float(g["draw/scale"]), int(g["draw/top"]), int(g["draw/left"]), *map(bool, g["draw/flips"]),
              g["draw/queries"])
    out = train_sample(ZOO, golden["image"], d)
    np.testing.assert_array_equal(out["lq"], g["lq"].transpose(1, 2, 0))
    np.testing.assert_array_equal(out["gt"], g["gt"])
    np.testing.assert_array_equal(out["coord"], g["coord"])
    np.testing.assert_array_equal(out["cell"], g["cell"])


@pytest.mark.parametrize("scale", [2, 3, 4, 6, 18, 30])
def test_val_inputs_equal_mmedit_pipeline(golden, scale):
    lq, gt = val_pair(golden["image"], scale)
    np.testing.assert_array_equal(lq, golden[f"val_x{scale}/lq"])
    assert list(gt.shape) == list(golden[f"val_x{scale}/gt_shape"])


def test_scales_are_uniform_in_range():
    rng = np.random.default_rng(0)
    cfg = LIIFDataConfig(lq_patch=4, sample_quantity=16)
    scales = np.array([draw(cfg, (40, 40), rng).scale for _ in range(4000)])
    assert scales.min() >= 1.0 and scales.max() < 4.0
    counts, _ = np.histogram(scales, bins=6, range=(1, 4))
    assert np.all(np.abs(counts - 4000 / 6) < 5 * np.sqrt(4000 / 6))  # flat within 5 sigma


def test_coord_cell_and_values_follow_their_definition():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (60, 50, 3), dtype=np.uint8)
    cfg = LIIFDataConfig(lq_patch=8, sample_quantity=40, scale_min=2.5, scale_max=2.5)
    d = draw(cfg, img.shape[:2], rng)
    d = Draws(d.scale, d.top, d.left, True, False, True, d.queries)  # h-flip + transpose
    out = train_sample(cfg, img, d)
    size = round(8 * 2.5)
    hr = img[d.top:d.top + size, d.left:d.left + size][:, ::-1].transpose(1, 0, 2)
    rows, cols = np.divmod(d.queries, size)
    np.testing.assert_array_equal(out["gt"], hr[rows, cols])
    np.testing.assert_allclose(out["coord"][:, 0], -1 + (2 * rows + 1) / size, atol=1e-6)
    np.testing.assert_allclose(out["coord"][:, 1], -1 + (2 * cols + 1) / size, atol=1e-6)
    np.testing.assert_allclose(out["cell"], np.full((40, 2), 2 / size), rtol=1e-6)
    assert out["lq"].shape == (8, 8, 3) and len(set(d.queries.tolist())) == 40


def test_sampler_end_to_end_on_png_members():
    img = np.random.default_rng(1).integers(0, 256, (70, 64, 3), dtype=np.uint8)
    members = {"gt.png": cv2.imencode(".png", img[..., ::-1])[1].tobytes(), "__key__": "a"}
    s = LIIFSampler(LIIFDataConfig(lq_patch=8, sample_quantity=32), [2, 30])
    t = s.train(members, np.random.default_rng(0))
    assert {k: v.shape for k, v in t.items()} == {"lq": (8, 8, 3), "gt": (32, 3), "coord": (32, 2), "cell": (32, 2)}
    v = s.val(members, np.random.default_rng(0))
    assert v["lq_x2"].shape == (35, 32, 3) and v["lq_x30"].shape == (2, 2, 3) and v["gt"].shape == (70, 64, 3)


@pytest.mark.parametrize("kwargs, msg", [(dict(scale_min=3, scale_max=2), "scale_max"),
                                         (dict(lq_patch=4, sample_quantity=17), "sample_quantity")])
def test_bad_config(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        LIIFDataConfig(**kwargs)


def test_image_smaller_than_patch_is_one_line_error():
    with pytest.raises(ValueError, match=r"sample k: GT 50x50 must exceed") as err:
        draw(LIIFDataConfig(lq_patch=48, scale_min=1.5, scale_max=1.5), (50, 50), np.random.default_rng(0), "k")
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="too small for scale 30"):
        val_pair(np.zeros((20, 40, 3), np.uint8), 30)
