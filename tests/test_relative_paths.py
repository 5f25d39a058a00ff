"""Relative paths on the command line mean what they mean where the command was typed: the
launcher never changes directory. Reports land there, an exclude file and a cmd:/unix: target are
found there, whether fcgispec is run as ./fcgispec or by its full path from elsewhere."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from harness.targets.base import reference_binary
from harness.targets.process import GroupProcess

ROOT = Path(__file__).resolve().parent.parent
FCGISPEC = ROOT / "fcgispec"
TIMEOUT = 300


def _fcgispec(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(FCGISPEC), *args], cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT)


def test_reports_and_the_exclude_file_are_relative_to_where_the_command_runs(tmp_path: Path) -> None:
    (tmp_path / "known.txt").write_text("FCGI-3.3-1  a known deviation, excluded by a relative path\n")
    run = _fcgispec(tmp_path, "--case", "FCGI-3.3-1", "--junitxml=r.xml", "--report-json=r.json",
                    "--exclude-file", "known.txt")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert (tmp_path / "r.xml").exists() and (tmp_path / "r.json").exists()
    assert "excluded" in run.stdout
    assert not (ROOT / "r.xml").exists() and not (ROOT / "r.json").exists()


def test_a_relative_cmd_target_is_run_from_where_the_command_runs(tmp_path: Path) -> None:
    app = tmp_path / "my-app"
    app.write_text(f'#!/bin/sh\nexec {reference_binary(ROOT)} --listen "tcp:127.0.0.1:$1"\n')
    app.chmod(0o755)
    run = _fcgispec(tmp_path, "--target", "cmd:./my-app {port}", "--case", "FCGI-3.3-1", "-n", "0")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "1 passed" in run.stdout


def test_a_relative_unix_socket_is_found_where_the_command_runs(tmp_path: Path) -> None:
    server = GroupProcess([str(reference_binary(ROOT)), "--listen", "unix:app.sock"], cwd=tmp_path,
                          stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not (tmp_path / "app.sock").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        run = _fcgispec(tmp_path, "--target", "unix:app.sock", "--case", "FCGI-3.3-1")
    finally:
        server.stop()
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "1 passed" in run.stdout


def test_the_checkout_is_not_written_by_a_run_from_elsewhere(tmp_path: Path) -> None:
    status = ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=all"]
    before = subprocess.run(status, capture_output=True, text=True).stdout
    run = _fcgispec(tmp_path, "--case", "FCGI-3.3-1", "--report-json", "out.json")
    assert run.returncode == 0
    assert subprocess.run(status, capture_output=True, text=True).stdout == before
    assert os.listdir(tmp_path) == ["out.json"]
