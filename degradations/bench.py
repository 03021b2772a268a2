"""Throughput of the Real-ESRGAN degradation: CPU preset on one core, batched torch path (pure: no I/O, synthetic GT).

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

__all__ = ["bench_realesrgan_cpu", "bench_realesrgan_torch", "synthetic_gt"]


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


def bench_realesrgan_torch(
    gt_size: int = 400, batch: int = 12, batches: int = 2, device: str = "cpu", seed: int = 0, jpeg: str = "auto"
) -> float:
    """Pairs per second of ``torch_path.apply_batch`` (x4) on ``batch``-sized batches.

    On ``cpu`` torch, OpenCV and BLAS are limited to one thread and CPU time is measured
    (``time.process_time``), so the figure is per core as ``bench_realesrgan_cpu``'s; on
    ``cuda`` it is wall time between synchronisations. Parameters are drawn per sample by
    the shared sampler (as the stream draws them), outside the timed region; the GT upload
    is not timed either (the stream delivers it to the device).

    Args:
        gt_size: Side of the square GT.
        batch: Samples per ``apply_batch`` call (Real-ESRGAN: 12 per GPU).
        batches: Timed calls (after one untimed warm-up call); the best is reported.
        device: ``cpu`` or ``cuda``.
        seed: Seeds the synthetic GTs and the parameters.
        jpeg: ``apply_batch``'s JPEG route.
    """
    import torch

    from degradations.realesrgan import sample_params
    from degradations.torch_path import apply_batch

    dev = torch.device(device)
    cpu = dev.type == "cpu"
    rng = np.random.default_rng(seed)
    imgs = np.stack([synthetic_gt(gt_size, rng) for _ in range(min(batch, 4))])
    gt = torch.from_numpy(imgs[np.arange(batch) % len(imgs)]).permute(0, 3, 1, 2).contiguous().to(dev)

    def draw(tag: str):
        return [sample_params(sample_rng(seed, 0, f"{tag}{i}")) for i in range(batch)]

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    timer = time.process_time if cpu else time.perf_counter
    old = (torch.get_num_threads(), cv2.getNumThreads())
    with ExitStack() as stack:
        if cpu:
            try:
                from threadpoolctl import threadpool_limits

                stack.enter_context(threadpool_limits(1))
            except ImportError:  # pragma: no cover
                pass
            torch.set_num_threads(1)
            cv2.setNumThreads(1)
        try:
            apply_batch(gt, draw("warmup"), jpeg=jpeg)
            sync()
            best = float("inf")
            for r in range(batches):
                params = draw(f"run{r}-")
                t0 = timer()
                apply_batch(gt, params, jpeg=jpeg)
                sync()
                best = min(best, timer() - t0)
        finally:
            torch.set_num_threads(old[0])
            cv2.setNumThreads(old[1])
    return batch / best
