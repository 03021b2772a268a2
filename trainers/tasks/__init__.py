"""Model families: one module per family, ``TASKS`` the only registry.

The loop (``trainers/loop.py``) owns what every family shares -- Ray, the stream and its resume
skip, AMP, EMA, gradient clipping and frozen windows (optimizer hooks), the log / validate /
checkpoint cadence and the time budget -- and names no family. A family owns the rest, written
down by the :class:`Task` protocol below. Adding a family is: a module here with its task class
(and its ``Config``, the typed ``task:`` section), a sampler in ``trainers/samplers/`` (the numpy
side that runs in the Ray Data actors), its architectures in ``trainers/archs/``, one line in
``TASKS``, and configs in ``configs/<family>/``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Protocol

import numpy as np
from pydantic import BaseModel
from torch import Tensor, nn
from torch.optim import Optimizer

from trainers.samplers import Sampler
from trainers.tasks.dic import DICTask
from trainers.tasks.glean import GLEANTask
from trainers.tasks.inpainting import InpaintingTask
from trainers.tasks.liif import LIIFTask
from trainers.tasks.matting import MattingTask
from trainers.tasks.sr import SRTask
from trainers.tasks.sr_gan import SRGANTask
from trainers.tasks.ttsr import TTSRTask
from trainers.tasks.vfi import VFITask
from trainers.tasks.vsr import VSRGANTask, VSRTask
from trainers.tasks.vsr_window import VSRWindowTask


class Task(Protocol):
    """What a model family provides (a class; the loop makes one instance per worker).

    Attributes:
        Config: the pydantic model of the family's ``task:`` section (``name`` is its tag).
        nets: the network roles the family needs (``generator``, ``discriminator``, ...), with
            a word on each, main network first; ``nets:`` in a config must name exactly these,
            less any in ``optional_nets`` (optional; DIM's ``refiner`` exists in stages 2-3 only).
        metrics: validation metrics and their direction (``max``/``min``); the direction drives
            Tune, retrain's promotion gate and best-checkpoint choice.
    """

    Config: ClassVar[type[BaseModel]]
    nets: ClassVar[dict[str, str]]
    metrics: ClassVar[dict[str, Literal["max", "min"]]]

    def __init__(self, cfg: Any) -> None: ...

    @staticmethod
    def sampler(cfg: Any) -> Sampler:
        """The numpy sampler the Ray Data actors run."""

    @staticmethod
    def check_nets(cfg: Any, nets: dict[str, dict[str, Any]]) -> None:
        """Cross-checks between the task section and network arguments; ValueError naming the field."""

    # Optional: ``check_experiment(cfg)`` (static), checks that span sections of the whole
    # ExperimentConfig (TTSR: its extractor needs ``init_from``); ValueError naming the field.

    def device_stage(self, raw: dict[str, Tensor]) -> dict[str, Tensor]:
        """A stream batch on the worker's device -> the batch schema (and any device-side work)."""

    def train_step(self, nets: dict[str, nn.Module], optimizers: dict[str, Optimizer],
                   batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        """One iteration, backward passes and optimizer steps included; returns ``loss/*`` logs."""

    def predict(self, nets: dict[str, nn.Module], batch: dict[str, Tensor]) -> Tensor: ...

    def score(self, pred: Tensor, batch: dict[str, Tensor]) -> dict[str, float]: ...

    def preview(self, pred: Tensor, batch: dict[str, Tensor]) -> np.ndarray:
        """The HxWx3 uint8 picture MLflow shows for a validation."""

    # Optional: ``init_net(role, net)`` starts a network of a new run that ``init_from`` does not
    # (GLEAN: the StyleGAN2 bank and critic from the task's ``stylegan2_weights``); ``preflight(cfg)``
    # checks the family's files on the driver before Ray starts.

    # Inference I/O, shared by ``restoray infer`` and ``restoray restore``: which files make one
    # input (``image`` always; ``mask`` for inpainting, ``trimap`` for matting, paired by file
    # stem), how they become a batch, and what is written back. ``infer_batchable`` (optional,
    # default False) says ``predict`` also takes B > 1 same-size inputs stacked along the batch
    # axis: ``restoray restore`` then batches them (on GPUs); ``infer_output`` always gets one
    # item's slice (a batch of one) of the prediction and of the batch.
    infer_inputs: ClassVar[tuple[str, ...]]

    def infer_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, Tensor]:
        """uint8 arrays of one input (``image`` HxWx3 RGB; masks/trimaps HxW) -> a batch of one.
        ValueError (one line) when they do not fit together (sizes, values)."""

    def infer_output(self, pred: Tensor, batch: dict[str, Tensor]) -> np.ndarray:
        """The prediction of a batch of one -> the uint8 HxWx3 (or HxW) image to write."""

    # Video families (``"video"`` in ``infer_inputs``) say what ``restoray infer`` does with a video
    # with ``infer_kind`` (optional): ``"restore"`` (default; ``restore_clip``: every frame
    # restored) or ``"interpolate"`` (``interpolate``: the video at twice the frame rate, and a
    # pair of images -> their middle frame; ``num_input_frames`` frames per window).


TASKS: dict[str, type[Task]] = {
    "sr": SRTask,
    "sr_gan": SRGANTask,
    "glean": GLEANTask,
    "matting": MattingTask,
    "inpainting": InpaintingTask,
    "vsr": VSRTask,
    "vsr_gan": VSRGANTask,
    "vsr_window": VSRWindowTask,
    "vfi": VFITask,
    "dic": DICTask,
    "ttsr": TTSRTask,
    "liif": LIIFTask,
}


def get_task(name: str) -> type[Task]:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(sorted(TASKS))}")
    return TASKS[name]
