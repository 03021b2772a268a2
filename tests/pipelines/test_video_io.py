"""Video and frame-folder I/O for video inference: write with PyAV, read back, check timing and pixels."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from pipelines.image_io import encode_image
from pipelines.video_io import (VideoWriter, h264_available, read_frame_folder, read_video,
                                write_frame_folder)


def _frames(n: int, hw=(32, 48)) -> list[np.ndarray]:
    """Smooth moving gradients: what a lossy codec keeps close to the original."""
    yy, xx = np.mgrid[0:hw[0], 0:hw[1]]
    return [np.stack([(xx * 4 + 8 * t) % 256, (yy * 6) % 256, np.full(hw, 15 * t % 256)], -1).astype(np.uint8)
            for t in range(n)]


def test_mp4_round_trip_keeps_count_size_and_fps(tmp_path):
    assert h264_available()  # the installed av wheel ships libx264: outputs are H.264
    frames = _frames(12)
    fps = Fraction(30000, 1001)
    with VideoWriter(tmp_path / "out.mp4", fps, Fraction(1, 90000), (32, 48)) as writer:
        for f in frames:
            writer.write(f)
    assert writer.codec == "libx264" and writer.frames_written == 12
    it, meta = read_video(tmp_path / "out.mp4")
    got = list(it)
    assert meta.frames == len(got) == 12 and meta.size == (32, 48) and meta.codec == "h264"
    assert meta.fps == fps and meta.time_base == Fraction(1, 90000)
    assert all(g.shape == (32, 48, 3) and g.dtype == np.uint8 for g in got)
    assert np.mean([np.abs(g.astype(int) - f).mean() for g, f in zip(got, frames)]) < 6


def test_odd_size_mkv_keeps_exact_size(tmp_path):
    with VideoWriter(tmp_path / "odd.mkv", 25, None, (33, 47)) as writer:
        for f in _frames(3, (33, 47)):
            writer.write(f)
    it, meta = read_video(str(tmp_path / "odd.mkv"))
    assert [g.shape for g in it] == [(33, 47, 3)] * 3
    assert meta.fps == 25 and meta.frames == 3  # counted by demuxing: Matroska stores no frame count


def test_bad_inputs_are_one_line_errors(tmp_path):
    (tmp_path / "x.mp4").write_bytes(b"not a video at all" * 4)
    with pytest.raises(ValueError, match=r"x\.mp4: not a decodable video") as exc:
        read_video(tmp_path / "x.mp4")
    assert "\n" not in str(exc.value)
    with pytest.raises(FileNotFoundError):
        read_video(tmp_path / "missing.mp4")
    with VideoWriter(tmp_path / "y.mp4", 24, None, (32, 48)) as writer:
        with pytest.raises(ValueError, match="frame is 16x48, the video is 32x48"):
            writer.write(np.zeros((16, 48, 3), np.uint8))
        with pytest.raises(ValueError, match="HxWx3 uint8"):
            writer.write(np.zeros((32, 48), np.float32))
        writer.write(np.zeros((32, 48, 3), np.uint8))


def test_frame_folder_round_trip(tmp_path):
    frames = _frames(11)
    paths = write_frame_folder(tmp_path / "out", frames)
    assert [p.name for p in paths][:2] == ["00000000.png", "00000001.png"]
    it, names = read_frame_folder(tmp_path / "out")
    assert names == [p.name for p in paths]
    for got, want in zip(it, frames, strict=True):
        np.testing.assert_array_equal(got, want)
    # Natural order (im2 before im10), and a differently sized frame is named.
    for name, f in (("im1.png", frames[0]), ("im10.png", frames[1]), ("im2.png", frames[2][:16])):
        (tmp_path / "vimeo").mkdir(exist_ok=True)
        (tmp_path / "vimeo" / name).write_bytes(encode_image(f, ".png"))
    it, names = read_frame_folder(tmp_path / "vimeo")
    assert names == ["im1.png", "im2.png", "im10.png"]
    with pytest.raises(ValueError, match="im2.png: frame is 16x48, im1.png is 32x48"):
        list(it)


def test_video_on_s3(tmp_path, s3_bucket):
    uri = f"s3://{s3_bucket}/videos/clip.mp4"
    with VideoWriter(uri, 24, None, (32, 48)) as writer:
        for f in _frames(4):
            writer.write(f)
    it, meta = read_video(uri)
    assert len(list(it)) == meta.frames == 4 and meta.fps == 24
