"""The process helper (harness/targets/process.py): a command in its own session, watched and stopped as a whole.

stop() sends SIGTERM to the group, gives the leader a grace period, SIGKILLs the group and reaps the
leader: a process that ignores SIGTERM is killed, children go with their parent, a child that left
the group with setsid() is found through its parent and stopped too, and the exit status says how
the leader ended.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness.targets.base import CommandTarget
from harness.targets.process import GroupProcess, ProcessStats, descendants, describe_exit, group_members

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = ROOT / "tests" / "hostile" / "hostile.py"
PY = sys.executable


def _python(code: str, **kwargs) -> GroupProcess:
    """A GroupProcess running `python -c code`; its stdout is a pipe (for a 'ready' line)."""
    return GroupProcess([PY, "-c", code], stdout=subprocess.PIPE, **kwargs)


def _ready(process: GroupProcess) -> str:
    assert process.stdout is not None
    line = process.stdout.readline().decode().strip()
    assert line, f"no ready line: {process.exit_text()}"
    return line


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _gone_soon(pid: int, timeout: float = 2.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not _alive(pid):
            return True
        time.sleep(0.01)
    return not _alive(pid)


def test_a_process_that_ignores_sigterm_is_killed() -> None:
    process = _python("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
                      "time.sleep(60)")
    _ready(process)
    begun = time.monotonic()
    status = process.stop(grace=0.3)
    took = time.monotonic() - begun
    assert status == -signal.SIGKILL and process.exit_text() == "killed by SIGKILL"
    assert 0.3 <= took < 2.0, took
    assert group_members(process.pgid) == []


def test_a_process_that_exits_on_sigterm_is_not_kept_waiting() -> None:
    process = _python("import time; print('ready', flush=True); time.sleep(60)")
    _ready(process)
    begun = time.monotonic()
    assert process.stop(grace=5.0) == -signal.SIGTERM
    assert time.monotonic() - begun < 1.0


def test_children_are_stopped_with_the_group() -> None:
    # A leader with two children; one of them ignores SIGTERM (killed once the leader has exited).
    code = ("import os, signal, subprocess, sys, time\n"
            "a = subprocess.Popen(['sleep', '60'])\n"
            "b = subprocess.Popen([sys.executable, '-c', 'import signal, time; "
            "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)'])\n"
            "print(a.pid, b.pid, flush=True)\n"
            "time.sleep(60)\n")
    process = _python(code)
    children = [int(pid) for pid in _ready(process).split()]
    assert sorted(process.members()) == sorted([process.pid, *children])
    assert descendants(process.pid) == sorted(children)
    assert process.strays() == []
    begun = time.monotonic()
    assert process.stop(grace=2.0) == -signal.SIGTERM
    assert time.monotonic() - begun < 1.5, "the leader exited at once: what is left is killed without a grace"
    assert all(not _alive(pid) for pid in children)
    assert group_members(process.pgid) == []


def test_a_child_that_left_the_group_with_setsid_is_stopped_too() -> None:
    # The child calls setsid() (start_new_session) and ignores SIGTERM: killpg alone would miss it.
    code = ("import signal, subprocess, sys, time\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import signal, time; "
            "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)'], start_new_session=True)\n"
            "print(child.pid, flush=True)\n"
            "time.sleep(60)\n")
    process = _python(code)
    child = int(_ready(process))
    assert os.getpgid(child) == child != process.pgid
    assert child not in process.members()
    assert process.strays() == [child]
    process.stop(grace=0.5)
    assert _gone_soon(child), "the setsid() child outlived stop()"


def test_a_setsid_grandchild_whose_parent_dies_on_sigterm_is_stopped_too() -> None:
    # The middle process exits on SIGTERM, orphaning the grandchild: it was seen before the first signal.
    inner = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)")
    middle = (f"import os, subprocess, sys, time; c = subprocess.Popen([sys.executable, '-c', {inner!r}], "
              "start_new_session=True); print(c.pid, flush=True); time.sleep(60)")
    code = (f"import subprocess, sys, time\n"
            f"m = subprocess.Popen([sys.executable, '-c', {middle!r}])\n"
            "time.sleep(60)\n")
    process = _python(code)
    grandchild = int(_ready(process))
    assert process.strays() == [grandchild]
    process.stop(grace=0.5)
    assert _gone_soon(grandchild), "the orphaned setsid() grandchild outlived stop()"


def test_exit_status_reporting() -> None:
    running = _python("import time; print('ready', flush=True); time.sleep(60)")
    _ready(running)
    assert running.exit_status() is None and running.exit_text() == "still running"
    running.stop()
    exited = GroupProcess([PY, "-c", "raise SystemExit(3)"])
    exited.wait(5)
    assert exited.exit_status() == 3 and exited.exit_text() == "exited with status 3"
    assert exited.stop() == 3  # stopping a process that has exited keeps its status
    crashed = GroupProcess([PY, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"])
    crashed.wait(5)
    assert crashed.exit_status() == -signal.SIGSEGV and crashed.exit_text() == "killed by SIGSEGV"
    assert describe_exit(None) == "still running"
    assert describe_exit(0) == "exited with status 0"
    assert describe_exit(-99) == "killed by signal 99"


def test_first_signal_none_only_waits_then_kills() -> None:
    # Closing stdin is how a client adapter is asked to exit: stop(first_signal=None) waits for that.
    cat = GroupProcess(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert cat.stdin is not None
    cat.stdin.close()
    assert cat.stop(grace=5.0, first_signal=None) == 0
    stubborn = _python("import time; print('ready', flush=True); time.sleep(60)")
    _ready(stubborn)
    begun = time.monotonic()
    assert stubborn.stop(grace=0.2, first_signal=None) == -signal.SIGKILL
    assert time.monotonic() - begun < 2.0


def test_stats_sum_over_the_group() -> None:
    code = ("import subprocess, time\n"
            "children = [subprocess.Popen(['sleep', '60']) for _ in range(2)]\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)\n")
    process = _python(code)
    _ready(process)
    stats = process.stats()
    assert isinstance(stats, ProcessStats)
    assert len(stats.pids) == 3 and process.pid in stats.pids
    assert stats.fds >= 3 and stats.rss_kib > 0 and stats.threads >= 3
    process.stop()
    assert process.stats() is None


def test_a_spawned_target_stops_its_whole_group() -> None:
    # Through /bin/sh: a background child of the shell, then exec of a responder on {port}.
    target = CommandTarget(f"sleep 60 & exec {PY} {HOSTILE} ok --port {{port}}")
    target.start()
    try:
        assert target.spawned and target.process is not None
        members = target.process.members()
        assert len(members) == 2, members
        assert target.process_stats() is not None
    finally:
        target.stop()
    assert target.exit_status() == 0  # hostile.py exits 0 on SIGTERM
    assert group_members(target.process.pgid) == []
    assert target.process_stats() is None
