"""Lossy video compression of a frame sequence, in memory, with PyAV (FFmpeg).

RealBasicVSR's ``RandomVideoCompression`` (mmagic ``random_degradations.py``) encodes the
clip as an mp4 in a ``BytesIO`` at 1 frame per second, so ``bitrate`` is bits per frame,
and decodes it back. :func:`compress_video` does the same, with these differences from the
reference (each one a bug or an undefined corner there):

* **Rounding, not wrapping.** The reference casts ``255 * img`` straight to ``uint8``, so
  an overshoot from noise wraps (-1.3 -> 255: a black pixel turns white). Here pixels are
  clipped to [0, 1] and rounded to the nearest 8-bit level before encoding.
* **No ``frame.pict_type = 'NONE'``.** The reference sets it on every frame; PyAV >= 14
  made ``pict_type`` an ``IntEnum`` and that line raises ``TypeError``. Leaving it unset
  is what the line meant (let the encoder pick frame types).
* **Codec names.** ``"h264"`` is mapped explicitly to the ``libx264`` encoder. FFmpeg's
  default encoder for the H.264 id is whichever is registered first, which is
  ``libx264`` in standard builds (so in the reference ``"h264"`` and ``"libx264"`` are
  the same encoder and x264 is drawn 2/3 of the time); pinning it keeps the output
  independent of how FFmpeg was built (a build without libx264 could otherwise pick a
  hardware encoder or fail).
* **Deterministic.** Encoder and decoder run with ``thread_count = 1``: the output of
  x264 depends on its thread count, which FFmpeg otherwise derives from the machine's
  core count, so a sample would not be reproducible across machines; a data worker
  also owns one core, and auto-threading would oversubscribe it. RGB <-> YUV 4:2:0 is
  converted with OpenCV (BT.601 limited range, like swscale's default for these
  streams) and the encoder is fed ``yuv420p`` frames: handing it ``rgb24`` frames makes
  PyAV convert them inside ``encode``, and with that path the x264 bitstream differed
  from run to run (PyAV 18 / FFmpeg 7, measured); it was also the slower path. Chroma is
  subsampled by OpenCV (2x2 mean) instead of swscale's filter, a sub-level difference.
  x264's macroblock-tree rate control (``mbtree``, on by default) is turned off: with it
  the same input gave different bitstreams from call to call, depending on what the
  process had allocated before (x264 core 165: up to 12 distinct outputs in 15 identical
  192x192 encodes; an uninitialised read), so a sample could not be reproduced. mbtree
  only moves quantiser between frames by their reuse as references; artefact types and
  the rate/distortion level stay those of the default encoder (``tests`` check
  reproducibility).
* **Frames of different sizes.** The stream is encoded at frame 0's size like the
  reference (PyAV silently rescales any other frame to it), but each decoded frame is
  then resized back to its own input size, so the operation keeps every frame's
  shape. Rescaling is bilinear (OpenCV) instead of FFmpeg's swscale; within a clip the
  sizes differ by a few percent (a random walk of the scale), where bilinear is adequate.
* **Odd sizes.** ``yuv420p`` needs even width and height (x264 refuses odd ones); the
  frame is reflect-padded by one row/column to even size before encoding and the
  decoded frame is cropped back.

Encoder settings other than the bitrate are FFmpeg's defaults (x264 preset ``medium``,
MPEG-4 part 2 defaults), as in the reference. MPEG-4 cannot go below its coarsest
quantiser, so at the low end of the bitrate range it overshoots the target.
"""

from __future__ import annotations

import io
from fractions import Fraction

import av
import cv2
import numpy as np

__all__ = ["CODECS", "ENCODERS", "X264_PRESETS", "compress_video", "to_uint8"]

ENCODERS: dict[str, str] = {"libx264": "libx264", "h264": "libx264", "mpeg4": "mpeg4"}
"""Codec name as RealBasicVSR configs spell it -> FFmpeg encoder actually used."""

CODECS: tuple[str, ...] = tuple(ENCODERS)

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] -> ``uint8`` levels, clipped then rounded half up (no wrap)."""
    return np.clip(img * np.float32(255.0) + np.float32(0.5), 0.0, 255.0).astype(np.uint8)


def _check_frames(frames: list[np.ndarray]) -> None:
    if not isinstance(frames, (list, tuple)) or len(frames) == 0:
        raise ValueError("frames must be a non-empty list of HxWx3 float arrays")
    for i, f in enumerate(frames):
        if not isinstance(f, np.ndarray) or f.ndim != 3 or f.shape[2] != 3:
            shape = getattr(f, "shape", type(f).__name__)
            raise ValueError(f"frame {i} must be an HxWx3 RGB array, got {shape}")
        if not np.issubdtype(f.dtype, np.floating):
            raise ValueError(f"frame {i} must be float in [0, 1], got dtype {f.dtype}")
        if f.shape[0] < 1 or f.shape[1] < 1:
            raise ValueError(f"frame {i} is empty: shape {f.shape}")
        if not np.isfinite(f).all():
            raise ValueError(f"frame {i} contains NaN or infinite values")


def _rescale(img: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize to ``size_hw`` (frames of one clip differ in size by a few percent)."""
    h, w = size_hw
    if img.shape[:2] == (h, w):
        return img
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)


def compress_video(
    frames: list[np.ndarray], codec: str, bitrate: int, *, x264_preset: str | None = None
) -> list[np.ndarray]:
    """Encode ``frames`` as an mp4 video in memory and decode it back.

    Args:
        frames: Non-empty list of float ``HxWx3`` RGB frames, nominally in [0, 1]; values
            outside are clipped (not wrapped). Frames may differ in size (see module doc).
        codec: ``"libx264"``, ``"h264"`` (same encoder, see module doc) or ``"mpeg4"``.
        bitrate: Target bit rate in bits per second; the stream runs at 1 frame per
            second, so this is bits per frame (RealBasicVSR draws 1e4..1e5).
        x264_preset: x264 speed preset for the H.264 codecs (``None``: x264's default,
            ``medium``, as the reference); ignored for ``mpeg4``.

    Returns:
        As many float32 frames as were given, each the shape of its input frame, values
        on the 8-bit grid ``k / 255``.

    Raises:
        ValueError: for an empty list, a non-RGB, non-float or non-finite frame, an
            unknown codec or a non-positive bitrate.
    """
    _check_frames(frames)
    if codec not in ENCODERS:
        raise ValueError(f"unknown video codec {codec!r}; known: {', '.join(CODECS)}")
    if x264_preset is not None and x264_preset not in X264_PRESETS:
        raise ValueError(f"unknown x264 preset {x264_preset!r}; known: {', '.join(X264_PRESETS)}")
    if isinstance(bitrate, bool) or not isinstance(bitrate, (int, np.integer)) or bitrate <= 0:
        raise ValueError(f"bitrate must be a positive int (bits per frame), got {bitrate!r}")

    h, w = frames[0].shape[:2]
    he, we = h + h % 2, w + w % 2
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        encoder = ENCODERS[codec]
        options = {}
        if encoder == "libx264":
            options["x264-params"] = "mbtree=0"  # see module doc: mbtree made the output irreproducible
            if x264_preset:
                options["preset"] = x264_preset
        stream = container.add_stream(encoder, rate=1, options=options)
        stream.width, stream.height = we, he
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = int(bitrate)
        stream.codec_context.thread_count = 1
        for i, f in enumerate(frames):
            img = _rescale(to_uint8(f), (h, w))
            if (he, we) != (h, w):
                img = cv2.copyMakeBorder(img, 0, he - h, 0, we - w, cv2.BORDER_REFLECT)
            yuv = cv2.cvtColor(img, cv2.COLOR_RGB2YUV_I420)
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            frame.pts = i
            frame.time_base = Fraction(1, 1)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))

    buf.seek(0)
    decoded: list[np.ndarray] = []
    with av.open(buf, "r", format="mp4") as container:
        vstream = container.streams.video[0]
        vstream.codec_context.thread_count = 1
        for frame in container.decode(vstream):
            if frame.format.name != "yuv420p":  # not expected from these codecs
                frame = frame.reformat(format="yuv420p")
            decoded.append(cv2.cvtColor(frame.to_ndarray(), cv2.COLOR_YUV2RGB_I420)[:h, :w])
    if len(decoded) != len(frames):
        raise RuntimeError(f"{codec} round trip returned {len(decoded)} frames for {len(frames)}")

    scale = np.float32(1.0 / 255.0)
    return [_rescale(d, f.shape[:2]).astype(np.float32) * scale for d, f in zip(decoded, frames)]
