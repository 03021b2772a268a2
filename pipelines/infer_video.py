"""``restoray infer`` on videos: a video file (local or ``s3://``) or a frame folder in, a
restored video (H.264, the source's frame rate and time base) or a folder of PNG frames out.

Frames are decoded lazily and restored ``max_seq_len`` at a time: each chunk goes through the
recurrent network on its own and is written before the next is read, so memory is that of one
chunk whatever the video's length. Without ``max_seq_len`` the whole video is one clip, which
is what mmedit's demo does and what the zoo's figures were measured on (propagation across
the whole sequence); chunking trades a little quality at chunk borders for bounded memory.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from pipelines.schema import ExperimentConfig
from pipelines.video_io import VideoWriter, read_frame_folder, read_video, write_frame_folder
from trainers.tasks import get_task

VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v"})
DEFAULT_FPS = Fraction(25)  # a frame folder has no rate; mmedit's demo writes 25 fps


@dataclass
class VideoResult:
    """What one ``restoray infer`` of a video wrote."""

    out: str
    frames: int
    size: tuple[int, int]  # output (h, w)
    fps: Fraction
    chunks: int
    seconds: float
    codec: str | None  # None: a frame folder


def is_video_file(path: str) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def chunks(frames: Iterator[np.ndarray], size: int | None, min_last: int = 1) -> Iterator[np.ndarray]:
    """``[t, H, W, 3]`` arrays of ``size`` frames; all frames at once for None. A last chunk
    shorter than ``min_last`` (a sliding-window task's shortest paddable clip) joins the one
    before it, so the next chunk is read ahead."""
    it = iter(frames)
    if not size:
        block = list(it)
        if block:
            yield np.stack(block)
        return
    block = list(itertools.islice(it, size))
    while block:
        ahead = list(itertools.islice(it, size))
        if 0 < len(ahead) < min(min_last, size):  # shorter than size: the video's end
            block, ahead = block + ahead, []
        yield np.stack(block)
        block = ahead


def open_source(source: str, fps: Fraction | None) -> tuple[Iterator[np.ndarray], Fraction, Fraction | None]:
    """``(frames, fps, time_base)`` of a video file or a frame folder (``fps`` or 25 for a folder)."""
    if is_video_file(source):
        frames, meta = read_video(source)
        return frames, meta.fps, meta.time_base
    if not Path(source).is_dir():
        raise ValueError(f"{source}: not a video file ({', '.join(sorted(VIDEO_SUFFIXES))}) or a frame folder")
    frames, _ = read_frame_folder(source)
    return frames, fps or DEFAULT_FPS, None


def restore_video(cfg: ExperimentConfig, checkpoint: str, source: str, out: str, *, max_seq_len: int | None = None,
                  fps: Fraction | None = None, uri: str | None = None) -> VideoResult:
    """Restore ``source`` into ``out`` (a video file when its suffix is one, else a frame folder)."""
    from pipelines.infer import load_nets, main_role

    task = get_task(cfg.task.name)(cfg.task)
    if "video" not in task.infer_inputs:
        raise ValueError(f"{source}: a {cfg.task.name} model restores images, not videos")
    if max_seq_len is not None and max_seq_len < 2:
        raise ValueError(f"--max-seq-len: at least 2 frames (the networks propagate between frames), got {max_seq_len}")
    min_frames = getattr(task, "min_clip_frames", 1)
    if max_seq_len is not None and max_seq_len < min_frames:
        raise ValueError(f"--max-seq-len: at least {min_frames} frames for this model's window and "
                         f"{cfg.task.eval.padding} padding, got {max_seq_len}")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    nets, where = load_nets(cfg, checkpoint, uri)
    nets = {r: n.to(device) for r, n in nets.items()}
    print(f"[restoray] {cfg.task.name} {cfg.nets[main_role(cfg)]['name']} weights: {where} from {checkpoint}", flush=True)
    frames, rate, time_base = open_source(source, fps)
    writer, done, n_chunks, t0 = None, 0, 0, time.perf_counter()
    size = (0, 0)
    try:
        for clip in chunks(frames, max_seq_len, min_frames):
            batch = {k: v.to(device) for k, v in task.infer_batch({"video": clip}).items()}
            with torch.no_grad():
                restored = task.infer_output(task.restore_clip(nets, batch), batch)
            size = restored.shape[1:3]
            if is_video_file(out):
                writer = writer or VideoWriter(out, rate, time_base, size)
                for f in restored:
                    writer.write(f)
            else:
                write_frame_folder(out, restored, start=done)
            done, n_chunks = done + len(restored), n_chunks + 1
            print(f"[restoray] frames {done - len(restored) + 1}-{done} {clip.shape[2]}x{clip.shape[1]} -> "
                  f"{size[1]}x{size[0]} ({time.perf_counter() - t0:.1f} s)", flush=True)
    finally:
        if writer is not None:
            writer.close()
    if done == 0:
        raise ValueError(f"{source}: no frames")
    return VideoResult(out, done, tuple(size), rate, n_chunks, time.perf_counter() - t0,
                       writer.codec if writer is not None else None)
