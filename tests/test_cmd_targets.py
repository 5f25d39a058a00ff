"""cmd: targets that exit, fork children that leave the process group, or never pad (tests/servers/one_at_a_time.py).

How a spawned target went away decides a verdict (spec §7 allows an exit with nonzero status after a
protocol error, never a crash), so its exit status must be the program's own; what a case saw of a
target that exited while the case ran must be told as that exit; nothing it started may outlive the run.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from harness.targets.liveness import ROUND_TRIP_MEASURES
from harness.reports.results import CaseResult, format_details
from harness.suite.case import load_cases, run_case, scale_for
from harness.suite.catch_matrix import explain
from harness.targets.base import CommandTarget
from harness.targets.process import descendants
from harness.verdicts import Outcome, Verdict

ROOT = Path(__file__).resolve().parent.parent
SERVER = ROOT / "tests" / "servers" / "one_at_a_time.py"
PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
CASES = {c.id: c for c in load_cases([ROOT / "cases" / "server"])}
SERVE = f"{PYTHON} {SERVER} --port {{port}}"
# A command the shell cannot exec: it stays between the harness and the program.
SHELL_STAYS = "; exit $?"


@pytest.fixture
def started() -> Iterator[list[CommandTarget]]:
    targets: list[CommandTarget] = []
    yield targets
    for target in targets:
        target.stop()


def _run(started: list[CommandTarget], command: str, case_id: str) -> Outcome:
    target = CommandTarget(command)
    started.append(target)
    target.start()
    return run_case(CASES[case_id], target, scale=scale_for(1.0))


# -- exit statuses: the program's own, a shell's 128+N only when the shell stayed ---------------------

HOW_STARTED = ["no shell", "shell stays", "wrapper script"]


def _command(how: str, options: str, tmp_path: Path) -> str:
    if how == "no shell":
        return f"{SERVE} {options}"
    if how == "shell stays":
        return f"{SERVE} {options}{SHELL_STAYS}"
    # A tiny script that runs the server as a child (no exec): the script's shell stays between.
    script = tmp_path / "run-server"
    script.write_text(f'#!/bin/sh\n{PYTHON} {SERVER} --port "$1" {options}\n')
    script.chmod(0o755)
    return f"{script} {{port}}"


@pytest.mark.parametrize("how", HOW_STARTED)
def test_exit_255_after_a_protocol_error_is_the_allowed_exit(started: list[CommandTarget], how: str,
                                                             tmp_path: Path) -> None:
    # A Perl `die` exits 255: spec §7 lets an application exit with nonzero status after a protocol error.
    outcome = _run(started, _command(how, "--on-malformed exit:255", tmp_path), "FCGI-3.3-14")
    assert outcome.verdict is Verdict.WARN, explain(outcome)
    assert outcome.actual == "the application exited with status 255", explain(outcome)


@pytest.mark.parametrize("how", HOW_STARTED)
def test_killed_by_a_signal_after_a_protocol_error_fails(started: list[CommandTarget], how: str,
                                                         tmp_path: Path) -> None:
    outcome = _run(started, _command(how, "--on-malformed abort", tmp_path), "FCGI-3.3-14")
    assert outcome.verdict is Verdict.FAIL, explain(outcome)
    assert started[-1].through_shell is (how != "no shell")


def test_a_shell_is_between_only_when_it_stays(started: list[CommandTarget]) -> None:
    plain = CommandTarget(SERVE)
    # A shell that execs the program (here an explicit `exec`): the status is the program's own.
    execd = CommandTarget(f"cd {ROOT} && exec {SERVE}")
    stays = CommandTarget(SERVE + SHELL_STAYS)
    for target in (plain, execd, stays):
        started.append(target)
        target.start()
    assert (plain.through_shell, execd.through_shell, stays.through_shell) == (False, False, True)
    assert plain.process is not None and os.path.realpath(f"/proc/{plain.process.pid}/exe") != os.path.realpath("/bin/sh")


# -- a target that exits while a case runs --------------------------------------------------------------

def test_an_exit_mid_case_is_told_at_its_request_without_look_alikes(started: list[CommandTarget]) -> None:
    # php-cgi exits with status 0 after PHP_FCGI_MAX_REQUESTS (500): FCGI-3.3-6 sends 1000 requests.
    outcome = _run(started, f"{SERVE} --max-requests 40", "FCGI-3.3-6")
    assert outcome.verdict is Verdict.FAIL, explain(outcome)
    # Of the 40, one went to the probe-app detection and ROUND_TRIP_MEASURES to timing the round trip.
    answered = 40 - 1 - ROUND_TRIP_MEASURES
    assert outcome.actual.startswith(
        f"the process exited with status 0 during the case: {answered} of the {answered + 1} requests the case sent "
        f"answered, request {answered + 1} not"
    ), outcome.actual
    details = "\n".join(format_details(CaseResult(CASES["FCGI-3.3-6"], outcome)))
    assert "Looks like" not in details and "go-id-reuse" not in details, details


def test_a_request_answered_before_its_stdin_is_not_called_waiting(started: list[CommandTarget]) -> None:
    # Without the probe app FCGI-4.1-7 keeps request 1 busy by holding back its STDIN; a target that
    # answers without reading STDIN (PHP without CONTENT_LENGTH) had no busy request to show.
    outcome = _run(started, f"{SERVE} --no-stdin-wait", "FCGI-4.1-7")
    assert outcome.verdict is Verdict.UNSUPPORTED, explain(outcome)
    assert "answered request 1" in outcome.note and "while request 1 waiting" not in outcome.note, outcome.note
    outcome = _run(started, SERVE, "FCGI-4.1-7")
    assert outcome.verdict is Verdict.PASS and "while request 1 waiting for its STDIN" in outcome.note, explain(outcome)


# -- padding: alignment is claimed only when padding was needed --------------------------------------

def test_alignment_is_not_claimed_for_a_server_that_never_pads(started: list[CommandTarget]) -> None:
    outcome = _run(started, f"{SERVE} --no-padding", "FCGI-3.3-5")
    assert outcome.verdict is Verdict.PASS, explain(outcome)
    assert "aligned to" not in outcome.note and "none of the" in outcome.note and "0 padded" in outcome.note, outcome.note
    outcome = _run(started, SERVE, "FCGI-3.3-5")
    assert re.search(r"all \d+ records aligned to 8 bytes: (\d+) needed padding to align, \1 padded", outcome.note), \
        outcome.note


# -- children that leave the process group --------------------------------------------------------------

def _running(marker: str) -> list[int]:
    """Living processes whose command line holds marker."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as cmdline:
                command = cmdline.read().decode("utf-8", "replace")
            with open(f"/proc/{name}/stat", "rb") as stat:
                state = stat.read().decode("latin-1").rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in command and state not in ("Z", "X"):
            found.append(int(name))
    return found


def test_children_that_call_setsid_do_not_outlive_the_run(tmp_path: Path) -> None:
    # php-cgi with PHP_FCGI_CHILDREN forks its workers; these leave the process group with setsid().
    server = tmp_path / "one_at_a_time.py"  # a path of its own: its processes are told apart by it
    shutil.copy(SERVER, server)
    command = f"cmd:{PYTHON} {server} --port {{port}} --children 2"
    result = subprocess.run([str(ROOT / "fcgispec"), "-n", "0", "--target", command, "--case", "FCGI-3.3-1",
                             "--case", "FCGI-5.4-1"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert "2 cases: 2 passed" in result.stdout, result.stdout + result.stderr
    end_time = time.monotonic() + 3
    while _running(str(server)) and time.monotonic() < end_time:
        time.sleep(0.05)
    assert _running(str(server)) == []


def test_children_that_call_setsid_are_stopped_with_the_target() -> None:
    target = CommandTarget(f"{SERVE} --children 2")
    target.start()
    try:
        assert target.process is not None
        time.sleep(0.2)  # the children are forked
        children = target.process.strays()
        assert len(children) == 2, children  # out of the group: found through their parent links
        family, address = target.address()
    finally:
        target.stop()
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        assert probe.connect_ex(address) != 0  # nothing listens any more
    for pid in children:
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                assert stat.read().decode("latin-1").rsplit(")", 1)[1].split()[0] in ("Z", "X"), pid
        except OSError:
            pass  # gone


def test_children_are_stopped_even_when_their_parent_died_first() -> None:
    # The parent killed (a crash of php-cgi's master): its children, out of the group, lose their parent link.
    target = CommandTarget(f"{SERVE} --children 2")
    target.start()
    try:
        assert target.process is not None
        time.sleep(0.2)  # the children are forked
        outcome = run_case(CASES["FCGI-4.2-1"], target, scale=scale_for(1.0))  # the run notes them
        assert outcome.verdict is Verdict.PASS, explain(outcome)
        children = descendants(target.process.pid)  # (not noted by this look)
        assert len(children) == 2, children
        os.kill(target.process.pid, 9)
        target.process.wait(5)
        family, address = target.address()
    finally:
        target.stop()
    time.sleep(0.1)
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        assert probe.connect_ex(address) != 0  # nothing listens any more
