"""Child processes in a session of their own: started, watched and stopped as a whole.

GroupProcess is a subprocess.Popen started with start_new_session=True: the child leads a new
session and process group, and every process it forks stays in that group unless it moves itself
out. The harness starts targets, web servers and client adapters this way, so that:

- members() / stats() see the whole group (a shell wrapper's child, a master's workers);
- stop() ends the whole group: a first signal (SIGTERM) to the group, a grace period for the
  leader to exit, SIGKILL to the group, the leader reaped, then a short wait until no member is
  left. Descendants that left the group (setsid(), setpgid()) are found through their parent
  links by a scan of /proc taken before the first signal, while the tree is still intact, and
  get the same signals. A process that has left the group and lost its parent (a daemon's double
  fork) cannot be told from any other process, and is left alone.

When FCGISPEC_RUN_DIR is set (harness/run_guard.py sets it for a whole run), every group is
registered there, one file per group, removed once stop() has seen the group gone: a run that is
cancelled or crashes before it stops a group leaves the file, and the guard ends the group.

Only stdlib imports: harness.capture and harness.clients use this module too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Iterable

STOP_GRACE = 3.0  # seconds the leader has to exit after the first signal
REAP_TIMEOUT = 3.0  # seconds to wait, after SIGKILL, for the leader and then the rest to be gone
_POLL = 0.01
RUN_DIR_ENV = "FCGISPEC_RUN_DIR"  # the run's directory, set by harness/run_guard.py
GROUPS_DIR = "groups"  # under it: one file per living process group, named by its id


@dataclass(frozen=True)
class ProcessStats:
    """Resource use of a spawned target's process group (summed over its members)."""

    fds: int
    rss_kib: int
    threads: int
    pids: tuple[int, ...]


@dataclass(frozen=True)
class _ProcEntry:
    """One line of /proc/PID/stat, the fields the helpers need."""

    pid: int
    state: str
    ppid: int
    pgrp: int
    start_time: int  # clock ticks after boot: with the pid, names one process across pid reuse

    @property
    def alive(self) -> bool:
        return self.state not in ("Z", "X")


def _read_stat(pid: int) -> _ProcEntry | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read().decode("latin-1")
    except OSError:
        return None
    # Fields after the parenthesised command name (which may hold spaces and parentheses):
    # state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
    # cutime cstime priority nice num_threads itrealvalue starttime ...
    fields = text[text.rfind(")") + 2 :].split()
    try:
        return _ProcEntry(pid, fields[0], int(fields[1]), int(fields[2]), int(fields[19]))
    except (IndexError, ValueError):
        return None


def _scan() -> list[_ProcEntry]:
    """Every process on the machine (one pass over /proc)."""
    entries = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            entry = _read_stat(int(name))
            if entry is not None:
                entries.append(entry)
    return entries


def group_members(pgid: int) -> list[int]:
    """The living (not zombie) processes of process group pgid, sorted."""
    return sorted(entry.pid for entry in _scan() if entry.pgrp == pgid and entry.alive)


def _descendants(roots: Iterable[int], entries: list[_ProcEntry]) -> list[_ProcEntry]:
    children: dict[int, list[_ProcEntry]] = {}
    for entry in entries:
        children.setdefault(entry.ppid, []).append(entry)
    found: list[_ProcEntry] = []
    seen = set(roots)
    todo = list(seen)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child.pid not in seen:
                seen.add(child.pid)
                found.append(child)
                todo.append(child.pid)
    return found


def descendants(pid: int) -> list[int]:
    """The living processes below pid by parent links (children, their children...), sorted."""
    return sorted(entry.pid for entry in _descendants([pid], _scan()) if entry.alive)


def count_fds(pid: int) -> int:
    """Open file descriptors of a process (0 when it is gone)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def status_numbers(pid: int) -> tuple[int, int]:
    """(VmRSS in KiB, Threads) of a process, zeros when it is gone."""
    rss = threads = 0
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return rss, threads


def stats_of(pids: Iterable[int]) -> ProcessStats:
    """fd count, RSS and threads summed over the given processes."""
    pids = tuple(pids)
    fds = rss = threads = 0
    for pid in pids:
        fds += count_fds(pid)
        member_rss, member_threads = status_numbers(pid)
        rss += member_rss
        threads += member_threads
    return ProcessStats(fds=fds, rss_kib=rss, threads=threads, pids=pids)


def describe_exit(status: int | None) -> str:
    """How a process ended, from a Popen returncode: 'still running', 'killed by SIGSEGV', 'exited with status 2'."""
    if status is None:
        return "still running"
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exited with status {status}"


def start_time_of(pid: int) -> int | None:
    """The start time of a living process (clock ticks after boot), None when there is none."""
    entry = _read_stat(pid)
    return entry.start_time if entry is not None and entry.alive else None


def register_group(pgid: int) -> str | None:
    """Note the group in the run directory (when there is one); the file's path, None if not noted.

    The file holds the leader's start time: the guard leaves the group alone if the pid names
    another process by the time it looks. Not being able to note it is no reason to fail a run.
    """
    run_dir = os.environ.get(RUN_DIR_ENV)
    if not run_dir:
        return None
    path = os.path.join(run_dir, GROUPS_DIR, str(pgid))
    try:
        # The guard made the directory: a stale FCGISPEC_RUN_DIR (no guard) makes none.
        with open(path, "w") as note:
            note.write(f"{start_time_of(pgid) or 0}\n")
    except OSError:
        return None
    return path


def registered_groups(run_dir: str) -> dict[int, int]:
    """{process group id: leader start time (0: not known)} of the groups registered in run_dir."""
    groups: dict[int, int] = {}
    try:
        names = os.listdir(os.path.join(run_dir, GROUPS_DIR))
    except OSError:
        return groups
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(os.path.join(run_dir, GROUPS_DIR, name)) as note:
                groups[int(name)] = int(note.read().strip() or 0)
        except (OSError, ValueError):
            groups[int(name)] = 0
    return groups


class GroupProcess(subprocess.Popen):  # type: ignore[type-arg]
    """A child started as the leader of a new session and process group, and a handle on that group.

    Takes subprocess.Popen's arguments (start_new_session is always on). The group id is the
    leader's pid, and stays valid for killpg() while any member is left, after the leader exited.
    """

    def __init__(self, args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        kwargs["start_new_session"] = True
        super().__init__(args, **kwargs)
        # Descendants seen outside the group, as (pid, start time): they get the stop signals too.
        self._strays: dict[int, int] = {}
        # Set once stop() has seen the group gone: a later stop() signals nothing (the group id may
        # name another group by then).
        self._gone = False
        self._registration = register_group(self.pgid)

    @property
    def pgid(self) -> int:
        return self.pid

    def exit_status(self) -> int | None:
        """The leader's exit status once it has exited (negative: killed by that signal), else None."""
        return self.poll()

    def exit_text(self) -> str:
        return describe_exit(self.poll())

    def members(self) -> list[int]:
        """The living processes of the group (the leader while it runs), sorted."""
        return group_members(self.pgid)

    def stats(self) -> ProcessStats | None:
        """Resource use summed over the group's members; None once the leader has exited."""
        if self.poll() is not None:
            return None
        return stats_of(self.members() or [self.pid])

    def signal_group(self, sig: int) -> bool:
        """Send sig to every member of the group; False when none is left."""
        try:
            os.killpg(self.pgid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def strays(self) -> list[int]:
        """Living descendants of the group's processes that have left the group (setsid, setpgid)."""
        return sorted(self._find_strays(_scan()))

    def _find_strays(self, entries: list[_ProcEntry]) -> dict[int, int]:
        """{pid: start time} of the strays in this scan, added to those seen before and still alive."""
        by_pid = {entry.pid: entry for entry in entries}
        for pid, start_time in list(self._strays.items()):
            entry = by_pid.get(pid)
            if entry is None or entry.start_time != start_time or not entry.alive:
                del self._strays[pid]  # gone, or the pid now names another process
        # The group's members (the leader among them while it is not reaped: a session leader
        # cannot leave its group) and the strays: never the leader's pid alone, which may name
        # another process once the leader has been reaped.
        roots = {*(e.pid for e in entries if e.pgrp == self.pgid), *self._strays}
        for entry in _descendants(roots, entries):
            if entry.pgrp != self.pgid and entry.alive:
                self._strays[entry.pid] = entry.start_time
        return dict(self._strays)

    def _kill_strays(self, strays: Iterable[int], sig: int) -> None:
        for pid in strays:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def stop(
        self, grace: float = STOP_GRACE, first_signal: int | None = signal.SIGTERM, reap_timeout: float = REAP_TIMEOUT
    ) -> int | None:
        """End the whole group: first_signal, up to grace for the leader to exit, SIGKILL, reap; the exit status.

        first_signal None sends nothing first (the caller asked the leader to exit some other
        way, e.g. by closing its stdin) and only waits. Members still running when the leader
        has exited are killed without a further grace. Returns the leader's exit status (None
        if it could not be reaped within reap_timeout).
        """
        if self._gone and self.poll() is not None:
            return self.returncode
        strays = self._find_strays(_scan())  # while the parent links still lead from the group to them
        if self.poll() is None and first_signal is not None:
            self.signal_group(first_signal)
            self._kill_strays(strays, first_signal)
        if self.poll() is None:
            try:
                self.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        strays = self._find_strays(_scan())  # those forked meanwhile too
        self.signal_group(signal.SIGKILL)
        self._kill_strays(strays, signal.SIGKILL)
        try:
            self.wait(reap_timeout)
        except subprocess.TimeoutExpired:
            return None
        self._wait_gone(reap_timeout)
        return self.returncode

    def _wait_gone(self, timeout: float) -> None:
        """Until no member of the group and no stray is left alive (killed ones may take a moment)."""
        end_time = time.monotonic() + timeout
        while True:
            entries = _scan()
            members = [entry for entry in entries if entry.pgrp == self.pgid and entry.alive]
            if not members and not self._find_strays(entries):
                self._gone = True
                self._unregister()
                return  # zombies may be left, for their parents to reap
            if time.monotonic() >= end_time:
                return
            time.sleep(_POLL)

    def _unregister(self) -> None:
        if self._registration is not None:
            try:
                os.unlink(self._registration)
            except OSError:
                pass
            self._registration = None
