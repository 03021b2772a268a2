"""Forward parity with MMEditing 0.16.1 on tiny variants of every registered architecture.

``tests/data/golden/archs*.npz`` (one file per family: ``archs.npz`` for image SR,
``archs_<family>.npz`` for the others) were written by ``tests/golden/make_arch_goldens*.py`` with
the reference modules (mmedit itself is not needed here): per case the constructor
kwargs, the reference state dict, an input (or several: ``input.0``, ``input.1``; video clips
are ``[B, T, C, H, W]``), optional keyword arguments of the forward call (``forward_kwargs``,
JSON) and the reference outputs. Nested outputs (DICNet's list of images and list of heatmaps)
are flattened in order; ``eval_indices`` (JSON, optional) says which of the flattened outputs a
case stored, when all of them would make the file too large. Loading that
state dict strictly and reproducing the outputs shows that attribute names, layer order,
activations, padding, upsampling modes and skip additions all follow the reference;
for discriminators also the train-mode behaviour (BN batch statistics and running
averages, spectral norm's power iteration).

Tolerance: every case matches to the last bit on the machine that made the goldens
(same torch build). Other convolution kernels round differently: with oneDNN switched
off the largest deviation is 1.6e-6 of the output scale (ModifiedVGG in train mode,
where BN's batch statistics amplify it), 8e-7 elsewhere. Hence a bound of 1e-5 of the
largest reference value, so another CPU passes while any structural difference (an
activation slope, ``align_corners``, a missing skip) is far outside it.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from trainers.archs import ARCHS, build_arch

GOLDENS = sorted((Path(__file__).resolve().parents[1] / "data" / "golden").glob("archs*.npz"))
REL_TOL = 1e-5  # of the largest |reference| value

DATA: dict[str, np.ndarray] = {}
for _path in GOLDENS:
    with np.load(_path) as _npz:
        _clash = set(_npz.files) & set(DATA)
        assert not _clash, f"{_path.name} repeats golden cases {sorted(_clash)[:3]}"
        DATA.update({k: _npz[k] for k in _npz.files})
CASES = sorted(k.removesuffix("/arch") for k in DATA if k.endswith("/arch"))
TRAIN_CASES = [c for c in CASES if f"{c}/train" in DATA or f"{c}/train.0" in DATA]


@pytest.fixture(autouse=True, scope="module")
def _golden_threads():
    """Two intra-op threads, as when the goldens were made: deep networks in train mode (IndexNet's
    batch norms over many layers) reduce in an order that depends on the thread count, and the
    differences grow past the tolerance when an earlier test left torch on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _tensor(array: np.ndarray) -> Tensor:
    """float16 arrays hold values float32 represents exactly; they are float32 in the reference."""
    t = torch.from_numpy(array)
    return t.float() if t.dtype == torch.float16 else t


def _group(case: str, group: str) -> dict[str, Tensor]:
    prefix = f"{case}/{group}/"
    return {k.removeprefix(prefix): _tensor(v) for k, v in DATA.items() if k.startswith(prefix)}


def _build(case: str) -> nn.Module:
    model = build_arch(str(DATA[f"{case}/arch"]), **json.loads(str(DATA[f"{case}/kwargs"])))
    model.load_state_dict(_group(case, "state"), strict=True)
    return model


def _numbered(case: str, name: str) -> list[Tensor]:
    """``<case>/<name>`` or, for several inputs / a tuple output, ``<case>/<name>.0``, ``.1`` …"""
    if f"{case}/{name}" in DATA:
        return [_tensor(DATA[f"{case}/{name}"])]
    out, i = [], 0
    while f"{case}/{name}.{i}" in DATA:
        out.append(_tensor(DATA[f"{case}/{name}.{i}"]))
        i += 1
    assert out, f"golden {case} has no {name}"
    return out


def _run(case: str, train: bool) -> tuple[nn.Module, list[Tensor]]:
    model = _build(case).train(train)
    forward_kwargs = json.loads(str(DATA[f"{case}/forward_kwargs"])) if f"{case}/forward_kwargs" in DATA else {}
    with torch.no_grad():
        out = model(*_numbered(case, "input"), **forward_kwargs)
    return model, _flatten(out)


def _flatten(out) -> list[Tensor]:
    """A tensor, or (nested) tuples/lists of tensors, as one flat list in order."""
    if isinstance(out, (tuple, list)):
        return [t for item in out for t in _flatten(item)]
    return [out]


def _eval_reference(case: str, got: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
    """(outputs, reference) pairs to compare: every output, or the stored ``eval_indices``."""
    if f"{case}/eval_indices" not in DATA:
        return got, _numbered(case, "eval")
    indices = json.loads(str(DATA[f"{case}/eval_indices"]))
    assert max(indices) < len(got), f"{case}: {len(got)} outputs, reference stored index {max(indices)}"
    return [got[i] for i in indices], [_tensor(DATA[f"{case}/eval.{i}"]) for i in indices]


def _assert_all_match(got: list[Tensor], want: list[Tensor], name: str) -> None:
    assert len(got) == len(want), f"{name}: {len(got)} outputs, reference has {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        _assert_matches(g, w, f"{name} [{i}]")


def _assert_matches(got: Tensor, want: Tensor, name: str) -> None:
    if not want.is_floating_point():
        assert torch.equal(got, want), name
        return
    atol = REL_TOL * want.abs().max().item()
    torch.testing.assert_close(got, want, rtol=0, atol=atol, msg=lambda m: f"{name}: {m}")


def test_every_arch_has_a_golden():
    assert {str(DATA[f"{c}/arch"]) for c in CASES} == set(ARCHS)
    assert {"modified_vgg", "unet_disc_sn"} <= {str(DATA[f"{c}/arch"]) for c in TRAIN_CASES}


@pytest.mark.parametrize("case", CASES)
def test_eval_forward_matches_mmedit(case):
    _, out = _run(case, train=False)
    _assert_all_match(*_eval_reference(case, out), f"{case} eval output")


@pytest.mark.parametrize("case", TRAIN_CASES)
def test_train_forward_matches_mmedit(case):
    model, out = _run(case, train=True)
    _assert_all_match(out, _numbered(case, "train"), f"{case} train output")
    want = _group(case, "after_train")
    got = dict(model.named_buffers())
    assert got.keys() == want.keys()
    for key, value in want.items():
        _assert_matches(got[key], value, f"{case} buffer {key} after the train forward")
