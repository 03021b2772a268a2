"""Goldens for the sliding-window frame selection: mmedit 0.16.1's ``GenerateFrameIndices`` and
``GenerateFrameIndiceswithPadding`` on index lists.

Run from the repo root with the reference interpreter (see ``mmedit_shim``)::

    /work/mmedit-venv/bin/python tests/golden/make_vsr_window_goldens.py

Writes ``tests/data/golden/vsr_window.json``:

* ``padding``: for clips of 7 and 10 frames, windows of 3, 5 and 7, each mode, every frame: the
  window's frame indices (``{"<mode>/<total>/<num>": [[...] per frame]}``).
* ``random``: ``GenerateFrameIndices(interval_list, frames_per_clip = total - 1)`` after seeding
  ``np.random`` with each seed, for a given frame key: ``{"<seed>/<total>/<num>/<intervals>/<key>": [...]}``.

``tests/trainers/test_vsr_window.py`` compares ``padded_indices`` and ``window_indices`` (with a
``RandomState``-backed generator and the same key) against them.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import mmedit_shim  # noqa: E402

mmedit_shim.install()

from mmedit.datasets.pipelines import GenerateFrameIndices, GenerateFrameIndiceswithPadding  # noqa: E402

OUT = "tests/data/golden/vsr_window.json"


def _indices(paths: list[str]) -> list[int]:
    return [int(os.path.basename(p)[:8]) for p in paths]


def main() -> None:
    out: dict = {"padding": {}, "random": {}}
    for mode in ("replicate", "reflection", "reflection_circle", "circle"):
        step = GenerateFrameIndiceswithPadding(mode)
        for total in (7, 10):
            for num in (3, 5, 7):
                rows = []
                for t in range(total):
                    res = step(dict(key=os.path.join("clip", f"{t:08d}"), max_frame_num=total, num_input_frames=num,
                                    lq_path="lq", gt_path="gt"))
                    rows.append(_indices(res["lq_path"]))
                out["padding"][f"{mode}/{total}/{num}"] = rows
    for seed in range(6):
        for total, num, intervals, key in ((10, 5, [1], 0), (10, 5, [1], 9), (10, 5, [1, 2], 5), (12, 3, [1, 2, 3], 1),
                                           (100, 5, [1], 99)):
            np.random.seed(seed)
            step = GenerateFrameIndices(intervals, frames_per_clip=total - 1)
            res = step(dict(key=os.path.join("clip", f"{key:08d}"), max_frame_num=total, num_input_frames=num,
                            lq_path="lq", gt_path="gt"))
            name = f"{seed}/{total}/{num}/{','.join(map(str, intervals))}/{key}"
            out["random"][name] = _indices(res["lq_path"])
    with open(OUT, "w") as f:
        json.dump(out, f, indent=None, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
