"""``restoray bench ingest``: the data path against the way MMEditing/BasicSR read data.

What is timed, per sample, on one core (OpenCV and torch limited to one thread, one process):
read the bytes, decode the PNG, cut a random 128 px patch -- the work every image family's
training sampler starts with. Each path decodes with its own tool's decoder: the shard path with
``preprocessing.schema.decode_image`` (libspng where its wheel exists, as the samplers do), the
folder path with ``cv2.imdecode`` (BasicSR's and mmcv's default). Two ways of reading the same images:

* ``shards``: restoray's stream read (``pipelines.stream.read_shard``, the function the Ray Data
  read tasks run): one request per shard tar, samples in the shard's epoch order. ``shards_qoi``:
  the same with the shard job's ``image_codec: qoi`` (QOI members, decoded 3.5-5x faster).
* ``folder``: a PNG folder read by a ``torch.utils.data.DataLoader`` (``num_workers=0``, shuffled)
  over a map-style dataset that opens one file per sample -- what MMEditing's
  ``SRFolderDataset`` and BasicSR's ``PairedImageDataset`` do. On object storage that is one
  GET per image (``boto3 get_object``), which is how a folder-scanning loader meets S3.

Sources: ``local`` (a folder and shards on this machine's disk) and ``s3``: a moto S3 server on
loopback (started by the bench unless ``AWS_ENDPOINT_URL`` names one) behind a proxy that adds
``latency_ms`` to every request the client sends, as a cloud store's first-byte latency does.
Figures are samples/s of wall time (reading waits count: they are the point) with the process
CPU time per sample beside them; on a shared machine the wall figure is what to compare within
one record pair, which runs back to back.

A second part measures the peak RSS of the shard job (plan, build every shard, commit the
manifest: the same functions the Ray tasks run, here in one process) on ``n`` small generated
images, in a fresh subprocess per size, to show it stays flat as the input grows.

Records: ``{"source", "latency_ms", "image_size", "path", "samples", "samples_per_s",
"cpu_ms_per_sample", "requests", "idle_core_samples_per_s", "speedup", "idle_core_speedup", "target",
"meets_target", "machine"}`` (see :func:`_pair_speedups`) and ``{"part": "shard_job_rss",
"images", "peak_rss_mb", ...}``.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import cv2
import numpy as np

from pipelines.bench import machine, save_records

PATCH = 128
TARGETS = {"local": 1.0, "s3": 10.0}  # shards / folder, from the issue
CODECS = {"shards": "png", "shards_qoi": "qoi"}  # record path -> the shard job's image_codec


# ----------------------------------------------------------------------------- data


def photo_images(n: int, size: int, seed: int = 0) -> Iterator[np.ndarray]:
    """``n`` RGB ``size``-px crops of scikit-image's bundled photos (real textures, so PNG
    decoding costs what it costs on photographs)."""
    from skimage import data as skdata

    photos = [getattr(skdata, name)() for name in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")]
    photos = [p if p.ndim == 3 else np.stack([p] * 3, -1) for p in photos]
    rng = np.random.default_rng(seed)
    for i in range(n):
        photo = photos[i % len(photos)]
        scale = max(1.0, (size + 1) / min(photo.shape[:2]))
        if scale > 1:
            photo = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        y = int(rng.integers(0, photo.shape[0] - size + 1))
        x = int(rng.integers(0, photo.shape[1] - size + 1))
        yield np.ascontiguousarray(photo[y:y + size, x:x + size, :3])


def write_folder(folder: Path, n: int, size: int) -> list[Path]:
    """A PNG folder (compression level 3, as the zoo's sub-image scripts write)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, img in enumerate(photo_images(n, size)):
        path = folder / f"{i:06d}.png"
        cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 3])
        paths.append(path)
    return paths


def shard_folder(src: str, dest: str, items_per_shard: int, codec: str = "png") -> dict:
    """The shard job's own steps, serially in this process (no Ray: the bench times reading)."""
    from preprocessing.shards import build_shard, commit_manifest, plan_job

    plan = plan_job(src, dest, "image_folder", {"crop": False, "image_codec": codec}, items_per_shard)
    results = [build_shard(s, plan.source_uri, plan.dest_uri, plan.adapter, plan.params) for s in plan.shards]
    return commit_manifest(plan.dest_uri, results, adapter=plan.adapter, params=plan.params,
                           source_uri=plan.source_uri, source_fingerprint=plan.fingerprint,
                           expected_shards=len(plan.shards), version=plan.version)


# ----------------------------------------------------------------------------- the two read paths


def crop(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    y = int(rng.integers(0, img.shape[0] - PATCH + 1))
    x = int(rng.integers(0, img.shape[1] - PATCH + 1))
    return img[y:y + PATCH, x:x + PATCH]


def decode_and_crop(data: bytes, rng: np.random.Generator) -> np.ndarray:
    """The folder loaders' decode: ``cv2.imdecode`` to BGR, as BasicSR's ``imfrombytes`` and
    mmcv's default ``cv2`` backend do."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError("cannot decode image bytes")
    return crop(img, rng)


def read_shards(uri: str, manifest: dict, rng: np.random.Generator) -> int:
    """Every sample of every shard through the stream's read task, decoded and cropped."""
    from pipelines.fs import join
    from pipelines.stream import read_shard
    from preprocessing.schema import GT, decode_image, image_bytes

    n = 0
    for shard in manifest["shards"]:
        task = {"url": join(uri, shard["name"]), "epoch": 0, "seed": 0, "skip": 0, "take": shard["num_samples"]}
        for row in read_shard(task):
            crop(decode_image(image_bytes(dict(zip(row["names"], row["blobs"])), GT)), rng)  # the samplers' decoder
            n += 1
    return n


class FolderDataset:
    """A map-style dataset over image files, one read per item (MMEditing/BasicSR style)."""

    def __init__(self, names: list[str], read: Callable[[str], bytes], seed: int = 0):
        self.names, self.read, self.rng = names, read, np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> np.ndarray:
        return decode_and_crop(self.read(self.names[i]), self.rng)


def read_folder(names: list[str], read: Callable[[str], bytes]) -> int:
    import torch

    loader = torch.utils.data.DataLoader(FolderDataset(names, read), batch_size=None, shuffle=True, num_workers=0,
                                         generator=torch.Generator().manual_seed(0))
    return sum(1 for _ in loader)


def timed(fn: Callable[[], int]) -> tuple[int, float, float]:
    """(samples, wall s, process CPU s) of one call, OpenCV and torch on one thread."""
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    c0, t0 = time.process_time(), time.perf_counter()
    n = fn()
    return n, time.perf_counter() - t0, time.process_time() - c0


# ----------------------------------------------------------------------------- S3 side


class LatencyProxy:
    """A TCP relay on loopback that waits ``latency`` seconds before forwarding each chunk a
    client sends: every HTTP request pays the delay once (its headers arrive in one send), so a
    per-object reader pays it per image and a shard reader per shard. Counts requests."""

    def __init__(self, target_port: int, latency: float):
        self.target, self.latency, self.requests = target_port, latency, 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._relay, args=(client, upstream), daemon=True).start()

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        try:
            while True:
                ready, _, _ = select.select([client, upstream], [], [], 30)
                if not ready:
                    return
                for sock in ready:
                    data = sock.recv(1 << 16)
                    if not data:
                        return
                    if sock is client:
                        if data[:4] in (b"GET ", b"PUT ", b"HEAD", b"POST", b"DELE"):
                            self.requests += 1
                        time.sleep(self.latency)
                        upstream.sendall(data)
                    else:
                        client.sendall(data)
        except OSError:
            return
        finally:
            client.close()
            upstream.close()

    def close(self) -> None:
        self._stop = True
        self.server.close()


def _moto_server() -> tuple[subprocess.Popen, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-p", str(port), "-H", "127.0.0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto server did not start")


def _s3_records(folder: Path, shard_sets: dict[str, tuple[Path, dict]], latency_ms: float, size: int) -> list[dict]:
    """Upload the folder and the shards to S3, then time both paths through the latency proxy."""
    import boto3

    env_before = dict(os.environ)
    proc = None
    try:
        if os.environ.get("AWS_ENDPOINT_URL"):
            port = int(os.environ["AWS_ENDPOINT_URL"].rsplit(":", 1)[1].strip("/"))
        else:
            try:
                proc, port = _moto_server()
            except (RuntimeError, OSError) as exc:
                print(f"[restoray] bench ingest: no S3 server ({exc}); s3 records skipped", flush=True)
                return []
            os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                              AWS_REGION="us-east-1")
        direct = f"http://127.0.0.1:{port}"
        s3 = boto3.client("s3", endpoint_url=direct)
        bucket = f"restoray-bench-ingest-{os.getpid()}"
        s3.create_bucket(Bucket=bucket)
        for p in sorted(folder.iterdir()):
            s3.upload_file(str(p), bucket, f"folder/{p.name}")
        for path, (shards, _m) in shard_sets.items():
            for p in sorted(shards.iterdir()):
                if p.is_file():
                    s3.upload_file(str(p), bucket, f"{path}/{p.name}")
        proxy = LatencyProxy(port, latency_ms / 1000)
        os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{proxy.port}"
        try:
            via = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
            names = [f"folder/{p.name}" for p in sorted(folder.iterdir())]

            def get(key: str) -> bytes:
                return via.get_object(Bucket=bucket, Key=key)["Body"].read()

            get(names[0])  # connection set up before timing
            # and the shard reader's S3 filesystem (its client and credential chain are made on first use)
            from pipelines.fs import join
            from pipelines.stream import read_shard

            first = shard_sets["shards"][1]["shards"][0]
            next(iter(read_shard({"url": join(f"s3://{bucket}/shards", first["name"]), "epoch": 0, "seed": 0,
                                  "skip": 0, "take": 1})))
            records = []
            runs = [(path, lambda path=path, m=m: read_shards(f"s3://{bucket}/{path}", m, np.random.default_rng(0)))
                    for path, (_s, m) in shard_sets.items()]
            for path, fn in runs + [("folder", lambda: read_folder(names, get))]:
                before = proxy.requests
                n, wall, cpu = timed(fn)
                records.append(_record("s3", latency_ms, size, path, n, wall, cpu, proxy.requests - before))
            return records
        finally:
            proxy.close()
    finally:
        os.environ.clear()
        os.environ.update(env_before)
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)


def _record(source: str, latency_ms: float, size: int, path: str, n: int, wall: float, cpu: float,
            requests: int | None) -> dict[str, Any]:
    rate = n / wall
    print(f"[restoray] ingest {source} {size}px {path}: {rate:.1f} samples/s ({1000 * cpu / n:.2f} ms CPU/sample"
          + (f", {requests} requests" if requests is not None else "") + ")", flush=True)
    return {"source": source, "latency_ms": latency_ms, "image_size": size, "path": path, "samples": n,
            "samples_per_s": round(rate, 2), "cpu_ms_per_sample": round(1000 * cpu / n, 3), "requests": requests}


def _pair_speedups(records: list[dict]) -> None:
    """``speedup``: shards over folder, measured wall rates. ``idle_core_speedup``: the same from
    each path's CPU time per sample plus the latency its requests wait (``latency_ms`` x requests
    per sample) -- what one idle core gives; on a loaded shared machine the wall rates mostly
    measure the other work (CPU time does not: it counts this process only)."""
    by = {(r["source"], r["image_size"], r["path"]): r for r in records}
    for r in records:
        wait = r["latency_ms"] * (r["requests"] or 0) / r["samples"]
        r["idle_core_samples_per_s"] = round(1000 / (r["cpu_ms_per_sample"] + wait), 2)
    for (source, size, path), r in by.items():
        if path.startswith("shards") and (source, size, "folder") in by:
            folder = by[(source, size, "folder")]
            speedup = r["samples_per_s"] / folder["samples_per_s"]
            idle = r["idle_core_samples_per_s"] / folder["idle_core_samples_per_s"]
            r.update(speedup=round(speedup, 2), idle_core_speedup=round(idle, 2), target=TARGETS[source],
                     meets_target=speedup >= TARGETS[source])


# ----------------------------------------------------------------------------- shard-job memory

_RSS_CHILD = """
import json, resource, sys
from pathlib import Path
sys.path[:0] = [{root!r}]
from pipelines.bench_ingest import shard_folder
m = shard_folder(sys.argv[1], sys.argv[2], 256)
print(json.dumps({{"samples": m["num_samples"], "shards": len(m["shards"]),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def shard_job_rss(sizes: tuple[int, ...], image_size: int = 64) -> list[dict[str, Any]]:
    """Peak RSS of the shard job's steps on ``n`` generated images, each size in a fresh process."""
    root = str(Path(__file__).resolve().parents[1])
    records = []
    with tempfile.TemporaryDirectory(prefix="restoray-bench-rss-") as tmp:
        src = Path(tmp) / "images"
        written = 0
        for n in sizes:
            src.mkdir(exist_ok=True)
            for i, img in enumerate(photo_images(n - written, image_size, seed=written)):
                cv2.imwrite(str(src / f"{written + i:06d}.png"), img)
            written = n
            out = subprocess.run([sys.executable, "-c", _RSS_CHILD.format(root=root), str(src), str(Path(tmp) / f"s{n}")],
                                 capture_output=True, text=True, check=True)
            rec = json.loads(out.stdout.strip().splitlines()[-1])
            records.append({"part": "shard_job_rss", "images": n, "image_size": image_size, **rec,
                            "peak_rss_mb": round(rec["peak_rss_mb"], 1)})
            print(f"[restoray] shard job on {n} images of {image_size} px: peak RSS {rec['peak_rss_mb']:.0f} MB",
                  flush=True)
    return records


# ----------------------------------------------------------------------------- entry point


def bench_ingest(quick: bool = False, latency_ms: float = 20.0, n: int | None = None,
                 rss_sizes: tuple[int, ...] | None = None) -> list[dict[str, Any]]:
    import pipelines.stream  # noqa: F401  (Ray Data's import, ~1 CPU-s, is not the read path's cost)

    where = machine()
    n = n or (48 if quick else 400)
    sizes = (256,) if quick else (480, 256)
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="restoray-bench-ingest-") as tmp:
        for size in sizes:
            folder = Path(tmp) / f"png{size}"
            paths = write_folder(folder, n, size)
            sets = {path: (Path(tmp) / f"{path}{size}", codec) for path, codec in CODECS.items()}
            sets = {path: (d, shard_folder(str(folder), str(d), 64, codec)) for path, (d, codec) in sets.items()}

            def from_disk(name: str) -> bytes:
                with open(name, "rb") as f:
                    return f.read()

            runs = [(path, lambda d=d, m=m: read_shards(str(d), m, np.random.default_rng(0))) for path, (d, m) in sets.items()]
            for path, fn in runs + [("folder", lambda: read_folder([str(p) for p in paths], from_disk))]:
                records.append(_record("local", 0.0, size, path, *timed(fn), None))
            records += _s3_records(folder, sets, latency_ms, size)
    _pair_speedups(records)
    for r in records:
        r["machine"] = where
    records += [dict(r, machine=where) for r in shard_job_rss(rss_sizes or ((200, 1000) if quick else (1000, 10000)))]
    return records


def write_bench_ingest(out: str, quick: bool = False) -> list[dict[str, Any]]:
    return save_records(out, bench_ingest(quick=quick))
