"""A checkpoint that carries pickled code is refused with one line, and nothing in it runs.

The hostile file's payload would create a marker file if it ever ran: each test checks the
marker is absent, so "refused" means "not executed", not merely "an error was raised later".
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainers.checkpoint_io import CheckpointError, load_checkpoint_file, safe_torch_load

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "sr" / "edsr_x2c64b16_1x16_300k_div2k.yaml"


class _RunsShell:
    """Pickles as ``posix.system("touch <marker>")``: the GLOBAL a malicious checkpoint names."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _hostile(tmp_path: Path, legacy: bool = False) -> tuple[Path, Path]:
    marker = tmp_path / "code_ran"
    file = tmp_path / ("hostile_legacy.pth" if legacy else "hostile.pth")
    torch.save({"state_dict": {}, "meta": _RunsShell(marker)}, file, _use_new_zipfile_serialization=not legacy)
    return file, marker


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy-format"])
def test_code_carrying_checkpoint_is_refused_with_the_reason(tmp_path, legacy):
    file, marker = _hostile(tmp_path, legacy)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint_file(file)
    msg = str(info.value)
    assert "\n" not in msg and str(file) in msg
    assert "carries pickled code" in msg and "posix.system" in msg
    assert "weights_only" not in msg and "False" not in msg  # never point at the unsafe way
    assert not marker.exists()


def test_safe_torch_load_reads_plain_weights(tmp_path):
    file = tmp_path / "plain.pt"
    torch.save({"w": torch.arange(3.0), "step": 4}, file)
    got = safe_torch_load(file)
    assert torch.equal(got["w"], torch.arange(3.0)) and got["step"] == 4
    with pytest.raises(CheckpointError, match="not found"):
        safe_torch_load(tmp_path / "absent.pt")


def test_inspect_refuses_code_carrying_checkpoint_without_running_it(tmp_path):
    file, marker = _hostile(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "inspect", str(CONFIG), "--checkpoint", str(file)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("restoray: error:"), proc.stderr
    assert "carries pickled code" in lines[0] and "hostile.pth" in lines[0]
    assert "weights_only" not in proc.stderr + proc.stdout
    assert not marker.exists()


def test_legacy_registry_module_with_code_is_refused(tmp_path):
    """A pickled-module registry version (data/model.pth) naming a non-layer global is refused
    before anything is imported or run."""
    from pipelines.registry import _allowed_module_classes

    file, marker = _hostile(tmp_path)
    names = torch.serialization.get_unsafe_globals_in_checkpoint(file)
    assert names == ["posix.system"]
    with pytest.raises(ValueError, match=r"carries pickled code or objects \(GLOBAL posix.system\)"):
        _allowed_module_classes(names, "models:/x/1")
    with pytest.raises(ValueError, match="not a network layer"):
        _allowed_module_classes(["torch.nn.modules.conv.F"], "models:/x/1")  # a module, not a layer class
    assert _allowed_module_classes(["torch.nn.modules.conv.Conv2d"], "m") == [torch.nn.Conv2d]
    assert not marker.exists()


def _torch_load_calls(path: Path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
            yield node


def test_every_torch_load_in_the_repo_is_weights_only():
    """Static check over every Python file (tests included): ``torch.load`` always has
    ``weights_only=True``, and no ``mlflow.pytorch.load_model`` (an unrestricted unpickle) is left."""
    offenders = []
    unsafe = "mlflow.pytorch." + "load_model("
    paths = [p for d in ("degradations", "preprocessing", "trainers", "pipelines", "tests") for p in (REPO / d).rglob("*.py")]
    for path in sorted(paths):
        if "golden" in path.parts:  # golden scripts run in the mmedit venv on files they write themselves
            continue
        for call in _torch_load_calls(path):
            flag = next((k.value for k in call.keywords if k.arg == "weights_only"), None)
            if not (isinstance(flag, ast.Constant) and flag.value is True):
                offenders.append(f"{path.relative_to(REPO)}:{call.lineno}")
        if unsafe in path.read_text():
            offenders.append(f"{path.relative_to(REPO)}: mlflow.pytorch.load_model")
    assert not offenders, offenders
