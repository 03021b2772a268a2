"""``restoray bench restore``: images/s of the Ray Data restore job against the single-process
``restoray infer`` loop, on the same inputs and model.

Inputs: ``n`` generated photo-like PNGs (smooth colour fields and sharp discs) in a temporary
folder. Model: the demo's EDSR x4 (32 channels, 4 blocks; ``configs/demo/``) with seeded
random weights, saved as a bare state dict: timing needs no trained weights.

* **infer**: :func:`pipelines.infer.run_infer` in this process, exactly what ``restoray infer
  CONFIG --checkpoint FILE --out DIR FOLDER`` runs: torch's default thread count (one per core),
  read -> predict -> write one image after the other.
* **restore**: :func:`pipelines.restore.run_restore` (no MLflow run), the Ray Data job with its
  default actors (one per GPU, else one single-threaded actor per core) and, on the CPU (not
  with ``--quick``), also with one actor holding every core's thread, to show what the actor
  layout is worth. Its seconds run from handing the model to the object store to the last
  output's row, actor start-up included (every job pays it); ``ray.init`` (once per cluster,
  ~6 s here) is recorded apart. ``startup_s`` is the part until the first model actor was
  ready (a worker process importing Ray Data, torch and the family, then the weights);
  ``steady_images_per_s`` counts the images over the seconds after it, what a long job
  approaches. ``actor_busy_share`` is the share of the actors' time after start-up spent
  predicting; 1 minus it is the time they waited for input (on a GPU: how busy the job keeps it); with CUDA
and ``nvidia-ml-py`` installed, ``gpu_utilisation`` is NVML's mean over the job as well.

Repetitions alternate which side goes first; each figure is the median over repetitions
(``runs_s``: every repetition's seconds). Records: ``{"case", "device", "images", "size",
"actors", "seconds", "runs_s", "images_per_s", "megapixels_per_s", "startup_s",
"steady_images_per_s", "actor_busy_share", "gpu_utilisation", "vs_infer", "steady_vs_infer", "reps",
"machine", "ray_init_s"}``, ``vs_infer`` being the case's images/s over infer's (target on a 2-core CPU:
>= 1) and ``steady_vs_infer`` the same after start-up.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from pipelines.bench import machine, save_records

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo" / "edsr_x4c32b4_demo.yaml"
# (images, LQ height, LQ width, repetitions)
SIZES = {"full": (128, 96, 128, 2), "quick": (6, 24, 32, 1)}


def photo(h: int, w: int, seed: int) -> np.ndarray:
    """A photo-like uint8 RGB image (what PNG coding costs depends on content, so not noise)."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (max(h // 16, 2), max(w // 16, 2), 3)).astype(np.float32)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(5):
        c = tuple(float(v) for v in rng.uniform(0, 255, 3))
        cv2.circle(img, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(2, max(h // 4, 3))), c, -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_inputs(folder: Path, n: int, h: int, w: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cv2.imwrite(str(folder / f"img{i:03d}.png"), cv2.cvtColor(photo(h, w, i), cv2.COLOR_RGB2BGR))


def make_model(folder: Path) -> Path:
    from pipelines.config import load_experiment
    from pipelines.train_job import build_nets

    cfg = load_experiment(CONFIG, check_paths=False)
    torch.manual_seed(0)
    path = folder / "edsr_random.pth"
    torch.save(build_nets(cfg)["generator"].state_dict(), path)
    return path


def _time_infer(cfg, ckpt: Path, src: Path, out: Path) -> float:
    from pipelines.infer import run_infer

    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # one line per image
        written, errors = run_infer(cfg, str(ckpt), str(out), [str(src)])
    seconds = time.perf_counter() - t0
    if errors or not written:
        raise RuntimeError(f"infer failed: {errors[:1]}")
    return seconds


def _time_restore(model, src: Path, out: Path, actors: int | None, gpus: float | None) -> dict[str, Any]:
    from pipelines.restore import RestoreOptions, run_restore

    opts = RestoreOptions(num_actors=actors, gpus_per_actor=gpus, progress=False)
    with contextlib.redirect_stdout(io.StringIO()), _GpuUtilisation() as gpu:  # the summary screen
        s = run_restore(model, str(src), str(out), opts, tracking=None)
    if s.failed or not s.written:
        raise RuntimeError(f"restore failed: {s.failures[:1]}")
    return {"seconds": s.seconds, "busy": s.actor_busy, "actors": s.actors, "startup_s": s.startup_s,
            "steady": s.steady_images_per_s, "gpu_util": gpu.mean}


class _GpuUtilisation:
    """Mean utilisation of GPU 0 (NVML, sampled every 0.2 s from a thread) while a job runs; None
    without CUDA or without the ``nvidia-ml-py`` package. Start-up samples (0%) count too."""

    def __enter__(self):
        import threading

        self.mean, self.samples, self.stop = None, [], threading.Event()
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception:  # noqa: BLE001 - no NVML here: nothing to sample
            self.thread = None
            return self

        def sample():
            while not self.stop.wait(0.2):
                self.samples.append(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)

        self.thread = threading.Thread(target=sample, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        if self.thread is not None:
            self.stop.set()
            self.thread.join()
            self.mean = sum(self.samples) / len(self.samples) / 100 if self.samples else None
        return False


def bench_restore(quick: bool = False) -> list[dict[str, Any]]:
    from pipelines.cluster import init_ray
    from pipelines.config import load_experiment
    from pipelines.restore_model import resolve_model

    n, h, w, reps = SIZES["quick" if quick else "full"]
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    where = (f"{torch.cuda.get_device_name(0)} (+ {machine()})" if cuda else machine())
    work = Path(tempfile.mkdtemp(prefix="restoray-bench-"))
    try:
        src = work / "in"
        make_inputs(src, n, h, w)
        ckpt = make_model(work)
        cfg = load_experiment(CONFIG, check_paths=False)
        model = resolve_model(str(ckpt), str(CONFIG), tracking="")
        t0 = time.perf_counter()
        init_ray()
        ray_init_s = time.perf_counter() - t0
        cores = torch.get_num_threads() if not cuda else 1
        cases = {"restore": (None, None)}
        if not cuda and cores > 1 and not quick:
            cases["restore-1-actor"] = (1, 0.0)
        times: dict[str, list] = {"infer": [], **{c: [] for c in cases}}
        for rep in range(reps):
            order = ["infer", *cases] if rep % 2 == 0 else [*cases, "infer"]
            for case in order:
                out = work / f"out-{case}-{rep}"
                if case == "infer":
                    times["infer"].append({"seconds": _time_infer(cfg, ckpt, src, out), "busy": None,
                                           "actors": "one process", "startup_s": None, "steady": None,
                                           "gpu_util": None})
                else:
                    times[case].append(_time_restore(model, src, out, *cases[case]))
                shutil.rmtree(out, ignore_errors=True)
        return _records(times, n, h, w, reps, device, where, ray_init_s)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _records(times, n, h, w, reps, device, where, ray_init_s) -> list[dict[str, Any]]:
    out_mp = n * h * w * 16 / 1e6  # x4
    infer_s = statistics.median(t["seconds"] for t in times["infer"])
    records = []
    for case, runs in times.items():
        seconds = statistics.median(t["seconds"] for t in runs)
        med = {k: statistics.median(v) if (v := [t[k] for t in runs if t[k] is not None]) else None
               for k in ("busy", "startup_s", "steady", "gpu_util")}
        records.append({
            "case": case, "device": device, "images": n, "size": f"{w}x{h} -> {4 * w}x{4 * h}",
            "actors": runs[0]["actors"], "seconds": round(seconds, 3),
            "runs_s": [round(t["seconds"], 2) for t in runs], "images_per_s": round(n / seconds, 3),
            "megapixels_per_s": round(out_mp / seconds, 3),
            "actor_busy_share": _round(med["busy"]), "startup_s": _round(med["startup_s"]),
            "steady_images_per_s": _round(med["steady"]), "vs_infer": round(infer_s / seconds, 3),
            "steady_vs_infer": _round(med["steady"] and med["steady"] * infer_s / n), "reps": reps, "machine": where,
            "gpu_utilisation": _round(med["gpu_util"]),
            **({"ray_init_s": round(ray_init_s, 2)} if case != "infer" else {}),
        })
    return records


def _round(x: float | None) -> float | None:
    return round(x, 3) if x is not None else None


def format_table(records: list[dict[str, Any]]) -> str:
    lines = [f"{'case':<16} {'device':<6} {'images/s':>9} {'MP/s out':>9} {'seconds':>8} {'vs infer':>9} "
             f"{'start s':>8} {'steady/s':>9} {'vs infer':>9} {'busy':>5}  actors"]
    def cell(x: float | None, width: int) -> str:
        return f"{x:>{width}.2f}" if x is not None else f"{'-':>{width}}"

    for r in records:
        busy = f"{r['actor_busy_share']:.0%}" if r["actor_busy_share"] is not None else "-"
        lines.append(f"{r['case']:<16} {r['device']:<6} {r['images_per_s']:>9.2f} {r['megapixels_per_s']:>9.2f} "
                     f"{r['seconds']:>8.2f} {r['vs_infer']:>9.2f} {cell(r['startup_s'], 8)} "
                     f"{cell(r['steady_images_per_s'], 9)} {cell(r['steady_vs_infer'], 9)} {busy:>5}  {r['actors']}")
    return "\n".join(lines)


def write_bench_restore(out: str, quick: bool = False) -> list[dict[str, Any]]:
    return save_records(out, bench_restore(quick=quick))
