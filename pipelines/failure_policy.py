"""Ray Train's failure policy for restoray's runs (a module of its own: Ray Train's controller
process unpickles the policy, and this keeps torch, MLflow and the rest of the train job out of
that process's imports)."""

from __future__ import annotations

import re

from ray.train.v2._internal.execution.failure_handling import DefaultFailurePolicy, FailureDecision

# The closing line of a damaged shard (pipelines.stream) or of storage given up on (preprocessing.storage)
DATA_ERROR = re.compile(r"(?:CorruptShardError|StorageError): ([^\n]+)")


class DataErrorsAreFinal(DefaultFailurePolicy):
    """Ray Train's failure policy, except that a damaged shard or a storage endpoint given up on
    ends the run at once: restarting the worker group re-reads the same bytes from the same
    checkpoint and fails the same way, so ``train.max_failures`` restarts would only spend
    minutes (and the restart budget meant for lost nodes) before the same closing line."""

    def make_decision(self, training_failed_error):
        failures = getattr(training_failed_error, "worker_failures", None) or {}
        if any(DATA_ERROR.search(str(error)) for error in failures.values()):
            return FailureDecision.RAISE
        return super().make_decision(training_failed_error)
