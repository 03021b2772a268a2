"""Throughput of the CPU Real-ESRGAN preset on one core (pure: no I/O, synthetic GT).

``bench_realesrgan_cpu`` limits OpenCV to one thread (``cv2.setNumThreads(1)``) and the
BLAS/OpenMP pools numpy may use to one (``threadpoolctl``, when installed; the environment
variables ``OMP_NUM_THREADS`` etc. only act before those libraries load, so they cannot be
set from here). The preset itself calls no BLAS beyond tiny 21x21 SVDs, so without
threadpoolctl the figure is still a one-core figure up to noise. Both limits are restored
afterwards.
"""

from __future__ import annotations

import time
from contextlib import ExitStack

import cv2
import numpy as np

from degradations.realesrgan import realesrgan
from degradations.seeding import sample_rng

__all__ = ["bench_realesrgan_cpu", "synthetic_gt"]


def synthetic_gt(size: int, rng: np.random.Generator) -> np.ndarray:
    """A natural-ish float32 RGB image on the 8-bit grid: smoothed noise plus edges."""
    base = cv2.GaussianBlur(rng.random((size, size, 3)).astype(np.float32), (0, 0), 2.0)
    yy, xx = np.mgrid[0:size, 0:size]
    edges = ((xx // max(size // 8, 1) + yy // max(size // 6, 1)) % 2).astype(np.float32)[..., None]
    img = 0.6 * base + 0.4 * edges
    img = (img - img.min()) / (img.max() - img.min())
    return (np.round(img * 255) / 255).astype(np.float32)


def bench_realesrgan_cpu(
    gt_size: int = 400, n: int = 50, seed: int = 0, repeats: int = 1, clock: str = "wall"
) -> float:
    """Pairs per second of the ``realesrgan`` preset (x4) on ``gt_size`` GT, one core.

    Args:
        gt_size: Side of the square GT (the reference crops 400).
        n: Pairs per timed run (after 3 untimed warm-up pairs).
        seed: Seeds the synthetic GTs and the per-sample generators.
        repeats: Timed runs; the best is reported (robust to other load on the machine).
        clock: ``wall`` (``time.perf_counter``) or ``cpu`` (``time.process_time``: CPU
            seconds of this process, all threads; with one thread this is the one-core
            figure even on a machine shared with other work).

    Returns:
        Pairs per second.
    """
    if clock not in ("wall", "cpu"):
        raise ValueError(f"clock must be 'wall' or 'cpu', got {clock!r}")
    timer = time.perf_counter if clock == "wall" else time.process_time
    rng = np.random.default_rng(seed)
    gts = [synthetic_gt(gt_size, rng) for _ in range(4)]
    old_threads = cv2.getNumThreads()
    with ExitStack() as stack:
        try:
            from threadpoolctl import threadpool_limits

            stack.enter_context(threadpool_limits(1))
        except ImportError:  # pragma: no cover - threadpoolctl ships with the test deps
            pass
        cv2.setNumThreads(1)
        try:
            for i in range(3):
                realesrgan(gts[i % 4], scale=4, rng=sample_rng(seed, 0, f"warmup{i}"))
            best = float("inf")
            for r in range(repeats):
                t0 = timer()
                for i in range(n):
                    realesrgan(gts[i % 4], scale=4, rng=sample_rng(seed, r + 1, str(i)))
                best = min(best, timer() - t0)
        finally:
            cv2.setNumThreads(old_threads)
    return n / best
