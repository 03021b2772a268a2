"""The three stages of ``restoray restore``'s Ray Data job, as plain functions over numpy batches.

``read_stage`` (CPU tasks) reads and decodes each item's files; ``ModelStage`` (the actor pool)
predicts with the family's hooks; ``write_stage`` (CPU tasks) encodes and writes each result
atomically. Nothing here imports Ray: ``pipelines/restore.py`` wires the stages into a
Dataset, and the tests call them in-process.

Imports: the read and write tasks need numpy and OpenCV only; torch, the architectures and
the family's hooks are imported by the model actor itself, so a task worker pays for Ray Data
alone (~1 s here) and not for torch and the family too (~2 s more).

Every row carries ``key`` (the source's path relative to SRC), ``out`` (the output's path
relative to DST) and ``error`` (empty, or one line saying why the item failed). A failed item
travels on with empty arrays, so the driver learns every item's fate from the last stage
alone, and no exception ever leaves a stage for a bad input: a bad input never stops the job.

Columns by stage (``<name>``: each of the family's ``infer_inputs``, ``image`` first):

* in: ``key, out, src_<name>`` (each input's key in its own storage);
* after read: ``key, out, error, in_<name>`` (uint8, image HxWx3, masks/trimaps HxW), ``in_h, in_w``;
* after the model: ``key, out, error, result`` (uint8 HxWxC, C 1 or 3), ``in_h, in_w, model_s``
  (seconds predicting, per item), ``ready_at`` (when its actor had started, wall clock);
* after write: ``key, out, error, in_h, in_w, out_h, out_w, bytes, model_s, ready_at`` (no arrays).
"""

from __future__ import annotations

import time
from typing import Any

import cv2
import numpy as np

from pipelines.image_io import decode_input, encode_image

# Inputs of one size go through one prediction up to this many input pixels (and --batch-size
# items): a batch of large images would otherwise hold several full-size outputs at once.
MAX_BATCH_PIXELS = 2048 * 2048


def one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if not isinstance(exc, ValueError) or not first else first


def ragged(arrays: list[np.ndarray]) -> np.ndarray:
    """A column of arrays that may differ in shape (an object array Ray Data stores as a
    variable-shaped tensor column); plain assignment would try to broadcast equal shapes."""
    out = np.empty(len(arrays), dtype=object)
    for i, a in enumerate(arrays):
        out[i] = a
    return out


def _empty(name: str) -> np.ndarray:
    return np.zeros((0, 0, 3) if name == "image" else (0, 0), np.uint8)


def read_stage(batch: dict[str, np.ndarray], storages: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """Read and decode each item's inputs (``storages``: input name -> Storage of its root)."""
    cv2.setNumThreads(1)  # one task, one core: Ray runs as many tasks as it has CPUs for
    keys = [str(k) for k in batch["key"]]
    arrays: dict[str, list[np.ndarray]] = {name: [] for name in names}
    errors = []
    for i in range(len(keys)):
        try:
            got = {}
            for name in names:
                store, key = storages[name], str(batch[f"src_{name}"][i])
                got[name] = decode_input(name, store.read_bytes(key), key if name == "image" else f"{name} {store.uri(key)}")
            errors.append("")
        except Exception as exc:  # noqa: BLE001 - an unreadable input is a failure entry, never a stopped job
            got = {name: _empty(name) for name in names}
            errors.append(one_line(exc))
        for name in names:
            arrays[name].append(got[name])
    return {"key": np.array(keys, dtype=object), "out": np.array([str(o) for o in batch["out"]], dtype=object),
            "error": np.array(errors, dtype=object),
            "in_h": np.array([a.shape[0] for a in arrays["image"]], np.int64),
            "in_w": np.array([a.shape[1] for a in arrays["image"]], np.int64),
            **{f"in_{name}": ragged(arrays[name]) for name in names}}


class ModelStage:
    """One model actor: the networks built and loaded once, then batches of same-size inputs.

    ``model`` is a :class:`pipelines.restore_model.RestoreModel` (or a zero-argument callable
    returning one: the job passes a getter of its object-store copy, so the weights cross the
    object store once per actor and never with a batch).
    """

    def __init__(self, model, threads: int = 1, device: str = "cpu", batch_size: int = 1,
                 max_pixels: int = MAX_BATCH_PIXELS):
        import torch

        from trainers.archs import build_arch
        from trainers.checkpoint_io import load_strict

        torch.set_num_threads(max(1, threads))
        cv2.setNumThreads(1)
        model = model() if callable(model) else model
        self.device = torch.device(device)
        self.task = model.task_cls(model.task_cfg)
        self.names = model.infer_inputs
        self.nets = {}
        for role, state in model.weights.items():
            spec = model.nets[role]
            net = build_arch(spec["name"], **{k: v for k, v in spec.items() if k != "name"})
            load_strict(net, state)
            self.nets[role] = net.eval().to(self.device)
        # A family that has not said its predict takes B > 1 inputs predicts one at a time.
        self.batch_size = batch_size if getattr(model.task_cls, "infer_batchable", False) else 1
        self.max_pixels = max_pixels
        self.ready_at = time.time()  # wall clock: the driver compares actors' start-up with its own clock

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        keys = [str(k) for k in batch["key"]]
        errors = [str(e) for e in batch["error"]]
        results = [np.zeros((0, 0, 3), np.uint8)] * len(keys)
        model_s = np.zeros(len(keys))
        groups: dict[tuple, list[int]] = {}
        for i, err in enumerate(errors):
            if not err:
                groups.setdefault(tuple(batch[f"in_{n}"][i].shape for n in self.names), []).append(i)
        for members in groups.values():
            for chunk in self._chunks(members, batch["in_h"][members[0]] * batch["in_w"][members[0]]):
                self._predict(chunk, batch, keys, errors, results, model_s)
        return {"key": np.array(keys, dtype=object), "out": batch["out"], "error": np.array(errors, dtype=object),
                "result": ragged(results), "in_h": batch["in_h"], "in_w": batch["in_w"], "model_s": model_s,
                "ready_at": np.full(len(keys), self.ready_at)}

    def _chunks(self, members: list[int], pixels: int) -> list[list[int]]:
        size = max(1, min(self.batch_size, self.max_pixels // max(int(pixels), 1)))
        return [members[i:i + size] for i in range(0, len(members), size)]

    def _predict(self, chunk, batch, keys, errors, results, model_s) -> None:
        """One prediction for ``chunk``; when it fails (out of memory, sizes a family refuses),
        each item again on its own, so one bad input fails alone."""
        from pipelines.infer import restore_images

        t0 = time.perf_counter()
        try:
            inputs = [{n: np.array(batch[f"in_{n}"][i]) for n in self.names} for i in chunk]
            outs = restore_images(self.task, self.nets, inputs, self.device)
        except (ValueError, RuntimeError) as exc:
            if len(chunk) > 1:
                for i in chunk:
                    self._predict([i], batch, keys, errors, results, model_s)
                return
            errors[chunk[0]] = f"{keys[chunk[0]]}: {one_line(exc)}"
            return
        seconds = (time.perf_counter() - t0) / len(chunk)
        for i, out in zip(chunk, outs):
            results[i] = out if out.ndim == 3 else out[..., None]
            model_s[i] = seconds


def write_stage(batch: dict[str, np.ndarray], dst) -> dict[str, Any]:
    """Encode each result and write it to ``dst`` atomically (a temporary file renamed into place,
    or one complete S3 upload): an output that exists is whole."""
    cv2.setNumThreads(1)
    n = len(batch["key"])
    errors = [str(e) for e in batch["error"]]
    out_h, out_w, nbytes = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
    for i in range(n):
        if errors[i]:
            continue
        image, out = batch["result"][i], str(batch["out"][i])
        try:
            data = encode_image(np.asarray(image), "." + out.rpartition(".")[2])
            dst.write_bytes(out, data)
        except Exception as exc:  # noqa: BLE001 - a failed write is that item's failure, the job goes on
            errors[i] = f"{dst.uri(out)}: {one_line(exc)}"
            continue
        out_h[i], out_w[i], nbytes[i] = image.shape[0], image.shape[1], len(data)
    return {"key": batch["key"], "out": batch["out"], "error": np.array(errors, dtype=object),
            "in_h": batch["in_h"], "in_w": batch["in_w"], "out_h": out_h, "out_w": out_w,
            "bytes": nbytes, "model_s": batch["model_s"], "ready_at": batch["ready_at"]}
