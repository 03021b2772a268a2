"""``restoray bench deform``: modulated deformable convolution against a plain conv2d of the same shape.

The figure that matters is the ratio: forward + backward of
:func:`trainers.archs.deform_conv.modulated_deform_conv2d` (random offsets of a few pixels,
random mask, as the video SR aligners feed it) over forward + backward of
``torch.nn.functional.conv2d`` with the same input, weight and bias. Every backend that runs
here is timed: ``torch`` (the plain-torch op) always, ``torchvision`` when its compiled op
loads (the cluster image).

CPU figures are per core: torch is limited to one thread while timing and the clock is this
process's CPU time (``time.process_time``), so a machine shared with other work still gives
the one-core figure. CUDA figures are wall time after ``torch.cuda.synchronize``. The two
timings alternate and the best of ``repeats`` of each is reported.
Records: ``{"case", "shape", "backend", "deform_ms", "conv_ms", "ratio", "device", "machine"}``.
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F

from pipelines.bench import machine, save_records
from trainers.archs.deform_conv import deform_conv_backend, modulated_deform_conv2d

# name -> (batch, in = out channels, height = width, deform_groups); 3x3 kernel, padding 1
CASES = {
    "basicvsr_pp": (1, 64, 64, 16),  # SecondOrderDeformableAlignment: 16 deform groups
    "edvr": (1, 64, 64, 8),  # PCD alignment's ModulatedDCNPack: 8 deform groups
    "basicvsr_pp_128": (1, 64, 128, 16),
}
QUICK_CASES = {"quick": (1, 16, 24, 4)}


def _tensors(b: int, c: int, size: int, dg: int, device: str) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(b, c, size, size, generator=gen)
    weight = torch.randn(c, c, 3, 3, generator=gen) / (3 * c**0.5)
    bias = torch.zeros(c)
    offset = torch.randn(b, dg * 18, size, size, generator=gen) * 2
    mask = torch.rand(b, dg * 9, size, size, generator=gen)
    return [t.to(device).requires_grad_() for t in (x, offset, mask, weight, bias)]


def _timer(device: str):
    if device == "cuda":
        def clock() -> float:
            torch.cuda.synchronize()
            return time.perf_counter()
        return clock
    return time.process_time


def bench_deform_case(b: int, c: int, size: int, dg: int, backend: str, device: str = "cpu",
                      repeats: int = 10, warmup: int = 2) -> tuple[float, float]:
    """Best-of-``repeats`` milliseconds of (deform conv, conv2d), forward + backward each."""
    x, offset, mask, weight, bias = _tensors(b, c, size, dg, device)

    def deform() -> None:
        modulated_deform_conv2d(x, offset, mask, weight, bias, 1, 1, 1, 1, dg, backend=backend).sum().backward()

    def conv() -> None:
        F.conv2d(x, weight, bias, 1, 1).sum().backward()

    clock = _timer(device)
    best = {deform: float("inf"), conv: float("inf")}
    for i in range(warmup + repeats):
        for fn in best:
            t0 = clock()
            fn()
            if i >= warmup:
                best[fn] = min(best[fn], clock() - t0)
    return best[deform] * 1e3, best[conv] * 1e3


def bench_deform(quick: bool = False) -> list[dict[str, Any]]:
    """One record per case, backend and device (CPU, and CUDA when there is one)."""
    cases = QUICK_CASES if quick else CASES
    repeats, warmup = (2, 1) if quick else (10, 2)
    backends = ["torch"] + (["torchvision"] if deform_conv_backend() == "torchvision" else [])
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    records = []
    for device in devices:
        where = torch.cuda.get_device_name() if device == "cuda" else machine() + ", 1 thread"
        threads = torch.get_num_threads()
        if device == "cpu":
            torch.set_num_threads(1)
        try:
            for name, (b, c, size, dg) in cases.items():
                for backend in backends:
                    deform_ms, conv_ms = bench_deform_case(b, c, size, dg, backend, device, repeats, warmup)
                    records.append({
                        "case": name,
                        "shape": {"batch": b, "in_channels": c, "out_channels": c, "height": size, "width": size,
                                  "kernel": 3, "deform_groups": dg},
                        "backend": backend, "deform_ms": round(deform_ms, 3), "conv_ms": round(conv_ms, 3),
                        "ratio": round(deform_ms / conv_ms, 2), "device": device, "machine": where,
                    })
                    print(f"[restoray] deform {name} {b}x{c}x{size}x{size} dg {dg} {backend} on {device}: "
                          f"{deform_ms:.1f} ms vs conv2d {conv_ms:.1f} ms (x{deform_ms / conv_ms:.2f}), "
                          "forward+backward", flush=True)
        finally:
            torch.set_num_threads(threads)
    return records


def write_bench_deform(path: str, quick: bool = False) -> list[dict[str, Any]]:
    return save_records(path, bench_deform(quick=quick))
