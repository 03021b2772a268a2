"""``restoray bench ingest`` on a handful of images: every record is there and the read paths
behave as the comparison assumes (one request per shard, one per image)."""

from __future__ import annotations

from pipelines.bench_ingest import bench_ingest


def test_bench_ingest_small(s3_endpoint):
    records = bench_ingest(quick=True, n=12, rss_sizes=(20, 40))
    reads = {(r["source"], r["path"]): r for r in records if "path" in r}
    assert set(reads) == {(s, p) for s in ("local", "s3") for p in ("shards", "shards_qoi", "folder")}
    assert all(r["samples"] == 12 and r["samples_per_s"] > 0 for r in reads.values())
    # the stream reads a shard with one GET (plus pyarrow's HEAD), a folder loader GETs every image
    assert reads[("s3", "shards")]["requests"] <= 3 and reads[("s3", "folder")]["requests"] == 12
    assert reads[("s3", "shards_qoi")]["requests"] <= 3 and reads[("s3", "shards_qoi")]["target"] == 10.0
    assert reads[("s3", "shards")]["speedup"] == round(
        reads[("s3", "shards")]["samples_per_s"] / reads[("s3", "folder")]["samples_per_s"], 2)
    # the idle-core figure adds the waits the requests imply: 12 x latency for the folder, ~1 for the shard
    folder = reads[("s3", "folder")]
    assert folder["idle_core_samples_per_s"] == round(1000 / (folder["cpu_ms_per_sample"] + 20.0), 2)
    assert reads[("s3", "shards")]["idle_core_speedup"] > 1
    assert reads[("s3", "shards")]["target"] == 10.0 and reads[("local", "shards")]["target"] == 1.0
    rss = [r for r in records if r.get("part") == "shard_job_rss"]
    assert [r["images"] for r in rss] == [20, 40] and [r["samples"] for r in rss] == [20, 40]
    assert all(r["peak_rss_mb"] > 0 for r in rss)
