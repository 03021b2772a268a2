"""Frame-rate doubling's windows: which frames each synthesised frame sees (the ends repeated for
networks with more than two inputs), the one-line errors, and the output time base."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from pipelines.infer_video import doubled_time_base, interpolation_windows


def coded(n: int, hw=(4, 5)) -> list[np.ndarray]:
    return [np.full((*hw, 3), t, np.uint8) for t in range(n)]


def _ids(window):
    return None if window is None else [int(f[0, 0, 0]) for f in window]


def test_two_input_windows_are_the_neighbouring_pairs():
    out = [(int(f[0, 0, 0]), _ids(w)) for f, w in interpolation_windows(iter(coded(4)), 2)]
    assert out == [(0, [0, 1]), (1, [1, 2]), (2, [2, 3]), (3, None)]


def test_four_input_windows_repeat_the_end_frames():
    out = [(int(f[0, 0, 0]), _ids(w)) for f, w in interpolation_windows(iter(coded(5)), 4)]
    assert out == [(0, [0, 0, 1, 2]), (1, [0, 1, 2, 3]), (2, [1, 2, 3, 4]), (3, [2, 3, 4, 4]), (4, None)]
    assert [_ids(w) for _, w in interpolation_windows(iter(coded(2)), 4)] == [[0, 0, 1, 1], None]


def test_windows_read_frames_lazily():
    read = []

    def frames():
        for f in coded(6):
            read.append(int(f[0, 0, 0]))
            yield f

    it = interpolation_windows(frames(), 4)
    next(it)
    assert read == [0, 1, 2]  # the first window needs frames 0..2 only


def test_one_frame_no_frames_and_mixed_sizes_are_one_line_errors():
    with pytest.raises(ValueError, match=r"^clip.mp4: a video with one frame has no gap to interpolate"):
        list(interpolation_windows(iter(coded(1)), 2, "clip.mp4"))
    with pytest.raises(ValueError, match=r"^x: no frames$"):
        list(interpolation_windows(iter([]), 2, "x"))
    frames = coded(3) + [np.zeros((6, 5, 3), np.uint8)]
    with pytest.raises(ValueError, match=r"^v: frame 3 is 6x5, frame 0 is 4x5: interpolation needs one frame size$"):
        list(interpolation_windows(iter(frames), 2, "v"))


def test_time_base_is_kept_when_it_holds_the_halved_frame_duration():
    assert doubled_time_base(Fraction(1, 12800), Fraction(50)) == Fraction(1, 12800)
    assert doubled_time_base(Fraction(1001, 60000), Fraction(60000, 1001)) == Fraction(1001, 60000)
    assert doubled_time_base(Fraction(1, 25), Fraction(50)) is None
    assert doubled_time_base(None, Fraction(50)) is None
