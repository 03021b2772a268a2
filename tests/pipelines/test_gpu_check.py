"""``make gpu-check`` here, without CUDA: it refuses in one line, and its report reader works."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from conftest import REPO
from pipelines.gpu_check import FAMILY_TESTS, junit_counts


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA refusal")
def test_refuses_without_cuda():
    proc = subprocess.run([sys.executable, "-m", "pipelines.gpu_check"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "gpu-check: error: no CUDA device here (torch.cuda.is_available() is False); run it on a GPU machine"]


def test_family_tests_found_and_junit_counted(tmp_path):
    names = {p.rsplit("/", 1)[-1] for p in FAMILY_TESTS}
    assert {"test_inpainting_family.py", "test_matting_family.py", "test_vsr_family.py"} <= names
    xml = tmp_path / "r.xml"
    xml.write_text('<testsuites><testsuite><testcase classname="a" name="ok"/>'
                   '<testcase classname="a" name="bad"><failure message="x"/></testcase>'
                   '<testcase classname="a" name="skip"><skipped/></testcase></testsuite></testsuites>')
    assert junit_counts(str(xml)) == {"passed": 1, "failed": 1, "skipped": 1, "failures": ["a::bad"]}
