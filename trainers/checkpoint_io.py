"""Reading checkpoints: restoray's own, MMEditing model-zoo ones, and bare state dicts.

Every file is read with ``torch.load(weights_only=True)`` so that a checkpoint
fetched from the internet cannot run code. Zoo files written by mmcv sometimes
carry numpy scalars in ``meta``; the numpy scalar/dtype constructors (and nothing
else) are allow-listed for that, under both their numpy 1.x and 2.x names.

Layouts understood by :func:`extract_generator_state`:

* restoray: ``{"format": "restoray/1", "model": sd, "ema": sd | None, ...}``;
* zoo (mmcv ``save_checkpoint``): ``{"meta": ..., "state_dict": {"generator.<k>": ...,
  "generator_ema.<k>": ..., "discriminator.<k>": ...}}``;
* a bare state dict ``{"<k>": Tensor}``.

Problems surface as :class:`CheckpointError` with a one-line message, so a CLI can
print it as is instead of a pickle traceback.
"""

import dataclasses
import io
import os
from collections.abc import Mapping
from urllib.parse import urlparse

import numpy as np
import torch
from torch import Tensor, nn

RESTORAY_FORMAT = "restoray/1"


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, of unknown layout, or does not fit the model."""


def _numpy_safe_globals() -> list:
    """Numpy scalar and dtype constructors, under the names old and new numpy pickle them with."""
    scalar = np._core.multiarray.scalar if hasattr(np, "_core") else np.core.multiarray.scalar
    dtype_classes = [getattr(np.dtypes, n) for n in dir(getattr(np, "dtypes", object)) if n.endswith("DType")]
    return [
        scalar,
        (scalar, "numpy.core.multiarray.scalar"),
        (scalar, "numpy._core.multiarray.scalar"),
        np.dtype,
        *dtype_classes,
    ]


def _read_bytes(path_or_uri: str | os.PathLike) -> bytes:
    """Reads a local path, ``file://`` URI, or any URI pyarrow's filesystems know (``s3://``, ...)."""
    text = os.fspath(path_or_uri)
    parsed = urlparse(text)
    if parsed.scheme in ("", "file") or len(parsed.scheme) == 1:  # one letter: a Windows drive
        local = parsed.path if parsed.scheme == "file" else text
        if not os.path.isfile(local):
            raise CheckpointError(f"checkpoint not found: {text}")
        with open(local, "rb") as f:
            return f.read()
    from pyarrow import fs  # only remote checkpoints need pyarrow

    try:
        filesystem, path = fs.FileSystem.from_uri(text)
        with filesystem.open_input_stream(path) as f:
            return f.read()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint not found: {text}") from None
    except (OSError, ValueError) as err:
        raise CheckpointError(f"cannot read checkpoint {text}: {str(err).splitlines()[0]}") from err


def load_checkpoint_file(path_or_uri: str | os.PathLike) -> dict:
    """Loads a checkpoint onto the CPU without executing pickled code.

    Args:
        path_or_uri: Local path, ``file://`` URI or a remote URI such as ``s3://bucket/key.pth``.

    Returns:
        The unpickled top-level dict (any layout; see :func:`extract_generator_state`).

    Raises:
        CheckpointError: If the file is missing, is not a torch file, needs globals
            beyond tensors/containers/numpy scalars, or is not a dict.
    """
    data = _read_bytes(path_or_uri)
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        reason = _short_load_error(err)
        raise CheckpointError(f"cannot load {os.fspath(path_or_uri)} as a torch checkpoint: {reason}") from err
    if not isinstance(obj, dict):
        raise CheckpointError(f"{os.fspath(path_or_uri)}: expected a dict at top level, got {type(obj).__name__}")
    return obj


def _short_load_error(err: Exception) -> str:
    """Picks the informative line out of torch's multi-paragraph load errors."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    for ln in lines:
        if "Unsupported" in ln or "magic number" in ln:
            return ln
    return lines[0] if lines else type(err).__name__


def _strip_prefix(state: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def _strip_module_wrapper(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Drops a DataParallel/DDP ``module.`` prefix when every key has it."""
    if state and all(k.startswith("module.") for k in state):
        return _strip_prefix(state, "module.")
    return state


def _is_state_dict(obj: object) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()
    )


def _from_zoo(state: Mapping[str, Tensor], prefer_ema: bool) -> tuple[dict, str]:
    ema = _strip_prefix(state, "generator_ema.")
    gen = _strip_prefix(state, "generator.")
    if ema and (prefer_ema or not gen):
        return ema, "zoo generator_ema"
    if gen:
        return gen, "zoo generator"
    if _is_state_dict(state):
        return _strip_module_wrapper(dict(state)), "zoo state_dict (no generator prefix)"
    raise CheckpointError("zoo checkpoint: 'state_dict' holds no generator weights")


def extract_generator_state(ckpt: dict, prefer_ema: bool = True) -> tuple[dict[str, Tensor], str]:
    """Finds the generator's weights in a loaded checkpoint and removes their prefix.

    EMA weights are what the zoo evaluates for models trained with EMA (e.g.
    Real-ESRGAN), hence ``prefer_ema``; without EMA weights the raw ones are used.

    Args:
        ckpt: Dict returned by :func:`load_checkpoint_file` (or built in memory).
        prefer_ema: Use the EMA copy when the checkpoint has one.

    Returns:
        ``(state_dict, source)``: keys as the bare architecture names them, and a short
        description of where they came from, e.g. ``"zoo generator_ema"``,
        ``"restoray model"``, ``"bare state_dict"``.

    Raises:
        CheckpointError: If no generator weights can be found.
    """
    if str(ckpt.get("format", "")).startswith("restoray/"):
        if ckpt["format"] != RESTORAY_FORMAT:
            raise CheckpointError(f"unsupported restoray checkpoint format {ckpt['format']!r}")
        if prefer_ema and ckpt.get("ema") is not None:
            return _strip_module_wrapper(dict(ckpt["ema"])), "restoray ema"
        if not _is_state_dict(ckpt.get("model")):
            raise CheckpointError("restoray checkpoint has no 'model' state dict")
        return _strip_module_wrapper(dict(ckpt["model"])), "restoray model"
    if isinstance(ckpt.get("state_dict"), Mapping):
        return _from_zoo(ckpt["state_dict"], prefer_ema)
    if _is_state_dict(ckpt):
        return _strip_module_wrapper(dict(ckpt)), "bare state_dict"
    keys = ", ".join(sorted(map(str, ckpt))[:8])
    raise CheckpointError(f"unknown checkpoint layout (top-level keys: {keys})")


@dataclasses.dataclass
class KeyReport:
    """How a state dict differs from what a model expects.

    Attributes:
        missing: Keys the model has and the state dict lacks.
        unexpected: Keys the state dict has and the model lacks.
        mismatched: ``(key, expected_shape, got_shape)`` for keys present in both.
    """

    missing: list[str] = dataclasses.field(default_factory=list)
    unexpected: list[str] = dataclasses.field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the state dict fits the model exactly."""
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self, limit: int = 3) -> str:
        """One line naming the counts and the first few offending keys of each kind."""

        def head(items: list) -> str:
            more = f", +{len(items) - limit} more" if len(items) > limit else ""
            return ", ".join(map(str, items[:limit])) + more

        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing ({head(self.missing)})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected ({head(self.unexpected)})")
        if self.mismatched:
            shapes = [f"{k}: model {list(e)} vs checkpoint {list(g)}" for k, e, g in self.mismatched]
            parts.append(f"{len(self.mismatched)} shape mismatches ({head(shapes)})")
        return "; ".join(parts) if parts else "state dict matches"


def compare_state_dict(model: nn.Module, state: Mapping[str, Tensor]) -> KeyReport:
    """Compares ``state`` with ``model.state_dict()`` by key and shape, without loading anything."""
    expected = model.state_dict()
    report = KeyReport(
        missing=[k for k in expected if k not in state],
        unexpected=[k for k in state if k not in expected],
    )
    for key, want in expected.items():
        if key in state and tuple(state[key].shape) != tuple(want.shape):
            report.mismatched.append((key, tuple(want.shape), tuple(state[key].shape)))
    return report


def load_strict(model: nn.Module, state: Mapping[str, Tensor]) -> KeyReport:
    """Loads ``state`` into ``model`` only if keys and shapes match exactly.

    Checking first turns PyTorch's multi-line ``load_state_dict`` error into one
    line that says what is wrong (usually a wrong ``upscale_factor`` or arch).

    Returns:
        The (clean) comparison report.

    Raises:
        CheckpointError: If any key is missing, unexpected or of the wrong shape.
    """
    report = compare_state_dict(model, state)
    if not report.ok:
        raise CheckpointError(f"checkpoint does not fit {type(model).__name__}: {report.summary()}")
    model.load_state_dict(state, strict=True)
    return report
