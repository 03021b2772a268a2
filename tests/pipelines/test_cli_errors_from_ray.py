"""An error raised inside Ray ends the command with one closing line naming the root cause."""

from __future__ import annotations

import pytest

from pipelines.cli import ray_failure_line


def test_root_cause_of_a_failed_ray_task(ray_session):
    ray = ray_session

    @ray.remote(num_cpus=0.1)
    def decode():
        raise ValueError("shard-000003.tar: sample 0042: cannot decode image bytes")

    with pytest.raises(Exception) as info:
        ray.get(decode.remote())
    assert ray_failure_line(info.value) == "ValueError: shard-000003.tar: sample 0042: cannot decode image bytes"


def test_errors_from_elsewhere_are_left_alone():
    try:
        raise KeyError("x")
    except KeyError as exc:
        assert ray_failure_line(exc) is None
