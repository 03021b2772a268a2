"""Helpers for preprocessing tests: small generated images and raw dataset layouts."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def png_bytes(img: np.ndarray) -> bytes:
    """PNG of an RGB (HxWx3) or raw (any cv2-writable) array."""
    arr = img[..., ::-1] if img.ndim == 3 and img.shape[2] == 3 else img
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(arr))
    assert ok
    return buf.tobytes()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def make_div2k(root: Path, stems=("0001", "0002"), hw=(72, 56), scale=2) -> dict[str, np.ndarray]:
    """DIV2K layout: DIV2K_train_HR/<stem>.png + DIV2K_train_LR_bicubic/X<s>/<stem>x<s>.png."""
    gts = {}
    for i, stem in enumerate(stems):
        gt = rgb(*hw, seed=i)
        lq = cv2.resize(gt, (hw[1] // scale, hw[0] // scale), interpolation=cv2.INTER_AREA)
        write(root / "DIV2K_train_HR" / f"{stem}.png", png_bytes(gt))
        write(root / "DIV2K_train_LR_bicubic" / f"X{scale}" / f"{stem}x{scale}.png", png_bytes(lq))
        gts[stem] = gt
    return gts


def grey_png(img: np.ndarray) -> bytes:
    """PNG of an HxW uint8 array (1-channel)."""
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img))
    assert ok
    return buf.tobytes()


def soft_alpha(h: int, w: int, seed: int = 0) -> np.ndarray:
    """An HxW uint8 matte: an opaque ellipse with a soft (0 < a < 255) rim, zero outside."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = h * rng.uniform(0.4, 0.6), w * rng.uniform(0.4, 0.6)
    r = np.sqrt(((yy - cy) / (0.3 * h)) ** 2 + ((xx - cx) / (0.3 * w)) ** 2)
    return (np.clip((1.2 - r) / 0.4, 0, 1) * 255).astype(np.uint8)


def make_comp1k(root: Path, train=(("Adobe-licensed images", ("a1", "a2")), ("Other", ("o1",))),
                test=("t1", "t2"), n_bg=2, hw=(40, 48), prefix="") -> dict:
    """Comp-1k as MMEditing's preprocessing leaves it (``prefix='Combined_Dataset/'`` for the archive layout).

    Training: ``Training_set/<group>/{fg,alpha}/<name>.png``. Test: ``Test_set/Adobe-licensed
    images/{fg,alpha}/<name>.png``, ``trimaps/<name>_<i>.png``, ``Test_set/{merged,bg}/<name>_<i>.png``.
    Returns ``{relative key: array}`` of everything written.
    """
    base = root / prefix
    out = {}
    for g, (group, names) in enumerate(train):
        for n, name in enumerate(names):
            fg, alpha = rgb(*hw, seed=10 * g + n), soft_alpha(*hw, seed=10 * g + n)
            for what, arr, data in (("fg", fg, png_bytes(fg)), ("alpha", alpha, grey_png(alpha))):
                rel = f"Training_set/{group}/{what}/{name}.png"
                write(base / rel, data)
                out[rel] = arr
    adobe = "Test_set/Adobe-licensed images"
    for t, name in enumerate(test):
        fg, alpha = rgb(*hw, seed=100 + t), soft_alpha(*hw, seed=100 + t)
        write(base / f"{adobe}/fg/{name}.png", png_bytes(fg))
        write(base / f"{adobe}/alpha/{name}.png", grey_png(alpha))
        out[f"{adobe}/fg/{name}.png"], out[f"{adobe}/alpha/{name}.png"] = fg, alpha
        for i in range(n_bg):
            bg = rgb(*hw, seed=200 + 10 * t + i)
            a = alpha[..., None] / 255.0
            merged = (fg * a + bg * (1 - a)).astype(np.uint8)
            trimap = np.where(alpha == 255, 255, np.where(alpha == 0, 0, 128)).astype(np.uint8)
            for rel, arr, data in ((f"Test_set/merged/{name}_{i}.png", merged, png_bytes(merged)),
                                   (f"Test_set/bg/{name}_{i}.png", bg, png_bytes(bg)),
                                   (f"{adobe}/trimaps/{name}_{i}.png", trimap, grey_png(trimap))):
                write(base / rel, data)
                out[rel] = arr
    return out


def comp1k_annotations(root: Path, data: dict, n_bg_train: int = 2, prefix: str = "") -> None:
    """``training_list.json`` / ``test_list.json`` as the preprocessing writes them (paths relative to the root)."""
    import json

    train = []
    for rel in sorted(k for k in data if k.startswith("Training_set/") and "/fg/" in k):
        stem = rel.rsplit("/", 1)[1][:-4]
        for i in range(n_bg_train):  # one entry per (fg, bg) pair, as the offline composition lists them
            train.append({"alpha_path": rel.replace("/fg/", "/alpha/"), "fg_path": rel,
                          "bg_path": f"Training_set/bg/{stem}_{i}.png",
                          "merged_path": f"Training_set/merged/{stem}_{i}.png"})
    test = []
    for rel in sorted(k for k in data if k.startswith("Test_set/merged/")):
        name = rel.rsplit("/", 1)[1]
        base = name.rsplit("_", 1)[0] + ".png"
        test.append({"alpha_path": f"Test_set/Adobe-licensed images/alpha/{base}",
                     "fg_path": f"Test_set/Adobe-licensed images/fg/{base}",
                     "bg_path": f"Test_set/bg/{name}", "merged_path": rel,
                     "trimap_path": f"Test_set/Adobe-licensed images/trimaps/{name}"})
    write(root / prefix / "training_list.json", json.dumps(train).encode())
    write(root / prefix / "test_list.json", json.dumps(test).encode())
