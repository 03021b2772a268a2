"""Single-core throughput of the RealBasicVSR clip degradation.

``bench_realbasicvsr_cpu`` times :func:`degradations.realbasicvsr.realbasicvsr_clip` on
synthetic 256x256 clips (smooth random texture plus a moving edge pattern, so the codecs
see realistic motion), with the process pinned to one CPU (Linux ``sched_setaffinity``) and
OpenCV restricted to one thread, so helper threads (BLAS, codecs) cannot borrow cores. The reference (mmagic's
``random_degradations.py`` with the PyAV fix) needs about 3.2 s per 30-frame clip on one
core (spec/degradations.md, "Throughput anchors").

``profile_realbasicvsr_cpu`` splits the time by stage (USM, blur, resize, noise, JPEG,
video) to show where it goes.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from contextlib import contextmanager

import cv2
import numpy as np

from degradations import realbasicvsr as rbv

__all__ = ["bench_realbasicvsr_cpu", "profile_realbasicvsr_cpu", "synthetic_clip"]


def synthetic_clip(num_frames: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """``num_frames`` float32 ``size x size x 3`` frames: a smooth texture panning 2 px/frame."""
    rng = np.random.default_rng(seed)
    big = size + 2 * num_frames + 2
    base = rng.random((big // 8 + 2, big // 8 + 2, 3), dtype=np.float32)
    tex = cv2.resize(base, (big, big), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:big, 0:big].astype(np.float32)
    stripes = (np.sin(xx * 0.35) * np.sin(yy * 0.21) > 0.3).astype(np.float32)[..., None]
    tex = np.clip(0.7 * tex + 0.3 * stripes, 0.0, 1.0)
    tex = np.round(tex * 255.0) / 255.0  # like a decoded 8-bit frame
    return [np.ascontiguousarray(tex[t : t + size, 2 * t : 2 * t + size], dtype=np.float32) for t in range(num_frames)]


def bench_realbasicvsr_cpu(
    num_frames: int = 30, size: int = 256, n: int = 5, seed: int = 0, cfg: rbv.RealBasicVSRConfig = rbv.REALBASICVSR
) -> float:
    """Mean wall-clock seconds per clip of ``realbasicvsr_clip`` on one core.

    Args:
        num_frames: Frames per degraded clip (after mirroring; ``num_frames // 2`` are loaded).
        size: GT frame side (LQ is ``size / 4``).
        n: Clips to time (each with its own parameters, seeds ``seed .. seed + n - 1``);
            one untimed warm-up clip runs first.
        seed: First seed.
        cfg: Degradation settings (default: the RealBasicVSR training config).

    Returns:
        Seconds per clip (mean over the ``n`` clips).
    """
    gt = synthetic_clip(max(num_frames // 2, 1), size, seed)
    with _one_core():
        rbv.realbasicvsr_clip(gt, scale=4, rng=np.random.default_rng([seed, 10**6]), cfg=cfg)  # warm-up
        start = time.perf_counter()
        for i in range(n):
            rbv.realbasicvsr_clip(gt, scale=4, rng=np.random.default_rng([seed, i]), cfg=cfg)
        return (time.perf_counter() - start) / n


_STAGES = {
    "usm": "usm_sharp",
    "blur": "_apply_blur",
    "resize": "_resize",
    "noise": "_apply_noise",
    "jpeg": "_apply_jpeg",
    "video": "_apply_video",
}


@contextmanager
def _one_core():
    """Restrict this process to one CPU (Linux) and OpenCV to one thread, for the duration."""
    prev_threads = cv2.getNumThreads()
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    cv2.setNumThreads(1)
    if affinity:
        os.sched_setaffinity(0, {min(affinity)})
    try:
        yield
    finally:
        cv2.setNumThreads(prev_threads)
        if affinity:
            os.sched_setaffinity(0, affinity)


@contextmanager
def _timed(acc: dict[str, float]):
    """Temporarily wrap the stage functions of ``realbasicvsr`` to add their CPU time to ``acc``."""
    saved = {name: getattr(rbv, attr) for name, attr in _STAGES.items()}

    def wrap(name, fn):
        def inner(*args, **kwargs):
            t = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                acc[name] += time.process_time() - t

        return inner

    for name, attr in _STAGES.items():
        setattr(rbv, attr, wrap(name, saved[name]))
    try:
        yield
    finally:
        for name, attr in _STAGES.items():
            setattr(rbv, attr, saved[name])


def profile_realbasicvsr_cpu(
    num_frames: int = 30, size: int = 256, n: int = 20, seed: int = 0, cfg: rbv.RealBasicVSRConfig = rbv.REALBASICVSR
) -> dict[str, float]:
    """CPU seconds per clip by stage, plus ``total`` (process CPU time, one OpenCV thread).

    CPU time (``time.process_time``) rather than wall time, so a busy machine disturbs the
    split less; it includes any codec helper threads.
    """
    gt = synthetic_clip(max(num_frames // 2, 1), size, seed)
    acc: dict[str, float] = defaultdict(float)
    with _one_core():
        rbv.realbasicvsr_clip(gt, scale=4, rng=np.random.default_rng([seed, 10**6]), cfg=cfg)
        with _timed(acc):
            t = time.process_time()
            for i in range(n):
                rbv.realbasicvsr_clip(gt, scale=4, rng=np.random.default_rng([seed, i]), cfg=cfg)
            total = time.process_time() - t
    out = {k: v / n for k, v in acc.items()}
    out["other"] = total / n - sum(out.values())
    out["total"] = total / n
    return out


if __name__ == "__main__":  # pragma: no cover - manual benchmark
    import dataclasses

    for k, v in profile_realbasicvsr_cpu().items():
        print(f"{k:>7s} {v * 1e3:8.1f} ms/clip (CPU)")
    print(f"wall: {bench_realbasicvsr_cpu(n=20):.3f} s/clip (x264 preset {rbv.REALBASICVSR.video1.x264_preset})")
    medium = rbv.VideoConfig(x264_preset=None)
    ref_codec = dataclasses.replace(rbv.REALBASICVSR, video1=medium, video_final=medium)
    print(f"wall: {bench_realbasicvsr_cpu(n=20, cfg=ref_codec):.3f} s/clip (x264 default preset, medium)")
