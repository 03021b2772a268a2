"""Videos and frame folders in and out of video inference (``restoray infer`` on clips).

* :func:`read_video`: a video file (local path or ``s3://`` URI) -> lazy RGB frames + its
  :class:`VideoMeta` (exact frame rate and time base), decoded by the same function the
  ``video_files`` shard adapter uses (:func:`preprocessing.video_decode.decode_video`).
* :func:`read_frame_folder`: a folder of frame images (natural order: ``im2`` before ``im10``).
* :class:`VideoWriter`: RGB frames -> an H.264 video with the source's frame rate and time base.
* :func:`write_frame_folder`: frames -> ``00000000.png``, ``00000001.png``... (REDS naming).

H.264 comes from the ``libx264`` encoder in PyAV's wheel (present in the installed av 18 wheels,
checked by :func:`h264_available`); without it the writer falls back to MPEG-4 Part 2 (``mpeg4``,
larger files, older players) and says so in :attr:`VideoWriter.codec`. ``yuv420p`` (what every
player decodes) needs even frame sizes; odd sizes are written ``yuv444p`` rather than cropped or
padded, so the output keeps the input's exact size.
"""

from __future__ import annotations

import os
import re
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from pipelines.fs import resolve
from pipelines.image_io import IMAGE_SUFFIXES, decode_rgb, encode_image
from preprocessing.video_decode import VideoDecodeError, VideoMeta, decode_video

__all__ = ["VideoMeta", "VideoWriter", "h264_available", "read_frame_folder", "read_video",
           "write_frame_folder"]

_NATURAL = re.compile(r"(\d+)")


def _natural(name: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in _NATURAL.split(name))


def read_video(uri: str | os.PathLike) -> tuple[Iterator[np.ndarray], VideoMeta]:
    """``(frames, meta)`` of a video file: HxWx3 uint8 RGB frames, decoded lazily.

    An ``s3://`` object is read into memory first (compressed bytes: small next to the
    decoded frames, which are never all held).

    Raises:
        FileNotFoundError: no such file or object.
        ValueError: not a decodable video (one line naming the input).
    """
    uri = str(uri)
    src: str | bytes = uri
    if uri.startswith("s3://"):
        fs, path = resolve(uri)
        try:
            with fs.open_input_stream(path) as f:
                src = f.read()
        except FileNotFoundError:
            raise FileNotFoundError(f"no such object: {uri}") from None
    elif not Path(uri).is_file():
        raise FileNotFoundError(f"no such video file: {uri}")
    try:
        return decode_video(src)
    except VideoDecodeError as exc:
        raise ValueError(f"{uri}: {exc}") from None


def read_frame_folder(path: str | os.PathLike) -> tuple[Iterator[np.ndarray], list[str]]:
    """``(frames, names)`` of a local folder of frame images, in natural name order.

    Frames are decoded lazily as RGB; one whose size differs from the first frame's raises
    ValueError naming it (a restored clip must have one size).

    Raises:
        FileNotFoundError: the folder does not exist.
        ValueError: the folder holds no image.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"no such frame folder: {folder}")
    names = sorted((p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                   key=_natural)
    if not names:
        raise ValueError(f"{folder}: no frame images ({', '.join(sorted(IMAGE_SUFFIXES))})")

    def frames() -> Iterator[np.ndarray]:
        first = None
        for name in names:
            img = decode_rgb((folder / name).read_bytes(), str(folder / name))
            if first is None:
                first = img.shape[:2]
            elif img.shape[:2] != first:
                raise ValueError(f"{folder / name}: frame is {img.shape[0]}x{img.shape[1]}, "
                                 f"{names[0]} is {first[0]}x{first[1]}")
            yield img

    return frames(), names


def write_frame_folder(folder: str | os.PathLike, frames: Iterable[np.ndarray], start: int = 0) -> list[Path]:
    """Writes RGB frames as ``<folder>/00000000.png``... (created if needed); returns the paths."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for t, frame in enumerate(frames, start):
        path = out / f"{t:08d}.png"
        path.write_bytes(encode_image(_check_frame(frame, None), ".png"))
        paths.append(path)
    return paths


def h264_available() -> bool:
    """Whether PyAV's FFmpeg has the ``libx264`` encoder."""
    import av

    try:
        av.codec.Codec("libx264", "w")
    except (av.error.FFmpegError, ValueError):  # UnknownCodecError is a ValueError
        return False
    return True


def _check_frame(frame: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        what = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise ValueError(f"expected an HxWx3 uint8 RGB frame, got {what}")
    if size is not None and frame.shape[:2] != tuple(size):
        raise ValueError(f"frame is {frame.shape[0]}x{frame.shape[1]}, the video is {size[0]}x{size[1]}")
    return frame


class VideoWriter:
    """Writes RGB frames to a video file (local path or ``s3://``, uploaded on :meth:`close`).

    Args:
        path: output file; the container follows the suffix (``.mp4``, ``.mkv``, ``.mov``).
        fps: frame rate, exact (``Fraction(30000, 1001)``; an int or float is converted).
        time_base: the stream time base to ask the muxer for (the source's, to keep its
            timestamps); None lets the muxer choose. Some containers impose their own
            (Matroska: 1/1000); frame timing follows ``fps`` either way.
        size: ``(h, w)`` of every frame.
        crf: x264 constant rate factor (lower = better; 17 is visually lossless).

    Use as a context manager or call :meth:`close`; :attr:`codec` is the encoder used.
    """

    def __init__(self, path: str | os.PathLike, fps: Fraction | int | float, time_base: Fraction | None,
                 size: tuple[int, int], crf: int = 17):
        import av

        self.uri = str(path)
        self.fps = Fraction(fps).limit_denominator(1_000_000) if not isinstance(fps, Fraction) else fps
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        h, w = size
        if h < 1 or w < 1:
            raise ValueError(f"bad video size {size}")
        self.size = (int(h), int(w))
        suffix = Path(self.uri).suffix or ".mp4"
        if self.uri.startswith("s3://"):
            fd, self._local = tempfile.mkstemp(suffix=suffix)
            os.close(fd)
        else:
            self._local = self.uri
            Path(self._local).parent.mkdir(parents=True, exist_ok=True)
        self.codec = "libx264" if h264_available() else "mpeg4"
        self._out = av.open(self._local, "w")
        stream = self._out.add_stream(self.codec, rate=self.fps)
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv420p" if (h % 2 == 0 and w % 2 == 0) or self.codec != "libx264" else "yuv444p"
        if self.codec == "libx264":
            stream.options = {"crf": str(crf)}
        stream.codec_context.time_base = 1 / self.fps
        if time_base is not None:
            stream.time_base = Fraction(time_base)
        self._stream = stream
        self._n = 0
        self._closed = False

    def write(self, frame: np.ndarray) -> None:
        """Appends one HxWx3 uint8 RGB frame of the writer's size."""
        import av

        if self._closed:
            raise ValueError(f"{self.uri}: write after close")
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(_check_frame(frame, self.size)), format="rgb24")
        vf.pts, vf.time_base = self._n, 1 / self.fps
        for packet in self._stream.encode(vf):
            self._out.mux(packet)
        self._n += 1

    def close(self) -> None:
        """Flushes the encoder, closes the file and uploads it when the target is on S3."""
        if self._closed:
            return
        self._closed = True
        try:
            for packet in self._stream.encode():
                self._out.mux(packet)
        finally:
            self._out.close()
        if self.uri.startswith("s3://"):
            fs, path = resolve(self.uri)
            try:
                with open(self._local, "rb") as src, fs.open_output_stream(path) as dst:
                    while chunk := src.read(1 << 20):
                        dst.write(chunk)
            finally:
                os.unlink(self._local)

    @property
    def frames_written(self) -> int:
        return self._n

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
