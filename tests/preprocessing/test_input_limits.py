"""Decompression bombs, absurd sizes and too-small images are quarantined from their headers."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from prep_helpers import png_bytes, rgb, write
from shard_helpers import shard_dataset
from video_helpers import make_mp4

from preprocessing.validate import CorruptInput, InputLimits, image_header_size, input_limits, load_image_with_notes


def bomb_png(w: int, h: int) -> bytes:
    """A few hundred bytes whose header claims ``w`` x ``h`` RGB pixels (a real bomb's IDAT would
    inflate to w*h*3 bytes; this one holds only a sliver: decoding it would also fail, later)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _quarantine(dest: Path) -> dict[str, str]:
    return {e["item_id"]: e["reason"] for e in json.loads((dest / "quarantine.json").read_text())["quarantined"]}


def test_header_size_is_read_without_decoding():
    assert image_header_size(bomb_png(60000, 60000)) == (60000, 60000)
    assert image_header_size(cv2.imencode(".jpg", rgb(20, 30))[1].tobytes()) == (30, 20)
    assert image_header_size(b"not an image") is None
    with pytest.raises(CorruptInput, match=r"image too large: 60000x60000 = 3600 Mpx, over the limit of 134 Mpx"):
        load_image_with_notes(bomb_png(60000, 60000), "bomb.png")
    with input_limits(InputLimits(max_image_pixels=10_000)):  # a configured limit applies inside the block
        with pytest.raises(CorruptInput, match="image too large: 200x100"):
            load_image_with_notes(png_bytes(rgb(100, 200)), "x.png")
    assert load_image_with_notes(png_bytes(rgb(100, 200)), "x.png")[0].shape == (100, 200, 3)


def test_shard_job_quarantines_bombs_and_too_small_images_and_keeps_the_rest(tmp_path):
    raw = tmp_path / "raw"
    write(raw / "good.png", png_bytes(rgb(48, 64)))
    write(raw / "small.png", png_bytes(rgb(24, 40, seed=1)))
    write(raw / "one_pixel.png", png_bytes(rgb(1, 1)))
    write(raw / "bomb.png", bomb_png(60000, 60000))
    params = {"crop_size": 32, "step": 32}
    manifest = shard_dataset(str(raw), str(tmp_path / "a"), "image_folder", params, items_per_shard=2)
    q = _quarantine(tmp_path / "a")
    assert set(q) == {"bomb", "one_pixel"} and manifest["quarantined"] == 2
    assert q["bomb"].startswith("image too large: 60000x60000") and "limits.max_image_pixels" in q["bomb"]
    assert q["one_pixel"].startswith("image too small: 1x1") and "limits.min_image_size" in q["one_pixel"]
    assert manifest["num_samples"] == 4 + 2  # good: 2x2 crops of 32; small (24x40): kept whole along its short side

    # the training crop as the minimum: the 24x40 image is now too small for it
    manifest = shard_dataset(str(raw), str(tmp_path / "b"), "image_folder", params, items_per_shard=2,
                             limits={"min_image_size": 32})
    q = _quarantine(tmp_path / "b")
    assert set(q) == {"bomb", "one_pixel", "small"} and manifest["num_samples"] == 4
    assert q["small"] == ("image too small: 40x24, shortest side under 32 px (limits.min_image_size): "
                          "too small for the crop")


def test_shard_config_limits_are_typed_and_checked():
    from pipelines.config import ConfigError, validate
    from pipelines.schema import ShardConfig

    cfg = validate(ShardConfig, {"source": "a", "dest": "b", "adapter": "image_folder",
                                 "limits": {"max_image_pixels": 1000, "min_image_size": 48}}, "t.yaml")
    assert cfg.limits.model_dump() == {"max_image_pixels": 1000, "min_image_size": 48,
                                       "max_frame_pixels": 2 ** 23, "max_video_frames": 2 ** 17}
    assert InputLimits(**cfg.limits.model_dump()).min_image_size == 48
    assert validate(ShardConfig, {"source": "a", "dest": "b", "adapter": "image_folder"}, "t").limits.model_dump() \
        == {k: getattr(InputLimits(), k) for k in cfg.limits.model_dump()}  # one set of defaults
    with pytest.raises(ConfigError, match="limits.min_image_size"):
        validate(ShardConfig, {"source": "a", "dest": "b", "adapter": "image_folder", "limits": {"min_image_size": 0}}, "t")


def test_videos_beyond_frame_size_or_count_limits_are_quarantined_undecoded(tmp_path):
    raw = tmp_path / "raw"
    make_mp4(raw / "short.mp4", n=3, hw=(32, 48))
    make_mp4(raw / "long.mp4", n=9, hw=(32, 48))
    make_mp4(raw / "wide.mp4", n=3, hw=(64, 96))
    manifest = shard_dataset(str(raw), str(tmp_path / "s"), "video_files", {"clip_len": 0},
                             limits={"max_frame_pixels": 48 * 32, "max_video_frames": 5})
    q = _quarantine(tmp_path / "s")
    assert manifest["num_samples"] == 1 and set(q) == {"long", "wide"}
    assert q["long"] == "video too long: 9 frames, over the limit of 5 (limits.max_video_frames); not decoded"
    assert q["wide"].startswith("video frames too large: 96x64") and "limits.max_frame_pixels" in q["wide"]
