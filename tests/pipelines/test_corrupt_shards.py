"""Damaged shards at training time (issue 14, fault 6 and new-user item 8), without Ray.

Real damage on copies of real shards: a tar cut off in the middle, a member overwritten with
garbage, a PNG whose chunks are whole but whose pixels do not decode. The stream must skip the
sample (one line naming shard and sample, ``skipped`` = 1), keep every other sample where it
was (so a resumed run skips exactly the same), and refuse a shard that is mostly damage. The
same holds for clip shards read member by member (``read_needed``); validation and evaluation
leave a damaged sample out, name it, and say how many are missing.
"""

from __future__ import annotations

import shutil
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from pipelines.stream import CorruptShardError, TrainTransform, _val_rows, _val_shard, iter_samples, read_shard
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


def _garble(path: Path, member_suffixes: tuple[str, ...], key: str | None = None) -> list[str]:
    """Overwrite members (same size, so the tar stays whole) of sample ``key`` (or the second
    sample with such members) with garbage; the names garbled."""
    data = bytearray(path.read_bytes())
    hits = [m for m in _member_offsets(path) if m[0].endswith(member_suffixes)]
    key = key or sorted({m[0].split(".", 1)[0] for m in hits})[1]
    hits = [m for m in hits if m[0].split(".", 1)[0] == key]
    for _, offset, size in hits:
        data[offset:offset + size] = b"\x00garbage" * (size // 8) + b"\x00" * (size % 8)
    path.write_bytes(bytes(data))
    return [m[0] for m in hits]


def test_validation_and_evaluation_leave_damaged_samples_out_and_say_so(tiny_shards, tmp_path, capsys):
    from pipelines.config import load_experiment
    from pipelines.evaluate import evaluate

    from conftest import tiny_experiment, write_config

    dest = tmp_path / "val"
    shutil.copytree(tiny_shards["val"], dest)
    entry = read_manifest(str(dest))["shards"][0]
    path = dest / entry["name"]
    keys = [k for k, _ in read_tar(path.read_bytes()).samples]
    garbled = _garble(path, (".png",), key=keys[1])
    rows = list(_val_shard({"url": str(path), "num_samples": entry["num_samples"]}))
    assert [r["__key__"] for r in rows] == [k for k in keys if k != keys[1]] and rows[0]["shard"] == entry["name"]
    assert f"validation: skipped sample {keys[1]!r} of shard {entry['name']}: {garbled[0].split('.', 1)[1]}: not a PNG" \
        in capsys.readouterr().out

    # evaluation: the same sample left out, and counted in the result
    cfg = load_experiment(write_config(tmp_path / "c.yaml", tiny_experiment(tiny_shards["train"], str(dest),
                                                                            str(tmp_path / "runs"))))
    result = evaluate(cfg, None)
    assert (result["num_samples"], result["skipped_samples"]) == (len(keys) - 1, 1)
    assert f"evaluation: skipped sample {keys[1]!r}" in capsys.readouterr().out

    # a tar cut off after its first sample: the rest are counted against the manifest
    offsets = _member_offsets(path)
    first = [m for m in offsets if m[0].startswith(keys[0] + ".")]
    path.write_bytes(path.read_bytes()[: first[-1][1] + first[-1][2] + 600])
    damaged = []
    assert [r["__key__"] for r in iter_samples(str(dest), read_manifest(str(dest)), damaged)] == [keys[0]]
    assert len(damaged) == len(keys) - 1
    assert f"skipped {len(keys) - 1} sample(s) of shard {entry['name']}: its " in capsys.readouterr().out


def test_a_validation_sample_that_does_not_decode_is_left_out_naming_it(tiny_shards, capsys):
    row = next(_val_shard({"url": str(Path(tiny_shards["val"]) / read_manifest(tiny_shards["val"])["shards"][0]["name"])}))
    cfg = SRConfig(data={"scale": 4, "gt_size": 32})

    def batch(blob_of):
        names = row["names"]
        return {"__key__": np.array([row["__key__"]], dtype=object), "shard": np.array([row["shard"]], dtype=object),
                "names": np.array([np.array(names, dtype=object)], dtype=object),
                "blobs": np.array([np.array([blob_of(n, b) for n, b in zip(names, row["blobs"])], dtype=object)],
                                  dtype=object)}

    good = _val_rows(batch(lambda n, b: b), cfg, seed=1)
    assert list(good["key"]) == [row["__key__"]] and good["gt"].shape[0] == 1
    assert _val_rows(batch(lambda n, b: _bad_png() if n == "gt.png" else b), cfg, seed=1) == {}
    assert f"validation: skipped sample {row['__key__']!r} of shard {row['shard']}" in capsys.readouterr().out


def test_validation_that_scored_fewer_samples_logs_how_many_were_left_out(capfd):
    from conftest import tiny_experiment
    from pipelines.schema import ExperimentConfig
    from trainers.loop import Recipe, RunContext

    cfg = ExperimentConfig.model_validate(tiny_experiment("unused/train", "unused/val", "unused/runs",
                                                          scaling={"num_workers": 1, "cpus_per_worker": 0.5}))
    rng = np.random.default_rng(0)
    row = {"lq": rng.integers(0, 256, (1, 5, 6, 3), dtype=np.uint8),
           "gt": rng.integers(0, 256, (1, 20, 24, 3), dtype=np.uint8)}

    def validate(listed: int) -> dict[str, float]:
        recipe = Recipe(cfg, RunContext(val_samples=listed), report=lambda *a, **k: None, val_rows=lambda: [row, row])
        recipe.setup(None, batches=iter([]), wrap=lambda net: net)
        return recipe.validate()

    scores = validate(3)  # the manifest lists 3, the stream delivered 2
    assert scores["data/val_skipped"] == 1.0 and "val/psnr" in scores
    assert "validation scored 2 of 3 samples; 1 damaged were left out" in capfd.readouterr().out  # the loop writes to the real stdout
    assert "data/val_skipped" not in validate(2)


@pytest.fixture(scope="module")
def reds_shards(tmp_path_factory) -> tuple[Path, dict]:
    """REDS-layout clips (6 frames of 32 px, x4 LQ) in one shard of four, read member by member
    by the VSR sampler (``train_members``)."""
    import cv2

    from conftest import textured_image
    from shard_helpers import shard_dataset

    root = tmp_path_factory.mktemp("reds_damage")
    for c, clip in enumerate(("001", "002", "003", "004")):
        for kind, scale in (("train_sharp", 1), ("train_sharp_bicubic/X4", 4)):
            folder = root / "raw" / kind / clip
            folder.mkdir(parents=True)
            for t in range(6):
                img = textured_image(32, 32, 10 * c + t)
                img = cv2.resize(img, (32 // scale, 32 // scale), interpolation=cv2.INTER_AREA) if scale > 1 else img
                cv2.imwrite(str(folder / f"{t:08d}.png"), img)
    shard_dataset(str(root / "raw"), str(root / "train"), "reds", {"split": "train", "lq": True, "crop": False},
                  items_per_shard=4)
    return root / "train", read_manifest(str(root / "train"))["shards"][0]


def _clip_task(dest: Path, entry: dict, **kw) -> dict:
    from pipelines.fs import join

    return {"url": join(str(dest), entry["name"]), "epoch": 0, "seed": 5, "skip": 0, "take": entry["num_samples"],
            "root": str(dest), "entry": {k: entry[k] for k in ("name", "sha256", "bytes", "num_samples")}} | kw


def test_clip_reads_of_only_the_needed_members_skip_damage_too(reds_shards, tmp_path, capsys):
    from trainers.tasks.vsr import VSRConfig

    src, entry = reds_shards
    dest = tmp_path / "train"
    shutil.copytree(src, dest)
    cfg = VSRConfig(data={"scale": 4, "gt_size": 16, "num_input_frames": 3, "degradation": {"preset": "paired"}})
    whole = list(read_shard(_clip_task(dest, entry), cfg))
    assert [r["skipped"] for r in whole] == [0] * 4 and whole[0]["shard"] == entry["name"]
    assert len(whole[0]["names"]) == 1 + 2 * 3  # the json and a 3-frame window of GT and LQ, not the clip

    key = whole[1]["key"]
    _garble(dest / entry["name"], (".png",), key=key)
    rows = list(read_shard(_clip_task(dest, entry), cfg))
    assert [r["skipped"] for r in rows] == [0, 1, 0, 0]
    assert [r["key"] for r in rows] == [whole[0]["key"], whole[2]["key"], whole[2]["key"], whole[3]["key"]]
    assert all(r["blobs"] == w["blobs"] for r, w in zip(rows[2:], whole[2:]))  # the others read as before
    out = capsys.readouterr().out
    assert f"skipped a sample of shard {entry['name']}: sample {key!r}: " in out and "not a PNG" in out
    assert f"its place goes to {whole[2]['key']!r}" in out

    with pytest.raises(CorruptShardError) as info:
        list(read_shard(_clip_task(dest, entry), cfg, max_skipped=0.0))
    assert str(dest / entry["name"]) in str(info.value) and "\n" not in str(info.value)

    # a shard cut short: members past the cut are short reads, those samples give their places away
    path = dest / entry["name"]
    path.write_bytes(path.read_bytes()[: entry["bytes"] // 2])
    rows = list(read_shard(_clip_task(dest, entry), cfg))
    assert sum(r["skipped"] for r in rows) >= 2 and all(r["key"] != key for r in rows)
    assert "short read" in capsys.readouterr().out
