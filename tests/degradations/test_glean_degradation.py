"""GLEAN's blind x8 degradation: sizes, levels, determinism per generator, and the spread of its
draws (blur strength, downscale, noise, JPEG) against mmedit 0.16's pipeline definition."""

import numpy as np
import pytest

from degradations.glean import glean
from degradations.presets import PRESETS, degrade


def _gt(size=64, seed=0):
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, size, dtype=np.float32)
    base = np.stack([np.outer(x, x), np.outer(1 - x, x), np.outer(x, 1 - x)], -1)
    return np.clip(base + 0.1 * rng.standard_normal(base.shape).astype(np.float32), 0, 1)


def test_lq_is_gt_over_scale_in_8bit_levels_and_seeded():
    gt = _gt()
    lq = degrade("glean", gt, scale=8, rng=np.random.default_rng(1))
    assert PRESETS["glean"] is glean
    assert lq.shape == (8, 8, 3) and lq.dtype == np.float32 and 0 <= lq.min() and lq.max() <= 1
    again = glean(gt, scale=8, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(lq, again)
    other = glean(gt, scale=8, rng=np.random.default_rng(2))
    assert not np.array_equal(lq, other)


def test_degradation_strength_varies_like_the_reference():
    """Over many draws the LR ranges from near-clean (weak blur, little downscale, mild noise) to
    destroyed: its error against the clean area-downscaled GT spans a wide range."""
    import cv2

    gt = _gt(64, seed=3)
    clean = cv2.resize(gt, (8, 8), interpolation=cv2.INTER_AREA)
    errors = [np.abs(glean(gt, scale=8, rng=np.random.default_rng(s)) - clean).mean() for s in range(40)]
    assert min(errors) < 0.04 < 0.08 < max(errors)


def test_bad_gt_is_one_line():
    with pytest.raises(ValueError, match="multiples of scale 8"):
        glean(np.zeros((60, 64, 3), np.float32), scale=8, rng=np.random.default_rng(0))
