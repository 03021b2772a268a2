"""``restoray bench degradations``: throughput of the degradation engine, one record per case.

CPU figures are per core: the benchmark pins OpenCV, BLAS and torch to one thread (see
``degradations.bench``); the ``gpu`` record (CUDA present) is pairs/s of the whole GPU.
Devices: ``cpu`` (the numpy/OpenCV path of the Ray Data actors), ``cpu-torch`` (the
batched torch path on a CPU-only training worker), ``gpu``. Records: ``{"preset",
"device", "gt_size", "frames", "value", "unit", "machine"}``.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any


def machine() -> str:
    """CPU model and core count (the GPU name, when one is used)."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} logical CPUs"


def bench_degradations(quick: bool = False) -> list[dict[str, Any]]:
    from degradations.bench import bench_realesrgan_cpu

    n, repeats = (5, 1) if quick else (40, 3)
    where = machine()
    records = []
    for size in (256, 400):
        value = bench_realesrgan_cpu(gt_size=size, n=n, repeats=repeats)
        records.append({"preset": "realesrgan", "device": "cpu", "gt_size": size, "frames": 1,
                        "value": round(value, 2), "unit": "pairs/s/core", "machine": where})
        print(f"[restoray] realesrgan cpu {size}px: {value:.1f} pairs/s/core", flush=True)
    records += _torch_path_records(quick, where)
    try:
        from degradations.video_bench import bench_realbasicvsr_cpu
    except ImportError:
        bench_realbasicvsr_cpu = None
    if bench_realbasicvsr_cpu is not None:
        value = bench_realbasicvsr_cpu(num_frames=30, size=256, n=1 if quick else 3)
        records.append({"preset": "realbasicvsr", "device": "cpu", "gt_size": 256, "frames": 30,
                        "value": round(value, 3), "unit": "s/clip/core", "machine": where})
        print(f"[restoray] realbasicvsr cpu 30x256px: {value:.3f} s/clip/core", flush=True)
    return records


def _torch_path_records(quick: bool, where: str) -> list[dict[str, Any]]:
    """The batched torch path (``data.degradation.device: gpu``): on CUDA when present
    (``"device": "gpu"``, pairs/s of the whole GPU), and on one CPU core (``"cpu-torch"``,
    what a CPU-only training worker gets; a few seconds)."""
    import torch

    from degradations.bench import bench_realesrgan_torch

    records = []
    cases = [("cpu-torch", "cpu", 4 if quick else 12, 1 if quick else 2, "pairs/s/core", where)]
    if torch.cuda.is_available():
        gpu = f"{torch.cuda.get_device_name(0)} (+ {where})"
        cases.append(("gpu", "cuda", 12 if quick else 48, 2 if quick else 5, "pairs/s", gpu))
    for label, device, batch, batches, unit, machine_name in cases:
        for size in (256, 400):
            value = bench_realesrgan_torch(gt_size=size, batch=batch, batches=batches, device=device)
            records.append({"preset": "realesrgan", "device": label, "gt_size": size, "frames": 1,
                            "value": round(value, 2), "unit": unit, "machine": machine_name})
            print(f"[restoray] realesrgan {label} {size}px (batch {batch}): {value:.1f} {unit}", flush=True)
    return records


def sampler_rate(sampler: Any, members: list[dict], n: int, repeats: int, warmup: int, seed: int = 0) -> float:
    """Training samples per second of ``sampler`` on one core: BLAS pools and OpenCV limited to
    one thread, CPU time of this process (so other work on a shared machine does not count),
    best of ``repeats`` runs of ``n`` samples after ``warmup`` (caches, banks)."""
    import time
    from contextlib import ExitStack

    import cv2

    from degradations.seeding import sample_rng

    with ExitStack() as stack:
        try:
            from threadpoolctl import threadpool_limits

            stack.enter_context(threadpool_limits(1))
        except ImportError:  # pragma: no cover - threadpoolctl ships with the test deps
            pass
        old = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            for i in range(warmup):
                sampler.train(members[i % len(members)], sample_rng(seed, 0, f"warm{i}"))
            best = float("inf")
            for r in range(repeats):
                t0 = time.process_time()
                for i in range(n):
                    sampler.train(members[i % len(members)], sample_rng(seed, r + 1, str(i)))
                best = min(best, time.process_time() - t0)
        finally:
            cv2.setNumThreads(old)
    return n / best


def time_prediction(task: Any, nets: dict[str, Any], inputs: dict[str, Any], repeats: int = 2) -> dict[str, Any]:
    """Best-of-``repeats`` seconds of ``task.predict`` on one inference input (after a warm-up),
    on the GPU when there is one, else on every CPU thread, and the peak memory: CUDA allocations
    (GPU) or the process's resident set (CPU). ``inputs`` as ``task.infer_batch`` takes them."""
    import resource
    import time

    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    nets = {r: n.to(device).eval() for r, n in nets.items()}
    batch = {k: v.to(device) for k, v in task.infer_batch(inputs).items()}
    times = []
    for _ in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        task.predict(nets, batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"device": device.type, "threads": torch.get_num_threads(), "value": round(min(times[1:]), 3),
            "unit": "s/image", "peak_mib": round(peak), "machine": machine()}


def save_records(out: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Writes a benchmark's records as a JSON list (every ``restoray bench`` command)."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(records, indent=1))
    return records


def write_bench(out: str, quick: bool = False) -> list[dict[str, Any]]:
    return save_records(out, bench_degradations(quick=quick))
