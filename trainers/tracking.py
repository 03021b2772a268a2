"""MLflow logging for rank 0 of the train loop.

Uses ``MlflowClient`` against an explicit, absolute tracking URI and a run id
created by the driver, instead of mlflow's global "active run": Ray workers
change directory and may be on other machines, so nothing may depend on the
worker's cwd or process-global state.

Tracking must never stop training. Metrics and images are queued and sent by a background
thread (previews best effort, one try each); when the server does not answer, the thread keeps the metrics (up to
``MAX_PENDING`` values, the oldest dropped beyond) and retries with a growing pause, and the
log says so once when the gap starts and once when it ends -- not once per step. At the end
of training :meth:`RunLogger.close` gives the queue ``flush_s`` seconds to drain and reports
what could not be sent.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

import numpy as np
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

MAX_PENDING = 200_000
_QUICK = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def _say(message: str) -> None:
    print(message, file=sys.__stdout__, flush=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


class RunLogger:
    """Rank 0's metrics and images for the driver's MLflow run, sent in the background.

    Args:
        tracking_uri: Absolute MLflow tracking URI.
        run_id: The run the driver created.
        flush_s: How long :meth:`close` waits for queued metrics when the server is away.
        max_pause_s: Longest pause between retries while the server is away.
    """

    def __init__(self, tracking_uri: str, run_id: str, flush_s: float = 60.0, max_pause_s: float = 10.0):
        if tracking_uri.startswith(("http://", "https://")):
            # One quick attempt per call (this thread does the retrying); MLflow's default
            # retries an unreachable server for minutes. This process is a Ray Train worker:
            # nothing else in it talks to MLflow. A value the user set wins.
            for key, value in _QUICK.items():
                os.environ.setdefault(key, value)
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.uri, self.run_id = tracking_uri, run_id
        self.flush_s, self.max_pause_s = flush_s, max_pause_s
        self._metrics: list[Metric] = []
        self._images: list[tuple[np.ndarray, str]] = []
        self._dropped = 0
        self._lost_images = 0
        self._down_since: float | None = None
        self._lock = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="restoray-mlflow", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- loop side (never blocks)

    def metrics(self, values: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        with self._lock:
            self._metrics.extend(Metric(k, float(v), now, step) for k, v in values.items())
            if len(self._metrics) > MAX_PENDING:
                self._dropped += len(self._metrics) - MAX_PENDING
                del self._metrics[: len(self._metrics) - MAX_PENDING]
            self._lock.notify()

    def image(self, image: np.ndarray, artifact_file: str) -> None:
        with self._lock:
            self._images = self._images[-9:] + [(np.array(image, copy=True), artifact_file)]
            self._lock.notify()

    def close(self) -> None:
        """Send what is queued (waiting up to ``flush_s`` while the server is away), then stop."""
        with self._lock:
            self._closing = True
            self._lock.notify()
        self._thread.join(self.flush_s + 15)
        with self._lock:
            left = len(self._metrics)
            steps = sorted({m.step for m in self._metrics})
        if left or self._dropped or self._lost_images:
            span = f" (steps {steps[0]}-{steps[-1]})" if steps else ""
            _say(f"[restoray] MLflow server {self.uri}: {left + self._dropped} metric values{span} and "
                 f"{self._lost_images} preview images were never sent; checkpoints are unaffected")

    # ---------------------------------------------------------------- background thread

    def _run(self) -> None:
        pause = 0.5
        deadline = None
        while True:
            with self._lock:
                while not (self._metrics or self._images or self._closing):
                    self._lock.wait()
                if self._closing and deadline is None:
                    deadline = time.monotonic() + (self.flush_s if self._down_since is not None else self.flush_s + 30)
                metrics, images = self._metrics[:1000], list(self._images)
            if not metrics and not images:
                return  # closing with nothing left
            try:
                if metrics:
                    self.client.log_batch(self.run_id, metrics=metrics, synchronous=True)
                    with self._lock:
                        del self._metrics[: len(metrics)]
                for image, name in images:
                    with self._lock:
                        self._images = [(i, n) for i, n in self._images if n != name]
                    try:  # previews are best effort: one try each
                        self.client.log_image(self.run_id, image, artifact_file=name)
                    except Exception:  # noqa: BLE001
                        self._lost_images += 1
                        if not metrics:
                            raise
            except Exception as exc:  # noqa: BLE001 - any failure: keep the metrics, say so once, retry
                if self._down_since is None:
                    self._down_since = time.monotonic()
                    step = metrics[0].step if metrics else "?"
                    _say(f"[restoray] MLflow server {self.uri} is not answering ({_first_line(exc)}); "
                         f"training goes on, metrics from step {step} are kept and retried")
                if deadline is not None and time.monotonic() > deadline:
                    return
                time.sleep(pause)
                pause = min(pause * 2, self.max_pause_s)
                continue
            if self._down_since is not None:
                _say(f"[restoray] MLflow server {self.uri} answers again after "
                     f"{time.monotonic() - self._down_since:.0f} s; the kept metrics were sent")
                self._down_since, pause = None, 0.5

    def __getstate__(self) -> dict[str, Any]:  # pragma: no cover - never pickled on purpose
        raise TypeError("RunLogger holds a thread; create one per process")
