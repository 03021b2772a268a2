"""Connecting to Ray: a local in-process cluster by default, or an existing one.

``RAY_ADDRESS`` (set by ``ray job submit`` and by users of ``ray://``) wins;
otherwise Ray starts on this machine. Local paths in configs are made absolute
by the driver before anything is shipped to workers, which change directory.
"""

from __future__ import annotations

import logging
import os

import ray


def init_ray(num_cpus: int | None = None) -> None:
    if ray.is_initialized():
        return
    kwargs = {"logging_level": logging.WARNING, "log_to_driver": True}
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], **kwargs)
    else:
        # The dashboard process backs the State API, which Ray Train's placement-group
        # cleaner polls; without it the controller logs errors forever.
        ray.init(num_cpus=num_cpus, **kwargs)
