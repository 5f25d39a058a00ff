"""The buggy gateway (tests/gateways/buggy_gateway.py) itself: correct by default, and each --bug mode
showing its mistake on the wire.

Each test starts the gateway (its own process group, stopped by PID) in front of a small FastCGI
application written here with the project's codec, which records every record it receives, and
talks HTTP to the gateway through a raw socket so that framing (the last chunk) stays visible.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Union

import pytest

from harness.wire.codec import (
    CodecError, KEEP_CONN, ProtocolStatus, Record, RecordReader, RecordType, decode_params, encode_record,
    end_request_body,
)

GATEWAY = Path(__file__).resolve().parent / "gateways" / "buggy_gateway.py"
CGI_HEAD = b"Content-Type: text/plain\r\n\r\n"


# ---- the FastCGI application -----------------------------------------------------------------------

class Close:
    """An answer step: close the connection."""


CLOSE = Close()
Step = Union[bytes, float, Close]


@dataclass
class AppRequest:
    conn: int
    request_id: int
    index: int
    flags: int
    records: list[Record] = field(default_factory=list)
    params_bytes: bytearray = field(default_factory=bytearray)
    params_done: bool = False
    stdin: bytearray = field(default_factory=bytearray)
    answered: bool = False
    done: bool = False  # every answer step was carried out

    @property
    def params(self) -> dict[bytes, bytes] | None:
        try:
            return dict(decode_params(bytes(self.params_bytes)))
        except CodecError:
            return None

    def count(self, record_type: RecordType, empty: bool | None = None) -> int:
        return sum(1 for r in self.records
                   if r.type == record_type and (empty is None or (not r.content) == empty))

    @property
    def stdin_done(self) -> bool:
        return self.count(RecordType.STDIN, empty=True) > 0


def answer(request_id: int, body: bytes = b"hello", head: bytes = CGI_HEAD, stderr: bytes = b"",
           protocol_status: int = ProtocolStatus.REQUEST_COMPLETE, padding: int = 0) -> bytes:
    out = b""
    if stderr:
        out += encode_record(RecordType.STDERR, request_id, stderr) + encode_record(RecordType.STDERR, request_id)
    if head or body:
        out += encode_record(RecordType.STDOUT, request_id, head + body, padding_length=padding, padding_byte=0x41)
        out += encode_record(RecordType.STDOUT, request_id, padding_length=padding, padding_byte=0x41)
    return out + encode_record(RecordType.END_REQUEST, request_id, end_request_body(0, protocol_status),
                               padding_length=padding, padding_byte=0x41)


def ok(request: AppRequest) -> list[Step]:
    return [answer(request.request_id)]


class FakeApp:
    """Accepts any number of connections, records every record, and answers each request (once
    `ready` says it has arrived) with the steps `respond` returns, in a thread of its own."""

    def __init__(self, respond: Callable[[AppRequest], list[Step]] = ok,
                 ready: Callable[[AppRequest], bool] = lambda request: request.stdin_done) -> None:
        self.respond = respond
        self.ready = ready
        self.lock = threading.Lock()
        self.requests: list[AppRequest] = []
        self.connections: list[socket.socket] = []
        self.eofs: set[int] = set()
        self.sent_ends: list[tuple[int, int]] = []  # (connection, request id), in order
        self.log: list[tuple[int, str, int]] = []  # (connection, "begin"|"done", request id)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections.append(sock)
                number = len(self.connections) - 1
            threading.Thread(target=self.serve, args=(sock, number), daemon=True).start()

    def serve(self, sock: socket.socket, number: int) -> None:
        reader = RecordReader()
        current: dict[int, AppRequest] = {}
        write_lock = threading.Lock()
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                with self.lock:
                    self.eofs.add(number)
                return
            for record in reader.feed(data):
                with self.lock:
                    if record.type == RecordType.BEGIN_REQUEST:
                        request = AppRequest(number, record.request_id, len(self.requests), record.content[2])
                        current[record.request_id] = request
                        self.requests.append(request)
                        self.log.append((number, "begin", record.request_id))
                    request = current.get(record.request_id)
                    if request is None:
                        continue
                    request.records.append(record)
                    if record.type == RecordType.PARAMS:
                        request.params_bytes += record.content
                        request.params_done = request.params_done or not record.content
                    elif record.type == RecordType.STDIN:
                        request.stdin += record.content
                    start = not request.answered and self.ready(request)
                    request.answered = request.answered or start
                if start:
                    threading.Thread(target=self.answer, args=(sock, request, write_lock), daemon=True).start()

    def answer(self, sock: socket.socket, request: AppRequest, write_lock: threading.Lock) -> None:
        for step in self.respond(request):
            if isinstance(step, float):
                time.sleep(step)
            elif isinstance(step, Close):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
                return
            else:
                try:
                    with write_lock:
                        sock.sendall(step)
                except OSError:
                    return
        with self.lock:
            request.done = True
            self.log.append((request.conn, "done", request.request_id))

    def close(self) -> None:
        self.listener.close()
        for sock in self.connections:
            try:
                sock.close()
            except OSError:
                pass

    def only(self) -> AppRequest:
        assert len(self.requests) == 1, self.requests
        return self.requests[0]


# ---- the HTTP client ---------------------------------------------------------------------------------

@dataclass
class Reply:
    status: int
    headers: dict[str, list[str]]
    body: bytes
    complete: bool  # the framing ended properly (last chunk, or the whole Content-Length)


class HttpClient:
    def __init__(self, port: int, rcvbuf: int | None = None, timeout: float = 10) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: the window
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.buffer = bytearray()

    def _more(self) -> bool:
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        self.buffer += data
        return bool(data)

    def _line(self) -> bytes | None:
        while b"\r\n" not in self.buffer:
            if not self._more():
                return None
        end = self.buffer.index(b"\r\n")
        line = bytes(self.buffer[:end])
        del self.buffer[:end + 2]
        return line

    def _take(self, count: int) -> bytes:
        while len(self.buffer) < count and self._more():
            pass
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        return data

    def send(self, method: str = "GET", target: str = "/", headers: tuple[str, ...] = (),
             body: bytes | None = None, chunks: list[bytes] | None = None) -> None:
        lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", *headers]
        payload = b""
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
            payload = body
        if chunks is not None:
            lines.append("Transfer-Encoding: chunked")
            payload = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks) + b"0\r\n\r\n"
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)

    def reply(self, head_only: bool = False) -> Reply:
        status_line = self._line()
        assert status_line is not None, "no response"
        status = int(status_line.split(b" ")[1])
        headers: dict[str, list[str]] = {}
        while (line := self._line()):
            name, _, value = line.decode("latin-1").partition(":")
            headers.setdefault(name.lower(), []).append(value.strip())
        if head_only or status in (204, 304):
            return Reply(status, headers, b"", True)
        if headers.get("transfer-encoding") == ["chunked"]:
            body = bytearray()
            while True:
                size_line = self._line()
                if size_line is None:
                    return Reply(status, headers, bytes(body), False)
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    return Reply(status, headers, bytes(body), self._line() == b"")
                chunk = self._take(size)
                body += chunk
                if len(chunk) < size or self._line() != b"":
                    return Reply(status, headers, bytes(body), False)
        if "content-length" in headers:
            length = int(headers["content-length"][0])
            body = self._take(length)
            return Reply(status, headers, body, len(body) == length)
        while self._more():
            pass
        body = bytes(self.buffer)
        self.buffer.clear()
        return Reply(status, headers, body, True)

    def exchange(self, method: str = "GET", target: str = "/", **options: object) -> Reply:
        self.send(method, target, **options)  # type: ignore[arg-type]
        return self.reply(head_only=method == "HEAD")

    def close(self) -> None:
        self.sock.close()


def fetch(port: int, method: str = "GET", target: str = "/", **options: object) -> Reply:
    client = HttpClient(port)
    try:
        return client.exchange(method, target, **options)
    finally:
        client.close()


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


# ---- starting the gateway ----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Running:
    port: int
    app: FakeApp
    process: subprocess.Popen


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    """start(app, *modes, read_timeout=2.0): a gateway in front of app; everything stopped afterwards."""
    processes: list[subprocess.Popen] = []
    apps: list[FakeApp] = []

    def start(app: FakeApp, *modes: str, read_timeout: float = 2.0) -> Running:
        apps.append(app)
        port = free_port()
        command = [sys.executable, str(GATEWAY), "--listen", str(port), "--app", f"127.0.0.1:{app.port}",
                   "--read-timeout", str(read_timeout), *[f"--bug={mode}" for mode in modes if mode]]
        log = open(tmp_path / f"gateway-{len(processes)}.log", "wb")
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                   start_new_session=True)
        log.close()
        processes.append(process)

        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False

        assert wait_for(lambda: process.poll() is not None or listening(), 10), "gateway did not start"
        assert process.poll() is None, (tmp_path / f"gateway-{len(processes) - 1}.log").read_text()
        return Running(port, app, process)

    yield start
    for process in processes:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
    for app in apps:
        app.close()


# ---- the correct gateway, and the allowed variations, are correct ------------------------------------

ACCEPTABLE = ["", "ids-increasing", "no-abort"]


def well_formed(request: AppRequest) -> None:
    """One request's records as the spec wants them from a web server."""
    records = request.records
    assert records[0].type == RecordType.BEGIN_REQUEST and records[0].content[:2] == b"\0\1"
    assert request.flags == KEEP_CONN
    assert request.request_id != 0
    kinds = [r.type for r in records]
    last_params = max(i for i, kind in enumerate(kinds) if kind == RecordType.PARAMS)
    assert not records[last_params].content and request.count(RecordType.PARAMS, empty=True) == 1
    assert all(kind == RecordType.STDIN for kind in kinds[last_params + 1:])
    assert request.count(RecordType.STDIN, empty=True) == 1 and not records[-1].content
    for record in records:
        assert record.version == 1 and len(record.content) <= 0xFFFF
        assert (len(record.content) + len(record.padding)) % 8 == 0


@pytest.mark.parametrize("mode", ACCEPTABLE)
def test_get_is_forwarded_with_the_cgi_variables(gateway, mode) -> None:
    run = gateway(FakeApp(), mode)
    reply = fetch(run.port, "GET", "/some%20where/x?a=1&b", headers=("X-Test: one", "X-Test: two",
                                                                     "X_Test: spoofed", "Proxy: evil"))
    assert (reply.status, reply.body, reply.complete) == (200, b"hello", True)
    assert reply.headers["transfer-encoding"] == ["chunked"]
    request = run.app.only()
    well_formed(request)
    params = request.params
    assert params is not None
    expected = {
        b"GATEWAY_INTERFACE": b"CGI/1.1", b"SERVER_PROTOCOL": b"HTTP/1.1", b"REQUEST_METHOD": b"GET",
        b"SCRIPT_NAME": b"", b"PATH_INFO": b"/some where/x", b"QUERY_STRING": b"a=1&b",
        b"REQUEST_URI": b"/some%20where/x?a=1&b", b"SCRIPT_FILENAME": b"/fcgispec/probe",
        b"SERVER_NAME": b"127.0.0.1", b"SERVER_PORT": str(run.port).encode(), b"REMOTE_ADDR": b"127.0.0.1",
        b"HTTP_HOST": b"127.0.0.1", b"HTTP_X_TEST": b"one, two",
    }
    assert {name: params.get(name) for name in expected} == expected
    assert b"REMOTE_PORT" in params and b"SERVER_SOFTWARE" in params
    assert b"CONTENT_LENGTH" not in params and b"CONTENT_TYPE" not in params and b"HTTP_PROXY" not in params


@pytest.mark.parametrize("mode", ACCEPTABLE)
def test_post_body_and_long_values_are_framed_right(gateway, mode) -> None:
    run = gateway(FakeApp(), mode)
    body = bytes(range(256)) * 400  # 102400 bytes: two STDIN records
    long_value = "v" * 300  # a 4-byte name-value length
    reply = fetch(run.port, "POST", "/upload", headers=("Content-Type: application/octet-stream",
                                                        f"X-Long: {long_value}"), body=body)
    assert (reply.status, reply.body) == (200, b"hello")
    request = run.app.only()
    well_formed(request)
    assert bytes(request.stdin) == body and request.count(RecordType.STDIN, empty=False) == 2
    params = request.params
    assert params is not None
    assert params[b"CONTENT_LENGTH"] == b"102400" and params[b"CONTENT_TYPE"] == b"application/octet-stream"
    assert params[b"HTTP_X_LONG"] == long_value.encode() and params[b"REQUEST_METHOD"] == b"POST"


@pytest.mark.parametrize("mode", ACCEPTABLE)
def test_chunked_upload_is_decoded(gateway, mode) -> None:
    run = gateway(FakeApp(), mode)
    chunks = [b"first-", b"second-", b"x" * 70000]
    reply = fetch(run.port, "POST", "/", chunks=chunks)
    assert reply.status == 200
    request = run.app.only()
    well_formed(request)
    params = request.params
    assert bytes(request.stdin) == b"".join(chunks) and params is not None
    assert params[b"CONTENT_LENGTH"] == str(len(b"".join(chunks))).encode()
    assert b"HTTP_TRANSFER_ENCODING" not in params


@pytest.mark.parametrize("mode", ACCEPTABLE)
def test_keep_alive_and_head_on_one_kept_fastcgi_connection(gateway, mode) -> None:
    run = gateway(FakeApp(), mode)
    client = HttpClient(run.port)
    try:
        head = client.exchange("HEAD", "/")
        first = client.exchange("GET", "/")
        second = client.exchange("GET", "/")
    finally:
        client.close()
    assert (head.status, head.body, "transfer-encoding" in head.headers) == (200, b"", False)
    assert (first.status, first.body, second.status, second.body) == (200, b"hello", 200, b"hello")
    requests = run.app.requests
    assert [r.conn for r in requests] == [0, 0, 0]
    assert requests[0].params is not None and requests[0].params[b"REQUEST_METHOD"] == b"HEAD"
    ids = [r.request_id for r in requests]
    assert ids == ([1, 2, 3] if mode == "ids-increasing" else [1, 1, 1])
    for request in requests:
        well_formed(request)


def test_connection_close_is_honoured(gateway) -> None:
    run = gateway(FakeApp())
    client = HttpClient(run.port)
    try:
        reply = client.exchange("GET", "/", headers=("Connection: close",))
        assert reply.headers["connection"] == ["close"] and reply.complete
        assert client.sock.recv(1) == b""
    finally:
        client.close()


def test_large_response_is_streamed_whole(gateway) -> None:
    body = os.urandom(1 << 20)

    def large(request: AppRequest) -> list[Step]:
        pieces = [encode_record(RecordType.STDOUT, request.request_id, CGI_HEAD)]
        pieces += [encode_record(RecordType.STDOUT, request.request_id, body[i:i + 65535])
                   for i in range(0, len(body), 65535)]
        return [b"".join(pieces), answer(request.request_id, head=b"", body=b"")]

    run = gateway(FakeApp(large))
    reply = fetch(run.port)
    assert (reply.status, reply.complete, reply.body == body) == (200, True, True)


def test_header_line_of_128_kib_reaches_params_in_several_records(gateway) -> None:
    run = gateway(FakeApp())
    value = b"abcdefghijklmnopqrstuvwxyz" * 5042  # 131092 bytes
    reply = fetch(run.port, headers=("X-Large: " + value.decode(),))
    assert (reply.status, reply.body, reply.complete) == (200, b"hello", True)
    request = run.app.only()
    well_formed(request)
    params = request.params
    assert params is not None and params[b"HTTP_X_LARGE"] == value
    assert request.count(RecordType.PARAMS, empty=False) >= 3


def test_silent_application_gets_504_and_its_connection_closed(gateway) -> None:
    run = gateway(FakeApp(lambda request: []), read_timeout=0.5)
    started = time.monotonic()
    reply = fetch(run.port)
    assert reply.status == 504 and time.monotonic() - started < 3
    assert wait_for(lambda: 0 in run.app.eofs, 2)


def test_get_is_resent_once_when_a_kept_connection_died(gateway) -> None:
    def close_second(request: AppRequest) -> list[Step]:
        return [CLOSE] if request.index == 1 else ok(request)

    run = gateway(FakeApp(close_second))
    assert fetch(run.port).status == 200
    assert fetch(run.port).status == 200
    assert [r.conn for r in run.app.requests] == [0, 0, 1]


def test_stderr_and_other_ids_are_not_part_of_the_response(gateway) -> None:
    def noisy(request: AppRequest) -> list[Step]:
        stray = encode_record(RecordType.STDOUT, request.request_id + 7, b"Status: 500\r\n\r\nnot yours")
        return [stray + answer(request.request_id, stderr=b"a warning\n")]

    run = gateway(FakeApp(noisy))
    reply = fetch(run.port)
    assert (reply.status, reply.body, reply.complete) == (200, b"hello", True)


@pytest.mark.parametrize("head, status", [
    (b"Location: http://example.com/next\r\n\r\n", 302),
    (b"Status: 201 Made\nX-A: 1\n\n", 201),
    (b"Content-Type text/plain\r\n\r\n", 502),
])
def test_cgi_header_block(gateway, head, status) -> None:
    run = gateway(FakeApp(lambda request: [answer(request.request_id, head=head)]))
    reply = fetch(run.port)
    assert reply.status == status and "status" not in reply.headers


# ---- each bug mode shows its bug -------------------------------------------------------------------
# Each check returns whether the mistake was seen; it must be seen with the mode and not without it.

def overlapping_ids(app: FakeApp) -> bool:
    active: dict[int, set[int]] = {}
    for conn, event, request_id in app.log:
        ids = active.setdefault(conn, set())
        if event == "begin":
            if request_id in ids:
                return True
            ids.add(request_id)
        else:
            ids.discard(request_id)
    return False


def see_reuse_active_id(start) -> bool:
    run = start(FakeApp(lambda request: [0.4, answer(request.request_id)]))
    replies: list[Reply] = []
    threads = [threading.Thread(target=lambda: replies.append(fetch(run.port))) for _ in range(2)]
    for thread in threads:
        thread.start()
        time.sleep(0.1)
    for thread in threads:
        thread.join()
    return overlapping_ids(run.app)


def see_retry_post(start) -> bool:
    run = start(FakeApp(lambda request: [CLOSE] if request.index == 1 else ok(request)))
    fetch(run.port)
    reply = fetch(run.port, "POST", "/", body=b"pay once")
    posts = [r for r in run.app.requests if bytes(r.stdin) == b"pay once"]
    assert reply.status == (200 if len(posts) == 2 else 502)
    return len(posts) == 2


def see_truncated_as_complete(start) -> bool:
    cut = lambda request: [encode_record(RecordType.STDOUT, request.request_id, CGI_HEAD + b"partial"), 0.1, CLOSE]
    run = start(FakeApp(cut))
    reply = fetch(run.port)
    assert reply.status == 200 and reply.body == b"partial"
    return reply.complete


def see_stderr_as_error(start) -> bool:
    run = start(FakeApp(lambda request: [answer(request.request_id, stderr=b"deprecated call\n")]))
    return fetch(run.port).status == 502


def see_no_empty_stdin(start) -> bool:
    run = start(FakeApp(ready=lambda request: request.params_done))
    assert fetch(run.port).status == 200
    request = run.app.only()
    return not wait_for(lambda: request.count(RecordType.STDIN) > 0, 0.5)


def see_wrong_4_byte_length(start) -> bool:
    run = start(FakeApp())
    fetch(run.port, headers=("X-Long: " + "v" * 300,))
    params = run.app.only().params
    return params is None or params.get(b"HTTP_X_LONG") != b"v" * 300


def see_keepconn_but_close(start) -> bool:
    run = start(FakeApp())
    fetch(run.port)
    fetch(run.port)
    assert all(r.flags == KEEP_CONN for r in run.app.requests)
    return [r.conn for r in run.app.requests] == [0, 1] and 0 in run.app.eofs


def see_no_keepconn_but_reuse(start) -> bool:
    run = start(FakeApp())  # an application that leaves the connection open although KEEP_CONN is clear
    fetch(run.port)
    fetch(run.port)
    requests = run.app.requests
    return [r.conn for r in requests] == [0, 0] and all(r.flags == 0 for r in requests)


def see_no_params_terminator(start) -> bool:
    run = start(FakeApp())
    fetch(run.port)
    request = run.app.only()
    return request.count(RecordType.PARAMS, empty=True) == 0 and request.count(RecordType.STDIN) > 0


def see_no_stdin_terminator(start) -> bool:
    def body_arrived(request: AppRequest) -> bool:
        params = request.params if request.params_done else None
        return params is not None and len(request.stdin) >= int(params.get(b"CONTENT_LENGTH", b"1"))

    run = start(FakeApp(ready=body_arrived))
    assert fetch(run.port, "POST", "/", body=b"a body").status == 200
    request = run.app.only()
    assert bytes(request.stdin) == b"a body"
    return not wait_for(lambda: request.stdin_done, 0.5)


def see_zero_request_id(start) -> bool:
    run = start(FakeApp())
    assert fetch(run.port).status == 200
    return run.app.only().request_id == 0


def see_chunked_upload_cut(start) -> bool:
    run = start(FakeApp())
    fetch(run.port, "POST", "/", chunks=[b"first-", b"second-", b"third"])
    return bytes(run.app.only().stdin) == b"first-"


def see_ignore_protocol_status(start) -> bool:
    run = start(FakeApp(lambda request: [answer(request.request_id, head=b"", body=b"",
                                                protocol_status=ProtocolStatus.OVERLOADED)]))
    status = fetch(run.port).status
    assert status in (200, 503)
    return status == 200


def see_pass_status_header(start) -> bool:
    head = b"Status: 404 Not Found\r\n" + CGI_HEAD
    run = start(FakeApp(lambda request: [answer(request.request_id, head=head, body=b"missing")]))
    reply = fetch(run.port)
    assert reply.status in (200, 404)
    return reply.status == 200 and reply.headers.get("status") == ["404 Not Found"]


def see_no_cgi_vars(start) -> bool:
    run = start(FakeApp())
    fetch(run.port)
    params = run.app.only().params
    assert params is not None
    return not {b"REQUEST_METHOD", b"SERVER_PROTOCOL", b"GATEWAY_INTERFACE"} & set(params)


def see_garbage_after_end(start) -> bool:
    def stale_output(request: AppRequest) -> list[Step]:
        if request.index == 0:
            stale = encode_record(RecordType.STDOUT, request.request_id, CGI_HEAD + b"STALE")
            return [answer(request.request_id) + stale]
        return [answer(request.request_id, body=b"fresh")]

    run = start(FakeApp(stale_output))
    fetch(run.port)
    time.sleep(0.1)
    return fetch(run.port).body != b"fresh"


def see_padding_misread(start) -> bool:
    run = start(FakeApp(lambda request: [answer(request.request_id, padding=5)]))
    reply = fetch(run.port)
    return (reply.status, reply.body, reply.complete) != (200, b"hello", True)


def see_header_split_misread(start) -> bool:
    def split(request: AppRequest) -> list[Step]:
        first = encode_record(RecordType.STDOUT, request.request_id, b"Content-Type: te")
        return [first, 0.05, encode_record(RecordType.STDOUT, request.request_id, b"xt/plain\r\n\r\n")
                + answer(request.request_id, head=b"")]

    run = start(FakeApp(split))
    reply = fetch(run.port)
    assert reply.status in (200, 502)
    return reply.status == 502


def see_version_0(start) -> bool:
    run = start(FakeApp())
    assert fetch(run.port).status == 200
    versions = {record.version for record in run.app.only().records}
    assert versions in ({0}, {1})
    return versions == {0}


def see_omit_var(start) -> bool:
    run = start(FakeApp())  # started with omit-var:QUERY_STRING (MODE_ARGUMENTS)
    assert fetch(run.port, "GET", "/x?a=1").status == 200
    params = run.app.only().params
    assert params is not None and params[b"REQUEST_METHOD"] == b"GET"
    return b"QUERY_STRING" not in params


def several_ids_active(app: FakeApp) -> bool:
    active: dict[int, set[int]] = {}
    for conn, event, request_id in app.log:
        ids = active.setdefault(conn, set())
        if event == "begin":
            if ids - {request_id}:
                return True
            ids.add(request_id)
        else:
            ids.discard(request_id)
    return False


def see_multiplex(start) -> bool:
    # The application answers concurrently, so the records of the three requests interleave.
    run = start(FakeApp(lambda request: [0.4, answer(request.request_id, body=b"for %d" % request.request_id)]))
    replies: dict[int, Reply] = {}

    def get(index: int) -> None:
        replies[index] = fetch(run.port, "GET", f"/{index}")

    threads = [threading.Thread(target=get, args=(index,)) for index in range(3)]
    for thread in threads:
        thread.start()
        time.sleep(0.1)
    for thread in threads:
        thread.join()
    assert all(reply.status == 200 and reply.complete and reply.body.startswith(b"for ") for reply in replies.values())
    assert not overlapping_ids(run.app)
    shared = several_ids_active(run.app)
    if shared:
        assert {r.conn for r in run.app.requests} == {0} and sorted(r.request_id for r in run.app.requests) == [1, 2, 3]
        assert len({reply.body for reply in replies.values()}) == 3  # each got its own request's answer
    return shared


def see_no_retry(start) -> bool:
    run = start(FakeApp(lambda request: [answer(request.request_id), CLOSE] if request.index == 0 else ok(request)))
    assert fetch(run.port).status == 200
    assert wait_for(lambda: 0 in run.app.eofs, 2)
    time.sleep(0.1)  # the connection is idle in the gateway's pool, closed by the application
    status = fetch(run.port).status
    assert status in (200, 502)
    return status == 502


def see_short_body(start) -> bool:
    run = start(FakeApp())
    body = os.urandom(200000)
    fetch(run.port, "POST", "/", body=body)
    request = run.app.only()
    assert request.params is not None and request.params[b"CONTENT_LENGTH"] == b"200000" and request.stdin_done
    assert bytes(request.stdin) in (body, body[:65536])
    return bytes(request.stdin) == body[:65536]


def see_lenient_headers(start) -> bool:
    outputs = [b"no header block at all", b"Content-Type: text/plain\r\nno colon here\r\n\r\nbody"]
    run = start(FakeApp(lambda request: [answer(request.request_id, head=b"", body=outputs[request.index])]))
    no_block = fetch(run.port)
    no_colon = fetch(run.port)
    assert no_block.status in (200, 502) and no_colon.status in (200, 502)
    lenient = [no_block.status == 200 and no_block.body == outputs[0],
               no_colon.status == 200 and "no colon here" in no_colon.headers and no_colon.body == b"body"]
    assert lenient[0] == lenient[1]
    return lenient[0]


def see_needs_stdout_terminator(start) -> bool:
    def no_terminator(request: AppRequest) -> list[Step]:
        return [encode_record(RecordType.STDOUT, request.request_id, CGI_HEAD + b"hello")
                + encode_record(RecordType.END_REQUEST, request.request_id, end_request_body(0, 0))]

    run = start(FakeApp(no_terminator), read_timeout=1.0)
    started = time.monotonic()
    reply = fetch(run.port)
    assert reply.status == 200 and reply.body == b"hello"
    return not reply.complete and time.monotonic() - started >= 0.9


def see_other_id_output(start) -> bool:
    def foreign(request: AppRequest) -> list[Step]:
        stray = encode_record(RecordType.STDOUT, request.request_id + 7, b"FOREIGN")
        return [encode_record(RecordType.STDOUT, request.request_id, CGI_HEAD + b"hel") + stray
                + answer(request.request_id, head=b"", body=b"lo")]

    run = start(FakeApp(foreign))
    reply = fetch(run.port)
    assert reply.status == 200 and reply.complete
    assert reply.body in (b"hello", b"helFOREIGNlo")
    return reply.body == b"helFOREIGNlo"


def see_drop_when_client_slow(start) -> bool:
    body = os.urandom(8 << 20)

    def large(request: AppRequest) -> list[Step]:
        return [encode_record(RecordType.STDOUT, request.request_id, CGI_HEAD)
                + b"".join(encode_record(RecordType.STDOUT, request.request_id, body[i:i + 65535])
                           for i in range(0, len(body), 65535))
                + answer(request.request_id, head=b"", body=b"")]

    run = start(FakeApp(large))
    client = HttpClient(run.port, rcvbuf=16384)
    try:
        client.send("GET", "/")
        time.sleep(1.0)  # not reading: the gateway's sends to it would block
        reply = client.reply()
    finally:
        client.close()
    assert reply.status == 200 and reply.complete
    assert body.startswith(reply.body)
    return len(reply.body) < len(body)


def see_no_read_timeout(start) -> bool:
    run = start(FakeApp(lambda request: []), read_timeout=0.5)
    client = HttpClient(run.port, timeout=2.5)
    try:
        client.send("GET", "/")
        try:
            reply = client.reply()
        except TimeoutError:
            return True  # nothing 5 read timeouts later
    finally:
        client.close()
    assert reply.status == 504
    return False


def see_ids_increasing(start) -> bool:
    run = start(FakeApp())
    assert all(fetch(run.port).status == 200 for _ in range(3))
    return [r.request_id for r in run.app.requests] == [1, 2, 3]


def see_no_abort(start) -> bool:
    run = start(FakeApp(lambda request: [0.6, answer(request.request_id)]))
    client = HttpClient(run.port)
    client.send("GET", "/")
    assert wait_for(lambda: len(run.app.requests) == 1, 2)
    client.close()
    request = run.app.only()
    assert wait_for(lambda: request.done, 3)
    time.sleep(0.1)
    return request.count(RecordType.ABORT_REQUEST) == 0


CHECKS = {
    "reuse-active-id": see_reuse_active_id,
    "retry-post": see_retry_post,
    "truncated-as-complete": see_truncated_as_complete,
    "stderr-as-error": see_stderr_as_error,
    "no-empty-stdin": see_no_empty_stdin,
    "wrong-4-byte-length": see_wrong_4_byte_length,
    "keepconn-but-close": see_keepconn_but_close,
    "no-keepconn-but-reuse": see_no_keepconn_but_reuse,
    "no-params-terminator": see_no_params_terminator,
    "no-stdin-terminator": see_no_stdin_terminator,
    "zero-request-id": see_zero_request_id,
    "chunked-upload-cut": see_chunked_upload_cut,
    "ignore-protocol-status": see_ignore_protocol_status,
    "pass-status-header": see_pass_status_header,
    "no-cgi-vars": see_no_cgi_vars,
    "garbage-after-end": see_garbage_after_end,
    "padding-misread": see_padding_misread,
    "header-split-misread": see_header_split_misread,
    "version-0": see_version_0,
    "omit-var:NAME": see_omit_var,
    "multiplex": see_multiplex,
    "no-retry": see_no_retry,
    "short-body": see_short_body,
    "lenient-headers": see_lenient_headers,
    "needs-stdout-terminator": see_needs_stdout_terminator,
    "other-id-output": see_other_id_output,
    "drop-when-client-slow": see_drop_when_client_slow,
    "no-read-timeout": see_no_read_timeout,
    "ids-increasing": see_ids_increasing,
    "no-abort": see_no_abort,
}


# A parametrised mode is checked with this argument.
MODE_ARGUMENTS = {"omit-var:NAME": "omit-var:QUERY_STRING"}


@pytest.mark.parametrize("with_mode", [True, False], ids=["with-mode", "correct"])
@pytest.mark.parametrize("mode", sorted(CHECKS))
def test_mode_shows_its_mistake(gateway, mode, with_mode) -> None:
    argument = MODE_ARGUMENTS.get(mode, mode) if with_mode else ""
    seen = CHECKS[mode](lambda app, **options: gateway(app, argument, **options))
    assert seen == with_mode


def test_omit_var_takes_a_variable_name() -> None:
    result = run_cli("--listen", "1", "--app", "127.0.0.1:2", "--bug", "omit-var:")
    assert result.returncode == 2 and "omit-var:" in result.stderr


# ---- command line ------------------------------------------------------------------------------------

ROOT_DIR = Path(__file__).resolve().parent.parent


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(GATEWAY), *args], capture_output=True, text=True, timeout=20,
                          env={**os.environ, **(env or {})})


def test_every_mode_has_a_check_and_a_help_line() -> None:
    listed = run_cli("--list-modes")
    modes = dict(line.split("\t")[:2] for line in listed.stdout.splitlines())
    assert set(CHECKS) <= set(modes)
    # A mode without a focused check here is proved by the gateway suite's cases that name it.
    cases_text = "".join(p.read_text() for p in (ROOT_DIR / "cases" / "gateway").glob("*.py"))
    unchecked = [m for m in set(modes) - set(CHECKS) if f'"{m}"' not in cases_text]
    assert not unchecked, f"modes neither checked here nor named by a gateway case: {unchecked}"
    assert {name for name, kind in modes.items() if kind == "allowed"} == {"ids-increasing", "no-abort"}
    help_text = run_cli("--help").stdout
    assert all(f"  {mode} " in help_text for mode in modes)


def test_unknown_mode_is_a_one_line_usage_error() -> None:
    result = run_cli("--listen", "1", "--app", "127.0.0.1:2", "--bug", "no-such-mode")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1 and "no-such-mode" in result.stderr


def test_environment_stands_in_for_options_and_sigterm_ends_it() -> None:
    app = FakeApp()
    port = free_port()
    env = {**os.environ, "FCGISPEC_HTTP_PORT": str(port), "FCGISPEC_APP_HOST": "127.0.0.1",
           "FCGISPEC_APP_PORT": str(app.port)}
    process = subprocess.Popen([sys.executable, str(GATEWAY)], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        def answers() -> bool:
            try:
                return fetch(port).status == 200
            except (OSError, AssertionError):
                return False

        assert wait_for(answers, 10)
    finally:
        os.kill(process.pid, signal.SIGTERM)
        try:
            code = process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            raise
        app.close()
    assert code == 0
