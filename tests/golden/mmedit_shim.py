"""Import mmedit 0.16.1 without its compiled ops, to make golden files (never imported by tests).

The parity goldens under ``tests/data/golden/`` are made by the ``make_*.py`` scripts beside
this file, run with a separate interpreter that has the reference installed (it is not a
dependency of restoray; ``make test`` only reads the ``.npz`` files they write)::

    python3.11 -m venv /tmp/mmedit-venv
    /tmp/mmedit-venv/bin/pip install torch==2.13.0 torchvision 'numpy<2' opencv-python-headless \
        addict yapf pyyaml scipy scikit-image pillow 'setuptools<70' wheel
    MMCV_WITH_OPS=0 /tmp/mmedit-venv/bin/pip install --no-deps --no-build-isolation mmcv==1.7.2
    /tmp/mmedit-venv/bin/pip install --no-deps mmedit==0.16.1
    /tmp/mmedit-venv/bin/python tests/golden/make_<what>.py

Two stand-ins make the import work on a CPU-only machine:

* ``mmcv._ext`` (mmcv's compiled ops, not built with ``MMCV_WITH_OPS=0``): any op called
  raises ``NotImplementedError``; a golden that needs one (deformable convolution) patches a
  pure-torch version in its own script.
* ``torchvision``'s package ``__init__`` registers fake kernels for its C ops, which fails when
  the torchvision wheel and the CPU torch build disagree; the stand-in package object skips
  that ``__init__`` and loads the pure-Python submodules (``torchvision.models.vgg``) as they are.
"""

from __future__ import annotations

import importlib.util
import sys
import types

import torch  # noqa: F401  (torch must be imported before the stand-ins)


def _missing_op_module() -> types.ModuleType:
    ext = types.ModuleType("mmcv._ext")

    def __getattr__(name: str):
        if name.startswith("__"):
            raise AttributeError(name)

        def missing(*args, **kwargs):
            raise NotImplementedError(f"mmcv._ext.{name} is a compiled op, not available here")

        return missing

    ext.__getattr__ = __getattr__
    return ext


def install() -> None:
    """Register the stand-ins; call before ``import mmedit``."""
    sys.modules.setdefault("mmcv._ext", _missing_op_module())
    if "torchvision" not in sys.modules:
        spec = importlib.util.find_spec("torchvision")
        tv = types.ModuleType("torchvision")
        tv.__path__ = list(spec.submodule_search_locations)
        tv.__version__ = "0.28.0"
        sys.modules["torchvision"] = tv


def save_golden(path: str, **arrays) -> None:
    """Write a compressed ``.npz`` golden (tensors become numpy arrays, dtypes kept)."""
    import numpy as np

    out = {k: v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v) for k, v in arrays.items()}
    np.savez_compressed(path, **out)
