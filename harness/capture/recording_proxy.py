"""A recording TCP proxy between a web server and a FastCGI application.

It listens on a loopback port; for each connection the web server opens it
connects to the application and forwards both byte streams unchanged, noting
every piece it receives (size and time), who closed first and how (FIN or RST),
and turns that into a transcript (harness/capture/transcript.py). Closes are passed on
as they came: a FIN becomes a half-close (shutdown SHUT_WR) of the other leg, an
RST an RST, so both ends see what they would have seen without the proxy.

TCP_NODELAY is set on both legs: otherwise Nagle's algorithm would hold back the
small records and the capture would show 40 ms stalls that are the proxy's own.
One thread runs one selector for all connections, so the items of a transcript
are in one total order (the order the proxy saw them).
"""

from __future__ import annotations

import datetime
import selectors
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Sequence

from harness.capture.transcript import (
    APP_TO_WS,
    WS_TO_APP,
    Connection,
    ConnectionBuilder,
    Transcript,
    merge_meta,
)

RECEIVE_SIZE = 256 * 1024
# Stop reading a side while this much is still queued for the other (backpressure).
MAX_QUEUED = 4 * 1024 * 1024


def _nodelay(sock: socket.socket) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _address_text(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host = address[0]
        return f"[{host}]:{address[1]}" if ":" in str(host) else f"{host}:{address[1]}"
    return str(address) or "unix"


def _reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0), as the peer we stand in for did."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


@dataclass
class _Leg:
    """One side's socket, and what is queued to be written to it."""

    sock: socket.socket
    name: str  # 'ws' or 'app'
    outbox: bytearray = field(default_factory=bytearray)
    read_done: bool = False  # its peer's stream ended (FIN/RST seen)
    shut_pending: bool = False  # pass a FIN on once outbox is empty
    write_done: bool = False


class _ProxiedConnection:
    def __init__(self, number: int, ws: socket.socket, app: socket.socket, builder: ConnectionBuilder) -> None:
        self.number = number
        self.ws = _Leg(ws, "ws")
        self.app = _Leg(app, "app")
        self.builder = builder
        self.finished = False

    def leg_of(self, sock: socket.socket) -> tuple[_Leg, _Leg, str]:
        """(leg read from, leg written to, direction of that data)."""
        if sock is self.ws.sock:
            return self.ws, self.app, WS_TO_APP
        return self.app, self.ws, APP_TO_WS


class RecordingProxy:
    """Forward 127.0.0.1:listen_port to app_address and record everything."""

    def __init__(
        self,
        app_address: tuple[str, int] | str,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        connect_timeout: float = 5.0,
    ) -> None:
        self.app_address = app_address
        self.connect_timeout = connect_timeout
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind((listen_host, listen_port))
            self._listener.listen(128)
        except OSError:
            # A port in use or not allowed: no socket may outlive the failed start.
            self._listener.close()
            raise
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._connections: list[_ProxiedConnection] = []
        self._origin = time.monotonic()
        self.started_at = datetime.datetime.now(datetime.timezone.utc)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []
        self._last_activity = time.monotonic()

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> "RecordingProxy":
        self._thread = threading.Thread(target=self._run, name="fcgispec-recording-proxy", daemon=True)
        self._thread.start()
        return self

    def __enter__(self) -> "RecordingProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop forwarding; connections still open are closed and marked so in the transcript."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5.0)
        with self._lock:
            for conn in self._connections:
                if not conn.finished:
                    conn.builder.note("capture ended with the connection still open", self._now())
                    self._finish(conn)
        self._listener.close()
        self._selector.close()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until every connection so far has closed; False if some are still open."""
        end_time = time.monotonic() + timeout
        while time.monotonic() < end_time:
            with self._lock:
                if all(conn.finished for conn in self._connections):
                    return True
            time.sleep(0.01)
        return False

    def wait_quiet(self, quiet_seconds: float, timeout: float = 5.0) -> bool:
        """Wait until nothing has happened for quiet_seconds (False if traffic goes on past timeout)."""
        end_time = time.monotonic() + timeout
        while time.monotonic() < end_time:
            with self._lock:
                idle_for = time.monotonic() - self._last_activity
            if idle_for >= quiet_seconds:
                return True
            time.sleep(min(quiet_seconds - idle_for, 0.05) + 0.001)
        return False

    def connection_count(self) -> int:
        with self._lock:
            return len(self._connections)

    def transcript(self, meta: Sequence[tuple[str, str]] = ()) -> Transcript:
        """The transcript so far (finished connections, and open ones as they stand)."""
        base = [("date", self.started_at.strftime("%Y-%m-%dT%H:%M:%SZ")), ("tool", "fcgispec recording proxy")]
        with self._lock:
            connections = [
                Connection(c.number, c.builder.connection.ws_address, c.builder.connection.app_address,
                           list(c.builder.connection.items))
                for c in self._connections
            ]
        return Transcript(merge_meta(meta, base), connections)

    # -- the loop ----------------------------------------------------------------

    def _now(self) -> int:
        return int((time.monotonic() - self._origin) * 1_000_000)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                events = self._selector.select(0.05)
            except OSError:
                return
            with self._lock:
                if events:
                    self._last_activity = time.monotonic()
                for key, mask in events:
                    if key.data is None:
                        self._accept()
                        continue
                    conn: _ProxiedConnection = key.data
                    if conn.finished:
                        continue
                    try:
                        if mask & selectors.EVENT_READ:
                            self._readable(conn, key.fileobj)  # type: ignore[arg-type]
                        if not conn.finished and mask & selectors.EVENT_WRITE:
                            leg = conn.ws if key.fileobj is conn.ws.sock else conn.app
                            self._flush(conn, leg)
                    except Exception as error:  # never let one connection kill the capture
                        self.errors.append(f"connection {conn.number}: {error!r}")
                        conn.builder.note(f"proxy error: {error!r}", self._now())
                        self._finish(conn)

    def _accept(self) -> None:
        try:
            ws_sock, peer = self._listener.accept()
        except BlockingIOError:
            return
        _nodelay(ws_sock)
        number = len(self._connections) + 1
        builder = ConnectionBuilder(number, _address_text(peer), _address_text(self.app_address))
        builder.opened(self._now())
        if isinstance(self.app_address, str):
            family = socket.AF_UNIX
        else:
            family = socket.AF_INET6 if ":" in self.app_address[0] else socket.AF_INET
        app_sock = socket.socket(family, socket.SOCK_STREAM)
        app_sock.settimeout(self.connect_timeout)
        try:
            app_sock.connect(self.app_address)
        except OSError as error:
            # The web server must see what it would see from a dead app: a refused/reset connection.
            builder.note(f"connect to the app failed: {error}", self._now())
            app_sock.close()
            _reset(ws_sock)
            builder.finish(self._now())
            conn = _ProxiedConnection(number, ws_sock, app_sock, builder)
            conn.finished = True
            self._connections.append(conn)
            return
        _nodelay(app_sock)
        ws_sock.setblocking(False)
        app_sock.setblocking(False)
        conn = _ProxiedConnection(number, ws_sock, app_sock, builder)
        self._connections.append(conn)
        self._selector.register(ws_sock, selectors.EVENT_READ, conn)
        self._selector.register(app_sock, selectors.EVENT_READ, conn)

    def _interest(self, conn: _ProxiedConnection, leg: _Leg) -> None:
        """Read while the stream is open and the other side is not backed up; write while queued."""
        other = conn.app if leg is conn.ws else conn.ws
        mask = 0
        if not leg.read_done and len(other.outbox) < MAX_QUEUED:
            mask |= selectors.EVENT_READ
        if leg.outbox and not leg.write_done:
            mask |= selectors.EVENT_WRITE
        try:
            if mask:
                self._selector.modify(leg.sock, mask, conn)
            else:
                self._selector.unregister(leg.sock)
        except KeyError:
            if mask:
                self._selector.register(leg.sock, mask, conn)
        except (ValueError, OSError):
            pass

    def _readable(self, conn: _ProxiedConnection, sock: socket.socket) -> None:
        source, dest, direction = conn.leg_of(sock)
        try:
            data = sock.recv(RECEIVE_SIZE)
        except BlockingIOError:
            return
        except ConnectionResetError:
            self._peer_reset(conn, source, direction)
            return
        now = self._now()
        if not data:
            source.read_done = True
            conn.builder.end(direction, "FIN", now)
            dest.shut_pending = True
            self._flush(conn, dest)
            self._interest(conn, source)
            self._maybe_done(conn)
            return
        conn.builder.data(direction, data, now)
        dest.outbox += data
        self._flush(conn, dest)
        self._interest(conn, source)

    def _flush(self, conn: _ProxiedConnection, leg: _Leg) -> None:
        while leg.outbox and not leg.write_done:
            try:
                sent = leg.sock.send(leg.outbox)
            except BlockingIOError:
                break
            except (BrokenPipeError, ConnectionResetError):
                # The side we write to is gone: it reset (or closed and then reset on our data).
                direction = APP_TO_WS if leg is conn.app else WS_TO_APP
                self._peer_reset(conn, leg, direction)
                return
            del leg.outbox[:sent]
        if not leg.outbox and leg.shut_pending and not leg.write_done:
            leg.write_done = True
            try:
                leg.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        self._interest(conn, leg)
        other = conn.app if leg is conn.ws else conn.ws
        self._interest(conn, other)
        self._maybe_done(conn)

    def _peer_reset(self, conn: _ProxiedConnection, leg: _Leg, direction: str) -> None:
        """leg's peer reset the connection: record it, reset the other leg, and finish."""
        conn.builder.end(direction, "RST", self._now())
        other = conn.app if leg is conn.ws else conn.ws
        # Whatever is still queued for the other side goes first, as far as it will.
        try:
            other.sock.setblocking(True)
            other.sock.settimeout(0.5)
            if other.outbox and not other.write_done:
                other.sock.sendall(bytes(other.outbox))
        except OSError:
            pass
        self._unregister(conn)
        leg.sock.close()
        _reset(other.sock)
        self._finish(conn, closed_already=True)

    def _maybe_done(self, conn: _ProxiedConnection) -> None:
        if conn.ws.read_done and conn.app.read_done and conn.ws.write_done and conn.app.write_done:
            self._unregister(conn)
            conn.ws.sock.close()
            conn.app.sock.close()
            self._finish(conn, closed_already=True)

    def _unregister(self, conn: _ProxiedConnection) -> None:
        for leg in (conn.ws, conn.app):
            try:
                self._selector.unregister(leg.sock)
            except (KeyError, ValueError, OSError):
                pass

    def _finish(self, conn: _ProxiedConnection, closed_already: bool = False) -> None:
        if conn.finished:
            return
        conn.finished = True
        if not closed_already:
            self._unregister(conn)
            for leg in (conn.ws, conn.app):
                try:
                    leg.sock.close()
                except OSError:
                    pass
        conn.builder.finish(self._now())
