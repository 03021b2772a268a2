"""``restoray bench video --quick``: three real inference runs (whole, chunked, short) in their own
processes, with the records the README table is made from."""

import json

from pipelines.cli import main


def test_bench_video_quick_records_peak_memory_per_case(tmp_path, capsys):
    out = tmp_path / "video.json"
    assert main(["bench", "video", "--quick", "--json", str(out)]) == 0
    records = json.loads(out.read_text())
    assert [r["case"] for r in records] == ["whole", "chunked", "short"]
    assert [r["frames"] for r in records] == [16, 16, 4] and records[1]["max_seq_len"] == 4
    assert all(r["peak_rss_mb"] > 100 and r["seconds"] > 0 for r in records)
    assert records[1]["chunked_vs_short"] == round(records[1]["peak_rss_mb"] / records[2]["peak_rss_mb"], 3)
    assert "chunked / short peak RSS" in capsys.readouterr().out
