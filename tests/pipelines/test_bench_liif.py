"""``restoray bench liif --quick``: chunked and unchunked x30 LIIF inference in their own processes
(tiny network), and the extrapolated memory of the unchunked large case."""

import json

from pipelines.cli import main


def test_bench_liif_quick_records_memory_and_estimate(tmp_path, capsys):
    out = tmp_path / "liif.json"
    assert main(["bench", "liif", "--quick", "--json", str(out)]) == 0
    records = json.loads(out.read_text())
    assert [r["case"] for r in records] == ["chunked", "unchunked", "unchunked", "unchunked_estimate", "chunked_partial"]
    assert [r["queries"] for r in records] == [360**2, 120**2, 180**2, 360**2, 480**2]  # x30 of 12, 4, 6 px, the estimate, the partial 16 px
    partial = records.pop()
    # the partial run stops after 2 of the 480^2 / 2000 chunks and scales its time to all of them
    assert partial["chunks_run"] == 2 and partial["chunks_total"] == -(-480**2 // 2000)
    assert partial["seconds_estimate"] == round(partial["seconds"] / 2 * partial["chunks_total"], 1)
    assert partial["output_mb"] == round(480**2 * 3 * 4 / 2**20, 1)
    assert records[0]["eval_bsize"] == 2000 and records[1]["eval_bsize"] is None
    assert all(r["peak_mb"] >= 0 and r["memory_measure"] in ("rss_delta", "cuda_max_allocated_delta") for r in records)
    assert all(r["seconds"] > 0 for r in records[:3]) and records[3]["seconds"] is None
    assert records[3]["bytes_per_query"] == round((records[2]["peak_mb"] - records[1]["peak_mb"])
                                                  / (180**2 - 120**2) * 2**20)
    assert "unchunked_estimate" in capsys.readouterr().out
