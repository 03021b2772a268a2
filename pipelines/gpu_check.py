"""``make gpu-check``: the checks that need a GPU, in one command that writes one JSON file.

Run it whenever a CUDA machine is at hand (about 8 minutes on one GPU); everything else in the
project is tested on CPUs by ``make test``. Parts, each a subprocess so one failure does not hide
the others:

* ``gpu_tests``: the tests marked ``gpu`` (the batched GPU degradation path against the CPU
  path, torch JPEG on CUDA, CUDA forward of the deformable convolution), which skip without CUDA.
* ``family_steps``: every family's end-to-end test (shards -> Ray Data -> TorchTrainer ->
  checkpoint -> eval -> infer) with ``RESTORAY_TEST_GPU=1``: the tests' configs then ask for one
  GPU worker (NCCL process group, DDP with one worker) and bf16 autocast (``train.amp: bf16``),
  so each family trains a few steps of its smallest config on the GPU.
* ``bench_degradations``, ``bench_train``, ``bench_ingest``, ``bench_liif``, ``bench_glean``: the
  ``--quick`` records of those benches; their ``gpu`` / ``cuda`` records appear only here (LIIF
  x30 on a 256 px input, GLEAN 64 -> 1024).

Output: ``{"machine", "gpu", "torch", "seconds", "parts": {name: {"ok", "seconds", "passed",
"failed", "skipped", "failures": [test ids], "records": [...]}}}``; exit 1 when a part failed.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FAMILY_TESTS = sorted(glob.glob(str(REPO / "tests" / "pipelines" / "test_*family*.py")))


def junit_counts(path: str) -> dict[str, Any]:
    """passed / failed / skipped counts and failing test ids of a pytest ``--junitxml`` file."""
    root = ET.parse(path).getroot()
    cases = root.iter("testcase")
    out = {"passed": 0, "failed": 0, "skipped": 0, "failures": []}
    for case in cases:
        tid = f"{case.get('classname')}::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            out["failed"] += 1
            out["failures"].append(tid)
        elif case.find("skipped") is not None:
            out["skipped"] += 1
        else:
            out["passed"] += 1
    return out


def _pytest(args: list[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".xml", delete=False) as f:
        xml = f.name
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    part = {"seconds": round(time.time() - t0, 1), **junit_counts(xml)}
    part["ok"] = proc.returncode == 0
    if not part["ok"]:
        part["tail"] = (proc.stdout + proc.stderr)[-3000:]
    os.unlink(xml)
    return part


def _bench(what: str, timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, f"{what}.json")
        t0 = time.time()
        proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "bench", what, "--quick", "--json", out],
                              cwd=REPO, capture_output=True, text=True, timeout=timeout)
        part = {"ok": proc.returncode == 0, "seconds": round(time.time() - t0, 1)}
        part["records"] = json.loads(Path(out).read_text()) if part["ok"] else []
        if not part["ok"]:
            part["tail"] = (proc.stdout + proc.stderr)[-3000:]
    return part


def gpu_check(parts: list[str]) -> dict[str, Any]:
    import torch

    from pipelines.bench import machine

    env = dict(os.environ)
    t0 = time.time()
    report: dict[str, Any] = {"machine": machine(), "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
                              "parts": {}}
    runs = {
        "gpu_tests": lambda: _pytest(["-m", "gpu", "tests"], env, 600),
        "family_steps": lambda: _pytest(FAMILY_TESTS, {**env, "RESTORAY_TEST_GPU": "1"}, 1200),
        "bench_degradations": lambda: _bench("degradations", 600),
        "bench_train": lambda: _bench("train", 600),
        "bench_ingest": lambda: _bench("ingest", 600),
        "bench_liif": lambda: _bench("liif", 600),
        "bench_glean": lambda: _bench("glean", 600),
    }
    for name in parts:
        print(f"[restoray] gpu-check: {name} ...", flush=True)
        try:
            report["parts"][name] = runs[name]()
        except subprocess.TimeoutExpired as exc:
            report["parts"][name] = {"ok": False, "seconds": exc.timeout, "tail": "timed out"}
        p = report["parts"][name]
        print(f"[restoray] gpu-check: {name} {'ok' if p['ok'] else 'FAILED'} in {p['seconds']:.0f} s", flush=True)
    report["seconds"] = round(time.time() - t0, 1)
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="gpu-check", description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", dest="json_out", default="gpu_check.json")
    ap.add_argument("--parts", default="gpu_tests,family_steps,bench_degradations,bench_train,bench_ingest,bench_liif,bench_glean")
    args = ap.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("gpu-check: error: no CUDA device here (torch.cuda.is_available() is False); run it on a GPU machine",
              file=sys.stderr)
        return 2
    report = gpu_check([p for p in args.parts.split(",") if p])
    Path(args.json_out).write_text(json.dumps(report, indent=1))
    print(f"[restoray] gpu-check: wrote {args.json_out}", flush=True)
    return 0 if all(p["ok"] for p in report["parts"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
