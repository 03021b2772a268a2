"""``restoray bench video``: peak memory of ``restoray infer`` on a video, whole or in chunks.

A recurrent network keeps every frame's features for its backward-then-forward propagation,
so restoring a video in one piece needs memory in proportion to its length. ``--max-seq-len``
restores it a chunk at a time. Three runs of the real inference path
(:func:`pipelines.infer_video.restore_video`: decode an mp4, restore, encode an mp4), each in a
fresh process whose peak resident set (``ru_maxrss``) is the figure:

* ``whole``: ``frames`` frames in one clip;
* ``chunked``: the same video with ``max_seq_len = chunk``;
* ``short``: a ``chunk``-frame video in one clip.

Target: ``chunked`` within 1.5x of ``short`` (memory does not grow with length), where
``whole`` grows with it. Sizes: 100 frames of 180x320 LQ with CUDA; on a CPU the same network
and frame count at 64x112 (``CPU``: SPyNet alone costs ~10 s per 180x320 frame on 2 cores).
Model: BasicVSR++ (``configs/vsr/basicvsr_plusplus_c64n7_8x1_600k_reds4``)
with seeded random weights (memory does not depend on the values); ``--quick`` narrows it
(8 channels, 1 block) and shrinks the video, for a smoke test. Input: a textured picture
panning across ``size`` LQ frames. Records: ``{"case", "frames", "max_seq_len", "lq_size",
"mid_channels", "num_blocks", "peak_rss_mb", "seconds", "device", "machine"}`` plus the
``chunked_vs_short`` ratio on the chunked record.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.bench import machine, save_records

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "vsr" / "basicvsr_plusplus_c64n7_8x1_600k_reds4.yaml"
FULL = {"frames": 100, "chunk": 20, "size": (180, 320), "mid_channels": 64, "num_blocks": 7}
# What a 2-core CPU can run in minutes (SPyNet at 180x320 costs ~10 s per frame there): the zoo
# network and 100 frames, at a smaller frame size.
CPU = {"frames": 100, "chunk": 20, "size": (64, 112), "mid_channels": 64, "num_blocks": 7}
QUICK = {"frames": 16, "chunk": 4, "size": (32, 48), "mid_channels": 8, "num_blocks": 1}

_CHILD = r"""
import json, resource, sys, time, torch
from pipelines.config import load_experiment
from pipelines.infer_video import restore_video
cfg_path, ckpt, src, out, seq = sys.argv[1:6]
cfg = load_experiment(cfg_path, json.loads(sys.argv[6]), check_paths=False)
t0 = time.perf_counter()
r = restore_video(cfg, ckpt, src, out, max_seq_len=int(seq) or None)
peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
print(json.dumps({"frames": r.frames, "seconds": time.perf_counter() - t0,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "cuda_peak_mb": peak}))
"""


def _write_video(path: Path, n: int, hw: tuple[int, int]) -> None:
    from pipelines.video_io import VideoWriter

    rng = np.random.default_rng(0)
    h, w = hw
    base = (rng.random((h // 8 + n, w // 8 + n, 3)) * 255).astype(np.uint8).repeat(8, 0).repeat(8, 1)
    with VideoWriter(path, Fraction(25), None, hw) as writer:
        for t in range(n):
            writer.write(np.ascontiguousarray(base[t:t + h, t:t + w]))


def _run(tmp: Path, ckpt: Path, src: Path, seq: int, overrides: list[str]) -> dict[str, Any]:
    out = tmp / f"out_{src.stem}_{seq}.mp4"
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(CONFIG), str(ckpt), str(src), str(out), str(seq),
                           json.dumps(overrides)], cwd=REPO, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"bench child failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr else proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_video(quick: bool = False, profile: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The three runs; ``profile`` (a dict shaped as ``FULL``) overrides the default: ``FULL``
    with CUDA, ``CPU`` without, ``QUICK`` with ``quick``."""
    import torch

    from pipelines.config import load_experiment
    from pipelines.train_job import build_nets

    p = profile or (QUICK if quick else FULL if torch.cuda.is_available() else CPU)
    overrides = [f"nets.generator.mid_channels={p['mid_channels']}", f"nets.generator.num_blocks={p['num_blocks']}"]
    records = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        torch.manual_seed(0)
        net = build_nets(load_experiment(CONFIG, overrides, check_paths=False))["generator"]
        ckpt = tmp / "weights.pth"
        torch.save(net.state_dict(), ckpt)
        long, short = tmp / "long.mp4", tmp / "short.mp4"
        _write_video(long, p["frames"], p["size"])
        _write_video(short, p["chunk"], p["size"])
        for case, src, seq in (("whole", long, 0), ("chunked", long, p["chunk"]), ("short", short, 0)):
            r = _run(tmp, ckpt, src, seq, overrides)
            records.append({"case": case, "frames": r["frames"], "max_seq_len": seq or None,
                            "lq_size": list(p["size"]), "mid_channels": p["mid_channels"],
                            "num_blocks": p["num_blocks"], "peak_rss_mb": round(r["peak_rss_mb"], 1),
                            "cuda_peak_mb": r["cuda_peak_mb"], "seconds": round(r["seconds"], 2),
                            "device": "cuda" if torch.cuda.is_available() else "cpu", "machine": machine()})
            print(f"[bench video] {case}: {r['frames']} frames, max_seq_len {seq or '-'}: "
                  f"peak RSS {r['peak_rss_mb']:.0f} MB, {r['seconds']:.1f} s", flush=True)
    chunked, short_rec = records[1], records[2]
    chunked["chunked_vs_short"] = round(chunked["peak_rss_mb"] / short_rec["peak_rss_mb"], 3)
    print(f"[bench video] chunked / short peak RSS: {chunked['chunked_vs_short']:.2f} (target <= 1.5)", flush=True)
    return records


def write_bench_video(out: str, quick: bool = False) -> list[dict[str, Any]]:
    return save_records(out, bench_video(quick=quick))
