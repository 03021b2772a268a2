"""MLflow logging for rank 0 of the train loop.

Uses ``MlflowClient`` against an explicit, absolute tracking URI and a run id
created by the driver, instead of mlflow's global "active run": Ray workers
change directory and may be on other machines, so nothing may depend on the
worker's cwd or process-global state.
"""

from __future__ import annotations

import time

import numpy as np
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient


class RunLogger:
    def __init__(self, tracking_uri: str, run_id: str):
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.run_id = run_id

    def metrics(self, values: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in values.items()]
        self.client.log_batch(self.run_id, metrics=batch, synchronous=True)

    def image(self, image: np.ndarray, artifact_file: str) -> None:
        self.client.log_image(self.run_id, image, artifact_file=artifact_file)
