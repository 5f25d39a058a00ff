"""The `fcgispec` command itself: what a mistyped command line gets (one line, exit status 4),
and what --help shows. Each row is an input a user typed, the start of the message it must print
on stderr or stdout, and the exit status."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FCGISPEC = str(ROOT / "fcgispec")

BAD_INPUTS = [
    (["nosuchcommand"], "fcgispec: unknown command 'nosuchcommand'", 4),
    (["FCGI-3.3-1"], "fcgispec: unknown command 'FCGI-3.3-1'", 4),
    (["setup", "--bogus"], "fcgispec setup: unknown argument '--bogus'", 4),
    (["package", "now"], "fcgispec package: takes no arguments", 4),
    (["client", "--client", "nosuch"], "ERROR: --client: unknown client 'nosuch'", 4),
    (["client", "--client", "cmd:"], "ERROR: --client: cmd: needs a command", 4),
    (["client", "--client", 'cmd:x "y'], "ERROR: --client: 'cmd:x \"y': the command cannot be split", 4),
    (["probe-check"], "fcgispec probe-check: error: the following arguments are required: --target", 4),
    (["replay"], "fcgispec replay: the following arguments are required: file", 4),
    (["matrix", "--targets", "nope"], "fcgispec matrix: --targets: unknown 'nope'", 4),
    (["--target", "garbage"], "ERROR: --target: unknown target 'garbage'", 4),
]


@pytest.mark.parametrize("argv,message,status", BAD_INPUTS, ids=[" ".join(row[0]) for row in BAD_INPUTS])
def test_bad_input_is_one_clear_line(tmp_path: Path, argv: list[str], message: str, status: int) -> None:
    run = subprocess.run([FCGISPEC, *argv], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    output = run.stdout + run.stderr
    assert run.returncode == status, output[-2000:]
    assert message in output, output[-2000:]
    assert "Traceback" not in output
    assert list(tmp_path.iterdir()) == []


def test_help_lists_the_commands_the_suite_options_and_the_exit_statuses(tmp_path: Path) -> None:
    run = subprocess.run([FCGISPEC, "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0
    for expected in ("fcgispec probe-check", "fcgispec package", "--target SPEC", "--exclude-file PATH",
                     "--fcgi-timeout SECONDS", "4 usage error"):
        assert expected in run.stdout
