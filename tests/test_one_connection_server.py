"""The harness against a server that serves one connection at a time (tests/servers/one_at_a_time.py).

Such a server (php-cgi -b: FCGI_MAX_CONNS=1) accepts the next connection only once the previous one is
closed on both sides: the harness must close its side as soon as it is done with a connection, and
`./fcgispec` must not load one running server from two workers unless asked to.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from harness.suite.case import load_cases, run_case, scale_for
from harness.suite.catch_matrix import explain
from harness.targets.base import CommandTarget, free_tcp_port
from harness.verdicts import Verdict

ROOT = Path(__file__).resolve().parent.parent
SERVER = ROOT / "tests" / "servers" / "one_at_a_time.py"
PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
CASES = {c.id: c for c in load_cases([ROOT / "cases" / "server"])}


@pytest.fixture
def one_at_a_time() -> Iterator[CommandTarget]:
    target = CommandTarget(f"{PYTHON} {SERVER} --port {{port}}")
    target.start()
    try:
        yield target
    finally:
        target.stop()


@pytest.mark.parametrize("case_id", ["FCGI-3.5-1", "FCGI-4.1-6"])
def test_harness_closes_its_side_so_the_next_connection_is_served(one_at_a_time: CommandTarget, case_id: str) -> None:
    outcome = run_case(CASES[case_id], one_at_a_time, scale=scale_for(1.0))
    assert outcome.verdict is Verdict.PASS, explain(outcome)


def test_the_peer_eof_closes_the_harness_side_too(one_at_a_time: CommandTarget) -> None:
    # After the target's EOF the harness's EOF follows at once, without a close() by the case.
    conn = one_at_a_time.connect(label="plain")
    conn.send_raw(bytes.fromhex("0101000100080000" "0001000000000000" "0104000100000000" "0105000100000000"))
    assert conn.wait_closed(2.0) == "eof"
    assert any("closed its side too" in entry.describe() for entry in conn.trace), conn.format_trace()
    second = one_at_a_time.connect(label="next")
    second.get_values([b"FCGI_MAX_CONNS"])
    assert second.read_record(2.0).type == 10  # GET_VALUES_RESULT: the next connection was accepted
    conn.close()
    second.close()


def _fcgispec(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ROOT / "fcgispec"), *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_one_worker_against_a_running_server_unless_told() -> None:
    # Two workers would load one tcp:/unix: server at once; a target each worker spawns itself
    # (the reference, cmd:) runs on two by default.
    port = free_tcp_port()
    server = subprocess.Popen([PYTHON, str(SERVER), "--port", str(port)])
    try:
        assert _listening(port)
        running = ["--target", f"tcp:127.0.0.1:{port}", "--case", "FCGI-3.3-1", "--case", "FCGI-5.4-1"]
        result = _fcgispec(*running)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "bringing up nodes" not in result.stdout and "2 cases: 2 passed" in result.stdout, result.stdout
        assert "bringing up nodes" in _fcgispec(*running, "-n", "2").stdout
        assert "bringing up nodes" in _fcgispec("--case", "FCGI-4.2-1").stdout
        assert "bringing up nodes" not in _fcgispec("--case", "FCGI-4.2-1", "-n", "0").stdout
    finally:
        server.terminate()
        server.wait(5)


def _listening(port: int) -> bool:
    """Whether the server listens within 5 s."""
    end = time.monotonic() + 5
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False
