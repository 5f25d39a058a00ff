"""The reference responder as a process: listeners, signals, limits, roles, many
connections, backpressure, and an independent FastCGI client (cgi-fcgi)."""
from __future__ import annotations

import hashlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from harness.wire.connection import FcgiConnection, request
from harness.wire.codec import (
    KEEP_CONN,
    ProtocolStatus,
    RecordType,
    Role,
    begin_request_body,
    decode_end_request,
    decode_params,
    encode_params,
    encode_record,
    stream_records,
)
from harness.wire.probe_app import parse_cgi, parse_probe_report, pattern_bytes, probe_params, probe_query
from harness.targets.base import reference_binary

ROOT = Path(__file__).resolve().parent.parent
BINARY = reference_binary(ROOT)
TIMEOUT = 5.0


def simple_request(conn: FcgiConnection, request_id: int = 1, query: str = "", keep_conn: bool = True):
    return request(conn, request_id, probe_params(query), keep_conn=keep_conn, timeout=TIMEOUT)


def begin_and_params(conn: FcgiConnection, request_id: int, query: str = "", keep_conn: bool = True) -> None:
    conn.send_records(
        [encode_record(RecordType.BEGIN_REQUEST, request_id, begin_request_body(Role.RESPONDER, KEEP_CONN if keep_conn else 0))]
        + stream_records(RecordType.PARAMS, request_id, encode_params(probe_params(query)))
    )


def get_values(conn: FcgiConnection) -> dict[bytes, bytes]:
    conn.get_values([b"FCGI_MAX_CONNS", b"FCGI_MAX_REQS", b"FCGI_MPXS_CONNS"])
    record = conn.read_record(TIMEOUT)
    assert record.type == RecordType.GET_VALUES_RESULT
    return dict(decode_params(record.content))


def wait_exit(process: subprocess.Popen, timeout: float = 5.0) -> int:
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"the responder did not exit within {timeout} s of SIGTERM")


# ---- command line --------------------------------------------------------------


def test_fault_list_names_every_fault_with_a_description() -> None:
    out = subprocess.run([BINARY, "--fault", "list"], capture_output=True, text=True, timeout=TIMEOUT, check=True)
    lines = out.stdout.splitlines()
    assert len(lines) >= 17
    for line in lines:
        name, _, description = line.partition(" ")
        assert name and description.strip(), line


@pytest.mark.parametrize(
    "args, message",
    [
        (["--fault", "no-such-fault"], "unknown fault"),
        (["--listen", "udp:1.2.3.4:5"], "tcp:HOST:PORT or unix:PATH"),
        (["--listen", "tcp:127.0.0.1:99999"], "bad port"),
        (["--max-reqs", "zero"], "bad number"),
        (["--roles", "responder,janitor"], "roles are"),
        ([], "no listener"),  # stdin is not a listening socket here
    ],
)
def test_bad_command_lines_get_a_clear_error(args: list[str], message: str) -> None:
    out = subprocess.run([BINARY, *args], capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    assert out.returncode != 0
    assert message in out.stderr


# ---- listeners and signals -------------------------------------------------------


def test_unix_listener_serves_and_sigterm_removes_the_socket() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "responder.sock")
        process = subprocess.Popen([BINARY, "--listen", f"unix:{path}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert process.stdout.readline().decode().strip() == f"listening unix:{path}"
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(path)
            response = simple_request(FcgiConnection(sock))
            assert parse_cgi(response.stdout).status == 200
            process.send_signal(signal.SIGTERM)
            assert wait_exit(process) == 0
            assert not os.path.exists(path)
        finally:
            process.kill()
            process.wait()


def test_inherited_listening_socket_on_fd0_like_spawn_fcgi() -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    process = subprocess.Popen([BINARY], stdin=listener.fileno(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    listener.close()
    try:
        assert process.stdout.readline().decode().strip() == "listening fd:0"
        conn = FcgiConnection(socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT))
        assert parse_cgi(simple_request(conn).stdout).status == 200
        process.send_signal(signal.SIGTERM)
        assert wait_exit(process) == 0
    finally:
        process.kill()
        process.wait()


def test_sigterm_with_requests_in_flight_exits_cleanly(spawn) -> None:
    target = spawn()
    conns = [target.connect() for _ in range(5)]
    for i, conn in enumerate(conns):
        begin_and_params(conn, i + 1, probe_query(delay=10000))
    time.sleep(0.1)
    target.process.send_signal(signal.SIGTERM)
    assert wait_exit(target.process) == 0
    for conn in conns:
        assert conn.wait_closed(TIMEOUT) in ("eof", "reset")


def test_web_server_addrs_refuses_other_peers() -> None:
    for allowed, served in (("10.1.2.3", False), ("10.1.2.3, 127.0.0.1", True)):
        env = dict(os.environ, FCGI_WEB_SERVER_ADDRS=allowed)
        process = subprocess.Popen(
            [BINARY, "--listen", "tcp:127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        try:
            port = int(process.stdout.readline().decode().rsplit(":", 1)[1])
            conn = FcgiConnection(socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT))
            if served:
                assert parse_cgi(simple_request(conn).stdout).status == 200
            else:
                conn.send_records([encode_record(RecordType.GET_VALUES, 0, encode_params([(b"FCGI_MPXS_CONNS", b"")]))])
                assert conn.wait_closed(TIMEOUT) in ("eof", "reset")
                assert not [entry for entry in conn.trace if entry.direction == "<" and not isinstance(entry.item, str)]
        finally:
            process.kill()
            process.wait()


# ---- limits ------------------------------------------------------------------------


def test_no_mpx_answers_cant_mpx_conn_and_serves_the_first_request(spawn) -> None:
    conn = spawn("--no-mpx").connect()
    assert get_values(conn)[b"FCGI_MPXS_CONNS"] == b"0"
    begin_and_params(conn, 1)
    conn.send_record(RecordType.BEGIN_REQUEST, 2, begin_request_body(Role.RESPONDER, KEEP_CONN))
    refused = conn.read_record(TIMEOUT)
    assert (refused.type, refused.request_id) == (RecordType.END_REQUEST, 2)
    assert decode_end_request(refused.content).protocol_status == ProtocolStatus.CANT_MPX_CONN
    conn.stdin(1, b"")
    assert parse_cgi(conn.read_response(1, TIMEOUT).stdout).status == 200


def test_max_reqs_is_advertised_and_answered_with_overloaded(spawn) -> None:
    target = spawn("--max-reqs", "2")
    conn = target.connect()
    assert get_values(conn)[b"FCGI_MAX_REQS"] == b"2"
    for request_id in (1, 2):
        begin_and_params(conn, request_id, probe_query(delay=300))
    conn.send_record(RecordType.BEGIN_REQUEST, 3, begin_request_body(Role.RESPONDER, KEEP_CONN))
    refused = conn.read_record(TIMEOUT)
    assert (refused.type, refused.request_id) == (RecordType.END_REQUEST, 3)
    assert decode_end_request(refused.content).protocol_status == ProtocolStatus.OVERLOADED
    # The limit counts requests of all connections; once they end there is room again.
    other = target.connect()
    for request_id in (1, 2):
        conn.stdin(request_id, b"")
        assert conn.read_response(request_id, TIMEOUT).end.protocol_status == ProtocolStatus.REQUEST_COMPLETE
    assert parse_cgi(simple_request(other).stdout).status == 200


def test_max_conns_is_advertised_and_extra_connections_get_overloaded(spawn) -> None:
    target = spawn("--max-conns", "2")
    first, second = target.connect(), target.connect()
    assert get_values(first)[b"FCGI_MAX_CONNS"] == b"2"
    third = target.connect()
    response = simple_request(third)
    assert response.end.protocol_status == ProtocolStatus.OVERLOADED
    assert third.wait_closed(TIMEOUT) == "eof"
    assert parse_cgi(simple_request(second).stdout).status == 200


def test_a_hundred_interleaved_requests_on_one_connection(spawn) -> None:
    conn = spawn().connect()
    ids = list(range(1, 101))
    for request_id in ids:
        begin_and_params(conn, request_id, probe_query(out=request_id * 10))
    for request_id in reversed(ids):
        conn.stdin(request_id, b"")
    ends: set[int] = set()
    records = conn.read_all_until(
        lambda r: r.type == RecordType.END_REQUEST and (ends.add(r.request_id) or len(ends) == len(ids)), TIMEOUT
    )
    for request_id in ids:
        stdout = b"".join(r.content for r in records if r.request_id == request_id and r.type == RecordType.STDOUT)
        assert parse_cgi(stdout).body == pattern_bytes(request_id * 10)
    order = [r.request_id for r in records if r.type == RecordType.END_REQUEST]
    assert order != sorted(order), "answered strictly in order: not really multiplexed"


def test_six_hundred_connections_at_once(spawn) -> None:
    count = 600
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < count + 100:
        pytest.skip(f"the fd limit {hard} is below {count + 100}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    target = spawn()  # inherits the raised limit
    conns = [target.connect() for _ in range(count)]
    for conn in conns:
        begin_and_params(conn, 1)
    for conn in conns:
        conn.stdin(1, b"")
    for conn in conns:
        assert parse_cgi(conn.read_response(1, TIMEOUT).stdout).status == 200
        conn.close()


# ---- roles ----------------------------------------------------------------------------


def test_authorizer_allows_and_denies(spawn) -> None:
    conn = spawn().connect()
    allowed = request(conn, 1, [("HTTP_AUTHORIZATION", "Bearer fcgispec")], role=Role.AUTHORIZER, timeout=TIMEOUT)
    cgi = parse_cgi(allowed.stdout)
    assert (cgi.status, cgi.header("Variable-FCGISPEC_USER")) == (200, "probe")
    denied = request(conn, 1, [("HTTP_AUTHORIZATION", "Bearer guess")], role=Role.AUTHORIZER, timeout=TIMEOUT)
    assert parse_cgi(denied.stdout).status == 403


def test_filter_reads_stdin_then_data(spawn) -> None:
    conn = spawn().connect()
    stdin, data = b"request body", bytes(range(256)) * 1000
    conn.begin(1, Role.FILTER)
    conn.params(1, [("FCGI_DATA_LENGTH", str(len(data))), ("FCGI_DATA_LAST_MOD", "0")])
    conn.stdin(1, stdin, chunk_sizes=5)
    conn.data(1, data, chunk_sizes=60000)
    response = conn.read_response(1, TIMEOUT)
    cgi = parse_cgi(response.stdout)
    assert cgi.header("X-Filter-Stdin-Sha256") == hashlib.sha256(stdin).hexdigest()
    assert cgi.body == data
    assert response.end.app_status == 0


def test_roles_option_turns_a_role_into_unknown_role(spawn) -> None:
    conn = spawn("--roles", "responder").connect()
    response = request(conn, 1, [], role=Role.FILTER, timeout=TIMEOUT)
    assert response.end.protocol_status == ProtocolStatus.UNKNOWN_ROLE


# ---- backpressure and peers that go away --------------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_output_to_a_peer_that_does_not_read_stays_bounded(spawn) -> None:
    target = spawn()
    conn = target.connect()
    before = rss_kib(target.process.pid)
    begin_and_params(conn, 1, probe_query(out=200 * 1024 * 1024))
    conn.stdin(1, b"")
    time.sleep(0.5)  # the responder fills the socket buffers, then must stop producing
    grown = rss_kib(target.process.pid) - before
    assert grown < 16 * 1024, f"RSS grew by {grown} KiB for a peer that reads nothing"
    # A peer that resets mid-output costs nothing either.
    conn.reset()
    assert parse_cgi(simple_request(target.connect()).stdout).status == 200


# ---- an independent FastCGI client --------------------------------------------------------


@pytest.mark.skipif(shutil.which("cgi-fcgi") is None, reason="cgi-fcgi (Debian libfcgi-bin) is not installed")
def test_cgi_fcgi_from_libfcgi_gets_complete_answers(spawn) -> None:
    """libfcgi's cgi-fcgi gets whole answers: a 100 KB POST echoed by digest, stderr, and 3 MB of output."""
    target = spawn()
    address = f"127.0.0.1:{target.port}"
    body = os.urandom(100_000)
    env = {"REQUEST_METHOD": "POST", "CONTENT_LENGTH": str(len(body)), "QUERY_STRING": "err=note%20to%20stderr"}
    out = subprocess.run(
        ["cgi-fcgi", "-bind", "-connect", address], input=body, env=env, capture_output=True, timeout=TIMEOUT
    )
    assert out.returncode == 0, out.stderr
    cgi = parse_cgi(out.stdout)
    assert cgi.header("X-Probe-Stdin-Sha256") == hashlib.sha256(body).hexdigest()
    report = parse_probe_report(cgi.body)
    assert report.param("REQUEST_METHOD") == b"POST"
    assert out.stderr == b"note to stderr"
    big = subprocess.run(
        ["cgi-fcgi", "-bind", "-connect", address],
        env={"REQUEST_METHOD": "GET", "QUERY_STRING": "out=3000000"},
        capture_output=True,
        timeout=TIMEOUT,
    )
    assert parse_cgi(big.stdout).body == pattern_bytes(3_000_000)
