"""``restoray inspect`` and ``restoray infer``: checkpoints as the zoo publishes them or restoray saves them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from pipelines.image_io import IMAGE_SUFFIXES, decode_grey, decode_input, decode_rgb, pair_index
from pipelines.schema import ExperimentConfig
from trainers.checkpoint_io import CheckpointError, compare_state_dict, load_checkpoint_file, load_strict, roles
from trainers.tasks import get_task


def inspect_model(cfg: ExperimentConfig, checkpoint: str | None, uri: str | None = None) -> dict[str, Any]:
    """Every network's parameter count and, given a checkpoint (zoo, restoray or ``models:/``),
    whether each network it holds loads strictly (EMA copies preferred, as for inference)."""
    from pipelines.train_job import build_nets, read_weights

    nets = build_nets(cfg, "meta")
    info: dict[str, Any] = {"nets": {
        role: {"arch": cfg.nets[role]["name"], "num_params": sum(p.numel() for p in net.parameters()),
               "num_state_dict_keys": len(net.state_dict())}
        for role, net in nets.items()}}
    if not checkpoint:
        return info
    held = roles(load_checkpoint_file(checkpoint)) if not checkpoint.startswith("models:/") else list(nets)
    info.update(checkpoint=str(checkpoint), checkpoint_roles=held,
                other_roles=[r for r in held if r not in nets])
    for role, net in nets.items():
        entry = info["nets"][role]
        try:
            state, source = read_weights(checkpoint, role, uri or "")
        except (CheckpointError, ValueError) as exc:
            entry.update(present=False, note=str(exc))
            continue
        report = compare_state_dict(net, state)
        entry.update(present=True, source=source, loads_strictly=report.ok, missing=report.missing,
                     unexpected=report.unexpected, mismatched=[[k, list(a), list(b)] for k, a, b in report.mismatched])
    present = [e for e in info["nets"].values() if e.get("present")]
    info["loads_strictly"] = bool(present) and info["nets"][main_role(cfg)].get("present", False) and all(
        e["loads_strictly"] for e in present)
    return info


def main_role(cfg: ExperimentConfig) -> str:
    """The network a family cannot predict without: the first of its roles (``generator``,
    matting's ``backbone``)."""
    return next(iter(get_task(cfg.task.name).nets))


def load_nets(cfg: ExperimentConfig, checkpoint: str, uri: str | None = None) -> tuple[dict[str, torch.nn.Module], str]:
    """The networks a checkpoint holds (EMA weights preferred), strictly loaded, in eval mode.

    The main network (:func:`main_role`) must be there; other roles (a discriminator, DIM's
    refiner) are loaded when present.
    """
    from pipelines.train_job import build_nets, read_weights  # Ray Train: not for the restore actors' imports

    nets, sources = {}, []
    main = main_role(cfg)
    for role, net in build_nets(cfg).items():
        try:
            state, source = read_weights(checkpoint, role, uri or "")
        except (CheckpointError, ValueError):
            if role == main:
                raise
            continue
        load_strict(net, state)
        nets[role] = net.eval()
        sources.append(source)
    return nets, ", ".join(sources)


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


def paired_file(image: Path, source: str, what: str) -> Path:
    """The ``what`` file (mask, trimap) for ``image``: ``source`` itself when it is a file,
    else the file in folder ``source`` with the image's stem (any image suffix)."""
    p = Path(source)
    if p.is_file():
        return p
    if not p.is_dir():
        raise FileNotFoundError(f"{what} not found: {source}")
    found = pair_index(f.name for f in p.iterdir()).get(image.stem)
    if found is None:
        raise ValueError(f"{image}: no {what} named {image.stem}.* in {source}")
    return p / found


def read_grey(path: Path) -> np.ndarray:
    """uint8 HxW (a mask or trimap); a clear ValueError for files that are not 8-bit images."""
    return decode_grey(np.fromfile(str(path), dtype=np.uint8), str(path))


def read_inputs(task, image: Path, extras: dict[str, str]) -> dict[str, np.ndarray]:
    """The arrays of one input: the RGB image and each extra the family needs (paired by stem):
    masks and trimaps grey, a reference image (TTSR's ``ref``) RGB."""
    inputs = {"image": read_rgb(image)}
    for name in task.infer_inputs:
        if name == "image":
            continue
        if name not in extras:
            raise ValueError(f"this model needs a {name} for each image (--{name} FILE or FOLDER)")
        path = paired_file(image, extras[name], name)
        inputs[name] = decode_input(name, np.fromfile(str(path), dtype=np.uint8), str(path))
    return inputs


def read_rgb(path: Path) -> np.ndarray:
    """uint8 RGB HxWx3; a clear ValueError for files that are not 8-bit images."""
    return decode_rgb(np.fromfile(str(path), dtype=np.uint8), str(path))


def restore_image(task, nets: dict[str, torch.nn.Module], inputs: dict[str, np.ndarray],
                  device: torch.device) -> np.ndarray:
    """One input through the family's prediction; the uint8 image the family writes back."""
    return restore_images(task, nets, [inputs], device)[0]


def restore_images(task, nets: dict[str, torch.nn.Module], inputs: list[dict[str, np.ndarray]],
                   device: torch.device) -> list[np.ndarray]:
    """Inputs of one size through one prediction (``restoray restore`` batches them).

    Each input becomes the family's batch of one (``infer_batch``); the batches are stacked
    along the batch axis of every key (the batch schema puts it first), predicted at once, and
    each item's slice of the prediction and of the batch goes back through ``infer_output``.
    ValueError (one line) when the inputs do not fit together.
    """
    singles = [task.infer_batch(i) for i in inputs]
    keys = singles[0].keys()
    if any(s.keys() != keys or any(s[k].shape != singles[0][k].shape for k in keys) for s in singles):
        raise ValueError("inputs of one prediction must have the same sizes")
    stack = (lambda k: torch.cat([s[k] for s in singles])) if len(singles) > 1 else (lambda k: singles[0][k])
    batch = {k: stack(k).to(device) for k in keys}
    with torch.no_grad():
        pred = task.predict(nets, batch)
    if pred.shape[0] != len(singles):
        raise ValueError(f"{type(task).__name__}.predict returned {pred.shape[0]} items for {len(singles)} inputs "
                         f"(a family that cannot batch leaves infer_batchable unset)")
    return [task.infer_output(pred[i:i + 1], {k: v[i:i + 1] for k, v in batch.items()})
            for i in range(len(singles))]


def run_infer(cfg: ExperimentConfig, checkpoint: str, out_dir: str, inputs: list[str],
              uri: str | None = None, extras: dict[str, str] | None = None,
              composite_on: str | None = None) -> tuple[list[Path], list[str]]:
    """Restore every input into ``out_dir``; returns (written files, one-line errors).

    ``extras`` names the file or folder of each further input the family needs (``mask``,
    ``trimap``), paired with the images by file stem. ``composite_on`` (matting) is a background
    image: each input's foreground is also written over it as ``<name>_composite.png``.
    """
    task = get_task(cfg.task.name)(cfg.task)
    unused = sorted(set(extras or {}) - set(task.infer_inputs))
    if unused:
        raise ValueError(f"--{unused[0]} does not apply to a {cfg.task.name} model")
    background = None
    if composite_on is not None:
        if "trimap" not in task.infer_inputs:
            raise ValueError(f"--composite-on needs a matting model, not {cfg.task.name}")
        background = read_rgb(Path(composite_on)) if Path(composite_on).is_file() else None
        if background is None:
            raise FileNotFoundError(f"background not found: {composite_on}")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    nets, source = load_nets(cfg, checkpoint, uri)
    nets = {r: n.to(device) for r, n in nets.items()}
    print(f"[restoray] {cfg.task.name} {cfg.nets[main_role(cfg)]['name']} weights: {source} from {checkpoint}", flush=True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written, errors = [], []
    files = list_inputs(inputs)
    for i, path in enumerate(files, 1):
        try:
            arrays = read_inputs(task, path, extras or {})
            result = restore_image(task, nets, arrays, device)
        except ValueError as exc:
            errors.append(str(exc))
            print(f"[restoray] skip {exc}", flush=True)
            continue
        target = out / f"{path.stem}.png"
        cv2.imwrite(str(target), result if result.ndim == 2 else cv2.cvtColor(result, cv2.COLOR_RGB2BGR))
        written.append(target)
        if background is not None:
            from trainers.tasks.matting import composite_on as over

            comp = out / f"{path.stem}_composite.png"
            cv2.imwrite(str(comp), cv2.cvtColor(over(arrays["image"], result, background), cv2.COLOR_RGB2BGR))
            written.append(comp)
        img = arrays["image"]
        print(f"[restoray] {i}/{len(files)} {path.name} {img.shape[1]}x{img.shape[0]} -> "
              f"{result.shape[1]}x{result.shape[0]} {target}", flush=True)
    return written, errors
