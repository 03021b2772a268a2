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
