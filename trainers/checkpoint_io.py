"""Reading checkpoints: restoray's own, MMEditing model-zoo ones, and bare state dicts.

Every file is read with ``torch.load(weights_only=True)`` so that a checkpoint
fetched from the internet cannot run code. Zoo files written by mmcv sometimes
carry numpy scalars in ``meta``; the numpy scalar/dtype constructors (and nothing
else) are allow-listed for that, under both their numpy 1.x and 2.x names.

This module owns restoray's training checkpoint (format ``restoray/2``, written by the train
loop, one file ``checkpoint.pt`` plus ``meta.json`` per Ray Train checkpoint)::

    {"format": "restoray/2", "step", "samples_seen", "data_position", "last_val", "config",
     "arch": {role: {"name", "kwargs"}}, "nets": {role: state dict}, "ema": {role: state dict},
     "optimizers": {role: ...}, "schedulers": {role: ...}, "pair_pool": [per-rank state] | None}

``restoray/1`` files (one network: ``model``, ``ema``, ``optimizer``, ``scheduler``) are read as
the ``generator`` of a v2 file, so runs started before v2 resume.

Layouts understood by :func:`extract_net_state` (the weights of one network role):

* restoray v2 and v1 (above);
* zoo (mmcv ``save_checkpoint``): ``{"meta": ..., "state_dict": {"generator.<k>": ...,
  "generator_ema.<k>": ..., "discriminator.<k>": ...}}``: role ``r`` is under ``r.`` and its
  EMA under ``r_ema.``;
* a bare state dict ``{"<k>": Tensor}`` (taken as the generator).

Problems surface as :class:`CheckpointError` with a one-line message, so a CLI can
print it as is instead of a pickle traceback.
"""

import dataclasses
import io
import json
import os
import re
import urllib.request
from collections.abc import Mapping
from urllib.parse import urlparse

import numpy as np
import torch
from torch import Tensor, nn

from preprocessing.storage import open_storage

RESTORAY_FORMAT = "restoray/2"
V1_FORMAT = "restoray/1"
CHECKPOINT_FILE = "checkpoint.pt"
META_FILE = "meta.json"


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
    """Reads a local path, a ``file://``, ``s3://`` (any S3-compatible endpoint) or ``http(s)://`` URI."""
    text = os.fspath(path_or_uri)
    parsed = urlparse(text)
    if parsed.scheme in ("", "file") or len(parsed.scheme) == 1:  # one letter: a Windows drive
        local = parsed.path if parsed.scheme == "file" else text
        if os.path.isdir(local):  # a restoray ``checkpoint_*`` folder stands for its checkpoint.pt
            if not os.path.isfile(os.path.join(local, CHECKPOINT_FILE)):
                raise CheckpointError(f"{text}: a folder without {CHECKPOINT_FILE} (give a checkpoint_* folder "
                                      "of a run, or a checkpoint file)")
            local = os.path.join(local, CHECKPOINT_FILE)
        if not os.path.isfile(local):
            raise CheckpointError(f"checkpoint not found: {text}")
        with open(local, "rb") as f:
            return f.read()
    if parsed.scheme in ("http", "https"):
        try:
            with urllib.request.urlopen(text, timeout=60) as response:
                return response.read()
        except OSError as err:
            raise CheckpointError(f"cannot read checkpoint {text}: {str(err).splitlines()[0]}") from None
    if parsed.scheme == "s3":  # the project's one S3 client set-up (endpoint, region, retries)
        root, _, name = text.rpartition("/")
        try:
            return open_storage(root).read_bytes(name)
        except FileNotFoundError:
            raise CheckpointError(f"checkpoint not found: {text}") from None
        except (OSError, ValueError) as err:
            raise CheckpointError(f"cannot read checkpoint {text}: {str(err).splitlines()[0]}") from None
    raise CheckpointError(f"cannot read checkpoint {text}: unsupported scheme {parsed.scheme!r} "
                          "(local paths, file://, s3:// and https:// are)")


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
    obj = safe_torch_load(_read_bytes(path_or_uri), os.fspath(path_or_uri))
    if not isinstance(obj, dict):
        raise CheckpointError(f"{os.fspath(path_or_uri)}: expected a dict at top level, got {type(obj).__name__}")
    return obj


def safe_torch_load(source: bytes | str | os.PathLike, name: str | None = None):
    """``torch.load(weights_only=True)`` of a file's bytes or path, with a one-line error.

    The only way this project unpickles a torch file: tensors, plain containers and numpy
    scalars load; anything else (a class, ``posix.system``...) is refused before it is
    built, and the error says the file carries code or objects -- never how to load it
    unsafely (torch's own message suggests ``weights_only=False``).

    Raises:
        CheckpointError: one line naming ``name`` (default: the path) and the reason.
    """
    name = name if name is not None else ("<bytes>" if isinstance(source, bytes) else os.fspath(source))
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(io.BytesIO(source) if isinstance(source, bytes) else source, map_location="cpu",
                              weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint not found: {name}") from None
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        raise CheckpointError(f"cannot load {name} as a torch checkpoint: {_short_load_error(err)}") from None


_GLOBAL_RE = re.compile(r"GLOBAL\s+([\w.]+)", re.IGNORECASE)


def _short_load_error(err: Exception) -> str:
    """One informative line for torch's multi-paragraph load errors.

    A refused global (torch's "Unsupported global" / "unsupported GLOBAL posix.system",
    either case) becomes "the file carries code or objects (GLOBAL x), refused": torch's text
    around it recommends ``weights_only=False``, which is exactly what must not be done with
    a file of unknown origin.
    """
    text = str(err)
    found = _GLOBAL_RE.search(text)
    if found or "weights only load failed" in text.lower():
        what = f" (GLOBAL {found.group(1)})" if found else ""
        return (f"the file carries pickled code or objects{what} besides tensors; refused, nothing in it "
                "was run (only plain weights are loaded)")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        if "magic number" in ln.lower():
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


def upgrade(ckpt: dict) -> dict:
    """A restoray checkpoint in the v2 layout (v1 files become a one-network ``generator`` run).

    A v1 pair pool held degraded pairs taken after the device stage; v2 pools hold stream
    batches, so it is dropped (the pool refills, as the loop says).
    """
    fmt = ckpt.get("format")
    if fmt == RESTORAY_FORMAT:
        return ckpt
    if fmt != V1_FORMAT:
        raise CheckpointError(f"unsupported restoray checkpoint format {fmt!r}")
    out = {k: v for k, v in ckpt.items() if k not in ("model", "ema", "optimizer", "scheduler", "pair_pool")}
    out.update(
        format=RESTORAY_FORMAT, nets={"generator": ckpt["model"]},
        ema={"generator": ckpt["ema"]} if ckpt.get("ema") is not None else {},
        optimizers={"generator": ckpt["optimizer"]}, schedulers={"generator": ckpt["scheduler"]},
        pair_pool=None, arch={},
    )
    return out


def is_restoray(ckpt: dict) -> bool:
    return str(ckpt.get("format", "")).startswith("restoray/")


def roles(ckpt: dict) -> list[str]:
    """The network roles a checkpoint holds (zoo: the ``<role>.`` prefixes; bare: generator)."""
    if is_restoray(ckpt):
        return list(upgrade(ckpt)["nets"])
    if isinstance(ckpt.get("state_dict"), Mapping):
        found = {k.split(".", 1)[0] for k in ckpt["state_dict"] if "." in k}
        named = sorted(r for r in found if not r.endswith("_ema") and r not in ("step_counter",))
        return named if "generator" in named else (["generator"] if _is_state_dict(ckpt["state_dict"]) else named)
    return ["generator"] if _is_state_dict(ckpt) else []


def _from_zoo(state: Mapping[str, Tensor], role: str, prefer_ema: bool) -> tuple[dict, str]:
    ema = _strip_prefix(state, f"{role}_ema.")
    raw = _strip_prefix(state, f"{role}.")
    if ema and (prefer_ema or not raw):
        return ema, f"zoo {role}_ema"
    if raw:
        return raw, f"zoo {role}"
    if role == "generator" and _is_state_dict(state) and not any(k.startswith("discriminator.") for k in state):
        return _strip_module_wrapper(dict(state)), "zoo state_dict (no generator prefix)"
    raise CheckpointError(f"zoo checkpoint: 'state_dict' holds no {role} weights")


def extract_net_state(ckpt: dict, role: str = "generator", prefer_ema: bool = True) -> tuple[dict[str, Tensor], str]:
    """Finds one network's weights in a loaded checkpoint and removes their prefix.

    EMA weights are what the zoo evaluates for models trained with EMA (e.g. Real-ESRGAN),
    hence ``prefer_ema``; without EMA weights the raw ones are used.

    Args:
        ckpt: Dict returned by :func:`load_checkpoint_file` (or built in memory).
        role: The network role (``generator``, ``discriminator``, ...).
        prefer_ema: Use the EMA copy when the checkpoint has one.

    Returns:
        ``(state_dict, source)``: keys as the bare architecture names them, and a short
        description of where they came from, e.g. ``"zoo generator_ema"``, ``"restoray ema"``.

    Raises:
        CheckpointError: If the checkpoint has no weights for ``role``.
    """
    if is_restoray(ckpt):
        ckpt = upgrade(ckpt)
        if prefer_ema and ckpt["ema"].get(role) is not None:
            return _strip_module_wrapper(dict(ckpt["ema"][role])), f"restoray {role} ema"
        if not _is_state_dict(ckpt["nets"].get(role)):
            raise CheckpointError(f"restoray checkpoint has no {role!r} network (it has {', '.join(ckpt['nets'])})")
        return _strip_module_wrapper(dict(ckpt["nets"][role])), f"restoray {role}"
    if isinstance(ckpt.get("state_dict"), Mapping):
        return _from_zoo(ckpt["state_dict"], role, prefer_ema)
    if _is_state_dict(ckpt):
        if role != "generator":
            raise CheckpointError(f"a bare state dict holds one network (taken as the generator), not {role!r}")
        return _strip_module_wrapper(dict(ckpt)), "bare state_dict"
    keys = ", ".join(sorted(map(str, ckpt))[:8])
    raise CheckpointError(f"unknown checkpoint layout (top-level keys: {keys})")


def extract_generator_state(ckpt: dict, prefer_ema: bool = True) -> tuple[dict[str, Tensor], str]:
    """:func:`extract_net_state` for the generator."""
    return extract_net_state(ckpt, "generator", prefer_ema)


def save_training_checkpoint(directory: str | os.PathLike, payload: dict, meta: dict) -> None:
    """Write ``checkpoint.pt`` (a v2 payload) and ``meta.json`` (step, position, scores) into ``directory``."""
    if payload.get("format") != RESTORAY_FORMAT:
        raise ValueError("save_training_checkpoint writes restoray/2 payloads only")
    _write_atomic(os.path.join(directory, CHECKPOINT_FILE), lambda f: torch.save(payload, f))
    _write_atomic(os.path.join(directory, META_FILE), lambda f: f.write(json.dumps(meta).encode()))


def _write_atomic(path: str, write) -> None:
    """``write(f)`` into a temporary file beside ``path``, synced, then renamed over it: a full disk
    or a crash leaves the old file (or none), never half of a new one. The error names the path."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:  # torch.save turns a failed write into a RuntimeError
        try:
            os.unlink(tmp)
        except OSError:
            pass
        cause = exc
        while cause is not None and not isinstance(cause, OSError):
            cause = cause.__context__
        errno = cause.errno if cause is not None else None
        reason = (cause.strerror if cause is not None else None) or str(exc).splitlines()[0]
        raise OSError(errno, f"cannot write checkpoint {path}: {reason}") from exc


def read_training_checkpoint(directory: str | os.PathLike) -> dict:
    """The v2 training state in a Ray Train checkpoint directory (v1 files upgraded)."""
    return upgrade(safe_torch_load(os.path.join(directory, CHECKPOINT_FILE)))


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
