"""The package layering of DESIGN.md, enforced rather than remembered.

* import-linter contracts in pyproject.toml (``[tool.importlinter]``):
  degradations and preprocessing import nothing of the project; trainers may
  import degradations and preprocessing but never pipelines.
* Ray is imported only by pipelines/ and trainers/loop.py, so everything else
  (archs, losses, metrics, tasks, data synthesis, sharding helpers) stays
  testable and usable without a Ray runtime.

Both checks read source statically, so imports inside functions count too.
A second test runs the same contracts on a copy of the packages with a
planted violation, to prove the check can fail.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("pipelines", "preprocessing", "trainers", "degradations")
RAY_ALLOWED = ("pipelines/", "trainers/loop.py")


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "lint-imports"
    if not exe.exists():
        pytest.fail(f"{exe} not found: install the test extras (pip install -e '.[test]')")
    return subprocess.run(
        [str(exe), "--no-cache", "--no-logo"],  # no cache: do not leave .import_linter_cache behind
        cwd=cwd, capture_output=True, text=True, timeout=300,
    )


def test_import_contracts_are_kept():
    proc = _lint_imports(REPO)
    assert proc.returncode == 0, f"lint-imports failed:\n{proc.stdout}\n{proc.stderr}"
    assert "broken" in proc.stdout and "0 broken" in proc.stdout, proc.stdout


@pytest.mark.parametrize("package, target, contract", [
    ("degradations", "pipelines.config", "degradations imports nothing of the project"),
    ("degradations", "preprocessing.schema", "degradations imports nothing of the project"),
    ("preprocessing", "degradations", "preprocessing imports nothing of the project"),
    ("preprocessing", "trainers", "preprocessing imports nothing of the project"),
    ("trainers", "pipelines.config", "trainers may import degradations and preprocessing, never pipelines"),
], ids=["degradations-pipelines", "degradations-preprocessing", "preprocessing-degradations",
        "preprocessing-trainers", "trainers-pipelines"])
def test_import_contracts_catch_a_violation(tmp_path: Path, package: str, target: str, contract: str):
    for name in PACKAGES:
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    # A lazy import inside a function: the kind a reviewer is most likely to miss.
    (tmp_path / package / "_layering_probe.py").write_text(f"def probe():\n    import {target}  # noqa\n")

    proc = _lint_imports(tmp_path)  # lint-imports puts its cwd first on sys.path: the copy is analysed
    assert proc.returncode == 1, f"planted {package} -> {target} was not caught:\n{proc.stdout}\n{proc.stderr}"
    assert f"{contract} BROKEN" in proc.stdout, proc.stdout
    assert f"{package}._layering_probe -> {target}" in proc.stdout, proc.stdout


def _ray_imports(path: Path) -> list[int]:
    """Line numbers of ``import ray...`` / ``from ray... import`` statements in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        if any(n == "ray" or n.startswith("ray.") for n in names):
            lines.append(node.lineno)
    return lines


def test_ray_is_imported_only_in_pipelines_and_the_train_loop():
    offenders = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if rel.startswith(RAY_ALLOWED[0]) or rel == RAY_ALLOWED[1]:
                continue
            offenders += [f"{rel}:{line}" for line in _ray_imports(path)]
    assert not offenders, (
        "Ray may be imported only in pipelines/ and trainers/loop.py (DESIGN.md); found: " + ", ".join(offenders)
    )


def test_ray_scan_sees_every_import_form(tmp_path: Path):
    src = tmp_path / "m.py"
    src.write_text(
        "import os\nimport ray\nfrom ray import train\nimport ray.data as rd\n"
        "def f():\n    from ray.train.torch import TorchTrainer\n"
        "from .ray import x\nimport rayon\nfrom raydium import y\n"
    )
    assert _ray_imports(src) == [2, 3, 4, 6]
