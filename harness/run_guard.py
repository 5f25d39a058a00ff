"""The run guard: a long-running fcgispec command, run so that a cancelled or crashed run leaves nothing behind.

    /usr/bin/python3 -m harness.run_guard -- COMMAND ARGS...

The launcher (./fcgispec) puts it in front of the suite's pytest, the matrix, the client suite and
the capture/replay commands. It

- makes a run directory (under $TMPDIR or /tmp) and gives the command FCGISPEC_RUN_DIR=<it> and
  TMPDIR=<it>/tmp: every temporary file of the run is under it, and every process group the harness
  starts is registered in it (harness/targets/process.py);
- runs the command as its child, in a process group of its own that gets the terminal when the guard
  has it: Ctrl-C reaches the command (and its xdist workers) once, as it did without the guard;
- on SIGINT, SIGTERM or SIGHUP sends the child one SIGINT (pytest then tears its fixtures down and
  prints its report), waits up to INTERRUPT_GRACE (a second signal cuts the wait short), then kills
  the child's group and everything below it;
- once the child has ended in any way, ends the registered groups still alive and whatever else of
  the run is left (the guard is the run's child subreaper: processes orphaned by the run become its
  children), with SIGTERM, a grace, then SIGKILL; removes the run directory; and exits with the
  child's status: 2 when the run was interrupted (unless the child still exited with 0: `record`
  stopped by a signal has written its transcript), 3 when the child was killed by another signal.

Standard library only (harness.targets.process is too), and never a traceback: whatever goes wrong
is one line on stderr.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Sequence

from harness.targets.process import GROUPS_DIR, RUN_DIR_ENV, describe_exit, descendants, group_members, registered_groups, start_time_of

INTERRUPT_GRACE = 10.0  # seconds the child has, after the forwarded SIGINT, to tear down and report
LEFTOVER_GRACE = 3.0  # seconds what the run left behind has, after SIGTERM, before SIGKILL
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
EXIT_INTERRUPTED = 2
EXIT_CANNOT_RUN = 3
EXIT_USAGE = 4
_POLL = 0.05
_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_PDEATHSIG = 1


def make_run_dir() -> str:
    """The run directory with its tmp/ (TMPDIR for the run), both reachable by workers that drop privileges."""
    run_dir = tempfile.mkdtemp(prefix="fcgispec-run-")
    os.chmod(run_dir, 0o755)
    os.mkdir(os.path.join(run_dir, GROUPS_DIR))
    os.mkdir(os.path.join(run_dir, "tmp"))
    # Like /tmp: php-fpm's and the web servers' workers run as nobody and make files here.
    os.chmod(os.path.join(run_dir, "tmp"), 0o1777)
    return run_dir


def _prctl(option: int, value: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # Linux only; without it the registered groups are still ended


def _become_subreaper() -> None:
    """Orphans of the run become the guard's children (not init's), so none escapes the clean-up."""
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def _interrupt_when_orphaned() -> None:
    """In the child, before exec: should the guard itself be killed (SIGKILL), the child is interrupted
    as by Ctrl-C and stops what it started; only the run directory is then left."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGINT)


class Terminal:
    """The controlling terminal, when the guard's group has it in the foreground: handed to the child's group."""

    def __init__(self) -> None:
        self.fd: int | None = None
        try:
            fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
        except OSError:
            return
        try:
            if os.tcgetpgrp(fd) == os.getpgrp():
                self.fd = fd
                return
        except OSError:
            pass
        os.close(fd)

    def give(self, pgid: int) -> None:
        """Make pgid the foreground group (from the background too: SIGTTOU is ignored meanwhile)."""
        if self.fd is None:
            return
        previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        try:
            os.tcsetpgrp(self.fd, pgid)
        except OSError:
            pass
        finally:
            signal.signal(signal.SIGTTOU, previous)

    def owned_by_guard(self) -> bool:
        try:
            return self.fd is not None and os.tcgetpgrp(self.fd) == os.getpgrp()
        except OSError:
            return False


class Guard:
    """One run: the child, the signals received, and the clean-up afterwards."""

    def __init__(self, command: Sequence[str]) -> None:
        self.command = list(command)
        self.received: list[int] = []
        self.run_dir = ""
        self.child: subprocess.Popen[bytes] | None = None
        self.terminal: Terminal | None = None

    def on_signal(self, signum: int, frame: object) -> None:
        self.received.append(signum)

    def run(self) -> int:
        for sig in FORWARDED_SIGNALS:
            signal.signal(sig, self.on_signal)
        try:
            self.run_dir = make_run_dir()
        except OSError as error:
            print(f"fcgispec: cannot make the run directory: {error}", file=sys.stderr)
            return EXIT_CANNOT_RUN
        try:
            return self._supervise()
        finally:
            self._clean_up()

    def _supervise(self) -> int:
        _become_subreaper()
        env = {**os.environ, RUN_DIR_ENV: self.run_dir, "TMPDIR": os.path.join(self.run_dir, "tmp")}
        self.terminal = Terminal()
        try:
            self.child = subprocess.Popen(self.command, env=env, process_group=0, preexec_fn=_interrupt_when_orphaned)
        except OSError as error:
            print(f"fcgispec: cannot run {self.command[0]}: {error.strerror or error}", file=sys.stderr)
            return EXIT_CANNOT_RUN
        self.terminal.give(self.child.pid)
        status = self._wait_for_child(self.child)
        if self.terminal.fd is not None:
            self.terminal.give(os.getpgrp())
            os.close(self.terminal.fd)
        if self.received and status != 0:
            return EXIT_INTERRUPTED  # a child that finished what it was doing (record writes its transcript) says 0
        if status < 0:
            if -status in FORWARDED_SIGNALS:
                return EXIT_INTERRUPTED  # interrupted where only the child saw it (Ctrl-C on its terminal)
            command = " ".join(self.command[:3])  # "/usr/bin/python3 -m pytest"
            print(f"fcgispec: {command} {describe_exit(status)}: the run is incomplete", file=sys.stderr)
            return EXIT_CANNOT_RUN
        return status

    def _wait_for_child(self, child: subprocess.Popen[bytes]) -> int:
        """Until the child has exited; passes signals on and kills the child's tree when its grace is over."""
        told = 0
        kill_at: float | None = None
        while True:
            if len(self.received) > told:
                if told == 0:
                    name = signal.Signals(self.received[0]).name
                    print(f"fcgispec: {name} received: the run is interrupted, stopping it", file=sys.stderr)
                    _send(child.pid, signal.SIGINT)
                    kill_at = time.monotonic() + INTERRUPT_GRACE
                else:
                    kill_at = time.monotonic()  # asked again: no more waiting
                told = len(self.received)
            if kill_at is not None and time.monotonic() >= kill_at:
                _kill_tree(child.pid)
                kill_at = None
            status = self._reap(child)
            if status is not None:
                child.returncode = status
                return status
            time.sleep(_POLL)

    def _reap(self, child: subprocess.Popen[bytes]) -> int | None:
        """Collect every child that ended (orphans of the run are ours too); the child's exit code once it ended."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG | os.WUNTRACED)
            except ChildProcessError:
                return None
            if pid == 0:
                return None
            if pid != child.pid:
                continue
            if os.WIFSTOPPED(status):
                self._stopped(child.pid)
                continue
            return os.waitstatus_to_exitcode(status)

    def _stopped(self, pgid: int) -> None:
        """Ctrl-Z stopped the child's group: stop the guard too (the shell sees its job stopped), resume both."""
        if self.terminal is None or self.terminal.fd is None:
            return
        self.terminal.give(os.getpgrp())
        os.kill(os.getpid(), signal.SIGSTOP)
        if self.terminal.owned_by_guard():  # fg: the child gets the terminal back; bg: it runs without
            self.terminal.give(pgid)
        _send(-pgid, signal.SIGCONT)

    def _clean_up(self) -> None:
        """End what the run left running (registered groups, the child's group, orphans), remove the run directory."""
        left = self._leftovers()
        if left:
            for pgid in left:
                _send(-pgid, signal.SIGTERM)
            for pid in descendants(os.getpid()):
                _send(pid, signal.SIGTERM)
            end_time = time.monotonic() + LEFTOVER_GRACE
            while self._leftovers() and time.monotonic() < end_time:
                self._reap_orphans()
                time.sleep(_POLL)
            for pgid in self._leftovers():
                _send(-pgid, signal.SIGKILL)
            for pid in descendants(os.getpid()):
                _send(pid, signal.SIGKILL)
            self._reap_orphans()
            print(f"fcgispec: stopped {len(left)} process group(s) the run left running", file=sys.stderr)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        if os.path.exists(self.run_dir):
            print(f"fcgispec: could not remove the run directory {self.run_dir}", file=sys.stderr)

    def _leftovers(self) -> list[int]:
        """Process groups of the run with a living member: the registered ones, the child's, the orphans'."""
        groups: set[int] = set()
        for pgid, start_time in registered_groups(self.run_dir).items():
            leader_start = start_time_of(pgid)
            if leader_start is not None and start_time and leader_start != start_time:
                continue  # the group's id now names another process: not the run's
            groups.add(pgid)
        if self.child is not None:
            groups.add(self.child.pid)
        for pid in descendants(os.getpid()):
            groups.add(_pgid_of(pid) or pid)
        groups.discard(os.getpgrp())
        return sorted(pgid for pgid in groups if group_members(pgid))

    def _reap_orphans(self) -> None:
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return


def _pgid_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _send(pid: int, sig: int) -> None:
    """kill(pid, sig) (a negative pid: a group), where the target may already be gone."""
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_tree(pid: int) -> None:
    """SIGKILL to the child's group and to every process below the guard (the child's tree and the orphans)."""
    _send(-pid, signal.SIGKILL)
    for below in descendants(os.getpid()):
        _send(below, signal.SIGKILL)


def main(argv: Sequence[str]) -> int:
    if len(argv) < 2 or argv[0] != "--":
        print("usage: python3 -m harness.run_guard -- COMMAND ARGS...", file=sys.stderr)
        return EXIT_USAGE
    return Guard(argv[1:]).run()


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Exception as error:  # never a traceback: the command's own output says more
        print(f"fcgispec: run guard: {type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(EXIT_CANNOT_RUN)
