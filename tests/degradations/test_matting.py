"""Matting synthesis: trimap rules, exact composition, unknown-centred crops, validation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from degradations import matting as T


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _soft_disk(size: int = 128, radius: float = 30.0, ramp: float = 6.0) -> np.ndarray:
    """uint8 alpha: 255 inside a disk, 0 outside, a linear soft ring ``ramp`` px wide."""
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - size / 2, xx - size / 2)
    return np.round(np.clip((radius + ramp - r) / ramp, 0, 1) * 255).astype(np.uint8)


# ----------------------------------------------------------------------------- erode/dilate trimap
def test_trimap_values_and_regions_consistent_with_alpha():
    alpha = _soft_disk()
    rng = _rng(1)
    for _ in range(30):
        tri = T.generate_trimap(alpha, rng=rng)
        assert tri.dtype == np.uint8 and tri.shape == alpha.shape
        assert set(np.unique(tri)) <= {0, 128, 255}
        assert (alpha[tri == 255] == 255).all()  # fg region within alpha == 255
        assert (alpha[tri == 0] == 0).all()  # bg region within alpha == 0
        soft = (alpha > 0) & (alpha < 255)
        assert (tri[soft] == 128).all()  # soft pixels are always unknown


def test_trimap_unknown_grows_with_kernel_size():
    alpha = _soft_disk()
    counts = [(T.generate_trimap(alpha, kernel_size_range=k, rng=_rng(0)) == 128).sum() for k in (1, 5, 11, 21, 29)]
    assert all(a < b for a, b in zip(counts, counts[1:])), counts
    # kernel size 1 is the identity: unknown = exactly the soft ring
    soft = ((alpha > 0) & (alpha < 255)).sum()
    assert counts[0] == soft


def test_trimap_kernel_sizes_are_drawn_independently():
    alpha = _soft_disk()
    inner = (alpha == 255).sum()
    outer = (alpha == 0).sum()
    shrink = []
    for s in range(40):
        tri = T.generate_trimap(alpha, rng=_rng(s))
        shrink.append((inner - (tri == 255).sum(), outer - (tri == 0).sum()))
    fg_loss, bg_loss = np.array(shrink, dtype=float).T
    assert len(set(fg_loss)) > 10 and len(set(bg_loss)) > 10
    assert abs(np.corrcoef(fg_loss, bg_loss)[0, 1]) < 0.7


# ----------------------------------------------------------------------------- distance trimap
def test_distance_trimap_band_is_exactly_the_sampled_width_on_a_straight_edge():
    alpha = np.zeros((20, 60), np.uint8)
    alpha[:, 31:] = 255
    alpha[:, 30] = 128  # one soft column
    for d in (1, 4, 9):
        tri = T.generate_trimap_distance(alpha, dist_range=d, rng=_rng(0))
        unknown_cols = np.nonzero((tri == 128).all(axis=0))[0]
        np.testing.assert_array_equal(unknown_cols, np.arange(30 - d, 31 + d))
        assert ((tri == 128).any(axis=0) == (tri == 128).all(axis=0)).all()
        assert (tri[:, :30 - d] == 0).all() and (tri[:, 31 + d:] == 255).all()


def test_distance_trimap_unknown_within_sampled_distance_of_soft_pixels():
    alpha = _soft_disk(64, radius=14, ramp=3)
    soft = np.argwhere((alpha > 0) & (alpha < 255))
    grid = np.argwhere(np.ones_like(alpha, dtype=bool))
    # brute-force distance of every pixel to the nearest soft pixel
    dist = np.sqrt(((grid[:, None, :] - soft[None, :, :]) ** 2).sum(-1)).min(1).reshape(alpha.shape)
    rng = _rng(2)
    widths = set()
    for _ in range(20):
        tri = T.generate_trimap_distance(alpha, rng=rng)
        assert set(np.unique(tri)) <= {0, 128, 255}
        unknown = tri == 128
        d_max = dist[unknown].max()
        assert d_max <= 19 + 1e-6
        # the band is "all pixels within d": nothing closer than the farthest unknown is known
        assert (unknown | (dist > d_max + 1e-3)).all()
        assert (alpha[tri == 255] == 255).all() and (alpha[tri == 0] == 0).all()
        widths.add(round(float(d_max), 3))
    assert len(widths) > 5


def test_distance_trimap_binary_alpha_has_no_unknown():
    alpha = np.zeros((16, 16), np.uint8)
    alpha[4:12, 4:12] = 255
    tri = T.generate_trimap_distance(alpha, rng=_rng(0))
    np.testing.assert_array_equal(tri, alpha)


# ----------------------------------------------------------------------------- composition
def test_composite_exact_on_hand_cases():
    fg = np.array([[[1.0, 0.5, 0.0], [0.2, 0.4, 0.6], [1.0, 1.0, 1.0]]], np.float32)
    bg = np.array([[[0.0, 0.25, 1.0], [0.8, 0.8, 0.8], [0.0, 0.0, 0.0]]], np.float32)
    alpha = np.array([[1.0, 0.0, 0.25]], np.float32)
    out = T.composite(fg, bg, alpha)
    assert out.dtype == np.float32 and out.shape == (1, 3, 3)
    np.testing.assert_array_equal(out[0, 0], fg[0, 0])  # a = 1 -> fg
    np.testing.assert_array_equal(out[0, 1], bg[0, 1])  # a = 0 -> bg
    np.testing.assert_allclose(out[0, 2], [0.25, 0.25, 0.25], atol=1e-7)
    np.testing.assert_array_equal(T.composite(fg, bg, alpha[:, :, None]), out)


def test_merge_uint8_truncates():
    fg = np.array([[[200, 10, 255]]], np.uint8)
    bg = np.array([[[100, 11, 0]]], np.uint8)
    alpha = np.array([[128]], np.uint8)
    # a = 128/255: 200a + 100(1-a) = 150.196 -> 150; 10a + 11(1-a) = 10.498 -> 10; 255a = 128.0 -> 128
    np.testing.assert_array_equal(T.merge_uint8(fg, bg, alpha), [[[150, 10, 128]]])
    np.testing.assert_array_equal(T.merge_uint8(fg, bg, np.array([[255]], np.uint8)), fg)
    np.testing.assert_array_equal(T.merge_uint8(fg, bg, np.array([[0]], np.uint8)), bg)


def test_composite_two_foregrounds_hand_pixels():
    fg1 = np.array([[[1.0, 0.0, 0.0], [0.2, 0.2, 0.2], [0.0, 0.0, 0.0]]], np.float32)
    fg2 = np.array([[[0.0, 0.0, 1.0], [1.0, 0.6, 0.0], [0.4, 0.4, 0.4]]], np.float32)
    a1 = np.array([[0.5, 0.25, 0.0]], np.float32)
    a2 = np.array([[0.5, 1.0, 0.0]], np.float32)
    fg, alpha = T.composite_two_foregrounds(fg1, a1, fg2, a2)
    np.testing.assert_allclose(alpha, [[0.75, 1.0, 0.0]], atol=1e-7)  # 1 - (1-a1)(1-a2)
    # fg = a1 fg1 + (1 - a1) fg2
    np.testing.assert_allclose(fg[0, 0], [0.5, 0.0, 0.5], atol=1e-7)
    np.testing.assert_allclose(fg[0, 1], [0.8, 0.5, 0.05], atol=1e-7)
    np.testing.assert_allclose(fg[0, 2], [0.4, 0.4, 0.4], atol=1e-7)
    assert fg.dtype == np.float32 and alpha.dtype == np.float32 and alpha.shape == (1, 3)


def test_composite_two_foregrounds_skips_when_alpha_is_all_one():
    fg1 = np.full((2, 2, 3), 0.3, np.float32)
    fg2 = np.full((2, 2, 3), 0.9, np.float32)
    fg, alpha = T.composite_two_foregrounds(fg1, np.full((2, 2), 0.5, np.float32), fg2, np.ones((2, 2), np.float32))
    np.testing.assert_array_equal(fg, fg1)
    np.testing.assert_array_equal(alpha, 0.5)


# ----------------------------------------------------------------------------- crop
def _coords(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    return yy, xx


def test_crop_centres_on_the_unknown_pixel():
    tri = np.zeros((1000, 900), np.uint8)
    tri[500, 600] = 128
    yy, xx = _coords(1000, 900)
    out = T.crop_around_unknown({"y": yy, "x": xx, "trimap": tri}, tri, crop_sizes=(320,), out_size=320, rng=_rng())
    assert out["y"][0, 0] == 500 - 160 and out["x"][0, 0] == 600 - 160
    assert out["trimap"][160, 160] == 128


def test_crop_shapes_sizes_and_contains_unknown():
    h, w = 900, 1000
    alpha = np.zeros((h, w), np.uint8)
    alpha[700:760, 80:140] = 255
    alpha[690:700, 80:140] = 100  # a soft strip near the border
    tri = T.generate_trimap(alpha, kernel_size_range=(3, 4), rng=_rng())
    fg = np.random.default_rng(0).random((h, w, 3)).astype(np.float32)
    yy, _ = _coords(h, w)
    rng = _rng(3)
    spans = set()
    for _ in range(30):
        out = T.crop_around_unknown({"alpha": alpha, "fg": fg, "trimap": tri, "y": yy}, tri, rng=rng)
        assert out["alpha"].shape == (320, 320) and out["alpha"].dtype == np.uint8
        assert out["fg"].shape == (320, 320, 3) and out["fg"].dtype == np.float32
        assert (out["trimap"] == 128).any()
        assert set(np.unique(out["trimap"])) <= {0, 128, 255}  # nearest for the trimap
        spans.add(min((320, 480, 640), key=lambda c: abs(c - (out["y"].max() - out["y"].min()))))
    assert spans == {320, 480, 640}


def test_crop_upscales_small_images_and_list_input():
    tri = np.zeros((200, 150), np.uint8)
    tri[100:110, 70:80] = 128
    img = np.zeros((200, 150, 1), np.float32)
    out = T.crop_around_unknown([img, tri], tri, crop_sizes=640, out_size=(256, 320), rng=_rng())
    assert isinstance(out, list)
    assert out[0].shape == (256, 320, 1) and out[1].shape == (256, 320)
    assert (out[1] > 0).any()


def test_crop_around_unknown_deterministic():
    alpha = _soft_disk(700, radius=200, ramp=10)
    fg = np.random.default_rng(1).random((700, 700, 3)).astype(np.float32)
    a = T.crop_around_unknown({"fg": fg}, alpha, rng=_rng(5))["fg"]
    b = T.crop_around_unknown({"fg": fg}, alpha, rng=_rng(5))["fg"]
    np.testing.assert_array_equal(a, b)
    others = [T.crop_around_unknown({"fg": fg}, alpha, rng=_rng(s))["fg"] for s in range(6, 10)]
    assert any(not np.array_equal(a, o) for o in others)


def test_trimaps_deterministic():
    alpha = _soft_disk()
    for fn in (T.generate_trimap, T.generate_trimap_distance):
        np.testing.assert_array_equal(fn(alpha, rng=_rng(9)), fn(alpha, rng=_rng(9)))
        outs = [fn(alpha, rng=_rng(s)) for s in range(6)]
        assert any(not np.array_equal(outs[0], o) for o in outs[1:])


def test_crop_without_resize_keeps_the_crop_size():
    alpha = _soft_disk(700, radius=200, ramp=10)
    for size in (320, 480):
        out = T.crop_around_unknown({"a": alpha}, alpha, crop_sizes=size, out_size=None, rng=_rng(1))["a"]
        assert out.shape == (size, size) and out.flags["C_CONTIGUOUS"]


def test_crop_unknown_from_an_array_uses_its_own_upscaling():
    """An alpha upscaled bilinearly gains soft pixels next to its hard edges; nearest does not."""
    alpha = np.zeros((100, 300), np.uint8)
    alpha[:, 150:] = 255  # a hard edge: no soft pixel at all before upscaling
    yy, xx = _coords(100, 300)
    out = T.crop_around_unknown({"alpha": alpha, "x": xx}, None, crop_sizes=(200,), out_size=None,
                                rng=_rng(0), unknown_from="alpha")
    assert out["alpha"].shape == (200, 200)
    centre = out["alpha"][100, 95:106]
    assert ((centre > 0) & (centre < 255)).any()  # the window is centred on the blurred edge
    with pytest.raises(ValueError, match="give a trimap or unknown_from"):
        T.crop_around_unknown({"alpha": alpha}, None, rng=_rng(0))


# ----------------------------------------------------------------------------- backgrounds
def test_fit_background_crop_upscales_keeping_aspect_then_crops_top_left():
    from PIL import Image

    bg = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    out = T.fit_background_crop(bg, (100, 90))  # ratio max(90/60, 100/40) = 2.5 -> 150x100
    ref = np.asarray(Image.fromarray(bg).resize((150, 100), Image.BICUBIC))[:100, :90]
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(T.fit_background_crop(bg, (30, 50)), bg[:30, :50])  # larger: crop only
    assert T.fit_background_crop(bg, (41, 7)).shape == (41, 7, 3)  # ceil keeps every side >= the target


def test_fit_background_resize_is_a_plain_bicubic_resize():
    bg = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    out = T.fit_background_resize(bg, (100, 30))
    np.testing.assert_array_equal(out, cv2.resize(bg, (30, 100), interpolation=cv2.INTER_CUBIC))


# ----------------------------------------------------------------------------- affine
def test_affine_params_ranges_and_the_no_rotation_rule():
    rng = _rng(0)
    small = [T.sample_affine_params((600, 1023), rng=rng) for _ in range(200)]
    assert all(p.angle == 0 for p in small)
    big = [T.sample_affine_params((600, 1024), rng=rng) for _ in range(200)]
    angles = np.array([p.angle for p in big])
    assert -30 <= angles.min() < -20 and 20 < angles.max() <= 30
    scales = np.array([p.scale for p in big])
    assert scales.min() >= 0.8 and scales.max() <= 1.25 and np.corrcoef(scales.T)[0, 1] < 0.5
    assert all(-10 <= p.shear <= 10 for p in big)
    flips = np.array([p.flip for p in big])
    assert set(flips.ravel()) == {-1, 1} and 0.35 < (flips == -1).mean() < 0.65
    assert T.sample_affine_params((8, 8), flip_ratio=0.0, rng=rng).flip == (1, 1)
    assert T.sample_affine_params((8, 8), flip_ratio=1.0, rng=rng).flip == (-1, -1)


def test_affine_identity_and_flip_and_scale():
    img = np.random.default_rng(0).integers(0, 256, (31, 40, 3), dtype=np.uint8)
    ident = T.AffineParams(0.0, (0.0, 0.0), (1.0, 1.0), 0.0, (1, 1))
    np.testing.assert_allclose(T.inverse_affine_matrix((19.5, 15.0), ident), [[1, 0, 0], [0, 1, 0]], atol=1e-12)
    np.testing.assert_array_equal(T.apply_affine({"x": img}, ident)["x"], img)
    flipped = T.apply_affine({"x": img, "a": img[..., 0]}, T.AffineParams(0.0, (0.0, 0.0), (1.0, 1.0), 0.0, (-1, 1)))
    np.testing.assert_array_equal(flipped["x"], img[:, ::-1])
    assert flipped["a"].shape == (31, 40)
    both = T.apply_affine({"x": img}, T.AffineParams(0.0, (0.0, 0.0), (1.0, 1.0), 0.0, (-1, -1)))["x"]
    np.testing.assert_array_equal(both, img[::-1, ::-1])
    # x scale 2 about the centre: output column c samples input column (c - cx) / 2 + cx
    wide = T.apply_affine({"x": img}, T.AffineParams(0.0, (0.0, 0.0), (2.0, 1.0), 0.0, (1, 1)))["x"]
    np.testing.assert_array_equal(wide[:, 19], img[:, 19])
    np.testing.assert_array_equal(wide[:, 39], img[:, 29])


def test_affine_rotation_keeps_content_inside_and_zero_border():
    a = np.zeros((1024, 1024), np.uint8)
    a[400:600, 400:600] = 255
    out = T.random_affine({"alpha": a}, degrees=(30, 30), scale=(1.0, 1.0), shear=0, flip_ratio=0.0, rng=_rng(0))
    assert out["alpha"][0, 0] == 0 and out["alpha"][512, 512] == 255
    assert abs(int((out["alpha"] == 255).sum()) - 200 * 200) < 800  # a rotated square keeps its area


# ----------------------------------------------------------------------------- GCA crop
def test_crop_around_center_corner_from_an_unknown_pixel():
    h, w = 1200, 1000
    tri = np.zeros((h, w), np.uint8)
    tri[600:640, 500:540] = 128  # 10x10 cells once shrunk 4x: enough candidates
    yy, xx = _coords(h, w)
    for s in range(10):
        out = T.crop_around_center({"trimap": tri, "y": yy, "x": xx}, 512, rng=_rng(s))
        top, left = int(out["y"][0, 0]), int(out["x"][0, 0])
        # the chosen small-trimap pixel (r, c) of the central area sits at ((r + 64) * 4, (c + 64) * 4)
        assert 600 <= top + 256 < 640 and 500 <= left + 256 < 540
        assert out["trimap"].shape == (512, 512) and (out["trimap"] == 128).any()


def test_crop_around_center_falls_back_to_a_uniform_corner_and_upscales():
    tri = np.zeros((300, 200), np.uint8)  # no unknown pixel at all
    bg = np.random.default_rng(0).integers(0, 256, (300, 200, 3), dtype=np.uint8)
    out = T.crop_around_center({"trimap": tri, "bg": bg, "fg": bg}, 512, rng=_rng(0))
    assert out["bg"].shape == out["fg"].shape == (512, 512, 3) and out["trimap"].shape == (512, 512)
    big = cv2.resize(bg, (512, 768), interpolation=cv2.INTER_NEAREST)  # ratio 512/200: 768 x 512
    assert any(np.array_equal(out["fg"], big[t:t + 512]) for t in range(0, 257))
    assert not any(np.array_equal(out["bg"], big[t:t + 512]) for t in range(0, 257))  # bg: bicubic
    corners = {int(np.argmax([np.array_equal(T.crop_around_center({"trimap": tri, "fg": bg}, 512, rng=_rng(s))["fg"],
                                             big[t:t + 512]) for t in range(0, 257)])) for s in range(6)}
    assert len(corners) > 1


# ----------------------------------------------------------------------------- jitter
def test_random_jitter_shifts_hue_and_keeps_range():
    rng0 = np.random.default_rng(0)
    fg = rng0.integers(30, 220, (64, 64, 3)).astype(np.uint8)
    alpha = np.zeros((64, 64), np.uint8)
    alpha[16:48, 16:48] = 200
    out = T.random_jitter(fg, alpha, rng=_rng(1))
    assert out.dtype == np.float32 and out.shape == fg.shape
    assert out.min() >= 0 and out.max() <= 255.001
    hsv_in = cv2.cvtColor(fg.astype(np.float32) / 255, cv2.COLOR_RGB2HSV)
    hsv_out = cv2.cvtColor(out / 255, cv2.COLOR_RGB2HSV)
    shift = np.remainder(hsv_out[..., 0] - hsv_in[..., 0] + 180, 360) - 180
    expected = int(_rng(1).integers(-40, 40))
    assert abs(np.median(shift) - expected) < 1
    np.testing.assert_array_equal(out, T.random_jitter(fg, alpha, rng=_rng(1)))
    # hue_range 0 is impossible (empty range); an alpha with no foreground does not give NaN
    assert np.isfinite(T.random_jitter(fg, np.zeros_like(alpha), rng=_rng(2))).all()


# ----------------------------------------------------------------------------- validation
_A = np.zeros((8, 8), np.uint8)
_F = np.zeros((8, 8, 3), np.float32)
_AF = np.zeros((8, 8), np.float32)

BAD_CALLS = [
    (lambda: T.generate_trimap(_A, rng=1), "rng"),
    (lambda: T.generate_trimap(_A.astype(np.float32), rng=_rng()), "uint8"),
    (lambda: T.generate_trimap(np.zeros((8, 8, 3), np.uint8), rng=_rng()), "HxW"),
    (lambda: T.generate_trimap(np.zeros((0, 8), np.uint8), rng=_rng()), "non-empty"),
    (lambda: T.generate_trimap(_A, kernel_size_range=(30, 1), rng=_rng()), "kernel_size_range"),
    (lambda: T.generate_trimap(_A, kernel_size_range=(0, 3), rng=_rng()), "kernel_size_range"),
    (lambda: T.generate_trimap(_A, iterations=(2, 2), rng=_rng()), "iterations"),
    (lambda: T.generate_trimap_distance(_A, dist_range=(19, 1), rng=_rng()), "dist_range"),
    (lambda: T.generate_trimap_distance([[0]], rng=_rng()), "numpy array"),
    (lambda: T.composite(_F, np.zeros((8, 7, 3), np.float32), _AF), "bg shape"),
    (lambda: T.composite(_F, _F, np.zeros((7, 8), np.float32)), "alpha shape"),
    (lambda: T.composite(_F, _F, np.full((8, 8), np.nan, np.float32)), "NaN"),
    (lambda: T.composite(np.full((8, 8, 3), np.nan, np.float32), _F, _AF), "NaN"),
    (lambda: T.composite(_F, _F, np.full((8, 8), 1.5, np.float32)), r"\[0, 1\]"),
    (lambda: T.composite(_F, _F, _A), "dtype"),
    (lambda: T.composite(_F, _F, np.zeros((8, 8, 3), np.float32)), "HxWx1"),
    (lambda: T.merge_uint8(_F, _F, _A), "dtype"),
    (lambda: T.merge_uint8(_F.astype(np.uint8), _F.astype(np.uint8), np.zeros((4, 4), np.uint8)), "alpha shape"),
    (lambda: T.composite_two_foregrounds(_F, _AF, np.zeros((8, 8, 4), np.float32), _AF), "one shape"),
    (lambda: T.composite_two_foregrounds(_F, _AF, _F, np.zeros((9, 8), np.float32)), "alpha2 shape"),
    (lambda: T.crop_around_unknown({}, _A, rng=_rng()), "empty"),
    (lambda: T.crop_around_unknown({"x": np.zeros((9, 8), np.float32)}, _A, rng=_rng()), "does not match"),
    (lambda: T.crop_around_unknown({"x": _F}, _A, crop_sizes=(), rng=_rng()), "crop_sizes"),
    (lambda: T.crop_around_unknown({"x": _F}, _A, crop_sizes=(0,), rng=_rng()), "crop_sizes"),
    (lambda: T.crop_around_unknown({"x": _F}, _A, out_size=-1, rng=_rng()), "out_size"),
    (lambda: T.crop_around_unknown({"x": _F}, _A, interpolations={"x": "lanczos9"}, rng=_rng()), "interpolation"),
    (lambda: T.crop_around_unknown({"x": np.zeros((8, 8), np.int64)}, _A, rng=_rng()), "dtype"),
    (lambda: T.crop_around_unknown({"x": np.full((8, 8), np.nan, np.float32)}, _A, rng=_rng()), "NaN"),
    (lambda: T.crop_around_unknown("abc", _A, rng=_rng()), "dict or a list"),
    (lambda: T.crop_around_unknown({"x": _F}, _A, out_size=(3,), rng=_rng()), "out_size"),
    (lambda: T.crop_around_unknown({"x": _F}, None, unknown_from="y", rng=_rng()), "unknown_from"),
    (lambda: T.crop_around_unknown({"x": _AF}, None, unknown_from="x", rng=_rng()), "uint8"),
    (lambda: T.fit_background_crop(_F, (4, 4)), "dtype"),
    (lambda: T.fit_background_crop(np.zeros((8, 8, 3), np.uint8), (0, 4)), "hw"),
    (lambda: T.fit_background_resize(np.zeros((8, 8), np.uint8), (4, 4)), "HxWx3"),
    (lambda: T.crop_around_center({"x": _F}, 4, rng=_rng()), "trimap"),
    (lambda: T.crop_around_center({"trimap": _A, "x": np.zeros((9, 8), np.float32)}, 4, rng=_rng()), "does not match"),
    (lambda: T.crop_around_center({"trimap": _A}, 4, rng=1), "rng"),
    (lambda: T.crop_around_center({"trimap": _A}, 4, interpolations={"trimap": "x"}, rng=_rng()), "interpolation"),
    (lambda: T.crop_around_center([_A], 4, rng=_rng()), "dict"),
    (lambda: T.sample_affine_params((8, 8), degrees=-1, rng=_rng()), "degrees"),
    (lambda: T.sample_affine_params((8, 8), scale=(0, 1), rng=_rng()), "scale"),
    (lambda: T.sample_affine_params((8, 8), scale=1.0, rng=_rng()), "scale"),
    (lambda: T.sample_affine_params((8, 8), flip_ratio=2, rng=_rng()), "flip_ratio"),
    (lambda: T.sample_affine_params((8, 8), translate=(2, 0), rng=_rng()), "translate"),
    (lambda: T.sample_affine_params((8,), rng=_rng()), "hw"),
    (lambda: T.random_jitter(_F[..., :2], _AF, rng=_rng()), "HxWx3"),
    (lambda: T.random_jitter(_F, np.zeros((4, 4)), rng=_rng()), "alpha shape"),
    (lambda: T.random_jitter(_F, _AF, hue_range=0, rng=_rng()), "hue_range"),
    (lambda: T.random_jitter(_F, _AF, hue_range=2.5, rng=_rng()), "hue_range"),
]


@pytest.mark.parametrize("call, match", BAD_CALLS)
def test_bad_inputs_raise_one_line_value_error(call, match):
    with pytest.raises(ValueError, match=match) as info:
        call()
    assert "\n" not in str(info.value)
