"""A cancelled or crashed run leaves nothing behind, and says it was interrupted.

./fcgispec runs its long commands under the run guard (harness/run_guard.py): SIGTERM (CI
cancellation, `timeout`), SIGINT (Ctrl-C) or a crash of the harness must end with exit status 2 (3
for a crash), "interrupted" in the output, no traceback, no process of the run left (responders,
php-fpm masters and workers) and no run directory (the run's TMPDIR) left.

Every test starts ./fcgispec in a session of its own with TMPDIR set to its tmp_path, so that the
run directory is found there, and a marker in the environment that every process of the run
inherits. The run's processes are: the groups it registered, everything below the guard, and every
process carrying the marker.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import signal
import subprocess
import tempfile
import sys
import termios
import threading
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from harness.targets.process import GroupProcess, descendants, group_members, registered_groups, start_time_of

ROOT = Path(__file__).resolve().parent.parent
LAUNCHER = ROOT / "fcgispec"
PHP_FPM = Path("/usr/sbin/php-fpm8.2")
PY = sys.executable
MARKER_ENV = "FCGISPEC_INTERRUPTION_TEST"
START_TIMEOUT = 90.0  # set-up (a build check) and the first target's start, on a loaded machine
EXIT_TIMEOUT = 60.0  # the guard's grace (10 s) and the clean-up, with room


class Run:
    """One ./fcgispec (or run guard) process under test, and what it started."""

    def __init__(self, argv: list[str], tmp_path: Path, *, terminal: bool = False) -> None:
        self.tmp_path = tmp_path
        self.marker = uuid.uuid4().hex
        env = {**os.environ, "TMPDIR": str(tmp_path), MARKER_ENV: self.marker}
        env.pop("FCGISPEC_RUN_DIR", None)
        self.output = bytearray()
        self.master: int | None = None
        if terminal:
            # A terminal of its own: the launcher is its session's leader and the terminal's foreground group.
            self.master, slave = pty.openpty()
            self.process = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=slave, stdout=slave, stderr=slave,
                                            start_new_session=True, preexec_fn=_take_terminal)
            os.close(slave)
            threading.Thread(target=self._read_terminal, daemon=True).start()
        else:
            self.log = tmp_path / "output.txt"
            with open(self.log, "wb") as log:
                self.process = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                                stderr=subprocess.STDOUT, start_new_session=True)
        self.seen: dict[int, int] = {}  # pid -> start time of every process of the run seen so far
        self.groups: set[int] = set()

    def _read_terminal(self) -> None:
        assert self.master is not None
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.output += chunk

    def text(self) -> str:
        if self.master is None:
            return self.log.read_text(errors="replace")
        return self.output.decode(errors="replace")

    def run_dirs(self) -> list[Path]:
        return sorted(self.tmp_path.glob("fcgispec-run-*"))

    def note_processes(self) -> None:
        """Remember every process of the run alive now (to check later that none is left)."""
        for run_dir in self.run_dirs():
            for pgid in registered_groups(str(run_dir)):
                self.groups.add(pgid)
                for pid in group_members(pgid):
                    self._note(pid)
        for pid in [*descendants(self.process.pid), *_marked(self.marker)]:
            self._note(pid)

    def _note(self, pid: int) -> None:
        start = start_time_of(pid)
        if start is not None:
            self.seen[pid] = start

    def wait_for_groups(self, count: int = 1, members: int = 1, timeout: float = START_TIMEOUT) -> None:
        """Until the run has registered count process groups with at least members living members each
        (its targets are up)."""
        end_time = time.monotonic() + timeout
        while time.monotonic() < end_time:
            assert self.process.poll() is None, f"the run ended early ({self.process.returncode}):\n{self.text()}"
            living = [pgid for run_dir in self.run_dirs() for pgid in registered_groups(str(run_dir))
                      if len(group_members(pgid)) >= members]
            if len(living) >= count:
                self.note_processes()
                return
            time.sleep(0.05)
        pytest.fail(f"no {count} registered process groups within {timeout:g} s:\n{self.text()}")

    def child_pid(self, word: str) -> int:
        """The guard's child whose command line holds word."""
        for pid in descendants(self.process.pid):
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if word in command and "harness.run_guard" not in command:
                return pid
        pytest.fail(f"no process running {word!r} below the guard")

    def wait(self, timeout: float = EXIT_TIMEOUT) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            pytest.fail(f"the run did not end within {timeout:g} s:\n{self.text()}")

    def left_running(self) -> list[str]:
        """The processes of the run still alive (pid reuse excluded by the start time)."""
        time.sleep(0.2)  # killed processes may take a moment to be reaped
        self.note_processes()  # the marked ones alive now, too
        left = []
        for pid, start in sorted(self.seen.items()):
            if start_time_of(pid) == start:
                try:
                    command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                except OSError:
                    command = "?"
                left.append(f"{pid} {command}")
        left += [f"group {pgid}: {group_members(pgid)}" for pgid in sorted(self.groups) if group_members(pgid)]
        return left

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        for pid, start in self.seen.items():
            if start_time_of(pid) == start:
                os.kill(pid, signal.SIGKILL)
        if self.master is not None:
            os.close(self.master)


def _take_terminal() -> None:
    """In the child, after setsid(): make its stdin (the pty) its controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _marked(marker: str) -> list[int]:
    """Processes whose environment carries the test's marker."""
    needle = f"{MARKER_ENV}={marker}".encode()
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if needle in Path(f"/proc/{name}/environ").read_bytes():
                    found.append(int(name))
            except OSError:
                pass
    return found


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[list[Run]]:
    started: list[Run] = []
    yield started
    for run in started:
        run.close()


def _start(runs: list[Run], argv: list[str], tmp_path: Path, **kwargs: bool) -> Run:
    run = Run(argv, tmp_path, **kwargs)
    runs.append(run)
    return run


def _assert_clean_interruption(run: Run, status: int, expected_status: int = 2) -> str:
    text = run.text()
    assert status == expected_status, text
    assert "Traceback" not in text, text
    assert run.left_running() == [], text
    assert run.run_dirs() == [], text
    assert not list(run.tmp_path.glob("fcgispec-*")), list(run.tmp_path.iterdir())
    return text


# --- the suite -------------------------------------------------------------------------------------


def test_sigterm_stops_the_suite_and_its_responders(runs: list[Run], tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    run = _start(runs, [str(LAUNCHER), "--report-json", str(report)], tmp_path)
    run.wait_for_groups(2)  # both workers' responders
    time.sleep(0.5)  # some cases done
    run.process.send_signal(signal.SIGTERM)
    text = _assert_clean_interruption(run, run.wait())
    assert "SIGTERM received: the run is interrupted" in text
    assert "run interrupted after " in text.splitlines()[-1], text
    assert " cases: " in text.splitlines()[-1]
    assert json.loads(report.read_text())["interrupted"] is True


def test_interrupted_before_any_case_finished_the_report_says_so(runs: list[Run], tmp_path: Path) -> None:
    # A target that takes connections (its listening socket on fd 0) and never answers: the check before
    # the cases waits for its answer, and is interrupted.
    run = _start(runs, [str(LAUNCHER), "-n", "0", "--target", "cmd:sleep 120", "--case", "FCGI-3.3"], tmp_path)
    run.wait_for_groups(1)
    time.sleep(0.5)
    run.process.send_signal(signal.SIGTERM)
    text = _assert_clean_interruption(run, run.wait())
    assert text.splitlines()[-1] == "run interrupted before any case, while checking that the target answers FastCGI", text


def test_sigterm_to_pytest_itself_tears_down_and_reports(runs: list[Run], tmp_path: Path) -> None:
    # As `timeout pytest ...` without the guard: pytest turns SIGTERM into Ctrl-C's path.
    run = _start(runs, [str(LAUNCHER)], tmp_path)
    run.wait_for_groups(2)
    os.kill(run.child_pid("pytest"), signal.SIGTERM)
    text = _assert_clean_interruption(run, run.wait())
    assert "run interrupted after " in text.splitlines()[-1], text
    assert "left running" not in text  # pytest stopped its responders itself


def test_sigint_to_the_launchers_group_stops_the_suite(runs: list[Run], tmp_path: Path) -> None:
    run = _start(runs, [str(LAUNCHER)], tmp_path)
    run.wait_for_groups(2)
    os.killpg(run.process.pid, signal.SIGINT)  # what `kill -INT -PGID` (or a terminal without the guard's help) sends
    text = _assert_clean_interruption(run, run.wait())
    assert "run interrupted after " in text


def test_ctrl_c_on_a_terminal_stops_the_suite(runs: list[Run], tmp_path: Path) -> None:
    run = _start(runs, [str(LAUNCHER)], tmp_path, terminal=True)
    run.wait_for_groups(2)
    assert run.master is not None
    os.write(run.master, b"\x03")  # the terminal sends SIGINT to its foreground group
    text = _assert_clean_interruption(run, run.wait())
    assert "run interrupted after " in text


@pytest.mark.skipif(not PHP_FPM.exists(), reason=f"{PHP_FPM} is not installed (apt-get install php8.2-fpm)")
def test_sigterm_stops_php_fpm_masters_and_workers(runs: list[Run], tmp_path: Path) -> None:
    run = _start(runs, [str(LAUNCHER), "--target", "php-fpm"], tmp_path)
    run.wait_for_groups(2, members=2)  # each worker's php-fpm master with its workers
    run.process.send_signal(signal.SIGTERM)
    text = _assert_clean_interruption(run, run.wait())
    assert "run interrupted after " in text


def test_a_crashed_harness_leaves_nothing_behind(runs: list[Run], tmp_path: Path) -> None:
    run = _start(runs, [str(LAUNCHER)], tmp_path)
    run.wait_for_groups(2)
    os.kill(run.child_pid("pytest"), signal.SIGKILL)  # no teardown, no report
    text = _assert_clean_interruption(run, run.wait(), expected_status=3)
    assert "fcgispec: /usr/bin/python3 -m pytest killed by SIGKILL: the run is incomplete" in text
    assert "process group(s) the run left running" in text


# --- the matrix ------------------------------------------------------------------------------------


def test_ctrl_c_stops_the_matrix_without_rewriting_its_files(runs: list[Run], tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "runs").mkdir(parents=True)
    (out / "index.html").write_text("the previous matrix\n")
    (out / "runs" / "reference.json").write_text("{}\n")
    run = _start(runs, [str(LAUNCHER), "matrix", "--targets", "reference", "--out", str(out), "--no-docs"], tmp_path,
                 terminal=True)
    run.wait_for_groups(1)
    assert run.master is not None
    os.write(run.master, b"\x03")
    text = _assert_clean_interruption(run, run.wait())
    lines = [line.removeprefix("^C") for line in text.splitlines() if "interrupted" in line]  # the terminal echoes ^C
    assert len(lines) == 1 and lines[0].startswith("matrix interrupted: "), text
    assert (out / "index.html").read_text() == "the previous matrix\n"
    assert (out / "runs" / "reference.json").read_text() == "{}\n"


def test_sigterm_stops_the_matrix(runs: list[Run], tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = _start(runs, [str(LAUNCHER), "matrix", "--targets", "reference", "--out", str(out), "--no-docs"], tmp_path)
    run.wait_for_groups(1)
    run.process.send_signal(signal.SIGTERM)
    text = _assert_clean_interruption(run, run.wait())
    assert "matrix interrupted: runs of 0 of 1 targets finished" in text
    assert not (out / "index.html").exists()


# --- the guard and the registration on their own -------------------------------------------------


def _guard(*command: str) -> list[str]:
    return [PY, "-m", "harness.run_guard", "--", *command]


def test_a_group_process_registers_itself_until_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "groups").mkdir()  # the guard makes it
    monkeypatch.setenv("FCGISPEC_RUN_DIR", str(tmp_path))
    process = GroupProcess([PY, "-c", "import time; time.sleep(60)"])
    try:
        assert registered_groups(str(tmp_path)) == {process.pgid: start_time_of(process.pid)}
    finally:
        process.stop(grace=0.5)
    assert registered_groups(str(tmp_path)) == {}
    assert list((tmp_path / "groups").iterdir()) == []


def test_a_stale_run_directory_variable_creates_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FCGISPEC_RUN_DIR", str(tmp_path / "gone"))  # no guard made it
    process = GroupProcess([PY, "-c", "import time; time.sleep(60)"])
    process.stop(grace=0.5)
    assert list(tmp_path.iterdir()) == []


def test_a_killed_guard_still_has_the_suite_stop_its_responders(runs: list[Run], tmp_path: Path) -> None:
    run = _start(runs, [str(LAUNCHER)], tmp_path)
    run.wait_for_groups(2)
    os.kill(run.process.pid, signal.SIGKILL)  # the guard itself: its child is told (SIGINT) and tears down
    assert run.wait() == -signal.SIGKILL
    end_time = time.monotonic() + EXIT_TIMEOUT
    while run.left_running() and time.monotonic() < end_time:
        time.sleep(0.2)
    assert run.left_running() == [], run.text()
    assert "run interrupted after " in run.text()


def test_the_guard_gives_the_run_a_directory_and_the_childs_status(runs: list[Run], tmp_path: Path) -> None:
    code = ("import os, sys, tempfile; d = os.environ['FCGISPEC_RUN_DIR']; "
            "assert tempfile.gettempdir() == os.path.join(d, 'tmp'), tempfile.gettempdir(); "
            "open(os.path.join(d, 'tmp', 'left-behind'), 'w').close(); print('run dir', d); sys.exit(1)")
    run = _start(runs, _guard(PY, "-c", code), tmp_path)
    status = run.wait()
    assert status == 1, run.text()
    assert "run dir " + str(tmp_path / "fcgispec-run-") in run.text()
    assert run.run_dirs() == []


def test_the_guard_ends_a_registered_group_the_harness_did_not_stop(runs: list[Run], tmp_path: Path) -> None:
    # A harness that starts a group which ignores SIGTERM, then exits without stopping it.
    code = ("import signal, sys; from harness.targets.process import GroupProcess; "
            "p = GroupProcess([sys.executable, '-c', 'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "time.sleep(120)']); print('started', p.pgid, flush=True)")
    run = _start(runs, _guard(PY, "-c", code), tmp_path)
    status = run.wait()
    text = run.text()
    pgid = int(text.split("started ")[1].split()[0])
    assert status == 0, text
    assert group_members(pgid) == [], text
    assert "stopped 1 process group(s) the run left running" in text
    assert run.run_dirs() == []


def test_the_guard_ends_an_orphan_that_left_every_group(runs: list[Run], tmp_path: Path) -> None:
    # A daemon's double fork: the process is in no registered group and its parent is gone.
    code = ("import os, sys, time\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    if os.fork() == 0:\n"
            "        print('orphan', os.getpid(), flush=True); time.sleep(120)\n"
            "    os._exit(0)\n"
            "time.sleep(0.5)\n")
    run = _start(runs, _guard(PY, "-c", code), tmp_path)
    status = run.wait()
    text = run.text()
    orphan = int(text.split("orphan ")[1].split()[0])
    assert status == 0, text
    assert start_time_of(orphan) is None, text


def test_the_guard_without_a_command_is_a_usage_error(tmp_path: Path) -> None:
    done = subprocess.run([PY, "-m", "harness.run_guard"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 4
    assert done.stderr.splitlines() == ["usage: python3 -m harness.run_guard -- COMMAND ARGS..."]


def test_the_guard_says_when_the_command_cannot_run(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run(_guard(str(tmp_path / "missing")), cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 3
    assert done.stderr.splitlines() == [f"fcgispec: cannot run {tmp_path / 'missing'}: No such file or directory"]
    assert list(tmp_path.iterdir()) == []


# --- temporary files belong to their owner -------------------------------------------------------


def test_a_cmd_target_removes_its_socket_directory_when_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.targets.base import CommandTarget

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    responder = ROOT / "build" / "reference-server" / "fcgispec-responder"
    target = CommandTarget(f"{responder} --quiet --listen unix:{{socket}}")
    target.start()
    try:
        assert [path.name for path in tmp_path.iterdir() if path.is_dir()][0].startswith("fcgispec-")
    finally:
        target.stop()
    assert [path for path in tmp_path.iterdir() if path.is_dir()] == []


def test_a_web_server_that_fails_to_start_leaves_no_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.capture.webservers import Nginx

    class ExitsAtOnce(Nginx):
        binary = "false"

        def argv(self, config: Path) -> list[str]:
            return ["{binary}"]

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    server = ExitsAtOnce("127.0.0.1", 9)
    with pytest.raises(RuntimeError, match="exited with 1"):
        server.start()
    assert list(tmp_path.iterdir()) == []
