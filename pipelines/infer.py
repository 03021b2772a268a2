"""``restoray inspect`` and ``restoray infer``: checkpoints as the zoo publishes them or restoray saves them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from pipelines.config import ExperimentConfig, model_kwargs
from trainers.archs import build_arch
from trainers.checkpoint_io import compare_state_dict, extract_generator_state, load_checkpoint_file, load_strict
from trainers.tiling import tiled_forward

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


def build_model(cfg: ExperimentConfig) -> torch.nn.Module:
    return build_arch(cfg.model.name, **model_kwargs(cfg.model))


def inspect_model(cfg: ExperimentConfig, checkpoint: str | None) -> dict[str, Any]:
    """Parameter count and, given a checkpoint, the strict-load key report."""
    model = build_model(cfg)
    info: dict[str, Any] = {
        "model": cfg.model.name,
        "num_params": sum(p.numel() for p in model.parameters()),
        "num_state_dict_keys": len(model.state_dict()),
    }
    if checkpoint:
        state, source = extract_generator_state(load_checkpoint_file(checkpoint), prefer_ema=True)
        report = compare_state_dict(model, state)
        info.update(
            checkpoint=str(checkpoint), source=source, loads_strictly=report.ok,
            missing=report.missing, unexpected=report.unexpected,
            mismatched=[[k, list(a), list(b)] for k, a, b in report.mismatched],
        )
    return info


def load_model(cfg: ExperimentConfig, checkpoint: str) -> tuple[torch.nn.Module, str]:
    """The model with checkpoint weights (EMA where present), strictly loaded, in eval mode."""
    model = build_model(cfg)
    state, source = extract_generator_state(load_checkpoint_file(checkpoint), prefer_ema=True)
    load_strict(model, state)
    return model.eval(), source


def list_inputs(inputs: list[str]) -> list[Path]:
    """Image files named directly or found (non-recursively, sorted) in named folders."""
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"input not found: {item}")
    return files


def read_rgb(path: Path) -> np.ndarray:
    """uint8 RGB HxWx3; a clear ValueError for files that are not 8-bit images."""
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise ValueError(f"{path}: not a readable image")
    if img.dtype != np.uint8:
        raise ValueError(f"{path}: {img.dtype} images are not supported (8-bit only)")
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    else:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return img


@torch.no_grad()
def upscale(model: torch.nn.Module, img: np.ndarray, scale: int, tile: int | None, overlap: int,
            device: torch.device) -> np.ndarray:
    """Same pre/post-processing as the zoo SR models: RGB in [0,1] in, clamp, round to uint8 out."""
    lq = torch.from_numpy(img).permute(2, 0, 1)[None].float().div(255).to(device)
    out = tiled_forward(model, lq, scale, tile, overlap)[0].clamp(0, 1)
    return (out.permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)


def run_infer(cfg: ExperimentConfig, checkpoint: str, out_dir: str, inputs: list[str],
              tile: int | None, overlap: int) -> tuple[list[Path], list[str]]:
    """Upscale every input into ``out_dir``; returns (written files, one-line errors)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, source = load_model(cfg, checkpoint)
    model.to(device)
    print(f"[restoray] {cfg.model.name} x{cfg.data.scale} weights: {source} from {checkpoint}", flush=True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written, errors = [], []
    files = list_inputs(inputs)
    for i, path in enumerate(files, 1):
        try:
            img = read_rgb(path)
        except ValueError as exc:
            errors.append(str(exc))
            print(f"[restoray] skip {exc}", flush=True)
            continue
        sr = upscale(model, img, cfg.data.scale, tile, overlap, device)
        target = out / f"{path.stem}.png"
        cv2.imwrite(str(target), cv2.cvtColor(sr, cv2.COLOR_RGB2BGR))
        written.append(target)
        print(f"[restoray] {i}/{len(files)} {path.name} {img.shape[1]}x{img.shape[0]} -> "
              f"{sr.shape[1]}x{sr.shape[0]} {target}", flush=True)
    return written, errors
