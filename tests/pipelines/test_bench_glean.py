"""``restoray bench glean --quick``: the tiny GLEAN's inference record, through the CLI."""

import json
import subprocess
import sys

from conftest import REPO


def test_bench_glean_quick_writes_a_record(tmp_path):
    out = tmp_path / "glean.json"
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "bench", "glean", "--quick", "--json", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    (record,) = json.loads(out.read_text())
    assert record["case"] == "glean_inference" and (record["in_size"], record["out_size"]) == (16, 64)
    assert record["value"] > 0 and record["peak_mib"] > 0 and record["unit"] == "s/image"
    assert record["params"] > 0 and record["over_8gib"] is False
    assert "GLEAN 16 -> 64" in done.stdout
