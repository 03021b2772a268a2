"""Parity with MMEditing 0.16.1's bbox-mask inpainting train pipeline (``tests/data/golden/inpainting.npz``).

The golden was made by ``tests/golden/make_inpainting_goldens.py``: DeepFill v1's (and
Global&Local's) ``LoadMask`` bbox + ``Crop`` 384 + ``Resize`` 256 with ``np.random`` replaced
by ``default_rng(seed)``. The sampler, given ``default_rng(seed)`` and a shard set holding the
same images, must make the same box, mask and crop, and the same resized pixels.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from preprocessing.shard_index import ShardSet
from shard_helpers import shard_dataset
from trainers.samplers.inpainting import InpaintingDataConfig, InpaintingSampler

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden" / "inpainting.npz"


def test_bbox_pipeline_matches_mmedit(tmp_path):
    g = np.load(GOLDEN)
    names = sorted({k.split("/")[1] for k in g.files if k.startswith("input/")})
    for name in names:
        (tmp_path / "raw").mkdir(exist_ok=True)
        (tmp_path / "raw" / f"{name}.png").write_bytes(g[f"input/{name}"].tobytes())
    shard_dataset(str(tmp_path / "raw"), str(tmp_path / "img"), "image_folder", {"crop": False})
    shards = ShardSet(str(tmp_path / "img"))
    sampler = InpaintingSampler(InpaintingDataConfig(mask={"type": "bbox"}))
    seeds = sorted({int(k.split("/")[1]) for k in g.files if k.startswith(f"{names[0]}/")})
    assert len(names) == 3 and len(seeds) == 3
    for i in range(len(shards)):
        key, data = shards.read(i)
        for seed in seeds:
            out = sampler.train({**data, "__key__": key}, np.random.default_rng(seed))
            want_gt = cv2.imdecode(g[f"{key}/{seed}/gt"], cv2.IMREAD_COLOR)[:, :, ::-1]  # BGR PNG -> RGB
            assert (out["mask_bbox"] == g[f"{key}/{seed}/mask_bbox"]).all(), (key, seed)
            assert (out["mask"][:, :, 0] == g[f"{key}/{seed}/mask"]).all(), (key, seed)
            assert (out["gt"] == want_gt).all(), (key, seed)
