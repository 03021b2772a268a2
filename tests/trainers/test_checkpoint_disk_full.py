"""A checkpoint written onto a full disk (issue 14, fault 7), without Ray.

The disk is "full" for a real child process: ``RLIMIT_FSIZE`` caps the size of any file it writes,
so the write fails with EFBIG part-way through, as it would with ENOSPC. The old checkpoint in the
folder must still load, no half-written file may be left under the checkpoint's name, and the
error must name the path.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from trainers import checkpoint_io

REPO = Path(__file__).resolve().parents[2]


def _payload(size: int, step: int) -> dict:
    return {"format": checkpoint_io.RESTORAY_FORMAT, "step": step, "samples_seen": step * 8,
            "nets": {"generator": {"w": torch.arange(size, dtype=torch.float32)}}, "ema": {}, "optimizers": {},
            "schedulers": {}}


def test_a_full_disk_keeps_the_last_good_checkpoint_and_names_the_path(tmp_path):
    checkpoint_io.save_training_checkpoint(tmp_path, _payload(1000, 3), {"step": 3})
    script = textwrap.dedent(f"""
        import resource, sys, torch
        sys.path.insert(0, {str(REPO)!r})
        from trainers import checkpoint_io
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
        payload = {{"format": checkpoint_io.RESTORAY_FORMAT, "step": 6, "samples_seen": 48,
                   "nets": {{"generator": {{"w": torch.zeros(200_000)}}}}, "ema": {{}}, "optimizers": {{}},
                   "schedulers": {{}}}}
        try:
            checkpoint_io.save_training_checkpoint({str(tmp_path)!r}, payload, {{"step": 6}})
        except OSError as exc:
            print(exc)
            sys.exit(3)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert f"cannot write checkpoint {tmp_path / checkpoint_io.CHECKPOINT_FILE}" in proc.stdout
    state = checkpoint_io.read_training_checkpoint(tmp_path)  # the last good one, whole
    assert state["step"] == 3 and torch.equal(state["nets"]["generator"]["w"], torch.arange(1000.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == [checkpoint_io.CHECKPOINT_FILE, checkpoint_io.META_FILE]
