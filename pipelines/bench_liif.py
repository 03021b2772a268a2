"""``restoray bench liif``: peak memory and time of LIIF x30 inference, query-chunked and whole.

LIIF decodes every output pixel as an MLP query on features gathered from its four nearest LR
cells. Decoded all at once, a 256 px input at x30 is 7680^2 = 59M queries, each holding a
580-wide input and 256-wide hidden activations for four ensemble branches: far more than any
accelerator has. ``eval_bsize`` (the zoo's 30000) decodes the queries in chunks, so memory is
that of one chunk plus the output.

Each case runs in a fresh process (:func:`pipelines.bench_liif._CHILD`) through the task's own
decode path (``LIIFTask.decode``), model ``configs/sr/liif_edsr_norm_c64b16_g1_1000k_div2k`` with
seeded random weights (memory and time do not depend on the values):

* ``chunked``: the x30 output of an ``lq``-pixel square input with ``eval_bsize`` queries a chunk;
* ``unchunked``: the same, all queries at once, at two smaller inputs that fit;
* ``unchunked_estimate``: what the unchunked ``chunked`` case would need, extrapolated linearly in
  the number of queries from the two measured unchunked runs (not run).

The memory figure is the peak **during inference** above the memory held just before it: on CUDA
``torch.cuda.max_memory_allocated`` minus the allocation before (``memory_measure:
cuda_max_allocated_delta``); on a CPU the peak resident set (``ru_maxrss``) minus the resident set
before (``rss_delta``; tracemalloc does not see torch's allocations). Profiles: ``GPU`` the
256 px x30 case of the brief; ``CPU`` (2 cores cannot decode 59M queries of the zoo MLP in
reasonable time, ~1.6e14 FLOP) a 24 px input at x30 with the zoo network; ``--quick`` a tiny
network for a smoke test. The ``CPU`` profile adds ``chunked_partial``: the brief's 256 px x30
case through the real decode path (features, the whole 7680^2 output allocated) stopped after a
few query chunks: its peak is that of the whole run before the final permute (which copies the
output once more, ``output_mb``), and ``seconds_estimate`` scales its time to all chunks. Records: ``{"case", "lq_size", "scale", "queries", "eval_bsize",
"peak_mb", "memory_measure", "seconds", "device", "machine"}``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from pipelines.bench import machine, save_records

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "sr" / "liif_edsr_norm_c64b16_g1_1000k_div2k.yaml"
SCALE = 30
GPU = {"lq": 256, "chunk": 30000, "unchunked_lq": (32, 48), "overrides": []}
CPU = {"lq": 24, "chunk": 30000, "unchunked_lq": (8, 12), "overrides": [], "partial_lq": 256, "partial_chunks": 4}
QUICK = {"lq": 12, "chunk": 2000, "unchunked_lq": (4, 6),
         "overrides": ["nets.generator.encoder.mid_channels=8", "nets.generator.encoder.num_blocks=1",
                       "nets.generator.imnet.hidden_list=[16]"], "partial_lq": 16, "partial_chunks": 2}

_CHILD = r"""
import json, resource, sys, time, torch
from pipelines.config import load_experiment
from pipelines.train_job import build_nets
from trainers.tasks.liif import LIIFTask, target_size
cfg_path, overrides, lq_side, scale, chunk, max_chunks = sys.argv[1], json.loads(sys.argv[2]), *map(int, sys.argv[3:7])
cfg = load_experiment(cfg_path, overrides, check_paths=False)
dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
torch.manual_seed(0)
net = build_nets(cfg)["generator"].eval().to(dev)
net.eval_bsize = chunk or None
task = LIIFTask(cfg.task)
class _Enough(Exception):
    pass
calls = [0]
if max_chunks:  # a partial run: the real decode path, stopped after max_chunks query chunks
    query = net.query_rgb
    def counted(*a, **k):
        if calls[0] == max_chunks:
            raise _Enough
        calls[0] += 1
        return query(*a, **k)
    net.query_rgb = counted
lq = torch.rand(1, 3, lq_side, lq_side, generator=torch.Generator().manual_seed(1)).to(dev)
size = target_size((lq_side, lq_side), scale)
def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20
if dev.type == "cuda":
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); before = torch.cuda.memory_allocated() / 2**20
else:
    before = rss_mb()
t0 = time.perf_counter()
out = None
with torch.no_grad():
    try:
        out = task.decode(net, lq, size)
    except _Enough:
        pass
if dev.type == "cuda":
    torch.cuda.synchronize()
    peak, measure = torch.cuda.max_memory_allocated() / 2**20 - before, "cuda_max_allocated_delta"
else:
    peak, measure = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before, "rss_delta"
print(json.dumps({"seconds": time.perf_counter() - t0, "peak_mb": max(peak, 0.0), "memory_measure": measure,
                  "queries": size[0] * size[1], "out_shape": list(out.shape) if out is not None else None,
                  "chunks_run": calls[0], "device": dev.type}))
"""


def _run(lq: int, chunk: int, overrides: list[str], max_chunks: int = 0) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(CONFIG), json.dumps(overrides), str(lq), str(SCALE),
                           str(chunk), str(max_chunks)], cwd=REPO, capture_output=True, text=True)
    if proc.returncode:
        tail = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else str(proc.returncode)
        raise RuntimeError(f"bench liif child failed: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _record(case: str, lq: int, chunk: int | None, r: dict[str, Any]) -> dict[str, Any]:
    return {"case": case, "lq_size": lq, "scale": SCALE, "queries": r["queries"], "eval_bsize": chunk,
            "peak_mb": round(r["peak_mb"], 1), "memory_measure": r["memory_measure"],
            "seconds": round(r["seconds"], 3) if r["seconds"] is not None else None, "device": r["device"],
            "machine": machine()}


def bench_liif(quick: bool = False, profile: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The chunked run, two unchunked runs and the extrapolated unchunked figure; ``profile``
    (shaped as ``GPU``) overrides the default (``GPU`` with CUDA, ``CPU`` without, ``QUICK``)."""
    import torch

    p = profile or (QUICK if quick else GPU if torch.cuda.is_available() else CPU)
    records = [_record("chunked", p["lq"], p["chunk"], _run(p["lq"], p["chunk"], p["overrides"]))]
    for lq in p["unchunked_lq"]:
        records.append(_record("unchunked", lq, None, _run(lq, 0, p["overrides"])))
    (q1, m1), (q2, m2) = [(r["queries"], r["peak_mb"]) for r in records[1:3]]
    slope = (m2 - m1) / (q2 - q1)
    target = records[0]["queries"]
    estimate = {"queries": target, "peak_mb": m2 + slope * (target - q2), "seconds": None,
                "memory_measure": records[1]["memory_measure"], "device": records[1]["device"]}
    records.append(_record("unchunked_estimate", p["lq"], None, estimate) | {"bytes_per_query": round(slope * 2**20)})
    if p.get("partial_lq"):  # the brief's 256 px x30 case on a CPU: a few chunks of the real run
        lq, k = p["partial_lq"], p["partial_chunks"]
        r = _run(lq, p["chunk"], p["overrides"], max_chunks=k)
        total = -(-r["queries"] // p["chunk"])
        rec = _record("chunked_partial", lq, p["chunk"], r)
        rec.update(chunks_run=r["chunks_run"], chunks_total=total,
                   # from the recorded (rounded) time, so the record agrees with itself
                   seconds_estimate=round(rec["seconds"] / max(r["chunks_run"], 1) * total, 1),
                   output_mb=round(r["queries"] * 3 * 4 / 2**20, 1))
        # torch.empty's pages count in the RSS only once written: the chunks run so far wrote
        # their share; the rest of the output and the final permute's copy come on top
        rec["peak_mb_whole_run_estimate"] = round(
            rec["peak_mb"] + rec["output_mb"] * (2 - rec["chunks_run"] / total), 1)
        rec["unchunked_peak_mb_estimate"] = round(m2 + slope * (r["queries"] - q2), 1)
        records.append(rec)
    for r in records:
        if r["case"] == "chunked_partial":
            print(f"[bench liif] chunked_partial: {r['lq_size']} px x{SCALE} ({r['queries']} queries): "
                  f"{r['chunks_run']} of {r['chunks_total']} chunks: peak {r['peak_mb']:.0f} MB ({r['memory_measure']}), "
                  f"{r['seconds']:.1f} s -> whole run ~{r['peak_mb_whole_run_estimate']:.0f} MB with the rest of the "
                  f"{r['output_mb']:.0f} MB output and its permuted copy, ~{r['seconds_estimate']:.0f} s; unchunked "
                  f"~{r['unchunked_peak_mb_estimate'] / 1024:.0f} GB (extrapolated)", flush=True)
            continue
        print(f"[bench liif] {r['case']}: {r['lq_size']} px x{SCALE} ({r['queries']} queries, eval_bsize "
              f"{r['eval_bsize'] or '-'}): peak {r['peak_mb']:.0f} MB ({r['memory_measure']})"
              + (f", {r['seconds']:.2f} s" if r["seconds"] is not None else " (extrapolated, not run)"), flush=True)
    return records


def write_bench_liif(out: str, quick: bool = False) -> list[dict[str, Any]]:
    return save_records(out, bench_liif(quick=quick))
