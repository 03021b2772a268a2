"""Decode video files to RGB frames with PyAV (FFmpeg), with exact frame rate and time base.

The one place restoray turns a compressed video into pixels: the ``video_files`` adapter
shards videos with it and ``pipelines/video_io.py`` reads videos for inference with it, so
both see the same frames. Pure: no project imports, no storage; the caller hands over a path
or the file's bytes (an S3 object read into memory).

Frame rate is the stream's ``average_rate`` (FFmpeg's ``avg_frame_rate``), falling back to
``guessed_rate``/``base_rate``; both it and the time base are exact :class:`~fractions.Fraction`
(29.97 fps is ``30000/1001``, not a rounded float), so a restored video can be written back
with the same timing. Frames come out as ``HxWx3`` uint8 RGB in decode (presentation) order.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

__all__ = ["VIDEO_EXTENSIONS", "VideoDecodeError", "VideoMeta", "decode_video", "probe_video"]

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v")


class VideoDecodeError(ValueError):
    """The input is not a decodable video (one-line reason)."""


@dataclass(frozen=True)
class VideoMeta:
    """What a video's first video stream says about its timing and size.

    Attributes:
        fps: frames per second, exact.
        time_base: seconds per timestamp tick of the stream, exact.
        frames: number of frames (the container's count, else counted by demuxing).
        size: ``(h, w)`` of the decoded frames.
        codec: the stream's codec name (``h264``, ``mpeg4``...).
    """

    fps: Fraction
    time_base: Fraction
    frames: int
    size: tuple[int, int]
    codec: str = ""


def _open(src: str | Path | bytes):
    import av

    in_memory = isinstance(src, (bytes, bytearray, memoryview))
    if (len(src) if in_memory else Path(src).stat().st_size) == 0:
        raise VideoDecodeError("empty file")
    target = io.BytesIO(src) if in_memory else str(src)
    try:
        container = av.open(target, mode="r")
    except FileNotFoundError:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise VideoDecodeError(f"not a decodable video ({_one_line(exc)})") from None
    if not container.streams.video:
        container.close()
        raise VideoDecodeError("no video stream in the file")
    return container


def _one_line(exc: BaseException) -> str:
    """FFmpeg's own words (``Invalid data found when processing input``), without errno and path."""
    text = getattr(exc, "strerror", None) or str(exc).strip()
    lines = str(text).splitlines()
    return lines[0] if lines else type(exc).__name__


def _stream_meta(container, count: int | None = None) -> VideoMeta:
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate:
        raise VideoDecodeError("the video stream has no frame rate")
    frames = int(stream.frames or 0) if count is None else count
    return VideoMeta(Fraction(rate), Fraction(stream.time_base), frames,
                     (int(stream.codec_context.height), int(stream.codec_context.width)),
                     str(stream.codec_context.name))


def probe_video(src: str | Path | bytes) -> VideoMeta:
    """The video's :class:`VideoMeta` without decoding pixels (frames counted by demuxing when
    the container does not store a count). VideoDecodeError when it is not a video."""
    container = _open(src)
    try:
        meta = _stream_meta(container)
        if meta.frames <= 0:
            import av

            try:
                n = sum(1 for p in container.demux(container.streams.video[0]) if p.size)
            except av.error.FFmpegError as exc:
                raise VideoDecodeError(f"corrupt video stream ({_one_line(exc)})") from None
            meta = _stream_meta(container, n)
    finally:
        container.close()
    return meta


def decode_video(src: str | Path | bytes) -> tuple[Iterator[np.ndarray], VideoMeta]:
    """Opens a video and returns ``(frames, meta)``: an iterator of HxWx3 uint8 RGB frames.

    The iterator decodes lazily and closes the file when exhausted; a decode error midway
    (truncated file, corrupt packets) raises VideoDecodeError from the iterator. A file that
    is not a video raises VideoDecodeError here.
    """
    meta = probe_video(src)
    container = _open(src)

    def frames() -> Iterator[np.ndarray]:
        import av

        try:
            for frame in container.decode(video=0):
                yield frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as exc:
            raise VideoDecodeError(f"corrupt video stream ({_one_line(exc)})") from None
        finally:
            container.close()

    return frames(), meta
