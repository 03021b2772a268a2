"""A run whose Ray Train checkpoint list is damaged still resumes (issue 14, "checkpoints never
appear half-written"): Ray Train 2.60 writes ``checkpoint_manager_snapshot.json`` in place, so a
driver killed during that write leaves half a file, and Ray then refuses to start the run. The
list is set aside (kept) and the newest complete checkpoint folder is found by listing. The
whole path, through a real resumed ``restoray train``, is in ``test_damaged_data_and_storage_e2e.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.train_job import RAY_SNAPSHOT, latest_state, newest_checkpoint_folder, set_aside_damaged_snapshot


def _checkpoint(run: Path, name: str, step: int, complete: bool = True) -> Path:
    folder = run / name
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text(json.dumps({"step": step, "samples_seen": 8 * step,
                                                  "model": {"task": "sr", "arch": {"name": "edsr"}}}))
    if complete:
        (folder / "checkpoint.pt").write_bytes(b"payload")
    return folder


def test_a_half_written_checkpoint_list_is_set_aside_and_the_newest_folder_found(tmp_path, capsys):
    run = tmp_path / "runs" / "r"
    _checkpoint(run, "checkpoint_2026-12-04_10-00-00.000001", 3)
    newest = _checkpoint(run, "checkpoint_2026-12-04_10-00-09.000001", 6)
    _checkpoint(run, "checkpoint_2026-12-04_10-00-20.000001", 9, complete=False)  # its payload never landed
    (run / RAY_SNAPSHOT).write_text('{"ray_version": "2.60.0", "checkpoint_results": [{"checkpoint_dir_na')

    previous = latest_state(str(tmp_path / "runs"), "r")
    assert previous["step"] == 6 and previous["checkpoint_path"] == str(newest)
    assert previous["resume_from"].path == str(newest)  # the workers are told: Ray knows no checkpoint
    kept = list(run.glob(f"{RAY_SNAPSHOT}.damaged-*"))
    assert len(kept) == 1 and kept[0].read_text().startswith('{"ray_version"')  # nothing lost
    assert not (run / RAY_SNAPSHOT).exists()
    line = capsys.readouterr().out.strip()
    assert line.startswith("[restoray] Ray Train's checkpoint list of run 'r' is damaged (") and "\n" not in line


def test_a_whole_checkpoint_list_and_a_new_run_are_left_alone(tmp_path):
    run = tmp_path / "runs" / "r"
    assert newest_checkpoint_folder(str(tmp_path / "runs"), "r") is None and latest_state(str(tmp_path / "runs"), "r") is None
    run.mkdir(parents=True)
    (run / RAY_SNAPSHOT).write_text(json.dumps({"checkpoint_results": []}))
    assert not set_aside_damaged_snapshot(str(tmp_path / "runs"), "r")
    assert (run / RAY_SNAPSHOT).exists()
