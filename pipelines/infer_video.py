"""``restoray infer`` on videos: a video file (local or ``s3://``) or a frame folder in, a
restored video (H.264, the source's frame rate and time base) or a folder of PNG frames out.

Frames are decoded lazily and restored ``max_seq_len`` at a time: each chunk goes through the
recurrent network on its own and is written before the next is read, so memory is that of one
chunk whatever the video's length. Without ``max_seq_len`` the whole video is one clip, which
is what mmedit's demo does and what the zoo's figures were measured on (propagation across
the whole sequence); chunking trades a little quality at chunk borders for bounded memory.

Frame-interpolation models (a task with ``infer_kind = "interpolate"``) double the frame rate
instead (:func:`interpolate_video`): each frame is written followed by the frame synthesised
between it and the next, so N frames become 2N - 1 at twice the rate; the source's time base is
kept when it can hold the new frame duration. Only the frames of one window are held (a
network with T inputs reads T/2 frames ahead; the end frames are repeated for windows that
reach past the ends). :func:`interpolate_pair` makes the middle frame of two images.
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

from pipelines.image_io import decode_rgb, encode_image
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
    if getattr(task, "infer_kind", "restore") == "interpolate":
        if max_seq_len is not None:
            raise ValueError("--max-seq-len: an interpolation model reads a few frames at a time already")
        return interpolate_video(cfg, checkpoint, source, out, fps=fps, uri=uri)
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


def interpolation_windows(frames: Iterator[np.ndarray], num_inputs: int,
                          where: str = "video") -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """``(frame i, window of gap i)`` for every frame, in order; the window is None after the
    last frame. The window of the gap between frames i and i + 1 is frames
    ``i - T/2 + 1 .. i + T/2`` (T = ``num_inputs``), indices clamped to the video (the end
    frames repeated). Only the frames a window needs are held.

    Raises:
        ValueError: no frames, a single frame (nothing to interpolate), or a frame whose size
            differs from the first one's (one line naming it).
    """
    k = num_inputs // 2
    src = iter(frames)
    held: dict[int, np.ndarray] = {}
    loaded, total, first = 0, None, None

    def fill(upto: int) -> None:
        nonlocal loaded, total, first
        while total is None and loaded <= upto:
            try:
                frame = next(src)
            except StopIteration:
                total = loaded
                return
            if first is None:
                first = frame.shape
            elif frame.shape != first:
                raise ValueError(f"{where}: frame {loaded} is {frame.shape[0]}x{frame.shape[1]}, "
                                 f"frame 0 is {first[0]}x{first[1]}: interpolation needs one frame size")
            held[loaded] = frame
            loaded += 1

    fill(k)
    if total == 0:
        raise ValueError(f"{where}: no frames")
    if total == 1:
        raise ValueError(f"{where}: a video with one frame has no gap to interpolate (need at least 2 frames)")
    i = 0
    while True:
        fill(i + k)
        if total is not None and i >= total:
            return
        if total is not None and i == total - 1:
            yield held[i], None
            return
        end = (total if total is not None else loaded) - 1
        window = np.stack([held[min(max(j, 0), end)] for j in range(i - k + 1, i + k + 1)])
        yield held[i], window
        for j in [j for j in held if j < i - k + 2]:
            del held[j]
        i += 1


def doubled_time_base(time_base: Fraction | None, fps: Fraction) -> Fraction | None:
    """The source's time base if it can express a frame at ``fps`` (the doubled rate), else None
    (the muxer picks one)."""
    if time_base is None or ((1 / fps) / time_base).denominator != 1:
        return None
    return time_base


def _load_interpolator(cfg: ExperimentConfig, checkpoint: str, uri: str | None):
    from pipelines.infer import load_nets, main_role

    task = get_task(cfg.task.name)(cfg.task)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    nets, where = load_nets(cfg, checkpoint, uri)
    nets = {r: n.to(device).eval() for r, n in nets.items()}
    print(f"[restoray] {cfg.task.name} {cfg.nets[main_role(cfg)]['name']} weights: {where} from {checkpoint}", flush=True)
    return task, nets, device


def _middle(task, nets, device, window: np.ndarray) -> np.ndarray:
    batch = {k: v.to(device) for k, v in task.infer_batch({"video": window}).items()}
    return task.infer_output(task.interpolate(nets, batch["inputs"]), batch)[0]


def interpolate_video(cfg: ExperimentConfig, checkpoint: str, source: str, out: str, *, fps: Fraction | None = None,
                      uri: str | None = None) -> VideoResult:
    """``source`` at twice its frame rate into ``out`` (a video file when its suffix is one, else
    a frame folder): frame 0, middle 0-1, frame 1, ..., the last frame (2N - 1 frames)."""
    task, nets, device = _load_interpolator(cfg, checkpoint, uri)
    frames, rate, time_base = open_source(source, fps)
    rate2 = 2 * rate
    writer, done, gaps, size, t0 = None, 0, 0, (0, 0), time.perf_counter()
    try:
        for frame, window in interpolation_windows(frames, task.num_input_frames, source):
            size = frame.shape[:2]
            block = [frame] if window is None else [frame, _middle(task, nets, device, window)]
            if is_video_file(out):
                writer = writer or VideoWriter(out, rate2, doubled_time_base(time_base, rate2), size)
                for f in block:
                    writer.write(f)
            else:
                write_frame_folder(out, block, start=done)
            done, gaps = done + len(block), gaps + (window is not None)
            if gaps % 50 == 0 and window is not None:
                print(f"[restoray] {gaps} frames synthesised ({time.perf_counter() - t0:.1f} s)", flush=True)
    finally:
        if writer is not None:
            writer.close()
    return VideoResult(out, done, tuple(size), rate2, gaps, time.perf_counter() - t0,
                       writer.codec if writer is not None else None)


def interpolate_pair(cfg: ExperimentConfig, checkpoint: str, first: str, second: str, out: str, *,
                     uri: str | None = None) -> str:
    """The frame between images ``first`` and ``second`` written to ``out`` (an image file); returns ``out``."""
    task, nets, device = _load_interpolator(cfg, checkpoint, uri)
    pair = [decode_rgb(Path(p).read_bytes(), p) for p in (first, second)]
    windows = list(interpolation_windows(iter(pair), task.num_input_frames, f"{first} and {second}"))
    middle = _middle(task, nets, device, windows[0][1])
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_bytes(encode_image(middle, Path(out).suffix.lower()))
    return out
