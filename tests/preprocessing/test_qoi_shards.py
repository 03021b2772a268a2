"""``image_codec: qoi``: GT/LQ shard members in QOI (lossless, decodes 3.5-5x faster than PNG).

Shards of the same images in PNG and in QOI must give the samplers the very same pixels and
draws; damage to a QOI member is found like a PNG's; the option is refused where it does not
apply, and an old (PNG) shard set's params are unchanged by its existence.
"""

from __future__ import annotations

import numpy as np
import pytest
from prep_helpers import make_div2k, png_bytes, rgb, write

from pipelines.stream import read_shard, shard_samples
from pipelines.train_job import check_data_members
from preprocessing.adapters import AdapterError, get_adapter
from preprocessing.integrity import member_problem
from preprocessing.schema import GT, LQ, decode_image, encode_shard_image, image_bytes
from preprocessing.shard_index import ShardSet
from shard_helpers import shard_dataset


def _rows(dest: str, manifest: dict) -> list[dict]:
    rows = []
    for shard in manifest["shards"]:
        task = {"url": f"{dest}/{shard['name']}", "epoch": 0, "seed": 0, "skip": 0, "take": shard["num_samples"]}
        rows += [dict(zip(r["names"], r["blobs"]), __key__=r["key"]) for r in read_shard(task)]
    return rows


@pytest.fixture(scope="module")
def div2k_both(tmp_path_factory):
    root = tmp_path_factory.mktemp("div2k")
    make_div2k(root / "src", stems=("0001", "0002", "0003"), hw=(72, 56), scale=2)
    params = {"crop_size": 32, "step": 24, "scale": 2}
    png = shard_dataset(str(root / "src"), str(root / "png"), "div2k", params, items_per_shard=2)
    qoi = shard_dataset(str(root / "src"), str(root / "qoi"), "div2k", params | {"image_codec": "qoi"}, items_per_shard=2)
    return root, png, qoi


def test_qoi_shards_hold_qoi_members_with_the_png_pixels(div2k_both):
    root, png, qoi = div2k_both
    assert png["members"] == ["gt.png", "lq.png"] and qoi["members"] == ["gt.qoi", "lq.qoi"]
    assert qoi["params"]["image_codec"] == "qoi" and "image_codec" not in png["params"]
    a, b = _rows(str(root / "png"), png), _rows(str(root / "qoi"), qoi)
    assert [r["__key__"] for r in a] == [r["__key__"] for r in b] and len(a) == png["num_samples"] > 2
    for ra, rb in zip(a, b):
        assert rb["gt.qoi"][:4] == b"qoif"
        for name in (GT, LQ):
            assert np.array_equal(decode_image(image_bytes(ra, name)), decode_image(image_bytes(rb, name)))


@pytest.mark.parametrize("preset", ["bicubic", "paired"])
def test_sr_sampler_draws_the_same_batch_from_either_codec(div2k_both, preset):
    from pipelines.stream import sample_rng
    from trainers.samplers.sr import SRDataConfig, SRSampler

    root, png, qoi = div2k_both
    sampler = SRSampler(SRDataConfig.model_validate({"scale": 2, "gt_size": 16, "degradation": {"preset": preset}}))
    for ra, rb in zip(_rows(str(root / "png"), png), _rows(str(root / "qoi"), qoi)):
        x = sampler.train(ra, sample_rng(0, 0, ra["__key__"]))
        y = sampler.train(rb, sample_rng(0, 0, rb["__key__"]))
        assert x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x)
        v, w = sampler.val(ra, sample_rng(0, 0, "v")), sampler.val(rb, sample_rng(0, 0, "v"))
        assert all(np.array_equal(v[k], w[k]) for k in v)


def test_damaged_qoi_members_are_named_and_skipped(div2k_both, tmp_path):
    good = encode_shard_image(rgb(8, 8), "qoi")
    assert member_problem("gt.qoi", good) is None
    assert member_problem("gt.qoi", good[:-3]) == "QOI cut off (no end marker)"
    assert member_problem("gt.qoi", b"PNGx" + good[4:]) == "not a QOI image (bad magic)"
    assert member_problem("gt.qoi", good[:10]) == "QOI cut off inside its header"
    with pytest.raises(ValueError, match="cannot decode image bytes"):
        decode_image(good[:4] + b"\xff" * 14 + good[18:-8] + b"\x00" * 8)  # garbled, end marker whole
    # a shard whose first sample's gt.qoi was cut: that sample is reported, the others read
    import io
    import tarfile

    root, _png, qoi = div2k_both
    name = qoi["shards"][0]["name"]
    src = tarfile.open(root / "qoi" / name)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as dst:
        for i, member in enumerate(src.getmembers()):
            data = src.extractfile(member).read()
            if i == 0:
                assert member.name.endswith(".gt.qoi")
                data = data[:-5]
            member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    write(tmp_path / name, out.getvalue())
    samples, problems = shard_samples({"url": str(tmp_path / name), "num_samples": qoi["shards"][0]["num_samples"]})
    assert samples[0] is None and "gt.qoi: QOI cut off (no end marker)" in problems[0]
    assert all(s is not None for s in samples[1:])


def test_codec_option_is_checked_and_only_where_it_applies():
    assert "image_codec" not in get_adapter("image_folder").resolve_params({})
    assert get_adapter("image_folder").resolve_params({"image_codec": "qoi"})["image_codec"] == "qoi"
    with pytest.raises(AdapterError, match=r"div2k: image_codec must be one of \['png', 'qoi'\], got 'webp'"):
        get_adapter("div2k").resolve_params({"image_codec": "webp"})
    with pytest.raises(AdapterError, match=r"comp1k: unknown parameter\(s\) \['image_codec'\]"):
        get_adapter("comp1k").resolve_params({"image_codec": "qoi"})


def test_preflight_and_banks_find_the_image_in_its_codec(div2k_both):
    from pipelines.config import ConfigError
    from pipelines.schema import ExperimentConfig

    root, _png, qoi = div2k_both
    cfg = lambda preset: ExperimentConfig.model_validate({  # noqa: E731
        "name": "q", "task": {"name": "sr", "data": {"scale": 2, "gt_size": 16, "degradation": {"preset": preset}}},
        "nets": {"generator": {"name": "srcnn", "channels": [3, 8, 4, 3], "kernel_sizes": [3, 1, 3], "upscale_factor": 2}},
        "data": {"train": "t", "val": "v"}, "optim": {"generator": {"lr": 1e-3}}, "train": {"total_steps": 1}})
    check_data_members(cfg("paired"), {"train": qoi})  # gt.qoi and lq.qoi hold what gt.png / lq.png name
    gt_only = dict(qoi, members=["gt.qoi"])
    with pytest.raises(ConfigError, match="reads the lq.png member of every sample, but the shards in data.train"):
        check_data_members(cfg("paired"), {"train": gt_only})
    key, data = ShardSet(str(root / "qoi")).read(0, (GT,))  # a matting background bank asks for gt.png
    assert list(data) == ["gt.qoi"] and decode_image(image_bytes(data, GT)).shape == (32, 32, 3)
