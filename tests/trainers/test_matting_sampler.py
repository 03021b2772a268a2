"""The matting sampler: per-pipeline shapes and sizes, seeding, composition consistency, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from degradations.seeding import sample_rng
from preprocessing.schema import decode_image, encode_png, encode_png_grey
from shard_helpers import shard_dataset
from trainers.samplers.matting import TRAIN_KEYS, MattingDataConfig, MattingSampler


def soft_alpha(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = h * rng.uniform(0.4, 0.6), w * rng.uniform(0.4, 0.6)
    r = np.sqrt(((yy - cy) / (0.3 * h)) ** 2 + ((xx - cx) / (0.3 * w)) ** 2)
    return (np.clip((1.2 - r) / 0.4, 0, 1) * 255).astype(np.uint8)


def smooth_rgb(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(h // 16, 2), max(w // 16, 2), 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def write_png(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_png(img) if img.ndim == 3 else encode_png_grey(img))


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Background, training (fg+alpha) and evaluation (merged, trimap, alpha, fg, bg) shard sets."""
    root = tmp_path_factory.mktemp("matting")
    for i, (h, w) in enumerate([(200, 260), (90, 70), (300, 300)]):  # one smaller than the foregrounds
        write_png(root / f"raw_bg/bg{i}.png", smooth_rgb(h, w, 50 + i))
    for i, (h, w) in enumerate([(160, 120), (140, 180)]):
        write_png(root / f"raw_train/fg/f{i}.png", smooth_rgb(h, w, i))
        write_png(root / f"raw_train/alpha/f{i}.png", soft_alpha(h, w, i))
    for stem, hw in (("e0", (75, 93)), ("e1", (64, 64))):
        a = soft_alpha(*hw, 7)
        write_png(root / f"raw_test/merged/{stem}.png", smooth_rgb(*hw, 8))
        write_png(root / f"raw_test/alpha/{stem}.png", a)
        write_png(root / f"raw_test/trimap/{stem}.png", np.where(a == 255, 255, np.where(a == 0, 0, 128)).astype(np.uint8))
    write_png(root / "raw_test/fg/e0.png", smooth_rgb(75, 93, 9))
    shard_dataset(str(root / "raw_bg"), str(root / "bg"), "image_folder", {"crop": False}, items_per_shard=2)
    shard_dataset(str(root / "raw_train"), str(root / "train"), "matting_folder")
    shard_dataset(str(root / "raw_test"), str(root / "test"), "matting_folder", {"split": "test"})
    return root


def samples(uri: Path) -> list[dict]:
    """Raw members of every sample of a shard folder (what the stream hands a sampler)."""
    import tarfile

    out: dict[str, dict] = {}
    for tar_path in sorted(uri.glob("shard-*.tar")):
        with tarfile.open(tar_path) as tar:
            for m in tar:
                key, _, suffix = m.name.partition(".")
                out.setdefault(key, {"__key__": key})[suffix] = tar.extractfile(m).read()
    return list(out.values())


def cfg(shards, **kw) -> MattingDataConfig:
    return MattingDataConfig(**{"backgrounds": str(shards / "bg"), "foregrounds": str(shards / "train"), **kw})


PIPELINES = [("dim", False, 320), ("indexnet", False, 320), ("gca", False, 512), ("gca", True, 320),
             ("indexnet", True, 320)]


@pytest.mark.parametrize("pipeline, dimaug, size", PIPELINES, ids=[f"{p}{'_dimaug' if d else ''}" for p, d, _ in PIPELINES])
def test_train_shapes_dtypes_and_trimap_values(shards, pipeline, dimaug, size):
    sampler = MattingSampler(cfg(shards, pipeline=pipeline, dimaug=dimaug))
    for members in samples(shards / "train"):
        out = sampler.train(members, sample_rng(0, 0, members["__key__"]))
        assert tuple(out) == TRAIN_KEYS
        for k in ("merged", "fg", "bg"):
            assert out[k].shape == (size, size, 3) and out[k].dtype == np.uint8, k
        for k in ("trimap", "alpha"):
            assert out[k].shape == (size, size, 1) and out[k].dtype == np.uint8, k
        assert set(np.unique(out["trimap"])) <= {0, 128, 255}
        assert (out["trimap"] == 128).any()


@pytest.mark.parametrize("pipeline, dimaug", [("dim", False), ("indexnet", False), ("gca", False)])
def test_train_is_a_function_of_the_generator(shards, pipeline, dimaug):
    members = samples(shards / "train")[0]
    a = MattingSampler(cfg(shards, pipeline=pipeline)).train(members, sample_rng(3, 1, "f0"))
    b = MattingSampler(cfg(shards, pipeline=pipeline)).train(members, sample_rng(3, 1, "f0"))
    assert all(np.array_equal(a[k], b[k]) for k in TRAIN_KEYS)
    others = [MattingSampler(cfg(shards, pipeline=pipeline)).train(members, sample_rng(3, e, "f0")) for e in (2, 3, 4)]
    assert any(not np.array_equal(a["merged"], o["merged"]) for o in others)


def composite_error(out) -> float:
    a = out["alpha"].astype(np.float64) / 255
    expect = out["fg"] * a + out["bg"] * (1 - a)
    return float(np.abs(expect - out["merged"]).mean())


def test_merged_is_the_composite_of_fg_bg_alpha(shards):
    for pipeline in ("dim", "indexnet", "gca"):
        sampler = MattingSampler(cfg(shards, pipeline=pipeline))
        for members in samples(shards / "train"):
            for epoch in range(3):
                out = sampler.train(members, sample_rng(0, epoch, members["__key__"]))
                # dim/indexnet resize the uint8 composite (a resize of a product is not the product
                # of resizes: ~1 level at soft edges); gca merges its float fg exactly, then rounds.
                assert composite_error(out) < (1.0 if pipeline != "gca" else 0.6), pipeline
                assert (out["merged"][out["alpha"][..., 0] == 0] == out["bg"][out["alpha"][..., 0] == 0]).mean() > 0.9


def test_gca_composites_a_second_foreground_sometimes(shards):
    members = samples(shards / "train")[0]
    sampler = MattingSampler(cfg(shards, pipeline="gca"))
    for e in range(6):
        sampler.train(members, sample_rng(0, e, "f0"))
    assert 0 < sampler.foregrounds.hits + sampler.foregrounds.misses < 6  # CompositeFg drew, about half the time
    never = MattingSampler(cfg(shards, pipeline="gca", composite_fg_prob=0, foregrounds=None))
    never.train(members, sample_rng(0, 0, "f0"))
    assert never._foregrounds is None


def test_val_full_size_members(shards):
    sampler = MattingSampler(cfg(shards))
    by_key = {m["__key__"]: m for m in samples(shards / "test")}
    out = sampler.val(by_key["e0"], sample_rng(0, 0, "e0"))
    assert set(out) == {"merged", "trimap", "alpha", "fg"}
    assert out["merged"].shape == out["fg"].shape == (75, 93, 3)
    assert out["trimap"].shape == out["alpha"].shape == (75, 93, 1) and out["trimap"].dtype == np.uint8
    assert set(np.unique(out["trimap"])) <= {0, 128, 255}
    assert set(sampler.val(by_key["e1"], sample_rng(0, 0, "e1"))) == {"merged", "trimap", "alpha"}
    assert sampler._backgrounds is None  # evaluation never opens the background bank


def test_bad_inputs_are_one_line_errors(shards, tmp_path):
    sampler = MattingSampler(cfg(shards))
    good = samples(shards / "train")[0]
    fg = decode_image(good["fg.png"])
    cases = [
        ({**good, "alpha.png": encode_png_grey(np.zeros((fg.shape[0], fg.shape[1] - 1), np.uint8))},
         "members differ in size"),
        ({"__key__": "k", "fg.png": good["fg.png"]}, "training needs fg.png and alpha.png"),
        ({**good, "alpha.png": encode_png(np.dstack([soft_alpha(*fg.shape[:2]), np.zeros(fg.shape[:2], np.uint8),
                                                     np.zeros(fg.shape[:2], np.uint8)]))}, "grey image, got colour"),
    ]
    for members, match in cases:
        with pytest.raises(ValueError, match=match) as exc:
            sampler.train(members, sample_rng(0, 0, "k"))
        assert "\n" not in str(exc.value)
    with pytest.raises(ValueError, match="evaluation needs merged.png, trimap.png and alpha.png, missing merged"):
        sampler.val(good, sample_rng(0, 0, "k"))
    # An empty or missing background set.
    (tmp_path / "empty").mkdir()
    (tmp_path / "none").mkdir()
    (tmp_path / "empty/manifest.json").write_text(json.dumps({"format": "restoray-shards/1", "shards": []}))
    for uri, match in ((tmp_path / "empty", "holds no samples"), (tmp_path / "none", "no manifest.json")):
        bad = MattingSampler(cfg(shards, backgrounds=str(uri)))
        with pytest.raises(ValueError, match=f"backgrounds {uri}: .*{match}") as exc:
            bad.train(good, sample_rng(0, 0, "k"))
        assert "\n" not in str(exc.value)
    # A background set without gt.png (e.g. matting shards given by mistake).
    wrong = MattingSampler(cfg(shards, backgrounds=str(shards / "train")))
    with pytest.raises(ValueError, match="has no 'gt.png' member"):
        wrong.train(good, sample_rng(0, 0, "k"))


def test_config_checks(shards):
    with pytest.raises(ValidationError, match="dimaug: true applies to gca/indexnet"):
        cfg(shards, pipeline="dim", dimaug=True)
    with pytest.raises(ValidationError, match="set foregrounds"):
        MattingDataConfig(backgrounds="x", pipeline="gca")
    assert MattingDataConfig(backgrounds="x", pipeline="gca", dimaug=True).effective == "dim"
    with pytest.raises(ValidationError, match="extra"):
        cfg(shards, crop=3)
    with pytest.raises(ValidationError, match="kernel_size"):
        cfg(shards, kernel_size=(5, 5))
    with pytest.raises(ValidationError, match="backgrounds"):
        MattingDataConfig()


def test_sampler_pickles_without_open_banks(shards):
    import pickle

    sampler = MattingSampler(cfg(shards, pipeline="gca"))
    members = samples(shards / "train")[0]
    first = sampler.train(members, sample_rng(0, 0, "f0"))
    clone = pickle.loads(pickle.dumps(sampler))
    assert clone._backgrounds is None
    again = clone.train(members, sample_rng(0, 0, "f0"))
    assert all(np.array_equal(first[k], again[k]) for k in TRAIN_KEYS)


def test_backgrounds_from_s3_with_ranged_reads(shards, s3_bucket):
    import boto3

    s3 = boto3.client("s3")
    for path in sorted((shards / "bg").rglob("*")):
        if path.is_file():
            s3.put_object(Bucket=s3_bucket, Key=f"bg/{path.relative_to(shards / 'bg').as_posix()}", Body=path.read_bytes())
    members = samples(shards / "train")[0]
    local = MattingSampler(cfg(shards, pipeline="gca")).train(members, sample_rng(0, 0, "f0"))
    remote = MattingSampler(cfg(shards, pipeline="gca", backgrounds=f"s3://{s3_bucket}/bg"))
    out = remote.train(members, sample_rng(0, 0, "f0"))
    assert all(np.array_equal(local[k], out[k]) for k in TRAIN_KEYS)
    assert remote.backgrounds._set.table("shard-000000.tar").source == "part-record"
