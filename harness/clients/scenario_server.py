"""Misbehaving HTTP/1.1 servers for the client connection-reuse suite, and their ledger.

A ScenarioServer listens on 127.0.0.1 (a port picked at run time), plain TCP or TLS, and runs a
handler per accepted connection, in its own thread. A handler is a small script of what the server
does per request: usually a table of Steps (steps_handler), as curl's tests put data where code
would say less. TLS goes through memory BIOs, so the harness decides exactly which bytes leave in
which TCP write: a response record and a close_notify alert can share one segment.

Close modes (ServerConn.close):
  fin          shutdown(SHUT_WR), then keep reading: over TLS this is a FIN *without* close_notify
  rst          SO_LINGER {1, 0} and close(): the peer gets an RST
  notify       close_notify, then FIN
  notify_keep  close_notify only; the TCP connection stays open (FIN after keep_open seconds)
  notify_coalesced (Step only) the last response record and close_notify in one TCP write, FIN later

The ledger (ConnLedger, one per accepted connection) is the suite's main oracle: connection id,
the client's port, the requests seen (and whether they came after the server closed), who closed
first and how, and what the client sent after the server closed. After the server's FIN or
close_notify a connection is still read, so a client that sends there is seen doing it.
"""

from __future__ import annotations

import ctypes
import select
import socket
import ssl
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from harness.verdicts import HarnessError

POLL_INTERVAL = 0.05
HANDSHAKE_TIMEOUT = 5.0
MAX_HEAD = 64 * 1024


def response(body: bytes | str = b"foo", status: str = "200 OK", headers: Sequence[str] = (),
             *, version: str = "HTTP/1.1", length: int | None = None, framing: bool = True) -> bytes:
    """A response: `R(3)foo` is response(b"foo"). length overrides Content-Length (a lie);
    framing=False sends no Content-Length at all."""
    data = body.encode() if isinstance(body, str) else body
    lines = [f"{version} {status}", *headers]
    if framing:
        lines.append(f"Content-Length: {len(data) if length is None else length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


def chunked(body: bytes | str = b"foo", status: str = "200 OK", headers: Sequence[str] = ()) -> bytes:
    data = body.encode() if isinstance(body, str) else body
    head = "\r\n".join([f"HTTP/1.1 {status}", *headers, "Transfer-Encoding: chunked"]) + "\r\n\r\n"
    chunk = f"{len(data):x}\r\n".encode() + data + b"\r\n" if data else b""
    return head.encode() + chunk + b"0\r\n\r\n"


@dataclass
class RequestSeen:
    method: str
    path: str
    version: str
    headers: dict[str, str]
    body_length: int
    at: float
    after_server_close: bool = False

    def __str__(self) -> str:
        late = " (after the server closed)" if self.after_server_close else ""
        body = f" +{self.body_length}B" if self.body_length else ""
        return f"{self.method} {self.path}{body}{late}"


@dataclass
class ConnLedger:
    id: int
    peer_port: int
    tls: bool
    accepted_at: float
    requests: list[RequestSeen] = field(default_factory=list)
    server_close: str | None = None
    server_closed_at: float | None = None
    client_close: str | None = None
    client_closed_at: float | None = None
    bytes_after_server_close: int = 0
    first_bytes_after_close: bytes = b""
    events: list[tuple[float, str]] = field(default_factory=list)

    @property
    def closed_by_client(self) -> bool:
        return self.client_close is not None

    @property
    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def describe(self, origin: float) -> str:
        reqs = ", ".join(map(str, self.requests)) or "no requests"
        events = "; ".join(f"{t - origin:.3f}s {what}" for t, what in self.events)
        late = ""
        if self.bytes_after_server_close:
            late = f"; the client sent {self.bytes_after_server_close} bytes after the server closed: " \
                   f"{self.first_bytes_after_close[:60]!r}"
        return f"c{self.id} (client port {self.peer_port}): [{reqs}]; {events}{late}"


class ClientGone(Exception):
    """The client closed (or reset) the connection; the ledger says how."""


class ServerConn:
    """One accepted connection, as the handler sees it."""

    def __init__(self, server: "ScenarioServer", sock: socket.socket, ledger: ConnLedger) -> None:
        self.server = server
        self.sock = sock
        self.ledger = ledger
        self.index = ledger.id
        self.buf = b""
        self.tls: ssl.SSLObject | None = None
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self.raw_eof = False
        self.socket_closed = False
        self.tls_reading = True  # False once the client's close_notify arrived
        # Application bytes received and consumed so far, and received when the server closed:
        # a request that starts at or past rx_at_close was sent after the server closed.
        self.rx_total = 0
        self.rx_consumed = 0
        self.rx_at_close: int | None = None

    # ---- the ledger --------------------------------------------------------------------------
    def note(self, what: str) -> None:
        with self.server.cond:
            self.ledger.events.append((time.monotonic(), what))
            self.server.cond.notify_all()

    def _client_closed(self, how: str) -> None:
        with self.server.cond:
            led = self.ledger
            if led.client_close is None:
                led.client_close, led.client_closed_at = how, time.monotonic()
            elif led.client_close == "close_notify" and how == "fin":
                led.client_close = "close_notify+fin"
            led.events.append((time.monotonic(), f"client {how}"))
            self.server.cond.notify_all()

    def _server_closed(self, how: str) -> None:
        if self.rx_at_close is None:
            self.rx_at_close = self.rx_total
        with self.server.cond:
            led = self.ledger
            if led.server_close is None:
                led.server_close, led.server_closed_at = how, time.monotonic()
            elif led.server_close in ("close_notify", "close_notify (TCP open)") and how == "fin":
                led.server_close = "close_notify+fin"
            led.events.append((time.monotonic(), f"server {how}"))
            self.server.cond.notify_all()

    # ---- raw I/O -----------------------------------------------------------------------------
    def _wait_readable(self, deadline: float | None) -> bool:
        while not self.server.stopping.is_set():
            wait = POLL_INTERVAL if deadline is None else max(min(POLL_INTERVAL, deadline - time.monotonic()), 0)
            ready, _, _ = select.select([self.sock], [], [], wait)
            if ready:
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
        return False

    def _recv_raw(self, deadline: float | None) -> bytes | None:
        """Raw bytes; b'' at the client's FIN; None on timeout or server stop. Raises ClientGone on RST."""
        if self.raw_eof or self.socket_closed:
            return b""
        if not self._wait_readable(deadline):
            return None
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            self.raw_eof = True
            self._client_closed("rst")
            raise ClientGone("rst") from None
        if not data:
            self.raw_eof = True
            self._client_closed("fin")
        return data

    def _send_raw(self, data: bytes) -> None:
        if not data or self.socket_closed:
            return
        try:
            self.sock.sendall(data)
        except OSError as error:
            self._client_closed("rst" if isinstance(error, ConnectionResetError) else f"gone ({error})")
            raise ClientGone(str(error)) from None

    def _flush_tls(self) -> bytes:
        return self._out.read() if self.tls is not None else b""

    def handshake(self, context: ssl.SSLContext) -> None:
        self.tls = context.wrap_bio(self._in, self._out, server_side=True)
        deadline = time.monotonic() + HANDSHAKE_TIMEOUT
        while True:
            try:
                self.tls.do_handshake()
                self._send_raw(self._flush_tls())
                self.note(f"TLS handshake done ({self.tls.version()})")
                return
            except ssl.SSLWantReadError:
                self._send_raw(self._flush_tls())
                data = self._recv_raw(deadline)
                if not data:
                    raise ClientGone("no TLS handshake") from None
                self._in.write(data)
            except ssl.SSLError as error:
                self._send_raw(self._flush_tls())
                self.note(f"TLS handshake failed: {error}")
                raise ClientGone(str(error)) from None

    # ---- application data --------------------------------------------------------------------
    def _take_plain(self, data: bytes) -> None:
        if self.ledger.server_close is not None and data:
            with self.server.cond:
                led = self.ledger
                if not led.first_bytes_after_close:
                    led.first_bytes_after_close = data[:200]
                led.bytes_after_server_close += len(data)
                self.server.cond.notify_all()
        self.buf += data
        self.rx_total += len(data)

    def _consume(self, count: int) -> bytes:
        taken, self.buf = self.buf[:count], self.buf[count:]
        self.rx_consumed += len(taken)
        return taken

    def drain_now(self) -> None:
        """Takes in what the client already sent (before the server closes: it counts as before)."""
        if self.socket_closed:
            return
        try:
            while self.fill(time.monotonic()):
                pass
        except ClientGone:
            pass

    def fill(self, deadline: float | None) -> bool:
        """More application bytes into self.buf: False on timeout or stop; ClientGone when closed."""
        while True:
            if self.tls is not None and self.tls_reading:
                try:
                    data = self.tls.read(65536)
                    self._send_raw(self._flush_tls())
                    if data:
                        self._take_plain(data)
                        return True
                    # b'': Python's way of saying close_notify when only the peer has sent one
                    self._tls_closed_by_client()
                except ssl.SSLWantReadError:
                    self._send_raw(self._flush_tls())
                except ssl.SSLZeroReturnError:
                    self._tls_closed_by_client()
                except ssl.SSLError as error:
                    self._client_closed(f"TLS error ({error.reason or error})")
                    raise ClientGone(str(error)) from None
            raw = self._recv_raw(deadline)
            if raw is None:
                return False
            if raw == b"":
                raise ClientGone("fin")
            if self.tls is not None:
                if self.tls_reading:
                    self._in.write(raw)
            else:
                self._take_plain(raw)
                return True

    def _tls_closed_by_client(self) -> None:
        if self.ledger.client_close is None:
            self._client_closed("close_notify")
        self.tls_reading = False  # nothing more can be read: watch the TCP connection only

    def read_request(self, timeout: float | None = None, *, body: bool = True) -> RequestSeen | None:
        """The next request (head, and its Content-Length or chunked body unless body=False).

        None when the client closed or reset the connection, on timeout, or when the server stops.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while b"\r\n\r\n" not in self.buf:
                if len(self.buf) > MAX_HEAD or not self.fill(deadline):
                    return None
            start = self.rx_consumed
            head = self._consume(self.buf.index(b"\r\n\r\n") + 4)[:-4]
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ")
            method, path, version = (parts + ["", "", ""])[:3]
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            seen = RequestSeen(method, path, version, headers, 0, time.monotonic(),
                               after_server_close=self.rx_at_close is not None and start >= self.rx_at_close)
            with self.server.cond:
                self.ledger.requests.append(seen)
                self.server.cond.notify_all()
            if body:
                seen.body_length = self.read_body(seen, deadline)
            return seen
        except ClientGone:
            return None

    def read_body(self, seen: RequestSeen, deadline: float | None) -> int:
        """Consumes the request body (Content-Length or chunked); returns its length."""
        if "chunked" in seen.headers.get("transfer-encoding", "").lower():
            total = 0
            while True:
                while b"\r\n" not in self.buf:
                    if not self.fill(deadline):
                        return total
                size_line = self._consume(self.buf.index(b"\r\n") + 2)[:-2]
                size = int(size_line.split(b";")[0] or b"0", 16)
                while len(self.buf) < size + 2:
                    if not self.fill(deadline):
                        return total
                self._consume(size + 2)
                total += size
                if size == 0:
                    return total
        length = int(seen.headers.get("content-length", "0") or 0)
        while len(self.buf) < length:
            if not self.fill(deadline):
                break
        return len(self._consume(length))

    def send(self, data: bytes, *, coalesce_close_notify: bool = False) -> None:
        """Application bytes (encrypted over TLS), in one TCP write; with coalesce_close_notify the
        close_notify alert rides in the same write."""
        if self.ledger.client_close is not None:
            raise ClientGone("the client closed")
        if self.tls is None:
            self._send_raw(data)
            return
        if coalesce_close_notify:
            self.drain_now()  # first: draining may flush what the TLS object has queued
        if data:
            self.tls.write(data)
        if coalesce_close_notify:
            self._send_close_notify(flush=False)
        self._send_raw(self._flush_tls())

    def _send_close_notify(self, *, flush: bool = True) -> None:
        assert self.tls is not None
        try:
            self.tls.unwrap()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
        except ssl.SSLError:
            pass
        if flush:
            self._send_raw(self._flush_tls())
        self._server_closed("close_notify")

    def send_session_ticket(self) -> None:
        """A TLS 1.3 NewSessionTicket now (post-handshake), through OpenSSL's SSL_new_session_ticket."""
        if self.tls is None:
            raise HarnessError("not a TLS connection")
        pointer = _openssl_ssl_pointer(self.tls)
        if _libssl().SSL_new_session_ticket(ctypes.c_void_p(pointer)) != 1:
            raise HarnessError("SSL_new_session_ticket failed")
        self.tls.do_handshake()
        self._send_raw(self._flush_tls())
        self.note("server sent a NewSessionTicket")

    def close(self, mode: str, *, keep_open: float = 2.0) -> None:
        """Close the way the scenario says (see the module docstring)."""
        if self.socket_closed:
            return
        if self.ledger.server_close is None:
            self.drain_now()
        if mode == "rst":
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.sock.close()
            self.socket_closed = True
            self._server_closed("rst")
            return
        if mode in ("notify", "notify_keep", "notify_coalesced"):
            if self.tls is None:
                raise HarnessError(f"close mode {mode} needs TLS")
            if self.ledger.server_close is None:
                self._send_close_notify()
            if mode == "notify_keep":
                self.ledger.server_close = "close_notify (TCP open)"
                self.observe(time.monotonic() + keep_open)
        elif mode != "fin":
            raise HarnessError(f"unknown close mode {mode}")
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self._server_closed("fin")

    def observe(self, until: float | None = None) -> None:
        """Reads (and records, unanswered) what the client sends, until it closes, `until`, or stop."""
        while not self.socket_closed and not self.raw_eof and not self.server.stopping.is_set():
            timeout = None if until is None else until - time.monotonic()
            if timeout is not None and timeout <= 0:
                return
            if len(self.buf) > MAX_HEAD:
                self._consume(len(self.buf))
            self.read_request(timeout)

    def wait_closed_by_client(self, timeout: float) -> bool:
        """Waits (reading) until the client closes; True if it did."""
        deadline = time.monotonic() + timeout
        try:
            while self.ledger.client_close is None:
                if not self.fill(deadline):
                    return False
        except ClientGone:
            pass
        return True

    def stream_until_closed(self, chunk: bytes, seconds: float) -> bool:
        """Sends chunk after chunk (plain TCP) without ever blocking, until the client closes (True)
        or `seconds` pass (False). What the client sends meanwhile is read and recorded."""
        if self.tls is not None:
            raise HarnessError("stream_until_closed is for plain TCP")
        deadline = time.monotonic() + seconds
        pending = chunk
        self.sock.setblocking(False)
        try:
            while time.monotonic() < deadline and not self.server.stopping.is_set():
                readable, writable, _ = select.select([self.sock], [self.sock], [], POLL_INTERVAL)
                if readable:
                    try:
                        self.fill(time.monotonic())
                    except ClientGone:
                        return True
                if writable:
                    try:
                        sent = self.sock.send(pending)
                    except BlockingIOError:
                        continue
                    except OSError as error:
                        self._client_closed("rst" if isinstance(error, ConnectionResetError) else "gone")
                        return True
                    pending = pending[sent:] or chunk
                if self.ledger.client_close is not None:
                    return True
            return False
        finally:
            self.sock.setblocking(True)

    def sleep(self, seconds: float) -> None:
        self.server.stopping.wait(seconds)

    def finish(self) -> None:
        """After the handler: read on until the client closes (or the server stops), then close."""
        # Anything more the client sends is read and recorded, never answered.
        self.observe()
        if not self.socket_closed:
            if self.ledger.server_close is None:
                self._server_closed("close at server stop" if self.server.stopping.is_set() else "close")
            self.sock.close()
            self.socket_closed = True


Handler = Callable[[ServerConn], None]


class ScenarioServer:
    """A listening socket, a thread per accepted connection running `handler`, and the ledger."""

    def __init__(self, handler: Handler, *, tls: bool = False, name: str = "", rcvbuf: int | None = None,
                 tls_context: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.name = name
        self.cond = threading.Condition()
        self.stopping = threading.Event()
        self.ledger: list[ConnLedger] = []
        self.errors: list[str] = []
        self.origin = time.monotonic()
        self._threads: list[threading.Thread] = []
        self._conns: list[ServerConn] = []
        self._context = tls_context or (server_tls_context() if tls else None)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf:
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port: int = self.listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, name=f"scenario-accept-{self.port}", daemon=True)
        self._acceptor.start()

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def _accept_loop(self) -> None:
        while not self.stopping.is_set():
            ready, _, _ = select.select([self.listener], [], [], POLL_INTERVAL)
            if not ready:
                continue
            try:
                sock, peer = self.listener.accept()
            except OSError:
                continue
            with self.cond:
                ledger = ConnLedger(len(self.ledger), peer[1], self.tls, time.monotonic())
                ledger.events.append((ledger.accepted_at, "accepted"))
                self.ledger.append(ledger)
                self.cond.notify_all()
            conn = ServerConn(self, sock, ledger)
            self._conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True,
                                      name=f"scenario-conn-{self.port}-{ledger.id}")
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: ServerConn) -> None:
        try:
            if self._context is not None:
                conn.handshake(self._context)
            self.handler(conn)
        except ClientGone:
            pass
        except Exception as error:  # a bug in a scenario script: the case reports it as ERROR
            import traceback
            self.errors.append(f"c{conn.index}: {error!r}\n{traceback.format_exc(limit=6)}")
        try:
            conn.finish()
        except Exception as error:
            self.errors.append(f"c{conn.index} finish: {error!r}")

    def stop(self) -> None:
        self.stopping.set()
        self._acceptor.join(2)
        for thread in self._threads:
            thread.join(2)
        for conn in self._conns:
            if not conn.socket_closed:
                conn.sock.close()
                conn.socket_closed = True
        self.listener.close()

    # ---- reading the ledger ------------------------------------------------------------------
    def snapshot(self) -> list[ConnLedger]:
        with self.cond:
            return list(self.ledger)

    def wait_for(self, predicate: Callable[[list[ConnLedger]], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate(self.ledger):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, POLL_INTERVAL))
            return True

    def wait_requests(self, count: int, timeout: float) -> bool:
        return self.wait_for(lambda led: sum(len(c.requests) for c in led) >= count, timeout)

    def requests(self) -> list[tuple[int, RequestSeen]]:
        with self.cond:
            return sorted(((c.id, r) for c in self.ledger for r in c.requests), key=lambda cr: cr[1].at)

    def connection_of(self, path: str) -> list[int]:
        """Ids of the connections on which `path` was requested, in order."""
        return [cid for cid, req in self.requests() if req.path == path]

    def describe(self) -> str:
        with self.cond:
            lines = [f"{self.name or 'server'} {self.scheme}://127.0.0.1:{self.port}: {len(self.ledger)} connections"]
            lines += ["  " + c.describe(self.origin) for c in self.ledger]
        lines += [f"  server script error: {e}" for e in self.errors]
        return "\n".join(lines)


# ---- step tables ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """What the server does with one request on a connection.

    reply: bytes sent in one write (None: read the request and answer nothing);
    close: a close mode after the reply (see the module docstring), close_after seconds later
    (for notify_coalesced: the close_notify goes with the reply, the FIN close_after later);
    later: unsolicited bytes sent later_after seconds after the reply, the connection left open.
    """

    reply: bytes | None
    close: str | None = None
    close_after: float = 0.0
    later: bytes = b""
    later_after: float = 0.05
    keep_open: float = 2.0


ANY = "*"


def steps_handler(table: Mapping[int | str, Sequence[Step]], *, request_timeout: float | None = None) -> Handler:
    """A handler from {connection index or ANY: [Step per request; the last one repeats]}."""

    def handle(conn: ServerConn) -> None:
        steps = table.get(conn.index, table.get(ANY))
        if not steps:
            return
        number = 0
        while True:
            seen = conn.read_request(request_timeout)
            if seen is None:
                return
            step = steps[min(number, len(steps) - 1)]
            number += 1
            run_step(conn, step)
            if conn.ledger.server_close is not None:
                return

    return handle


def run_step(conn: ServerConn, step: Step) -> None:
    if step.close == "notify_coalesced":
        conn.send(step.reply or b"", coalesce_close_notify=True)
        conn.observe(time.monotonic() + step.close_after)
        conn.close("fin")
        return
    if step.reply is not None:
        conn.send(step.reply)
    if step.later:
        conn.sleep(step.later_after)
        conn.send(step.later)
    if step.close:
        if step.close_after:
            conn.sleep(step.close_after)
        conn.close(step.close, keep_open=step.keep_open)


# ---- TLS plumbing -----------------------------------------------------------------------------
def server_tls_context(*, max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    from harness.clients.test_ca import test_pki

    pki = test_pki()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    if max_version is not None:
        context.maximum_version = max_version
    return context


def _libssl() -> ctypes.CDLL:
    lib = ctypes.CDLL("libssl.so.3")  # the library Python's ssl module is linked with
    lib.SSL_new_session_ticket.argtypes = [ctypes.c_void_p]
    lib.SSL_version.argtypes = [ctypes.c_void_p]
    lib.SSL_is_server.argtypes = [ctypes.c_void_p]
    return lib


def _openssl_ssl_pointer(obj: ssl.SSLObject) -> int:
    """The SSL* under a Python SSLObject (CPython 3.8+: PyObject_HEAD, Socket, then SSL *ssl)."""
    if sys.implementation.name != "cpython" or not (3, 8) <= sys.version_info[:2] <= (3, 13):
        raise HarnessError("a post-handshake ticket needs CPython 3.8-3.13's _ssl object layout")
    inner = obj._sslobj  # type: ignore[attr-defined]
    word = ctypes.sizeof(ctypes.c_void_p)
    pointer = ctypes.c_void_p.from_address(id(inner) + 3 * word).value
    lib = _libssl()
    if not pointer or lib.SSL_is_server(ctypes.c_void_p(pointer)) != 1 or lib.SSL_version(ctypes.c_void_p(pointer)) != 0x0304:
        raise HarnessError("could not find the OpenSSL SSL object of a TLS 1.3 server connection")
    return pointer
