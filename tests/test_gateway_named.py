"""Every named gateway in front of a recording FastCGI application: it answers through the gateway,
passes a POST body whole, reuses (or not) its FastCGI connections as its class says, listens on
the loopback port it was given only, and leaves no process and no prefix behind when stopped."""

from __future__ import annotations

import http.client
import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from harness.gateways.named import NAMED_GATEWAYS, WebServerGateway
from harness.targets.process import group_members
from harness.wire.codec import (
    KEEP_CONN,
    Record,
    RecordReader,
    RecordType,
    decode_params,
    encode_record,
    end_request_body,
)

# Every byte value, so that a body cut, reordered or re-encoded on the way does not look whole.
POST_BODY = (bytes(range(256)) * 391)[:100000]


@dataclass
class AppRequest:
    """One request as the application received it."""

    request_id: int
    flags: int
    params: bytes = b""
    stdin: bytes = b""
    params_done: bool = False

    @property
    def keep_conn(self) -> bool:
        return bool(self.flags & KEEP_CONN)

    def param(self, name: bytes) -> bytes | None:
        return dict(decode_params(self.params)).get(name)


@dataclass
class AppConnection:
    """One FastCGI connection the gateway opened: every record it sent, the requests they made."""

    records: list[Record] = field(default_factory=list)
    requests: list[AppRequest] = field(default_factory=list)
    closed_by_gateway: bool = False


class RecordingApplication:
    """A FastCGI responder on a loopback port that answers every request with `hello METHOD`.

    It closes a connection after END_REQUEST only when the request did not set FCGI_KEEP_CONN.
    """

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections: list[AppConnection] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:  # the listener was closed: the test is over
                return
            connection = AppConnection()
            with self._lock:
                self.connections.append(connection)
            thread = threading.Thread(target=self._serve, args=(sock, connection), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket, connection: AppConnection) -> None:
        reader = RecordReader()
        active: dict[int, AppRequest] = {}
        with sock:
            while True:
                try:
                    data = sock.recv(65536)
                except OSError:
                    return
                if not data:
                    connection.closed_by_gateway = True
                    return
                for record in reader.feed(data):
                    connection.records.append(record)
                    if not self._handle(sock, connection, active, record):
                        return

    def _handle(self, sock: socket.socket, connection: AppConnection, active: dict[int, AppRequest],
                record: Record) -> bool:
        """Takes one record; False once the connection is closed."""
        if record.type == RecordType.BEGIN_REQUEST:
            request = AppRequest(record.request_id, record.content[2])
            active[record.request_id] = request
            connection.requests.append(request)
            return True
        request = active.get(record.request_id)
        if request is None:
            return True
        if record.type == RecordType.PARAMS:
            request.params += record.content
            request.params_done = not record.content
        elif record.type == RecordType.STDIN:
            request.stdin += record.content
            if not record.content:
                return self._answer(sock, active.pop(record.request_id))
        return True

    def _answer(self, sock: socket.socket, request: AppRequest) -> bool:
        method = request.param(b"REQUEST_METHOD") or b"?"
        body = b"Content-Type: text/plain\r\n\r\nhello " + method
        rid = request.request_id
        sock.sendall(encode_record(RecordType.STDOUT, rid, body) + encode_record(RecordType.STDOUT, rid)
                     + encode_record(RecordType.END_REQUEST, rid, end_request_body(0, 0)))
        if request.keep_conn:
            return True
        sock.close()
        return False

    def requests(self) -> list[tuple[int, AppRequest]]:
        """Every request, with the index of the connection it came on."""
        with self._lock:
            return [(index, request) for index, connection in enumerate(self.connections)
                    for request in connection.requests]

    def close(self) -> None:
        self.listener.close()


def listening_sockets(pids: list[int]) -> set[tuple[str, int]]:
    """The (address, port) of every TCP socket in LISTEN state that one of the processes holds."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    found: set[tuple[str, int]] = set()
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                continue
            address, port = fields[1].split(":")
            raw = bytes.fromhex(address)
            if width == 4:
                shown = socket.inet_ntop(socket.AF_INET, raw[::-1])
            else:
                shown = socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
            found.add((shown, int(port, 16)))
    return found


@pytest.fixture
def application() -> Iterator[RecordingApplication]:
    app = RecordingApplication()
    yield app
    app.close()


def exchange(port: int) -> list[tuple[int, bytes]]:
    """A GET, a POST, a GET and a POST on one keep-alive HTTP connection: (status, body) of each."""
    answers = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for n, method in enumerate(("GET", "POST", "GET", "POST")):
            body = POST_BODY if method == "POST" else None
            conn.request(method, f"/fcgispec/test?n={n}", body=body)
            response = conn.getresponse()
            answers.append((response.status, response.read()))
    finally:
        conn.close()
    return answers


@pytest.mark.parametrize("name", list(NAMED_GATEWAYS))
def test_gateway_answers_passes_bodies_and_reuses_connections_as_declared(
        name: str, application: RecordingApplication) -> None:
    cls = NAMED_GATEWAYS[name]
    if not cls.available():
        pytest.skip(f"{cls.server} is not installed (scripts/install-packages {cls.package_section})")
    gateway: WebServerGateway = cls("127.0.0.1", application.port)
    gateway.start()
    try:
        assert gateway.process is not None and gateway.prefix is not None
        pgid, prefix = gateway.process.pgid, gateway.prefix
        listening = listening_sockets(gateway.process.members())
        assert listening == {("127.0.0.1", gateway.http_port)}, gateway.log_tail()
        answers = exchange(gateway.http_port)
        assert answers == [(200, b"hello GET"), (200, b"hello POST")] * 2, gateway.log_tail()
    finally:
        gateway.stop()
    assert group_members(pgid) == []
    assert not prefix.exists()

    requests = [request for _, request in application.requests()]
    assert [r.param(b"REQUEST_METHOD") for r in requests] == [b"GET", b"POST"] * 2
    assert [r.stdin for r in requests if r.param(b"REQUEST_METHOD") == b"POST"] == [POST_BODY] * 2
    on_one_connection = max(len(c.requests) for c in application.connections)
    kept = all(r.keep_conn for r in requests) and on_one_connection > 1
    assert kept == cls.keeps_backend_connections, (
        f"KEEP_CONN flags {[r.keep_conn for r in requests]}, at most {on_one_connection} requests on one connection")


def test_gateways_are_named_in_a_stable_order() -> None:
    assert list(NAMED_GATEWAYS)[:10] == [
        "nginx", "nginx-keepconn", "apache2", "apache2-reuse", "lighttpd", "h2o", "h2o-keepalive",
        "haproxy", "haproxy-no-keepconn", "caddy"]
    for cls in NAMED_GATEWAYS.values():
        assert cls.server and cls.package_section and cls.config_summary
        assert (cls.template_dir / cls.template).is_file()
