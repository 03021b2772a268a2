"""Damaged shards at training time (issue 14, fault 6 and new-user item 8), without Ray.

Real damage on copies of real shards: a tar cut off in the middle, a member overwritten with
garbage, a PNG whose chunks are whole but whose pixels do not decode. The stream must skip the
sample (one line naming shard and sample, ``skipped`` = 1), keep every other sample where it
was (so a resumed run skips exactly the same), and refuse a shard that is mostly damage.
"""

from __future__ import annotations

import shutil
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from pipelines.stream import CorruptShardError, TrainTransform, read_shard
from preprocessing.integrity import member_problem, read_tar
from preprocessing.shards import read_manifest
from trainers.tasks.sr import SRConfig


def _copy(tiny_shards, tmp_path) -> tuple[Path, dict]:
    """A private copy of the tiny training shards and their manifest's biggest shard entry."""
    dest = tmp_path / "train"
    shutil.copytree(tiny_shards["train"], dest)
    manifest = read_manifest(str(dest))
    return dest, max(manifest["shards"], key=lambda s: s["num_samples"])


def _task(dest: Path, entry: dict, **kw) -> dict:
    return {"url": str(dest / entry["name"]), "epoch": 0, "seed": 5, "skip": 0, "take": entry["num_samples"],
            "bytes": entry["bytes"], "num_samples": entry["num_samples"]} | kw


def _member_offsets(path: Path) -> list[tuple[str, int, int]]:
    with tarfile.open(path) as tar:
        return [(m.name, m.offset_data, m.size) for m in tar.getmembers() if m.isreg()]


def _bad_png(width: int = 4, height: int = 4) -> bytes:
    """A PNG whose every chunk is whole (CRCs right) but whose IDAT is not a zlib stream."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"no zlib here" * 4) + chunk(b"IEND", b"")


def test_member_checks_find_cut_garbled_and_foreign_images():
    import cv2

    ok, png = cv2.imencode(".png", np.full((8, 8, 3), 7, np.uint8))
    png = png.tobytes()
    assert member_problem("gt.png", png) is None
    assert "cut off" in member_problem("gt.png", png[:-20])
    flipped = bytearray(png)
    flipped[40] ^= 0xFF
    assert "CRC" in member_problem("gt.png", bytes(flipped))
    assert "signature" in member_problem("gt.png", b"garbage" * 10)
    assert member_problem("meta.json", b"{not json") is None  # only images are checked
    assert member_problem("gt.png", _bad_png()) is None  # whole chunks: left to the decoder


def test_a_tar_cut_in_the_middle_keeps_its_whole_samples_in_place(tiny_shards, tmp_path, capsys):
    dest, entry = _copy(tiny_shards, tmp_path)
    path = dest / entry["name"]
    full = [r["key"] for r in read_shard(_task(dest, entry))]
    intact = read_tar(path.read_bytes()).samples
    name, offset, size = _member_offsets(path)[len(intact) // 2 * 1]  # a member near the middle
    path.write_bytes(path.read_bytes()[: offset + size // 2])

    rows = list(read_shard(_task(dest, entry), max_skipped=1.0))
    assert len(rows) == entry["num_samples"]  # every position of the plan still has a row
    lost = {k for k, _ in intact} - {k for k, _ in read_tar(path.read_bytes()).samples}
    assert lost and sum(r["skipped"] for r in rows) == len(lost)
    for row, key in zip(rows, full):
        if key not in lost:
            assert row["key"] == key and row["skipped"] == 0  # intact samples keep their positions
        else:
            assert row["skipped"] == 1 and row["key"] not in lost
    out = capsys.readouterr().out
    assert out.count(f"skipped a sample of shard {entry['name']}") == len(lost)
    assert f"its manifest says {entry['bytes']}" in out

    # resuming inside the shard: the same rows, the same skips
    rows_3 = list(read_shard(_task(dest, entry, skip=3, take=entry["num_samples"] - 3), max_skipped=1.0))
    assert [(r["key"], r["skipped"]) for r in rows_3] == [(r["key"], r["skipped"]) for r in rows[3:]]


def test_a_garbled_member_is_skipped_by_key_and_too_much_damage_stops_naming_the_shard(tiny_shards, tmp_path,
                                                                                        capsys):
    dest, entry = _copy(tiny_shards, tmp_path)
    path = dest / entry["name"]
    name, offset, size = [m for m in _member_offsets(path) if m[0].endswith(".png")][1]
    data = bytearray(path.read_bytes())
    data[offset:offset + size] = b"\x00garbage" * (size // 8) + b"\x00" * (size % 8)  # same size, same tar
    path.write_bytes(bytes(data))
    key = name.split(".", 1)[0]

    rows = list(read_shard(_task(dest, entry), max_skipped=0.5))
    assert [r["key"] for r in rows].count(key) == 0 and sum(r["skipped"] for r in rows) == 1
    out = capsys.readouterr().out
    assert f"shard {entry['name']}: sample {key!r}: {name.split('.', 1)[1]}: not a PNG" in out

    with pytest.raises(CorruptShardError) as info:
        list(read_shard(_task(dest, entry), max_skipped=0.0))
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "data.max_skipped_fraction=0" in message


def test_a_member_that_does_not_decode_is_skipped_in_the_transform(tiny_shards, tmp_path, capsys):
    dest, entry = _copy(tiny_shards, tmp_path)
    rows = list(read_shard(_task(dest, entry, take=3)))
    rows[1]["blobs"] = [_bad_png() if n == "gt.png" else b for n, b in zip(rows[1]["names"], rows[1]["blobs"])]
    batch = {k: np.array([r[k] for r in rows], dtype=object) for k in ("key", "shard")}
    batch |= {k: np.array([r[k] for r in rows]) for k in ("epoch", "skipped")}
    batch |= {k: np.array([np.array(r[k], dtype=object) for r in rows], dtype=object) for k in ("names", "blobs")}
    cfg = SRConfig(data={"scale": 4, "gt_size": 32})
    out = TrainTransform(cfg, seed=3)(batch)
    assert out["skipped"].tolist() == [0, 1, 0]
    assert np.array_equal(out["gt"][1], out["gt"][2])  # its place goes to a neighbour
    assert f"skipped sample {rows[1]['key']!r} of shard {entry['name']}" in capsys.readouterr().out


def test_a_spent_restart_budget_names_the_damaged_shard(tmp_path):
    from types import SimpleNamespace

    from pipelines.train_job import failure_message

    cfg = SimpleNamespace(train=SimpleNamespace(max_failures=3), run=SimpleNamespace(storage_path=str(tmp_path)),
                          run_name="r")
    error = RuntimeError("ray::SplitCoordinator.get() (pid=1)\n  File x\npipelines.stream.CorruptShardError: shard "
                         "/d/shard-000000.tar: 5 of 9 samples unreadable, more than data.max_skipped_fraction=0 (...)")
    line = failure_message(cfg, SimpleNamespace(worker_failures={0: error}))
    assert line.startswith("training failed: shard /d/shard-000000.tar: 5 of 9") and "\n" not in line
