"""Hostile shard tars and manifests: every reader refuses them with the shard and member named.

Readers covered: the training stream's read task (``pipelines.stream.read_shard``), validation
(``val_dataset``'s per-shard reader) and evaluation (``iter_samples``), and the ranged reader's
header scan (``preprocessing.shard_index``); ``restoray eval`` ends with one line naming them.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from preprocessing.schema import FORMAT
from preprocessing.shard_index import ShardSet, scan_tar_members
from preprocessing.shards import read_manifest
from preprocessing.storage import StorageError, open_storage
from preprocessing.tar_safety import UnsafeTarMember

PNG = cv2.imencode(".png", np.full((8, 8, 3), 90, np.uint8))[1].tobytes()


def _member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", link: str = "") -> tuple:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, len(data)
    return info, data


HOSTILE = {
    "dotdot": _member("../outside/k1.gt.png", data=PNG),
    "absolute": _member("/tmp/k1.gt.png", data=PNG),
    "symlink": _member("k1.gt.png", tarfile.SYMTYPE, link="/etc/passwd"),
    "hardlink": _member("k1.gt.png", tarfile.LNKTYPE, link="k0.gt.png"),
    "device": _member("k1.gt.png", tarfile.CHRTYPE),
    "directory": _member("k1", tarfile.DIRTYPE),
}


def _shard_folder(root: Path, hostile: tuple) -> Path:
    """A committed-looking shard folder: one good sample, then the hostile member."""
    root.mkdir(parents=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        good, data = _member("k0.gt.png", data=PNG)
        tar.addfile(good, io.BytesIO(data))
        info, data = hostile
        tar.addfile(info, io.BytesIO(data) if data else None)
    (root / "shard-000000.tar").write_bytes(buf.getvalue())
    manifest = {"format": FORMAT, "shards": [{"name": "shard-000000.tar", "num_samples": 2,
                                              "bytes": len(buf.getvalue()), "sha256": "0" * 64}]}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_every_tar_reader_refuses_hostile_members(tmp_path, kind):
    from pipelines.stream import _val_shard, iter_samples, read_shard

    root = _shard_folder(tmp_path / "shards", HOSTILE[kind])
    url = str(root / "shard-000000.tar")
    name = HOSTILE[kind][0].name
    readers = {
        "train read task": lambda: list(read_shard({"url": url, "epoch": 0, "seed": 1, "skip": 0, "take": 2})),
        "validation": lambda: list(_val_shard({"url": url})),
        "evaluation": lambda: list(iter_samples(str(root), read_manifest(str(root)))),
        "header scan": lambda: scan_tar_members(open_storage(str(root)), "shard-000000.tar"),
        "ranged reader": lambda: ShardSet(str(root)).read(1),
    }
    for what, read in readers.items():
        with pytest.raises(UnsafeTarMember) as info:
            read()
        msg = str(info.value)
        assert "shard-000000.tar" in msg and repr(name) in msg and "refused" in msg, what
        assert "\n" not in msg
    assert not (tmp_path / "outside").exists()


@pytest.mark.parametrize("name", ["../other/shard-000000.tar", "/etc/shard.tar", "s3://elsewhere/shard.tar",
                                  "a/../../b.tar", ""])
def test_manifest_naming_shards_outside_the_dataset_is_refused(tmp_path, name):
    root = tmp_path / "shards"
    root.mkdir()
    (root / "manifest.json").write_text(json.dumps({
        "format": FORMAT, "shards": [{"name": name, "num_samples": 1, "bytes": 1, "sha256": "0" * 64}]}))
    with pytest.raises(StorageError, match="shard name .* refused") as info:
        read_manifest(str(root))
    assert str(root / "manifest.json") in str(info.value)


def test_eval_on_a_hostile_shard_is_one_line_naming_shard_and_member(tiny_shards, tmp_path, capsys):
    from conftest import tiny_experiment, write_config
    from pipelines.cli import main

    val = _shard_folder(tmp_path / "val", HOSTILE["symlink"])
    cfg = write_config(tmp_path / "eval.yaml", tiny_experiment(tiny_shards["train"], str(val), str(tmp_path / "runs")))
    assert main(["eval", str(cfg)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("restoray: error:"), err
    assert "shard-000000.tar" in err[0] and "'k1.gt.png'" in err[0] and "symbolic link" in err[0]
