"""Forward-parity goldens for ``liif_edsr`` and ``liif_rdn``, computed by MMEditing 0.16.1's
``LIIFEDSR`` / ``LIIFRDN`` (``mmedit.models.backbones.sr_backbones.liif_net``).

Run with the interpreter that has mmedit (see ``mmedit_shim``), from the repository root::

    /work/mmedit-venv/bin/python tests/golden/make_arch_goldens_liif.py

Writes ``tests/data/golden/archs_liif.npz`` in the case format of ``make_arch_goldens.py``
(weights drawn and rounded as there, by its ``_randomise_``). The forward takes three inputs,
``input.0`` the LR image (8-bit values, non-square so a height/width swap shows), ``input.1`` the
query coordinates and ``input.2`` the cells: a full target grid at a non-integer scale (the
queries of an evaluation) followed by uniform random points, so the nearest-cell lookups, the
clamp and the area weights are exercised off the grid too. Cases: the zoo's flags (local
ensemble, feature unfold, cell decode) for both encoders; the same with ``test_mode=True`` and a
small ``eval_bsize`` (chunked decoding, ``forward_kwargs``); every flag off.
"""

from __future__ import annotations

import copy
import json
import sys
import zlib
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests" / "golden"), str(ROOT)]
import mmedit_shim  # noqa: E402

mmedit_shim.install()

from make_arch_goldens import _randomise_, _stored  # noqa: E402
from mmedit.datasets.pipelines.utils import make_coord  # noqa: E402
from mmedit.models.backbones.sr_backbones.liif_net import LIIFEDSR, LIIFRDN  # noqa: E402

OUT = ROOT / "tests/data/golden/archs_liif.npz"
LR = (2, 3, 6, 8)
TARGET = (13, 17)  # about x2.2: off-integer scale
EDSR = dict(type="EDSR", in_channels=3, out_channels=3, mid_channels=8, num_blocks=2)
RDN = dict(type="RDN", in_channels=3, out_channels=3, mid_channels=8, num_blocks=2, upscale_factor=4,
           num_layers=2, channel_growth=4)
MLP = dict(type="MLPRefiner", in_dim=8, out_dim=3, hidden_list=[16, 16])
ZOO_FLAGS = dict(local_ensemble=True, feat_unfold=True, cell_decode=True)
NO_FLAGS = dict(local_ensemble=False, feat_unfold=False, cell_decode=False)


def _cases() -> list[tuple[str, str, type, dict, dict]]:
    return [
        ("liif_edsr", "liif_edsr", LIIFEDSR, dict(encoder=EDSR, imnet=MLP, **ZOO_FLAGS, eval_bsize=None), {}),
        ("liif_edsr_chunked", "liif_edsr", LIIFEDSR, dict(encoder=EDSR, imnet=MLP, **ZOO_FLAGS, eval_bsize=37),
         {"test_mode": True}),
        ("liif_edsr_noflags", "liif_edsr", LIIFEDSR, dict(encoder=EDSR, imnet=MLP, **NO_FLAGS, eval_bsize=None), {}),
        ("liif_rdn", "liif_rdn", LIIFRDN, dict(encoder=RDN, imnet=MLP, **ZOO_FLAGS, eval_bsize=None), {}),
        ("liif_rdn_chunked", "liif_rdn", LIIFRDN, dict(encoder=RDN, imnet=MLP, **ZOO_FLAGS, eval_bsize=50),
         {"test_mode": True}),
    ]


def _queries(batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    grid = make_coord(TARGET)
    coord = torch.cat([grid, torch.rand(40, 2) * 2 - 1]).expand(batch, -1, -1).contiguous()
    cell = torch.ones_like(coord)
    cell[..., 0] *= 2 / TARGET[0]
    cell[..., 1] *= 2 / TARGET[1]
    return coord, cell


def _run_case(case: str, arch: str, cls: type, kwargs: dict, forward_kwargs: dict) -> dict[str, object]:
    torch.manual_seed(zlib.crc32(case.encode()))
    model = cls(**copy.deepcopy(kwargs))  # the reference rewrites imnet's in_dim in place
    _randomise_(model)
    x = torch.randint(0, 256, LR) / 256
    coord, cell = _queries(LR[0])
    out = {f"{case}/arch": arch, f"{case}/kwargs": json.dumps(kwargs), f"{case}/input.0": x.half(),
           f"{case}/input.1": coord, f"{case}/input.2": cell, f"{case}/forward_kwargs": json.dumps(forward_kwargs)}
    out |= {f"{case}/state/{k}": _stored(v) for k, v in model.state_dict().items()}
    with torch.no_grad():
        out[f"{case}/eval"] = model.eval()(x, coord, cell, **forward_kwargs)
    return out


def main() -> None:
    arrays: dict[str, object] = {}
    for case in _cases():
        arrays |= _run_case(*case)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    mmedit_shim.save_golden(str(OUT), **arrays)
    print(f"{OUT.relative_to(ROOT)}: {len(_cases())} cases, {OUT.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
