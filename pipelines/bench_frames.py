"""``restoray bench frames``: inference frames/s of EDVR-M (sliding-window video SR) and CAIN
(frame interpolation) at 180x320, and the share of EDVR's time spent in its deformable
convolutions -- where the plain-torch deformable convolution's cost shows.

Networks: the zoo configs' own (``configs/vsr/edvrm_x4_8x4_600k_reds.yaml``,
``configs/vfi/cain_b5_g1b32_vimeo90k_triplet.yaml``) with seeded random weights (speed does not
depend on the values), in eval mode under ``torch.no_grad``. Inputs: random 180x320 frames, one
window (EDVR: 5 LQ frames -> one 720x1280 frame; CAIN: 2 frames -> the middle one, padded to a
multiple of 128 as its test does) per forward, ``frames`` forwards after one warm-up, on CUDA
when present, else the CPU with torch's default threads. The deformable share is the time inside
every ``ModulatedDeformConv2d`` forward (timed by hooks; CUDA synchronised) over the whole
forward. ``--quick`` uses 32x32 frames and one forward (smoke test). Records: ``{"case", "model",
"lq_size", "frames", "seconds", "frames_per_s", "deform_share", "deform_backend", "device",
"threads", "machine"}``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pipelines.bench import machine, save_records

REPO = Path(__file__).resolve().parents[1]
CASES = {
    "edvr_m": REPO / "configs" / "vsr" / "edvrm_x4_8x4_600k_reds.yaml",
    "cain": REPO / "configs" / "vfi" / "cain_b5_g1b32_vimeo90k_triplet.yaml",
}


def _clock(device):
    import torch

    def now() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()
    return now


def _deform_timer(net, now) -> list[float]:
    """Hooks that add each deformable convolution's forward time to the returned list's one slot."""
    from trainers.archs.deform_conv import ModulatedDeformConv2d

    spent = [0.0]
    for m in net.modules():
        if isinstance(m, ModulatedDeformConv2d):
            m.register_forward_pre_hook(lambda mod, args: setattr(mod, "_t0", now()))
            m.register_forward_hook(lambda mod, args, out: spent.__setitem__(0, spent[0] + now() - mod._t0))
    return spent


def bench_case(case: str, hw: tuple[int, int], frames: int) -> dict[str, Any]:
    import torch

    from pipelines.config import load_experiment
    from pipelines.train_job import build_nets
    from trainers.archs.deform_conv import deform_conv_backend

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    net = build_nets(load_experiment(CASES[case], check_paths=False))["generator"].to(device).eval()
    now = _clock(device)
    spent = _deform_timer(net, now)
    h, w = hw
    if case == "edvr_m":
        x = torch.rand(1, 5, 3, h, w, device=device)
        run = lambda: net(x)  # noqa: E731
    else:
        x = torch.rand(1, 2, 3, h, w, device=device)
        run = lambda: net(x, padding_flag=True)  # noqa: E731
    with torch.no_grad():
        run()  # warm-up
        spent[0] = 0.0
        t0 = now()
        for _ in range(frames):
            run()
        seconds = now() - t0
    return {"case": case, "model": CASES[case].stem, "lq_size": [h, w], "frames": frames,
            "seconds": round(seconds, 3), "frames_per_s": round(frames / seconds, 3),
            "deform_share": round(spent[0] / seconds, 3) if case == "edvr_m" else None,
            "deform_backend": deform_conv_backend() if case == "edvr_m" else None,
            "device": device.type, "threads": torch.get_num_threads(), "machine": machine()}


def bench_frames(quick: bool = False) -> list[dict[str, Any]]:
    hw, frames = ((32, 32), 1) if quick else ((180, 320), 3)
    records = []
    for case in CASES:
        r = bench_case(case, hw, frames)
        share = f", deformable conv {100 * r['deform_share']:.0f}% ({r['deform_backend']})" if r["deform_share"] else ""
        print(f"[bench frames] {r['model']} {hw[0]}x{hw[1]} on {r['device']}: {r['frames_per_s']:.3f} frames/s{share}",
              flush=True)
        records.append(r)
    return records


def write_bench_frames(out: str, quick: bool = False) -> list[dict[str, Any]]:
    return save_records(out, bench_frames(quick=quick))
