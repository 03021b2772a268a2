"""``restoray infer`` on a folder holding a decompression bomb: that file is skipped with a
reason, like unreadable ones, and the rest are processed."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import torch

from conftest import tiny_experiment, write_config
from pipelines.cli import main
from pipelines.image_io import decode_rgb
from trainers.archs import build_arch


def _bomb_png(w: int, h: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_infer_skips_a_60000px_png_and_processes_the_rest(tmp_path, capsys):
    cfg = tiny_experiment(str(tmp_path / "none"), str(tmp_path / "none"), str(tmp_path / "runs"))
    cfg_path = write_config(tmp_path / "tiny.yaml", cfg)
    torch.manual_seed(0)
    net = build_arch("edsr", **{k: v for k, v in cfg["nets"]["generator"].items() if k != "name"})
    torch.save({"state_dict": {f"generator.{k}": v for k, v in net.state_dict().items()}}, tmp_path / "ckpt.pth")
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a_bomb.png").write_bytes(_bomb_png(60000, 60000))
    for name in ("b_good.png", "c_good.png"):
        cv2.imwrite(str(inputs / name), np.random.default_rng(0).integers(0, 255, (12, 10, 3), np.uint8))

    rc = main(["infer", str(cfg_path), str(inputs), "--checkpoint", str(tmp_path / "ckpt.pth"), "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert rc == 1  # one input failed, as for any unreadable file
    skips = [ln for ln in out.splitlines() if ln.startswith("[restoray] skip")]
    assert len(skips) == 1 and "a_bomb.png" in skips[0] and "image too large to decode: 60000x60000" in skips[0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["b_good.png", "c_good.png"]
    assert cv2.imread(str(tmp_path / "out" / "b_good.png")).shape == (48, 40, 3)
    assert "wrote 2 image(s)" in out and "1 failed" in out


def test_opencv_decoder_errors_become_one_line_value_errors():
    import pytest

    with pytest.raises(ValueError, match="x.png: image too large to decode: 70000x70000"):
        decode_rgb(_bomb_png(70000, 70000), "x.png")
    with pytest.raises(ValueError, match="y.png: not a readable image"):
        decode_rgb(b"\x89PNG\r\n\x1a\n garbage", "y.png")
