"""Frame-rate doubling's windows: which frames each synthesised frame sees (the ends repeated for
networks with more than two inputs), the one-line errors, the output time base, and a tiny
FLAVR doubling a frame folder through ``restoray infer`` (no Ray, random weights)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO
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


def _zoo_file(cfg_path: Path, tmp: Path) -> str:
    """A zoo-layout .pth (``generator.*`` keys) of the config's network at its random init."""
    from pipelines.config import load_experiment
    from pipelines.train_job import build_nets

    torch.manual_seed(0)
    net = build_nets(load_experiment(cfg_path, check_paths=False))["generator"]
    path = tmp / "zoo.pth"
    torch.save({"meta": {}, "state_dict": {f"generator.{k}": v for k, v in net.state_dict().items()}}, path)
    return str(path)


def test_flavr_doubles_a_frame_folder_at_twice_the_given_rate(tmp_path, capsys):
    """FLAVR's 4-frame windows through ``restoray infer`` (in process): 4 frames of 12x20 (not
    multiples of 8) -> 7 PNG frames, the originals unchanged at the even positions."""
    import cv2
    import yaml

    from pipelines.cli import main

    cfg = yaml.safe_load((REPO / "configs/vfi/flavr_in4out1_g8b4_vimeo90k_septuplet.yaml").read_text())
    cfg["nets"]["generator"] |= {"mid_channels_list": [16, 8, 8, 4], "encoder_layers_list": [1, 1, 1, 1]}
    cfg_path = tmp_path / "flavr.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    src = tmp_path / "clip"
    src.mkdir()
    frames = [np.random.default_rng(t).integers(0, 256, (12, 20, 3), dtype=np.uint8) for t in range(4)]
    for t, f in enumerate(frames):
        cv2.imwrite(str(src / f"im{t + 1}.png"), f[..., ::-1])
    code = main(["infer", str(cfg_path), "--checkpoint", _zoo_file(cfg_path, tmp_path), "--out", str(tmp_path / "out"),
                 str(src), "--fps", "24"])
    assert code == 0, capsys.readouterr().err
    assert "7 frames 20x12 at 48 fps (PNG frames, 3 synthesised" in capsys.readouterr().out
    written = sorted((tmp_path / "out" / "clip").iterdir())
    assert [p.name for p in written] == [f"{t:08d}.png" for t in range(7)]
    for t in range(4):
        np.testing.assert_array_equal(cv2.imread(str(written[2 * t]))[..., ::-1], frames[t])
    assert main(["infer", str(cfg_path), "--checkpoint", str(tmp_path / "zoo.pth"), "--out", str(tmp_path / "o"),
                 str(src), "--max-seq-len", "4"]) == 1
    assert "--max-seq-len" in capsys.readouterr().err
