"""The FastCGI application a gateway case plays: a scripted listener with a ledger of everything it received.

A case gives a script, a function over one AppConn, run on a thread of its own for every
connection the gateway opens. The script says, record by record, what the application answers
(splits, padding, STDERR, protocol statuses, closes, delays); serve() is the plain application
every case starts from. Every connection keeps a ledger (AppConnLedger): each record received
and sent with its time, the requests assembled from them (AppRequest), and who closed the
connection how. The case judges the gateway's side of the protocol from the ledgers, so that it
can say "the application received this POST twice" or "request id 1 began again while active".

The application is lenient where a real one is, so that one deviation does not derail every
case: a request counts as complete once PARAMS ended (or STDIN began) and STDIN carried
CONTENT_LENGTH bytes, terminated or not. What it let pass is still in the ledger, where
harness/gateways/observations.py finds it and names the case that owns it.
"""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from harness.wire.codec import (
    FCGI_VERSION_1,
    KEEP_CONN,
    CodecError,
    ProtocolStatus,
    Record,
    RecordReader,
    RecordType,
    decode_params,
    encode_params,
    end_request_body,
    split_sizes,
)

LISTEN_BACKLOG = 64
RECV_SIZE = 65536
# How long a script waits for the gateway's next request by default (a case passes its own).
REQUEST_WAIT = 10.0
# How long a lenient application waits for a stream's missing terminator before it answers anyway.
LENIENT_WAIT = 0.3
# One request at a time per connection, as most applications (php-fpm, libfcgi) answer.
DEFAULT_VALUES = {"FCGI_MAX_CONNS": "64", "FCGI_MAX_REQS": "64", "FCGI_MPXS_CONNS": "0"}


class GatewayGone(Exception):
    """The gateway closed or reset the connection while the script was writing or waiting."""


@dataclass
class AppRequest:
    """One request as the gateway sent it on one connection: its records, in order."""

    conn_id: int
    request_id: int
    role: int
    flags: int
    began_at: float
    params_records: list[Record] = field(default_factory=list)
    params_ended: bool = False  # the empty PARAMS record arrived
    # A second BEGIN_REQUEST with this id arrived on the connection before this request's END_REQUEST.
    id_reused_while_active: bool = False
    stdin_records: list[Record] = field(default_factory=list)
    stdin_ended: bool = False
    data_records: list[Record] = field(default_factory=list)
    aborted_at: float | None = None
    # Set by the script's end(): the application's END_REQUEST went out.
    ended_at: float | None = None
    # The number of this request on its connection (1 = the connection's first).
    ordinal: int = 1
    last_record_at: float = 0.0

    @property
    def keep_conn(self) -> bool:
        return bool(self.flags & KEEP_CONN)

    @property
    def params_bytes(self) -> bytes:
        return b"".join(r.content for r in self.params_records)

    @property
    def stdin(self) -> bytes:
        return b"".join(r.content for r in self.stdin_records)

    def pairs(self) -> list[tuple[bytes, bytes]]:
        """The name-value pairs of PARAMS (CodecError when they do not decode)."""
        return decode_params(self.params_bytes)

    def params(self) -> dict[str, str]:
        """PARAMS as text (latin-1, so every byte survives); {} when they do not decode."""
        try:
            return {n.decode("latin-1"): v.decode("latin-1") for n, v in self.pairs()}
        except CodecError:
            return {}

    def param(self, name: str) -> str | None:
        return self.params().get(name)

    def content_length(self) -> int:
        value = self.param("CONTENT_LENGTH") or "0"
        return int(value) if value.isdigit() else 0

    @property
    def params_done(self) -> bool:
        """PARAMS ended, or STDIN began (a lenient application takes that as their end)."""
        return self.params_ended or bool(self.stdin_records)

    @property
    def body_complete(self) -> bool:
        """The application has what it needs to answer: STDIN ended, or CONTENT_LENGTH bytes arrived."""
        return self.stdin_ended or (self.params_done and len(self.stdin) >= self.content_length())

    def ready(self, now: float) -> bool:
        """Complete enough to answer: STDIN ended; or, leniently, CONTENT_LENGTH bytes arrived and nothing
        more for LENIENT_WAIT (so that a terminator on its way is in the ledger before the answer)."""
        return self.stdin_ended or (self.body_complete and now - self.last_record_at >= LENIENT_WAIT)

    def describe(self) -> str:
        role = {1: "RESPONDER", 2: "AUTHORIZER", 3: "FILTER"}.get(self.role, f"role {self.role}")
        params = self.params()
        what = f"{params.get('REQUEST_METHOD', '?')} {params.get('REQUEST_URI', params.get('SCRIPT_NAME', '?'))}"
        text = (f"request id={self.request_id} {role}{' KEEP_CONN' if self.keep_conn else ''} {what}: "
                f"PARAMS {len(self.params_bytes)} bytes in {len([r for r in self.params_records if r.content])} "
                f"records{'' if self.params_ended else ' (no empty PARAMS record)'}, STDIN {len(self.stdin)} bytes"
                f"{'' if self.stdin_ended else ' (no empty STDIN record)'}")
        if self.aborted_at is not None:
            text += ", ABORT_REQUEST"
        return text


@dataclass
class AppConnLedger:
    """Everything on one connection the gateway opened to the application."""

    id: int
    opened_at: float
    received: list[tuple[float, Record]] = field(default_factory=list)
    sent: list[tuple[float, str]] = field(default_factory=list)
    requests: list[AppRequest] = field(default_factory=list)
    # Bytes at the end that did not make a whole record (a misframed or cut write).
    trailing: bytes = b""
    closed_by: str | None = None  # "gateway" or "application"
    close_how: str = ""  # "FIN", "RST", ...
    closed_at: float | None = None
    notes: list[tuple[float, str]] = field(default_factory=list)

    def records_of(self, record_type: int) -> list[Record]:
        return [r for _, r in self.received if r.type == record_type]

    def describe(self, origin: float) -> str:
        lines = [f"application connection {self.id} (opened at +{self.opened_at - origin:.3f}s)"]
        events: list[tuple[float, str]] = [(t, "<- " + r.describe()) for t, r in self.received]
        events += [(t, "-> " + what) for t, what in self.sent]
        events += [(t, "   " + what) for t, what in self.notes]
        if self.closed_at is not None:
            events.append((self.closed_at, f"   closed by the {self.closed_by} ({self.close_how})"))
        for moment, text in sorted(events, key=lambda e: e[0]):
            lines.append(f"  +{moment - origin:7.3f}s {text}")
        if self.trailing:
            lines.append(f"  {len(self.trailing)} bytes that make no whole record: {self.trailing[:24]!r}")
        return "\n".join(lines)


class AppConn:
    """One connection from the gateway, as a script sees it."""

    def __init__(self, app: "ScriptedApp", sock: socket.socket, ledger: AppConnLedger) -> None:
        self.app = app
        self.sock = sock
        self.ledger = ledger
        self._reader = RecordReader()
        self._open: dict[int, AppRequest] = {}
        self._ready: list[AppRequest] = []
        self._eof = False
        # Passing the connection through to a real application (relay()): it answers, not the script.
        self.relaying = False

    @property
    def id(self) -> int:
        return self.ledger.id

    @property
    def gateway_closed(self) -> bool:
        return self._eof

    def note(self, what: str) -> None:
        self.ledger.notes.append((time.monotonic(), what))

    # ---- reading ------------------------------------------------------------------------------
    def _pump(self, deadline: float) -> bool:
        """Reads what arrives until the deadline; False once the gateway closed (or the app stopped)."""
        if self._eof:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return True
        try:
            readable, _, _ = select.select([self.sock], [], [], min(remaining, 0.2))
        except (OSError, ValueError):
            self._eof = True
            return False
        if not readable:
            return not self.app.stopping
        return self._read_once() is not None

    def _read_once(self) -> bytes | None:
        """One read from the gateway, recorded in the ledger; None once it closed or reset the connection."""
        try:
            data = self.sock.recv(RECV_SIZE)
        except ConnectionResetError:
            self._gateway_closed("RST")
            return None
        except OSError:
            self._eof = True
            return None
        if not data:
            self._gateway_closed("FIN")
            return None
        self._received(data)
        return data

    def _received(self, data: bytes) -> None:
        now = time.monotonic()
        for record in self._reader.feed(data):
            self.ledger.received.append((now, record))
            self._take(record, now)

    def _gateway_closed(self, how: str) -> None:
        self._eof = True
        self.ledger.trailing = self._reader.pending
        if self.ledger.closed_by is None:
            self.ledger.closed_by, self.ledger.close_how, self.ledger.closed_at = "gateway", how, time.monotonic()

    def _take(self, record: Record, now: float) -> None:
        """Files the record under its request (leniently: see the module's docstring); answers a
        management record at once, as a real application's library does."""
        if record.request_id == 0 and record.type == RecordType.GET_VALUES:
            if not self.relaying:  # relayed, the real application answers it
                self._answer_get_values(record)
            return
        if record.type == RecordType.BEGIN_REQUEST and len(record.content) >= 3:
            role, flags = struct.unpack(">HB", record.content[:3])
            ordinal = len(self.ledger.requests) + 1
            request = AppRequest(self.id, record.request_id, role, flags, now, ordinal=ordinal)
            earlier = self._open.get(record.request_id)
            if earlier is not None and earlier.ended_at is None:
                request.id_reused_while_active = True
            self.ledger.requests.append(request)
            self._open[record.request_id] = request
            return
        request = self._open.get(record.request_id)
        if request is None:
            return
        request.last_record_at = now
        if record.type == RecordType.PARAMS:
            request.params_records.append(record)
            if not record.content:
                request.params_ended = True
        elif record.type == RecordType.STDIN:
            request.stdin_records.append(record)
            if not record.content:
                request.stdin_ended = True
        elif record.type == RecordType.DATA:
            request.data_records.append(record)
        elif record.type == RecordType.ABORT_REQUEST:
            request.aborted_at = now
        if request.body_complete and request not in self._ready and request.ended_at is None:
            self._ready.append(request)

    def _answer_get_values(self, record: Record) -> None:
        try:
            names = [name for name, _ in decode_params(record.content)]
        except CodecError:
            names = []
        known = self.app.values
        pairs = [(name, known[name.decode("latin-1")].encode()) for name in names if name.decode("latin-1") in known]
        self.send_records([Record(RecordType.GET_VALUES_RESULT, 0, encode_params(pairs))])

    def next_request(self, timeout: float = REQUEST_WAIT) -> AppRequest | None:
        """The next request complete enough to answer (module docstring); None if the gateway closed
        or the time ran out."""
        deadline = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            for request in self._ready:
                if request.ready(now):
                    self._ready.remove(request)
                    return request
            waiting = [r.last_record_at + LENIENT_WAIT for r in self._ready]
            if now >= deadline:
                return None
            if not self._pump(min([deadline, *waiting])):
                # Closed: what arrived whole can still be answered (the write will tell).
                complete = [r for r in self._ready if r.body_complete]
                if complete:
                    self._ready.remove(complete[0])
                    return complete[0]
                return None

    def observe(self, seconds: float) -> bool:
        """Reads (and records) whatever the gateway sends for this long; False once it closed."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not self._pump(deadline):
                return False
        return True

    def wait_closed(self, timeout: float) -> bool:
        """Whether the gateway closes the connection within the timeout (what arrives is recorded)."""
        return not self.observe(timeout)

    def wait_abort(self, request: AppRequest, timeout: float) -> bool:
        """Whether an ABORT_REQUEST for the request (or a close) arrives within the timeout."""
        deadline = time.monotonic() + timeout
        while request.aborted_at is None and time.monotonic() < deadline:
            if not self._pump(deadline):
                break
        return request.aborted_at is not None

    # ---- writing ------------------------------------------------------------------------------
    def send(self, data: bytes, what: str) -> None:
        """Writes raw bytes, described in the ledger as `what`."""
        self.ledger.sent.append((time.monotonic(), what))
        try:
            self.sock.sendall(data)
        except OSError as error:
            self.note(f"write failed: {error.strerror or error}")
            raise GatewayGone(str(error)) from None

    def send_records(self, records: Iterable[Record]) -> None:
        for record in records:
            self.send(record.encode(), record.describe())

    def stream(self, request: AppRequest, record_type: int, data: bytes, *, chunk: int | Sequence[int] | None = None,
               padding: int = 0, request_id: int | None = None) -> None:
        """Data on STDOUT or STDERR, cut into records of `chunk` bytes, each with `padding` bytes of padding."""
        rid = request.request_id if request_id is None else request_id
        offset = 0
        for size in split_sizes(len(data), chunk):
            piece = data[offset:offset + size]
            offset += size
            self.send_records([Record(record_type, rid, piece, b"\0" * padding)])

    def stdout(self, request: AppRequest, data: bytes, **options: object) -> None:
        self.stream(request, RecordType.STDOUT, data, **options)  # type: ignore[arg-type]

    def stderr(self, request: AppRequest, data: bytes, **options: object) -> None:
        self.stream(request, RecordType.STDERR, data, **options)  # type: ignore[arg-type]

    def end(self, request: AppRequest, *, app_status: int = 0,
            protocol_status: int = ProtocolStatus.REQUEST_COMPLETE, close_streams: bool = True) -> None:
        """The empty STDOUT that ends the stream (unless close_streams is False), then END_REQUEST."""
        records = [Record(RecordType.STDOUT, request.request_id, b"")] if close_streams else []
        records.append(Record(RecordType.END_REQUEST, request.request_id, end_request_body(app_status, protocol_status)))
        request.ended_at = time.monotonic()
        self.send_records(records)

    def respond(self, request: AppRequest, body: bytes = b"hello", *, headers: Sequence[str] = ("Content-Type: text/plain",),
                chunk: int | Sequence[int] | None = None, padding: int = 0, end: bool = True) -> None:
        """A whole CGI response: the header block, a blank line, the body; then the end of the request."""
        head = "".join(h + "\r\n" for h in headers).encode("latin-1") + b"\r\n"
        self.stdout(request, head + body, chunk=chunk, padding=padding)
        if end:
            self.end(request)

    def close(self) -> None:
        """The application closes the connection (FIN)."""
        self._close("FIN", socket.SHUT_RDWR)

    def reset(self) -> None:
        """The application resets the connection (RST: SO_LINGER 0, then close)."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self._close("RST", None)

    def _close(self, how: str, shutdown: int | None) -> None:
        if self.ledger.closed_by is None:
            self.ledger.closed_by, self.ledger.close_how, self.ledger.closed_at = "application", how, time.monotonic()
        try:
            if shutdown is not None:
                self.sock.shutdown(shutdown)
        except OSError:
            pass
        self.sock.close()
        self._eof = True

    def sleep(self, seconds: float) -> None:
        """Waits, still reading what the gateway sends (so an ABORT or a close is recorded when it comes)."""
        self.observe(seconds)

    # ---- passing through to a real application ------------------------------------------------
    def relay(self, address: tuple[str, int]) -> None:
        """Passes the connection through to the FastCGI application at `address`, byte for byte both ways,
        until one side closes; the other side's close follows it (a reset as a reset). The ledger records
        both directions, and an END_REQUEST passed on ends its request, as a script's end() does."""
        self.relaying = True
        try:
            upstream = socket.create_connection(address, timeout=5)
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as error:
            self.note(f"the application at {address[0]}:{address[1]} cannot be reached: {error.strerror or error}")
            self.close()
            return
        answers = _AnswerReader()
        try:
            while not self.app.stopping and not self._eof:
                try:
                    readable, _, _ = select.select([self.sock, upstream], [], [], 0.2)
                except (OSError, ValueError):
                    return
                if self.sock in readable and not self._forward_from_gateway(upstream):
                    return
                if upstream in readable and not self._forward_from_application(upstream, answers):
                    return
        finally:
            upstream.close()

    def _forward_from_gateway(self, upstream: socket.socket) -> bool:
        data = self._read_once()
        if data is None:
            return False
        try:
            upstream.sendall(data)
        except OSError as error:
            self.note(f"the application did not take the gateway's bytes: {error.strerror or error}")
        return True

    def _forward_from_application(self, upstream: socket.socket, answers: "_AnswerReader") -> bool:
        try:
            data = upstream.recv(RECV_SIZE)
        except OSError:
            self.reset()
            return False
        if not data:
            self.close()
            return False
        now = time.monotonic()
        described = answers.feed(data)
        for record in answers.ended:
            request = self._open.get(record.request_id)
            if request is not None and request.ended_at is None:
                request.ended_at = now
        answers.ended.clear()
        self.ledger.sent.extend((now, what) for what in described[:-1])
        self.send(data, described[-1] if described else f"{len(data)} bytes of a record still to come")
        return True


class _AnswerReader:
    """Describes what a relayed application sends, record by record, until its records stop parsing
    (a version other than 1); after that, as bytes."""

    def __init__(self) -> None:
        self._reader = RecordReader()
        self.misframed = False
        self.ended: list[Record] = []

    def feed(self, data: bytes) -> list[str]:
        if self.misframed:
            return [f"{len(data)} more bytes after the records stopped parsing"]
        described = []
        for record in self._reader.feed(data):
            if record.version != FCGI_VERSION_1:
                self.misframed = True
                return [*described, f"{record.describe()}: the records stop parsing here"]
            if record.type == RecordType.END_REQUEST:
                self.ended.append(record)
            described.append(record.describe())
        pending = self._reader.pending
        if pending and pending[0] != FCGI_VERSION_1:
            # A header that cannot be one: said now, not when its bogus length is complete (it may never be).
            self.misframed = True
            described.append(f"{len(pending)} bytes starting {pending[:8]!r}: no version-1 record header, the "
                             "records stop parsing here")
        return described


Script = Callable[[AppConn], None]


Answer = Callable[[AppConn, AppRequest], None]


def answer_each(answer: Answer, *, timeout: float = REQUEST_WAIT) -> Script:
    """A script that answers every request with answer(conn, request), and closes after one without
    KEEP_CONN, as spec §5.1 has the application do."""

    def script(conn: AppConn) -> None:
        while True:
            request = conn.next_request(timeout)
            if request is None:
                return
            answer(conn, request)
            if not request.keep_conn:
                if not conn.gateway_closed:
                    conn.close()
                return

    return script


def respond_with(body: bytes = b"hello", *, delay: float = 0.0) -> Answer:
    """An answer: the plain response with this body, after `delay` seconds (still reading meanwhile)."""

    def answer(conn: AppConn, request: AppRequest) -> None:
        if delay:
            conn.sleep(delay)
        conn.respond(request, body)

    return answer


def answer_after_stdin_ends(body: bytes = b"hello", *, hold: float = REQUEST_WAIT) -> Answer:
    """An answer as most applications give it: only once STDIN has ended. A request whose STDIN never
    ended is left unanswered (noted in the ledger) for `hold` seconds, as a real application waits."""

    def answer(conn: AppConn, request: AppRequest) -> None:
        if request.stdin_ended:
            conn.respond(request, body)
            return
        conn.note(f"request id={request.request_id}: no empty STDIN record came; a real application waits here")
        conn.observe(hold)
        raise GatewayGone("the request was never complete")

    return answer


def serve(conn: AppConn) -> None:
    """The plain application: answers every request with "hello", and closes after one without KEEP_CONN."""
    answer_each(respond_with())(conn)


def scripts_by_connection(*scripts: Script, then: Script = serve) -> Script:
    """A script per connection in the order the gateway opens them; `then` for the rest."""

    def run(conn: AppConn) -> None:
        chosen = scripts[conn.id - 1] if conn.id <= len(scripts) else then
        chosen(conn)

    return run


class ScriptedApp:
    """A FastCGI application on 127.0.0.1 at a free port, running `script` for every connection."""

    def __init__(self, script: Script = serve, *, values: dict[str, str] | None = None) -> None:
        self.script = script
        # What GET_VALUES is answered with (the gateway may ask on a new connection).
        self.values = dict(DEFAULT_VALUES if values is None else values)
        self.origin = time.monotonic()
        self.stopping = False
        self.errors: list[str] = []
        self._ledgers: list[AppConnLedger] = []
        self._conns: list[AppConn] = []
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(LISTEN_BACKLOG)
        self.host, self.port = self._listener.getsockname()[:2]
        self._accepting = threading.Thread(target=self._accept_loop, name="fcgispec-app-accept", daemon=True)
        self._accepting.start()

    def _accept_loop(self) -> None:
        while not self.stopping:
            try:
                readable, _, _ = select.select([self._listener], [], [], 0.1)
                if not readable:
                    continue
                sock, _ = self._listener.accept()
                # A script writes record by record: without NODELAY, Nagle and delayed ACKs add 40 ms to an answer.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                return
            with self._lock:
                ledger = AppConnLedger(len(self._ledgers) + 1, time.monotonic())
                conn = AppConn(self, sock, ledger)
                self._ledgers.append(ledger)
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), name=f"fcgispec-app-{ledger.id}", daemon=True).start()

    def _serve(self, conn: AppConn) -> None:
        try:
            self.script(conn)
        except GatewayGone:
            pass
        except Exception as error:  # a bug in the case's script: the harness's problem, reported as such
            if not self.stopping:
                self.errors.append(f"application script on connection {conn.id}: {type(error).__name__}: {error}")
        finally:
            if not conn.gateway_closed and conn.ledger.closed_by is None and not self.stopping:
                # The script is done with the connection: go on recording until the gateway closes it.
                while conn._pump(time.monotonic() + 0.2):
                    pass

    # ---- the ledger ---------------------------------------------------------------------------
    def connections(self) -> list[AppConnLedger]:
        with self._lock:
            return list(self._ledgers)

    def requests(self) -> list[AppRequest]:
        """Every request the gateway began, in the order they began."""
        return sorted((r for c in self.connections() for r in c.requests), key=lambda r: r.began_at)

    def wait_for(self, predicate: Callable[["ScriptedApp"], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.01)
        return predicate(self)

    def wait_requests(self, count: int, timeout: float) -> bool:
        return self.wait_for(lambda app: len(app.requests()) >= count, timeout)

    def describe(self) -> str:
        ledgers = self.connections()
        if not ledgers:
            return "the application: no connection from the gateway"
        return "\n".join(ledger.describe(self.origin) for ledger in ledgers)

    def stop(self) -> None:
        self.stopping = True
        try:
            self._listener.close()
        except OSError:
            pass
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.sock.close()
            except OSError:
                pass
