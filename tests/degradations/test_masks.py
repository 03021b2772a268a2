"""Inpainting masks: geometry, statistics over many draws, determinism, input validation."""

from __future__ import annotations

import numpy as np
import pytest

from degradations import masks as M


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _box_of(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(mask)
    return rows.min(), cols.min(), rows.max() + 1, cols.max() + 1


# ----------------------------------------------------------------------------- bbox
def test_bbox_within_margins_and_max_size_over_many_draws():
    rng = _rng(1)
    tops, heights, widths = [], [], []
    for _ in range(2000):
        top, left, h, w = M.random_bbox((256, 256), (128, 128), 40, 20, rng=rng)
        assert 20 <= top and 20 <= left
        assert top + h <= 256 - 20 and left + w <= 256 - 20
        assert 108 <= h <= 128 and 108 <= w <= 128
        tops.append(top), heights.append(h), widths.append(w)
    # sizes span the whole delta range [128 - 20, 128]; the top-left spans [20, 128)
    assert min(heights) == 108 and max(heights) == 128
    assert min(widths) == 108 and max(widths) == 128
    assert min(tops) == 20 and max(tops) == 127


def test_bbox_shrinks_from_top_left_only():
    # the bottom/right edge = unshrunk top + max size, which is < 256 - 20 (top0 < 108)
    rng = _rng(2)
    for _ in range(500):
        top, left, h, w = M.random_bbox((256, 256), (128, 128), 40, 20, rng=rng)
        assert top + h - 128 in range(20, 108)
        assert left + w - 128 in range(20, 108)


def test_bbox_mask_matches_box_and_is_binary():
    box = M.random_bbox(rng=_rng(3))
    mask = M.bbox_mask(rng=_rng(3))
    assert mask.shape == (256, 256) and mask.dtype == np.uint8
    assert set(np.unique(mask)) == {0, 1}
    top, left, h, w = box
    assert _box_of(mask) == (top, left, top + h, left + w)
    assert mask.sum() == h * w


def test_bbox_non_square():
    rng = _rng(4)
    for _ in range(200):
        top, left, h, w = M.random_bbox((100, 300), (40, 200), (10, 30), (5, 10), rng=rng)
        assert 5 <= top and top + h <= 95 and 10 <= left and left + w <= 290
        assert 35 <= h <= 40 and 185 <= w <= 200


# ----------------------------------------------------------------------------- irregular
def test_irregular_area_ratio_always_in_range_and_varies():
    rng = _rng(5)
    ratios = []
    for _ in range(100):
        mask = M.irregular_mask(rng=rng)
        assert mask.shape == (256, 256) and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 1}
        ratios.append(mask.mean())
    ratios = np.array(ratios)
    assert (ratios > 0.15).all() and (ratios < 0.65).all()
    assert ratios.std() > 0.03 and len(np.unique(ratios)) > 90


def test_irregular_custom_range_and_non_square():
    rng = _rng(6)
    for _ in range(20):
        mask = M.irregular_mask((128, 200), area_ratio_range=(0.3, 0.4), rng=rng)
        assert mask.shape == (128, 200) and 0.3 < mask.mean() < 0.4


def test_irregular_unreachable_range_raises():
    with pytest.raises(ValueError, match="after 5 draws"):
        M.irregular_mask((64, 64), brush_width=(1, 2), length_range=(1, 2), num_vertices=(1, 2),
                         area_ratio_range=(0.9, 0.99), rng=_rng(0), max_tries=5)


# ----------------------------------------------------------------------------- brush
def test_brush_masks_non_empty_binary_and_within_image():
    rng = _rng(7)
    ratios = []
    for shape in [(256, 256)] * 50 + [(120, 300)] * 20:
        mask = M.brush_stroke_mask(shape, rng=rng)
        assert mask.shape == shape and mask.dtype == np.uint8
        assert set(np.unique(mask)) == {0, 1}
        assert mask.mean() < 1.0
        ratios.append(mask.mean())
    assert np.std(ratios) > 0.01


def test_brush_width_controls_thickness():
    thin = np.mean([M.brush_stroke_mask(brush_width=3, num_loops=1, rng=_rng(s)).mean() for s in range(20)])
    thick = np.mean([M.brush_stroke_mask(brush_width=30, num_loops=1, rng=_rng(s)).mean() for s in range(20)])
    assert thick > 3 * thin


# ----------------------------------------------------------------------------- mask set
def _rect_mask() -> np.ndarray:
    m = np.zeros((128, 128), dtype=np.uint8)
    m[40:88, 24:104] = 255
    return m


def test_mask_set_binary_resized_and_rotated():
    mask = M.sample_mask_from_set([_rect_mask()], (256, 256), rotation=(20, 40), rng=_rng(8))
    assert mask.shape == (256, 256) and mask.dtype == np.uint8
    assert set(np.unique(mask)) == {0, 1}
    top, left, bottom, right = _box_of(mask)
    # a rotated rectangle does not fill its axis-aligned bounding box
    assert mask.sum() < 0.8 * (bottom - top) * (right - left)
    # and keeps (about) its area: 48x80 scaled x2 = 96x160
    assert abs(int(mask.sum()) - 96 * 160) < 0.05 * 96 * 160


def test_mask_set_no_rotation_is_the_resized_mask():
    src = _rect_mask()
    mask = M.sample_mask_from_set([src], (256, 256), rotation=(0, 0), rng=_rng(9))
    assert _box_of(mask) == (80, 48, 176, 208)
    assert mask.sum() == 96 * 160


def test_mask_set_picks_from_all_masks_and_handles_channels():
    a = np.zeros((64, 64, 3), np.uint8)
    a[:32] = 200  # top half
    b = np.zeros((64, 64), np.float32)
    b[32:] = 0.7  # bottom half
    seen = set()
    rng = _rng(10)
    for _ in range(40):
        m = M.sample_mask_from_set([a, b], (64, 64), rotation=(0, 0), resize=False, rng=rng)
        seen.add("a" if m[:32].all() else "b" if m[32:].all() else "?")
    assert seen == {"a", "b"}


def test_mask_set_without_resize_rejects_other_shape():
    with pytest.raises(ValueError, match="resize is off"):
        M.sample_mask_from_set([_rect_mask()], (256, 256), resize=False, rng=_rng(0))


# ----------------------------------------------------------------------------- masked image
def test_masked_image_fills_holes_with_mid_grey():
    img = np.random.default_rng(0).random((8, 8, 3)).astype(np.float32)
    mask = np.zeros((8, 8), np.uint8)
    mask[2:5, 3:6] = 1
    out = M.masked_image(img, mask)
    assert out.dtype == np.float32 and out.shape == img.shape
    np.testing.assert_allclose(out[2:5, 3:6], 0.5, atol=1e-7)
    np.testing.assert_array_equal(out[mask == 0], img[mask == 0])
    out1 = M.masked_image(img, mask[:, :, None], fill=0.0)
    assert (out1[2:5, 3:6] == 0).all()


# ----------------------------------------------------------------------------- determinism
GENERATORS = {
    "bbox": lambda rng: M.bbox_mask(rng=rng),
    "irregular": lambda rng: M.irregular_mask(rng=rng),
    "brush": lambda rng: M.brush_stroke_mask(rng=rng),
    "set": lambda rng: M.sample_mask_from_set([_rect_mask(), _rect_mask().T], (256, 256), rng=rng),
}


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_same_seed_same_mask_different_seeds_differ(name):
    gen = GENERATORS[name]
    np.testing.assert_array_equal(gen(_rng(123)), gen(_rng(123)))
    outs = [gen(_rng(s)) for s in range(5)]
    assert any(not np.array_equal(outs[0], o) for o in outs[1:])


# ----------------------------------------------------------------------------- validation
BAD_CALLS = [
    (lambda: M.bbox_mask(rng=None), "rng"),
    (lambda: M.bbox_mask((256,), rng=_rng()), "img_shape"),
    (lambda: M.bbox_mask((0, 256), rng=_rng()), "img_shape"),
    (lambda: M.bbox_mask((100, 100), (128, 128), rng=_rng()), "exceeds"),
    (lambda: M.bbox_mask((256, 256), (128, 128), 300, rng=_rng()), "max_bbox_delta"),
    (lambda: M.bbox_mask((256, 256), (128, 128), 40, 64, rng=_rng()), "min_margin"),
    (lambda: M.bbox_mask((256, 256), (128, 128), -2, rng=_rng()), "max_bbox_delta"),
    (lambda: M.bbox_to_mask((8, 8), (1, 2, 3)), "bbox"),
    (lambda: M.irregular_mask(num_vertices=(10, 4), rng=_rng()), "num_vertices"),
    (lambda: M.irregular_mask(area_ratio_range=(0.6, 0.2), rng=_rng()), "area_ratio_range"),
    (lambda: M.irregular_mask(area_ratio_range=(0.1, float("nan")), rng=_rng()), "area_ratio_range"),
    (lambda: M.irregular_mask(max_angle=0, rng=_rng()), "max_angle"),
    (lambda: M.irregular_mask(brush_width=(0, 3), rng=_rng()), "brush_width"),
    (lambda: M.brush_stroke_mask(brush_width=(40, 12), rng=_rng()), "brush_width"),
    (lambda: M.brush_stroke_mask(num_loops=(0, 2), rng=_rng()), "num_loops"),
    (lambda: M.brush_stroke_mask(angle_range=-1.0, rng=_rng()), "angle_range"),
    (lambda: M.sample_mask_from_set([], (8, 8), rng=_rng()), "non-empty"),
    (lambda: M.sample_mask_from_set([np.zeros((0, 4))], (8, 8), rng=_rng()), "non-empty"),
    (lambda: M.sample_mask_from_set([np.zeros((2, 2, 2, 2))], (8, 8), rng=_rng()), "HxW"),
    (lambda: M.sample_mask_from_set([np.full((4, 4), np.nan)], (8, 8), rng=_rng()), "NaN"),
    (lambda: M.sample_mask_from_set([np.zeros((4, 4))], (8, 8), rotation=(45, 0), rng=_rng()), "rotation"),
    (lambda: M.masked_image(np.zeros((4, 4, 3), np.float32), np.zeros((5, 4))), "does not match"),
    (lambda: M.masked_image(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4))), "float"),
    (lambda: M.masked_image(np.full((4, 4, 3), np.nan, np.float32), np.zeros((4, 4))), "NaN"),
    (lambda: M.masked_image(np.zeros((4, 4, 3), np.float32), np.full((4, 4), 2.0)), r"\[0, 1\]"),
    (lambda: M.masked_image(np.zeros((0, 4, 3), np.float32), np.zeros((0, 4))), "non-empty"),
]


@pytest.mark.parametrize("call, match", BAD_CALLS)
def test_bad_inputs_raise_one_line_value_error(call, match):
    with pytest.raises(ValueError, match=match) as info:
        call()
    assert "\n" not in str(info.value)
