"""``restoray bench degradations``: throughput of the degradation engine, one record per case.

Figures are per core: the benchmark pins OpenCV and BLAS to one thread (see
``degradations.bench``). Records: ``{"preset", "device", "gt_size", "frames",
"value", "unit", "machine"}``.
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


def write_bench(out: str, quick: bool = False) -> list[dict[str, Any]]:
    records = bench_degradations(quick=quick)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(records, indent=1))
    return records
