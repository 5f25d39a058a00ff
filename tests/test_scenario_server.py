"""The scenario servers and their ledger, driven by raw sockets (no HTTP client involved)."""

from __future__ import annotations

import select
import socket
import ssl
import time

import pytest

from harness.clients.scenario_server import ANY, ScenarioServer, Step, chunked, response, steps_handler
import harness.clients.test_ca as certs

REQUEST = b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n"


def serve(table: dict, *, tls: bool = False) -> ScenarioServer:
    return ScenarioServer(steps_handler(table), tls=tls)


def recv_until(sock: socket.socket, marker: bytes, timeout: float = 2.0) -> bytes:
    data = b""
    sock.settimeout(timeout)
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


@pytest.fixture
def servers():
    made: list[ScenarioServer] = []
    yield made
    for server in made:
        server.stop()


def test_response_builders() -> None:
    assert response() == b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nfoo"
    assert response(b"foo", length=10).startswith(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n")
    assert b"Content-Length" not in response(b"hello", framing=False)
    assert chunked(b"foo").endswith(b"\r\n\r\n3\r\nfoo\r\n0\r\n\r\n")


def test_keep_alive_ledger_has_one_connection_with_the_client_port(servers) -> None:
    server = serve({ANY: [Step(response())]})
    servers.append(server)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        port = sock.getsockname()[1]
        for number in (1, 2):
            sock.sendall(b"POST /%d HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello" % number)
            assert recv_until(sock, b"foo").endswith(b"foo")
    assert server.wait_for(lambda led: led and led[0].client_close == "fin", 2)
    (conn,) = server.snapshot()
    assert conn.peer_port == port
    assert [(r.method, r.path, r.body_length) for r in conn.requests] == [("POST", "/1", 5), ("POST", "/2", 5)]
    assert conn.server_close is None or conn.client_closed_at <= conn.server_closed_at


def test_fin_then_a_late_request_is_recorded(servers) -> None:
    server = serve({ANY: [Step(response(), close="fin")]})
    servers.append(server)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(REQUEST % 1)
        assert recv_until(sock, b"\x00") == response()  # then EOF
        sock.sendall(REQUEST % 2)
        time.sleep(0.1)
    assert server.wait_for(lambda led: led[0].client_close is not None, 2)
    (conn,) = server.snapshot()
    assert conn.server_close == "fin" and conn.client_close == "fin"
    assert [str(r) for r in conn.requests] == ["GET /1", "GET /2 (after the server closed)"]
    assert conn.bytes_after_server_close == len(REQUEST % 2)


def test_rst_close(servers) -> None:
    server = serve({ANY: [Step(response(), close="rst")]})
    servers.append(server)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(REQUEST % 1)
        time.sleep(0.2)
        with pytest.raises(ConnectionResetError):
            while sock.recv(65536):
                pass
    assert server.snapshot()[0].server_close == "rst"


def test_unsolicited_bytes_come_later_in_their_own_segment(servers) -> None:
    server = serve({ANY: [Step(response(), later=b"LATE", later_after=0.1)]})
    servers.append(server)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(REQUEST % 1)
        assert recv_until(sock, b"foo") == response()
        assert not select.select([sock], [], [], 0.05)[0]
        assert recv_until(sock, b"LATE") == b"LATE"


class TlsClient:
    """A TLS client over memory BIOs, so the test sees which records came in which TCP read."""

    def __init__(self, port: int) -> None:
        context = ssl.create_default_context(cafile=str(certs.test_pki().ca_cert))
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.settimeout(2)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.sock.sendall(self.outgoing.read())
                self.incoming.write(self.sock.recv(65536))
        self.sock.sendall(self.outgoing.read())

    def send(self, data: bytes) -> None:
        self.tls.write(data)
        self.sock.sendall(self.outgoing.read())

    def read_all_from_one_recv(self) -> tuple[bytes, bool]:
        """Application data and whether close_notify came, from one TCP read (after a short wait)."""
        time.sleep(0.1)
        self.incoming.write(self.sock.recv(65536))
        data = b""
        while True:
            try:
                chunk = self.tls.read(65536)
                if not chunk:  # Python returns b'' for a close_notify
                    return data, True
                data += chunk
            except ssl.SSLWantReadError:
                return data, False
            except ssl.SSLZeroReturnError:
                return data, True


def test_tls_close_notify_coalesced_with_the_response(servers) -> None:
    server = serve({ANY: [Step(response(), close="notify_coalesced", close_after=0.3)]}, tls=True)
    servers.append(server)
    client = TlsClient(server.port)
    client.send(REQUEST % 1)
    data, notified = client.read_all_from_one_recv()
    assert data == response() and notified
    assert client.sock.recv(1) == b""  # the FIN, close_after later
    client.sock.close()
    assert server.wait_for(lambda led: led[0].server_close == "close_notify+fin", 2)


def test_tls_close_notify_keeps_tcp_open_then_fin(servers) -> None:
    server = serve({ANY: [Step(response(), close="notify_keep", close_after=0.0, keep_open=0.5)]}, tls=True)
    servers.append(server)
    client = TlsClient(server.port)
    client.send(REQUEST % 1)
    data, notified = client.read_all_from_one_recv()
    assert data == response()
    started = time.monotonic()
    client.sock.settimeout(0.2)
    if not notified:
        client.incoming.write(client.sock.recv(65536))
        assert client.tls.read(10) == b""  # the close_notify
    with pytest.raises(socket.timeout):
        client.sock.recv(1)  # but no FIN yet
    client.sock.settimeout(2)
    assert client.sock.recv(1) == b""
    assert time.monotonic() - started >= 0.3
    client.sock.close()


def test_tls_client_close_notify_is_recorded(servers) -> None:
    server = serve({ANY: [Step(response())]}, tls=True)
    servers.append(server)
    client = TlsClient(server.port)
    client.send(REQUEST % 1)
    client.read_all_from_one_recv()
    try:
        client.tls.unwrap()
    except ssl.SSLWantReadError:
        pass
    client.sock.sendall(client.outgoing.read())
    client.sock.close()
    assert server.wait_for(lambda led: led[0].client_close == "close_notify+fin", 2)


def test_late_session_ticket_is_sent(servers) -> None:
    def handler(conn) -> None:
        while conn.read_request() is not None:
            conn.send(response())
            conn.send_session_ticket()

    server = ScenarioServer(handler, tls=True)
    servers.append(server)
    client = TlsClient(server.port)
    client.send(REQUEST % 1)
    data, notified = client.read_all_from_one_recv()
    assert data == response() and not notified
    client.send(REQUEST % 2)
    assert client.read_all_from_one_recv()[0] == response()
    assert not server.errors
    assert sum("NewSessionTicket" in what for _, what in server.snapshot()[0].events) == 2


def test_certificate_valid_for_both_names() -> None:
    pki = certs.test_pki()
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    for name in ("localhost", "127.0.0.1"):
        a, b = ssl.MemoryBIO(), ssl.MemoryBIO()
        c, d = ssl.MemoryBIO(), ssl.MemoryBIO()
        client = context.wrap_bio(a, b, server_hostname=name)
        srv = server_context.wrap_bio(c, d, server_side=True)
        for _ in range(6):
            for side in (client, srv):
                try:
                    side.do_handshake()
                except ssl.SSLWantReadError:
                    pass
            c.write(b.read())
            a.write(d.read())
        assert client.version() == "TLSv1.3"
