"""``restoray bench glean``: seconds and peak memory of one GLEAN 64 -> 1024 inference on the CPU
(every thread) or the GPU, with the full-width zoo network (``glean_ffhq_16x``: 175.5M parameters,
random weights: the time does not depend on them).

The figure is :func:`pipelines.bench.time_prediction` on ``GLEANTask.predict`` (the [-1, 1]
round trip included), best of ``repeats`` after a warm-up; the peak is the process's resident set
on the CPU (weights included: ``weights_mib`` says how much of it they are) or CUDA's allocation
peak. A CPU peak over 8 GiB is flagged in the record (``over_8gib``). ``--quick`` times a tiny
16 -> 64 network (StyleGAN2 widths / 32) instead, as a smoke test. Records:
``{"case", "in_size", "out_size", "params", "weights_mib", "device", "threads", "value", "unit",
"peak_mib", "over_8gib", "machine"}``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipelines.bench import save_records, time_prediction

ZOO_X16 = dict(in_size=64, out_size=1024, style_channels=512)  # glean_ffhq_16x's generator
TINY = dict(in_size=16, out_size=64, style_channels=16, num_mlps=1, rrdb_channels=8, num_rrdbs=1, width_divisor=32)
LIMIT_MIB = 8 * 1024


def bench_glean_inference(arch: dict[str, Any], repeats: int = 1) -> dict[str, Any]:
    """One record: GLEAN ``arch`` (``glean`` arguments) predicting one random ``in_size`` image."""
    import torch

    from trainers.archs import build_arch
    from trainers.tasks.glean import GLEANConfig, GLEANTask

    scale = arch["out_size"] // arch["in_size"]
    task = GLEANTask(GLEANConfig(data={"scale": scale, "gt_size": arch["out_size"]}, gan={"weight": 0.01},
                                 perceptual=None, allow_random_init=True))
    torch.manual_seed(0)
    net = build_arch("glean", **arch)
    params = sum(p.numel() for p in net.parameters())
    image = np.random.default_rng(0).integers(0, 256, (arch["in_size"], arch["in_size"], 3), dtype=np.uint8)
    with torch.inference_mode():
        timing = time_prediction(task, {"generator": net}, {"image": image}, repeats)
    record = {"case": "glean_inference", "in_size": arch["in_size"], "out_size": arch["out_size"], "params": params,
              "weights_mib": round(sum(t.numel() * t.element_size() for t in net.state_dict().values()) / 2**20)}
    record |= timing | {"over_8gib": timing["device"] == "cpu" and timing["peak_mib"] > LIMIT_MIB}
    print(f"[restoray] GLEAN {arch['in_size']} -> {arch['out_size']} ({params / 1e6:.1f}M parameters) on "
          f"{timing['device']} ({timing['threads']} threads): {timing['value']:.2f} s/image, peak {timing['peak_mib']} MiB"
          + (" -- over 8 GiB" if record["over_8gib"] else ""), flush=True)
    return record


def write_bench_glean(out: str, quick: bool = False) -> list[dict[str, Any]]:
    return save_records(out, [bench_glean_inference(TINY if quick else ZOO_X16, repeats=1 if quick else 2)])
