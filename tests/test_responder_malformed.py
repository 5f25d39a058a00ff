"""The reference responder under hostile input, built with ASan and UBSan.

One responder process takes many malformed record streams, each on its own
connection: bad versions, impossible lengths, truncated headers, random garbage,
hypothesis-generated records, 31-bit name-value lengths, huge PARAMS, connections
closed or reset mid-record. After each, a liveness check (a new connection and a
simple request) and a bystander (a connection opened before the garbage) must
still be served. At the end SIGTERM must give exit status 0 and a stderr free of
sanitizer reports, which is where a leak or an invalid access would show.

The responder is the sanitizer build: FCGISPEC_RESPONDER, or by default
build-asan/reference-server/fcgispec-responder under the repository.
"""
from __future__ import annotations

import os
import random
import selectors
import signal
import socket
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.wire.codec import (
    KEEP_CONN,
    ProtocolStatus,
    Record,
    RecordReader,
    RecordType,
    Role,
    begin_request_body,
    decode_end_request,
    encode_params,
    encode_record,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BINARY = ROOT / "build-asan" / "reference-server" / "fcgispec-responder"
BUILD_HINT = (
    "cmake -S . -B build-asan -DFCGISPEC_SANITIZE=ON -DCMAKE_C_COMPILER=clang && cmake --build build-asan -j"
)
# Short on purpose: every hostile stream here is answered, refused or closed
# within milliseconds on loopback; waiting longer only hides a hang.
TIMEOUT = 3.0
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer")


@dataclass
class Responder:
    process: subprocess.Popen
    port: int
    stderr: IO[bytes]

    def stderr_text(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode("utf-8", "replace")

    def check_running(self) -> None:
        if self.process.poll() is not None:
            pytest.fail(f"the responder exited with {self.process.returncode}:\n{self.stderr_text()[-4000:]}")


@pytest.fixture(scope="module")
def responder() -> Iterator[Responder]:
    binary = Path(os.environ.get("FCGISPEC_RESPONDER", DEFAULT_BINARY))
    if not binary.exists():
        pytest.skip(f"no sanitizer build of the responder at {binary}; build it with: {BUILD_HINT} "
                    "(or point FCGISPEC_RESPONDER at one)")
    # stderr goes to a file, not a pipe: a pipe nobody reads would fill with the
    # responder's per-connection log lines and block it.
    stderr = tempfile.TemporaryFile()
    env = dict(os.environ,
               ASAN_OPTIONS="detect_leaks=1:halt_on_error=1",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    process = subprocess.Popen([str(binary), "--listen", "tcp:127.0.0.1:0"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, env=env)
    line = process.stdout.readline().decode().strip()
    if not line.startswith("listening tcp:127.0.0.1:"):
        process.kill()
        process.wait()
        stderr.seek(0)
        pytest.fail(f"unexpected first line {line!r}; stderr: {stderr.read().decode(errors='replace')}")
    target = Responder(process, int(line.rsplit(":", 1)[1]), stderr)
    yield target
    if process.poll() is None:
        process.kill()
        process.wait()
    process.stdout.close()
    stderr.close()


# ---- talking to it --------------------------------------------------------------------


def simple_request(request_id: int, keep_conn: bool) -> bytes:
    """A Responder request with no body, asking the probe app for nothing special."""
    params = encode_params([("QUERY_STRING", ""), ("REQUEST_METHOD", "GET")])
    return b"".join([
        encode_record(RecordType.BEGIN_REQUEST, request_id, begin_request_body(Role.RESPONDER, KEEP_CONN if keep_conn else 0)),
        encode_record(RecordType.PARAMS, request_id, params),
        encode_record(RecordType.PARAMS, request_id, b""),
        encode_record(RecordType.STDIN, request_id, b""),
    ])


@dataclass
class Exchange:
    """What came back on one connection."""

    records: list[Record] = field(default_factory=list)
    leftover: bytes = b""     # bytes after the last whole record
    closed_by_peer: bool = False
    reset: bool = False


def converse(port: int, data: bytes, ending: str = "shutdown", timeout: float = TIMEOUT) -> Exchange:
    """Sends data on a new connection while reading whatever comes back, then ends it.

    ending: "shutdown" (half-close, read to EOF), "keep" (read until the responder
    closes), "close" (close at once, FIN) or "rst" (close with SO_LINGER 0: RST).
    Sending and reading are interleaved so that a responder that answers while
    we still send can never deadlock us both on full socket buffers.
    """
    result = Exchange()
    reader = RecordReader()
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
    sent = 0
    if not data:
        selector.modify(sock, selectors.EVENT_READ)
        if ending == "shutdown":
            sock.shutdown(socket.SHUT_WR)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if sent == len(data) and ending in ("close", "rst"):
                break
            if time.monotonic() > deadline:
                break
            events = selector.select(max(0.0, deadline - time.monotonic()))
            for _, mask in events:
                if mask & selectors.EVENT_WRITE and sent < len(data):
                    try:
                        sent += sock.send(data[sent:sent + 65536])
                    except (BrokenPipeError, ConnectionResetError):
                        sent = len(data)  # the responder closed on us: a fine answer to garbage
                        result.reset = True
                    if sent == len(data):
                        selector.modify(sock, selectors.EVENT_READ)
                        if ending == "shutdown" and not result.reset:
                            sock.shutdown(socket.SHUT_WR)
                if mask & selectors.EVENT_READ:
                    try:
                        chunk = sock.recv(65536)
                    except ConnectionResetError:
                        result.reset = True
                        chunk = b""
                    if not chunk:
                        result.closed_by_peer = True
                    else:
                        result.records += reader.feed(chunk)
            if result.closed_by_peer:
                break
        if ending == "rst":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        selector.close()
        sock.close()
    result.leftover = reader.pending
    return result


def check_framing(exchange: Exchange) -> None:
    """Whatever the input, what the responder sends is whole version-1 records."""
    for record in exchange.records:
        assert record.version == 1, record.describe()
        assert record.type in (RecordType.STDOUT, RecordType.STDERR, RecordType.END_REQUEST,
                               RecordType.GET_VALUES_RESULT, RecordType.UNKNOWN_TYPE), record.describe()
    if exchange.closed_by_peer and not exchange.reset:
        assert exchange.leftover == b"", f"closed mid-record: {exchange.leftover[:32]!r}"


def end_requests(exchange: Exchange, request_id: int) -> list[int]:
    return [decode_end_request(r.content).protocol_status for r in exchange.records
            if r.type == RecordType.END_REQUEST and r.request_id == request_id]


def assert_alive(responder: Responder) -> None:
    """Liveness: the process runs and a new connection gets a simple request answered."""
    responder.check_running()
    exchange = converse(responder.port, simple_request(1, keep_conn=False), ending="keep")
    responder.check_running()
    assert end_requests(exchange, 1) == [ProtocolStatus.REQUEST_COMPLETE], \
        f"liveness request not answered: {[r.describe() for r in exchange.records]}"
    assert exchange.closed_by_peer


class Bystander:
    """A well-behaved connection opened before the garbage, used again after it."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.reader = RecordReader()
        self.next_id = 1
        self.serve_one()  # so that it is accepted and known to work before the garbage

    def serve_one(self) -> None:
        request_id = self.next_id
        self.next_id = self.next_id % 65535 + 1
        self.sock.sendall(simple_request(request_id, keep_conn=True))
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            chunk = self.sock.recv(65536)
            assert chunk, "the responder closed a bystander connection"
            for record in self.reader.feed(chunk):
                if record.type == RecordType.END_REQUEST and record.request_id == request_id:
                    assert decode_end_request(record.content).protocol_status == ProtocolStatus.REQUEST_COMPLETE
                    return
        pytest.fail("a bystander connection was not answered")

    def close(self) -> None:
        self.sock.close()


def survive(responder: Responder, data: bytes, ending: str = "shutdown") -> Exchange:
    """Sends one hostile stream with a bystander watching; checks both survive it."""
    bystander = Bystander(responder.port)
    try:
        exchange = converse(responder.port, data, ending)
        check_framing(exchange)
        if ending == "shutdown":
            assert exchange.closed_by_peer, "the responder kept a half-closed connection open"
        assert_alive(responder)
        bystander.serve_one()
    finally:
        bystander.close()
    return exchange


# ---- hostile streams ---------------------------------------------------------------------------

def header(version: int, record_type: int, request_id: int, content_length: int, padding_length: int) -> bytes:
    return struct.pack(">BBHHBB", version, record_type, request_id, content_length, padding_length, 0)


BEGIN_1 = encode_record(RecordType.BEGIN_REQUEST, 1, begin_request_body(Role.RESPONDER, KEEP_CONN))
PARAMS_1 = encode_record(RecordType.PARAMS, 1, encode_params([("QUERY_STRING", "")]))
SEEDED = random.Random(20240521)  # fixed, so every run sends the same garbage

HOSTILE_STREAMS: dict[str, bytes] = {
    "version-0": encode_record(RecordType.GET_VALUES, 0, b"", version=0),
    "version-2-mid-request": BEGIN_1 + PARAMS_1 + encode_record(RecordType.PARAMS, 1, b"", version=2),
    "version-255": encode_record(RecordType.BEGIN_REQUEST, 1, begin_request_body(1, 0), version=255),
    "header-1-byte": b"\x01",
    "header-7-bytes": header(1, RecordType.BEGIN_REQUEST, 1, 8, 0)[:7],
    "content-cut-short": header(1, RecordType.PARAMS, 1, 65535, 255) + b"x" * 100,
    "padding-cut-short": BEGIN_1 + header(1, RecordType.PARAMS, 1, 0, 255) + b"\xff" * 10,
    "begin-body-0": header(1, RecordType.BEGIN_REQUEST, 1, 0, 0),
    "begin-body-7": encode_record(RecordType.BEGIN_REQUEST, 1, b"\x00\x01\x01\x00\x00\x00\x00"),
    "begin-body-65535": encode_record(RecordType.BEGIN_REQUEST, 1, b"\x00\x01\x01" + b"\x00" * 65532),
    "nv-name-0x7fffffff": BEGIN_1 + encode_record(RecordType.PARAMS, 1, b"\xff\xff\xff\xff\x01" + b"n" * 40)
    + encode_record(RecordType.PARAMS, 1, b"") + encode_record(RecordType.STDIN, 1, b""),
    "nv-value-0x7fffffff": BEGIN_1 + encode_record(RecordType.PARAMS, 1, b"\x01\xff\xff\xff\xffnv")
    + encode_record(RecordType.PARAMS, 1, b""),
    "nv-both-0x7fffffff-get-values": encode_record(RecordType.GET_VALUES, 0, b"\xff\xff\xff\xff" * 2 + b"x"),
    "nv-length-cut": BEGIN_1 + encode_record(RecordType.PARAMS, 1, b"\x80\x00") + encode_record(RecordType.PARAMS, 1, b""),
    "stdin-before-params-end": BEGIN_1 + PARAMS_1 + encode_record(RecordType.STDIN, 1, b"early"),
    "huge-params": BEGIN_1 + b"".join(encode_record(RecordType.PARAMS, 1, b"\x7f\x7f" + b"p" * 254) for _ in range(5000)),
    "unknown-role-then-streams": encode_record(RecordType.BEGIN_REQUEST, 9, begin_request_body(0xFFFF, KEEP_CONN))
    + encode_record(RecordType.PARAMS, 9, b"junk") + encode_record(RecordType.STDIN, 9, b""),
    "thousand-begins": b"".join(encode_record(RecordType.BEGIN_REQUEST, i, begin_request_body(1, KEEP_CONN))
                                for i in range(1, 1001)),
    "get-values-thousand-names": encode_record(RecordType.GET_VALUES, 0,
                                               encode_params([(f"FCGI_{i}", "") for i in range(4000)])[:65535]),
    "garbage-16": bytes(SEEDED.randrange(256) for _ in range(16)),
    "garbage-4k": bytes(SEEDED.randrange(256) for _ in range(4096)),
    "garbage-256k": bytes(SEEDED.randrange(256) for _ in range(256 * 1024)),
    "garbage-after-request": simple_request(1, True) + bytes(SEEDED.randrange(256) for _ in range(2048)),
    "all-types-null-id": b"".join(encode_record(t, 0, b"abc", padding=b"\x01" * 5) for t in range(256)),
    "all-types-id-1": BEGIN_1 + b"".join(encode_record(t, 1, b"xyz") for t in range(256) if t != RecordType.BEGIN_REQUEST),
}


@pytest.mark.parametrize("name", list(HOSTILE_STREAMS))
def test_hostile_stream_then_half_close(responder: Responder, name: str) -> None:
    survive(responder, HOSTILE_STREAMS[name], "shutdown")


@pytest.mark.parametrize("name", ["version-0", "content-cut-short", "begin-body-7", "nv-name-0x7fffffff",
                                  "stdin-before-params-end", "huge-params", "garbage-4k"])
def test_protocol_errors_close_the_connection_unasked(responder: Responder, name: str) -> None:
    """The responder itself closes (no half-close from us) when the stream is broken for good."""
    if name == "content-cut-short":
        # Not broken yet, just incomplete: the responder must wait, not answer.
        exchange = converse(responder.port, HOSTILE_STREAMS[name], "keep", timeout=0.5)
        assert not exchange.closed_by_peer and not exchange.records
    else:
        exchange = converse(responder.port, HOSTILE_STREAMS[name], "keep")
        check_framing(exchange)
        assert exchange.closed_by_peer or exchange.reset
        assert not [r for r in exchange.records if r.type == RecordType.END_REQUEST]
    assert_alive(responder)


@pytest.mark.parametrize("ending", ["close", "rst"])
@pytest.mark.parametrize("cut", [3, 8, 12, 20])
def test_connection_dropped_mid_record(responder: Responder, ending: str, cut: int) -> None:
    stream = BEGIN_1 + PARAMS_1
    survive(responder, stream[:len(BEGIN_1) + cut], ending)


@pytest.mark.parametrize("query", ["", "out=5000000", "delay=200", "echo=1"])
def test_rst_mid_request(responder: Responder, query: str) -> None:
    """SO_LINGER 0: an RST while the request waits for input, is producing a big
    response, sits on a timer, or echoes."""
    params = encode_params([("QUERY_STRING", query)])
    stream = b"".join([
        encode_record(RecordType.BEGIN_REQUEST, 1, begin_request_body(Role.RESPONDER, KEEP_CONN)),
        encode_record(RecordType.PARAMS, 1, params),
        encode_record(RecordType.PARAMS, 1, b""),
        encode_record(RecordType.STDIN, 1, b"x" * 1000),
    ])
    if query != "echo=1":
        stream += encode_record(RecordType.STDIN, 1, b"")
    survive(responder, stream, "rst")


def test_many_requests_unread_then_rst(responder: Responder) -> None:
    """Output piles up (we never read) until the responder stops reading; then an RST."""
    stream = b"".join(simple_request(i, True) for i in range(1, 200))
    stream += b"".join([
        encode_record(RecordType.BEGIN_REQUEST, 500, begin_request_body(Role.RESPONDER, KEEP_CONN)),
        encode_record(RecordType.PARAMS, 500, encode_params([("QUERY_STRING", "out=20000000")])),
        encode_record(RecordType.PARAMS, 500, b""),
        encode_record(RecordType.STDIN, 500, b""),
    ])
    bystander = Bystander(responder.port)
    try:
        sock = socket.create_connection(("127.0.0.1", responder.port), timeout=TIMEOUT)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(stream)
        time.sleep(0.2)  # let the responder fill its queue and stop reading
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        assert_alive(responder)
        bystander.serve_one()
    finally:
        bystander.close()


# ---- generated streams -------------------------------------------------------------------------

VERSIONS = st.sampled_from([1, 1, 1, 1, 1, 1, 0, 2, 255])
TYPES = st.one_of(st.integers(1, 11), st.integers(0, 255))
IDS = st.one_of(st.sampled_from([0, 1, 1, 2, 65535]), st.integers(0, 65535))
PAIRS = st.lists(st.tuples(st.binary(max_size=140), st.binary(max_size=140)), max_size=4)
CONTENTS = st.one_of(
    st.binary(max_size=300),
    st.builds(begin_request_body, st.sampled_from([0, 1, 2, 3, 4, 0xFFFF]), st.integers(0, 255)),
    st.builds(encode_params, PAIRS),
    st.builds(lambda n: struct.pack(">I", n | 0x80000000) + b"\x01x", st.integers(0, 0x7FFFFFFF)),
    st.just(b""),
)


@st.composite
def records(draw) -> bytes:
    content = draw(CONTENTS)
    padding = draw(st.one_of(st.just(b""), st.binary(max_size=255)))
    # Now and then a header that lies about its content length.
    lie = draw(st.one_of(st.none(), st.none(), st.none(), st.integers(0, 65535)))
    return encode_record(draw(TYPES), draw(IDS), content, padding=padding, version=draw(VERSIONS), content_length=lie)


@st.composite
def streams(draw) -> tuple[bytes, str]:
    prefix = draw(st.sampled_from([b"", BEGIN_1, BEGIN_1 + PARAMS_1 + encode_record(RecordType.PARAMS, 1, b"")]))
    body = prefix + b"".join(draw(st.lists(records(), min_size=1, max_size=10)))
    cut = draw(st.one_of(st.none(), st.integers(0, len(body))))
    return (body if cut is None else body[:cut]), draw(st.sampled_from(["shutdown", "shutdown", "close", "rst"]))


@pytest.fixture(scope="module")
def long_bystander(responder: Responder) -> Iterator[Bystander]:
    bystander = Bystander(responder.port)
    yield bystander
    bystander.close()


@settings(max_examples=400, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(streams())
def test_generated_record_streams(responder: Responder, long_bystander: Bystander, stream: tuple[bytes, str]) -> None:
    data, ending = stream
    exchange = converse(responder.port, data, ending)
    check_framing(exchange)
    if ending == "shutdown":
        assert exchange.closed_by_peer, "the responder kept a half-closed connection open"
    assert_alive(responder)
    long_bystander.serve_one()


# ---- last: a clean exit ------------------------------------------------------------------------


def test_sigterm_after_it_all_exits_clean(responder: Responder) -> None:
    """Runs last in this file: whatever the garbage did shows up here as a sanitizer report."""
    assert_alive(responder)
    responder.process.send_signal(signal.SIGTERM)
    try:
        status = responder.process.wait(10)
    except subprocess.TimeoutExpired:
        responder.process.kill()
        pytest.fail("the responder did not exit within 10 s of SIGTERM")
    text = responder.stderr_text()
    reports = [mark for mark in SANITIZER_MARKS if mark in text]
    assert not reports, f"sanitizer reports {reports}:\n{text[-6000:]}"
    assert status == 0, f"exit status {status}:\n{text[-4000:]}"
