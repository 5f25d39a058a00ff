"""The reference responder with --workers N: several event-loop processes sharing the listeners under a
supervisor. They must serve like one loop (the whole suite also runs against `reference --workers 2` in the
selftest), spread connections over the workers, share the limits, and stop, crash and exit the way a single
loop would, so that the suite's verdicts about exits and signals mean the same thing."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from harness.wire.connection import FcgiConnection, ReadTimeout, request
from harness.suite.case_requests import begin_and_params
from harness.wire.codec import ProtocolStatus, RecordType, decode_params, encode_record
from harness.wire.probe_app import parse_cgi, pattern_bytes, probe_params, probe_query
from harness.targets.base import reference_binary

ROOT = Path(__file__).resolve().parent.parent
BINARY = reference_binary(ROOT)
TIMEOUT = 5.0


def workers_of(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def socket_count(pid: int) -> int:
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return count


def settled_sockets(workers: list[int]) -> dict[int, int]:
    """Each worker's socket count once every worker is listening: all hold the supervisor's TCP listener,
    and each one after the first opens its own SO_REUSEPORT sibling after the fork, so a ready server of N
    workers holds 2N - 1 listening sockets; a count taken before that would be short."""
    ready = 2 * len(workers) - 1
    wait_for(lambda: sum(socket_count(pid) for pid in workers) >= ready)
    return {pid: socket_count(pid) for pid in workers}


def wait_for(predicate, timeout: float = TIMEOUT) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def get_value(conn: FcgiConnection, name: bytes) -> bytes:
    conn.get_values([name])
    record = conn.read_record(TIMEOUT)
    assert record.type == RecordType.GET_VALUES_RESULT
    return dict(decode_params(record.content))[name]


def test_workers_are_forked_and_every_connection_is_served(spawn) -> None:
    target = spawn("--workers", "3")
    assert wait_for(lambda: len(workers_of(target.process.pid)) == 3)
    conns = [target.connect() for _ in range(24)]
    for index, conn in enumerate(conns):
        response = request(conn, 1, probe_params(probe_query(out=100 + index)), timeout=TIMEOUT)
        assert parse_cgi(response.stdout).body == pattern_bytes(100 + index)


def test_connections_are_spread_over_the_workers(spawn) -> None:
    target = spawn("--workers", "2")
    assert wait_for(lambda: len(workers_of(target.process.pid)) == 2)
    workers = workers_of(target.process.pid)
    baseline = settled_sockets(workers)
    conns = []
    for _ in range(40):
        conn = target.connect()
        request(conn, 1, probe_params(""), timeout=TIMEOUT)  # accepted and answered before the next one comes
        conns.append(conn)
    held = {pid: socket_count(pid) - baseline[pid] for pid in workers}
    assert sum(held.values()) == 40
    assert min(held.values()) >= 4, f"one worker took almost every connection: {held}"


def test_max_conns_holds_for_all_workers_together(spawn) -> None:
    target = spawn("--workers", "2", "--max-conns", "4")
    assert wait_for(lambda: len(workers_of(target.process.pid)) == 2)
    workers = workers_of(target.process.pid)
    baseline = sum(settled_sockets(workers).values())
    conns = [target.connect() for _ in range(8)]
    assert wait_for(lambda: sum(socket_count(pid) for pid in workers) == baseline + 8), "not every connection accepted"
    assert get_value(conns[0], b"FCGI_MAX_CONNS") == b"4"
    statuses = [request(conn, 1, probe_params(""), timeout=TIMEOUT).end.protocol_status for conn in conns]
    # The count is shared: exactly 4 served in all, however the connections were spread over the workers.
    assert statuses.count(ProtocolStatus.REQUEST_COMPLETE) == 4, statuses
    assert statuses.count(ProtocolStatus.OVERLOADED) == 4, statuses


def test_max_reqs_holds_for_all_workers_together(spawn) -> None:
    """--max-reqs 6 over two workers refuses exactly 6 of 12 requests held in flight."""
    target = spawn("--workers", "2", "--max-reqs", "6")
    assert wait_for(lambda: len(workers_of(target.process.pid)) == 2)
    workers = workers_of(target.process.pid)
    baseline = sum(settled_sockets(workers).values())
    conns = [target.connect() for _ in range(12)]
    assert wait_for(lambda: sum(socket_count(pid) for pid in workers) == baseline + 12), "not every connection accepted"
    for conn in conns:  # every request stays in flight: STDIN is never ended
        conn.send_records(begin_and_params(1, probe_params("")))
    time.sleep(0.3)
    refused = 0
    for conn in conns:
        try:
            record = conn.read_record(0.5)
        except ReadTimeout:  # no answer: the request is in flight
            continue
        assert record.type == RecordType.END_REQUEST and record.content[4] == ProtocolStatus.OVERLOADED
        refused += 1
    # Counted per worker instead, 12 connections spread over two workers would leave fewer than 6 refused
    # (unless all 12 landed on one worker: 1 in 2048).
    assert refused == 6, f"{refused} of 12 requests refused with --max-reqs 6 over 2 workers"


def test_sigterm_stops_every_worker_and_exits_zero(spawn) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "workers.sock")
        process = subprocess.Popen([BINARY, "--workers", "2", "--listen", f"unix:{path}"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert process.stdout.readline().decode().strip() == f"listening unix:{path}"
            assert wait_for(lambda: len(workers_of(process.pid)) == 2)
            workers = workers_of(process.pid)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(path)
            assert parse_cgi(request(FcgiConnection(sock), 1, probe_params(""), timeout=TIMEOUT).stdout).status == 200
            process.send_signal(signal.SIGTERM)
            assert process.wait(TIMEOUT) == 0
            for pid in workers:
                assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
            assert not os.path.exists(path), "the supervisor removes the unix socket it created"
        finally:
            process.kill()
            process.wait()


def test_a_crashed_worker_takes_the_responder_down_with_its_signal(spawn) -> None:
    target = spawn("--workers", "2")
    assert wait_for(lambda: len(workers_of(target.process.pid)) == 2)
    # SIGKILL, not SIGSEGV: under ASan a SIGSEGV becomes a report and exit status 1.
    os.kill(workers_of(target.process.pid)[0], signal.SIGKILL)
    assert target.process.wait(TIMEOUT) == -signal.SIGKILL


def test_a_fatal_protocol_error_in_a_worker_becomes_the_exit_status(spawn) -> None:
    target = spawn("--workers", "2", "--fault", "exit-on-malformed")
    conn = target.connect()
    conn.send_raw(encode_record(RecordType.STDIN, 1, b"", version=9))
    assert target.process.wait(TIMEOUT) == 70


def test_workers_die_with_a_killed_supervisor(spawn) -> None:
    target = spawn("--workers", "2")
    assert wait_for(lambda: len(workers_of(target.process.pid)) == 2)
    workers = workers_of(target.process.pid)
    target.process.kill()
    target.process.wait()

    def gone(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
        except OSError:
            return True

    assert wait_for(lambda: all(gone(pid) for pid in workers))


@pytest.mark.parametrize("value", ["0", "65", "two"])
def test_bad_worker_counts_get_a_clear_error(value: str) -> None:
    out = subprocess.run([BINARY, "--workers", value, "--listen", "tcp:127.0.0.1:0"], capture_output=True,
                         text=True, timeout=TIMEOUT)
    assert out.returncode == 2
    assert "--workers takes 1 to 64" in out.stderr
