"""``restoray preview`` and ``restoray bench degradations``."""

from __future__ import annotations

import json

import cv2
import pytest
import torch

from pipelines.cli import main


@pytest.mark.parametrize("preset", ["bicubic", "bd", "realesrgan"])
def test_preview_writes_a_contact_sheet(tmp_path, preset):
    out = tmp_path / f"{preset}.png"
    assert main(["preview", "--preset", preset, "--out", str(out), "--n", "2", "--seed", "3"]) == 0
    sheet = cv2.imread(str(out))
    assert sheet.shape[0] == 2 * (256 + 4)
    # GT | LQ | (USM target for realesrgan) | parameter text
    assert sheet.shape[1] == 256 * (3 if preset == "realesrgan" else 2) + 360


def test_preview_of_a_video_preset_shows_frame_strips(tmp_path):
    out = tmp_path / "rbv.png"
    assert main(["preview", "--preset", "realbasicvsr", "--out", str(out), "--n", "1"]) == 0
    sheet = cv2.imread(str(out))
    assert sheet.shape[0] == 2 * 128 + 4  # a GT strip above an LQ strip
    assert sheet.shape[1] == 7 * 128 + 360


def test_preview_is_reproducible_and_seeded(tmp_path):
    paths = [tmp_path / f"{i}.png" for i in range(3)]
    for path, seed in zip(paths, (1, 1, 2)):
        main(["preview", "--preset", "realesrgan", "--out", str(path), "--n", "1", "--seed", str(seed)])
    a, b, c = (p.read_bytes() for p in paths)
    assert a == b and a != c


def test_preview_unknown_preset_is_one_line_error(tmp_path, capsys):
    assert main(["preview", "--preset", "nope", "--out", str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown degradation preset 'nope'" in err[0]


def test_bench_writes_one_record_per_case(tmp_path):
    out = tmp_path / "bench.json"
    assert main(["bench", "degradations", "--json", str(out), "--quick"]) == 0
    records = json.loads(out.read_text())
    resr = [r for r in records if r["preset"] == "realesrgan" and r["device"] == "cpu"]
    assert [r["gt_size"] for r in resr] == [256, 400]
    for r in records:
        assert set(r) == {"preset", "device", "gt_size", "frames", "value", "unit", "machine"}
        assert r["value"] > 0 and r["device"] in ("cpu", "cpu-torch", "gpu")
    assert all(r["unit"] == "pairs/s/core" and r["frames"] == 1 for r in resr)
    torch_cpu = [r for r in records if r["device"] == "cpu-torch"]  # the batched path on a CPU worker
    assert [r["gt_size"] for r in torch_cpu] == [256, 400] and all(r["unit"] == "pairs/s/core" for r in torch_cpu)
    gpu = [r for r in records if r["device"] == "gpu"]
    assert len(gpu) == (2 if torch.cuda.is_available() else 0) and all(r["unit"] == "pairs/s" for r in gpu)
    video = [r for r in records if r["preset"] == "realbasicvsr"]
    assert len(video) == 1 and video[0]["frames"] == 30 and video[0]["unit"] == "s/clip/core"


@pytest.mark.parametrize("preset", ["mask-bbox", "mask-irregular", "mask-brush"])
def test_preview_of_an_inpainting_hole_generator(tmp_path, preset):
    """photo | hole | masked input | area, one row per sample, from the training sampler."""
    out = tmp_path / f"{preset}.png"
    assert main(["preview", "--preset", preset, "--out", str(out), "--n", "2"]) == 0
    sheet = cv2.imread(str(out))
    assert sheet.shape[0] == 2 * (256 + 4) and sheet.shape[1] > 3 * 256
    hole = sheet[:256, 256:512]
    assert 0 < (hole > 127).mean() < 1  # a hole, and not the whole image
