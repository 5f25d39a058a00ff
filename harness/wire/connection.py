"""A record-level FastCGI client connection with a wire trace.

Everything goes through one non-blocking socket driven by a selector: while
sending, whatever the peer sends meanwhile is read into the record buffer, so
a large STDIN to a server that echoes it never deadlocks (no threads). Every
wait is bounded: by the timeout given, and by the owning case's deadline.
"""

from __future__ import annotations

import collections
import selectors
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from harness.wire.codec import (
    KEEP_CONN,
    MANAGEMENT_REQUEST_ID,
    EndRequest,
    Record,
    RecordReader,
    RecordType,
    Role,
    begin_request_body,
    decode_end_request,
    encode_params,
    encode_record,
    preview_bytes,
    stream_records,
)

RECEIVE_SIZE = 256 * 1024
DEFAULT_TIMEOUT = 5.0


class FcgiTimeout(Exception):
    """A wait on the peer ran out of time; awaited says what never came."""

    def __init__(self, awaited: str) -> None:
        super().__init__(f"timeout waiting for {awaited}")
        self.awaited = awaited


class ReadTimeout(FcgiTimeout):
    """No complete record (or not the awaited one) arrived in time."""


class WriteTimeout(FcgiTimeout):
    """The peer stopped reading: bytes could not be sent in time."""


class ConnectionClosed(Exception):
    """The peer closed the connection; how is 'eof' (FIN) or 'reset' (RST)."""

    def __init__(self, how: str) -> None:
        super().__init__(f"connection closed by peer ({'EOF' if how == 'eof' else 'RST'})")
        self.how = how


@dataclass(frozen=True)
class TraceEntry:
    at_ms: float
    direction: str  # '>' sent, '<' received, '!' event seen by the harness
    item: Record | bytes | str

    def describe(self) -> str:
        if isinstance(self.item, Record):
            text = self.item.describe()
        elif isinstance(self.item, bytes):
            text = f"raw {len(self.item)} bytes {preview_bytes(self.item, 32)}"
        else:
            text = self.item
        return f"{self.at_ms:8.1f}ms {self.direction} {text}"


@dataclass
class Response:
    """Everything received for one request id, up to and including END_REQUEST."""

    request_id: int
    records: list[Record] = field(default_factory=list)
    other_records: list[Record] = field(default_factory=list)
    end: EndRequest | None = None

    @property
    def stdout_records(self) -> list[Record]:
        return [r for r in self.records if r.type == RecordType.STDOUT]

    @property
    def stderr_records(self) -> list[Record]:
        return [r for r in self.records if r.type == RecordType.STDERR]

    @property
    def stdout(self) -> bytes:
        return b"".join(r.content for r in self.stdout_records)

    @property
    def stderr(self) -> bytes:
        return b"".join(r.content for r in self.stderr_records)

    @property
    def end_records(self) -> list[Record]:
        return [r for r in self.records if r.type == RecordType.END_REQUEST]


class FcgiConnection:
    """A connected socket with record-level control and a per-connection trace."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        label: str = "conn",
        clock_origin: float | None = None,
        deadline: Callable[[], float | None] | None = None,
    ) -> None:
        self.label = label
        self._sock = sock
        self._sock.setblocking(False)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            # Small records must leave as written (1-byte dribbling, prompt requests).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._selector = selectors.DefaultSelector()
        self._selector.register(sock, selectors.EVENT_READ)
        self._reader = RecordReader()
        self._inbox: collections.deque[Record] = collections.deque()
        # Application records that read_response met while waiting for another id:
        # a later read_response for their own id takes them from here first.
        self._aside: dict[int, collections.deque[Record]] = {}
        self._origin = time.monotonic() if clock_origin is None else clock_origin
        self._deadline = deadline or (lambda: None)
        self.closed_how: str | None = None  # set once the peer's EOF/RST is seen
        self._closed_locally = False
        # Our side shut down (SHUT_WR) after the peer's EOF; a send in progress defers it to its end.
        self._write_shut = False
        self._sending = False
        self._half_closed = False  # shutdown_write() done
        self.trace: list[TraceEntry] = []
        self.bytes_sent = 0

    # -- time -----------------------------------------------------------------

    def _now_ms(self) -> float:
        return (time.monotonic() - self._origin) * 1000.0

    def _log(self, direction: str, item: Record | bytes | str) -> None:
        self.trace.append(TraceEntry(self._now_ms(), direction, item))

    def note(self, text: str) -> None:
        """Put a harness remark into the trace (e.g. what the case waits for)."""
        self._log("!", text)

    def _end_time(self, timeout: float | None) -> float:
        """Absolute monotonic end of a wait: the timeout, capped by the case deadline."""
        end = time.monotonic() + (DEFAULT_TIMEOUT if timeout is None else max(timeout, 0.0))
        deadline = self._deadline()
        return end if deadline is None else min(end, deadline)

    # -- receiving --------------------------------------------------------------

    def _receive_available(self) -> None:
        """Read what the socket has now (it was reported readable) into the inbox."""
        if self.closed_how is not None:
            return
        try:
            data = self._sock.recv(RECEIVE_SIZE)
        except BlockingIOError:
            return
        except ConnectionResetError:
            self._mark_closed("reset")
            return
        if not data:
            self._mark_closed("eof")
            return
        for record in self._reader.feed(data):
            self._log("<", record)
            self._inbox.append(record)

    def _mark_closed(self, how: str) -> None:
        leftover = self._reader.pending
        if leftover:
            # Bytes that never became a whole record are part of the evidence.
            self._log("<", leftover)
        self._log("<", "EOF" if how == "eof" else "RST")
        self.closed_how = how
        try:
            self._selector.unregister(self._sock)
        except (KeyError, ValueError):
            pass
        if how == "eof" and not self._sending:
            self._shut_after_peer_eof()

    def _shut_after_peer_eof(self) -> None:
        """Close our side as soon as the peer closed its own: a server that serves one connection at a
        time (php-cgi -b) reads until our EOF before it accepts the next connection."""
        if self._write_shut or self._half_closed or self._closed_locally:
            return
        self._write_shut = True
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            return  # already gone (a reset after the FIN): nothing left to close
        self._log("!", "harness closed its side too (SHUT_WR) after the target's EOF")

    def _wait_readable(self, end_time: float) -> bool:
        """Block until the socket is readable or end_time passes; False on timeout."""
        remaining = end_time - time.monotonic()
        if remaining <= 0:
            return False
        return bool(self._selector.select(remaining))

    def read_record(self, timeout: float | None = None) -> Record:
        """The next record from the peer (ReadTimeout / ConnectionClosed otherwise)."""
        end_time = self._end_time(timeout)
        while True:
            if self._inbox:
                return self._inbox.popleft()
            if self.closed_how is not None:
                raise ConnectionClosed(self.closed_how)
            if self._closed_locally:
                raise ConnectionClosed("eof")
            if not self._wait_readable(end_time):
                self._log("!", f"timeout ({timeout if timeout is not None else DEFAULT_TIMEOUT:g}s) waiting for a record")
                raise ReadTimeout("a record from the target")
            self._receive_available()

    def read_response(self, request_id: int, timeout: float | None = None) -> Response:
        """Collect records for request_id up to END_REQUEST.

        Records for other ids met on the way are listed in other_records; those of
        application requests are also kept for a later read_response of their id,
        so interleaved (multiplexed) responses can be read one request at a time.
        """
        end_time = self._end_time(timeout)
        response = Response(request_id)
        aside = self._aside.get(request_id)
        while True:
            if aside:
                record = aside.popleft()
            else:
                remaining = end_time - time.monotonic()
                if remaining <= 0:
                    self._log("!", f"timeout waiting for END_REQUEST id={request_id}")
                    raise ReadTimeout(f"END_REQUEST id={request_id}")
                try:
                    record = self.read_record(remaining)
                except ReadTimeout:
                    raise ReadTimeout(f"END_REQUEST id={request_id}") from None
                if record.request_id != request_id:
                    response.other_records.append(record)
                    if record.request_id != MANAGEMENT_REQUEST_ID:
                        self._aside.setdefault(record.request_id, collections.deque()).append(record)
                    continue
            response.records.append(record)
            if record.type == RecordType.END_REQUEST:
                try:
                    response.end = decode_end_request(record.content)
                except ValueError:
                    response.end = None
                return response

    def read_all_until(self, predicate: Callable[[Record], bool], timeout: float | None = None) -> list[Record]:
        """Records up to and including the first that satisfies predicate."""
        end_time = self._end_time(timeout)
        records: list[Record] = []
        while True:
            record = self.read_record(max(end_time - time.monotonic(), 0.0))
            records.append(record)
            if predicate(record):
                return records

    def drain(self, for_seconds: float) -> list[Record]:
        """Everything that arrives within for_seconds (stops early on close)."""
        end_time = self._end_time(for_seconds)
        records: list[Record] = []
        while True:
            try:
                records.append(self.read_record(max(end_time - time.monotonic(), 0.0)))
            except (ReadTimeout, ConnectionClosed):
                return records

    def wait_closed(self, timeout: float | None = None) -> str:
        """'eof' or 'reset' once the peer closes, or 'open' if it has not in time.

        Records that arrive before the close stay in the inbox and the trace.
        """
        end_time = self._end_time(timeout)
        while self.closed_how is None:
            if not self._wait_readable(end_time):
                return "open"
            self._receive_available()
        return self.closed_how

    def trace_records(self, direction: str = "<") -> list[Record]:
        """Every record in the trace that went this way ('<' received, '>' sent), consumed or not."""
        return [entry.item for entry in self.trace if entry.direction == direction and isinstance(entry.item, Record)]

    @property
    def pending_bytes(self) -> bytes:
        """Received bytes that do not (yet) form a whole record."""
        return self._reader.pending

    def unread_records(self) -> list[Record]:
        """Records received but not yet consumed by a read."""
        return list(self._inbox)

    # -- sending ----------------------------------------------------------------

    def send_raw(
        self,
        data: bytes,
        *,
        write_size: int | None = None,
        timeout: float | None = None,
        trace_items: Sequence[Record | bytes] | None = None,
    ) -> None:
        """Send bytes, reading whatever the peer sends meanwhile.

        write_size limits each send() call (1 = dribble byte by byte).
        trace_items says how to show the bytes in the trace; by default they
        are shown as records when they parse as whole records, else raw.
        """
        for item in trace_items if trace_items is not None else _trace_items_for(data):
            self._log(">", item)
        if write_size is not None:
            self._log("!", f"written {write_size} byte(s) per send()")
        self._send_all(data, write_size, timeout)

    def send_chunks(self, chunks: Sequence[bytes], *, pause: float = 0.0, timeout: float | None = None) -> None:
        """Send pieces (e.g. from harness.wire.mutations.split_at) as separate writes.

        The trace shows the whole as records; pause (seconds, keep it small) between
        writes makes it likely the peer sees each piece in its own read.
        """
        whole = b"".join(chunks)
        for item in _trace_items_for(whole):
            self._log(">", item)
        self._log("!", f"written as {len(chunks)} pieces of {', '.join(str(len(c)) for c in chunks[:12])}"
                  + (" ..." if len(chunks) > 12 else "") + " bytes")
        for index, chunk in enumerate(chunks):
            if index and pause > 0:
                # Wait without going deaf: what the peer sends meanwhile is still read.
                end_time = time.monotonic() + pause
                while self.closed_how is None and self._wait_readable(end_time):
                    self._receive_available()
            self._send_all(chunk, None, timeout)

    def _send_all(self, data: bytes, write_size: int | None, timeout: float | None) -> None:
        if self._write_shut:
            # The peer had closed, and so had we: as a send to a closed peer does, this one fails.
            self._log("!", f"not sent ({len(data)} bytes): the target had closed, and the harness its side too")
            raise ConnectionClosed(self.closed_how or "eof")
        view = memoryview(data)
        offset = 0
        end_time = self._end_time(timeout)
        if self.closed_how is None:
            self._selector.modify(self._sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
        self._sending = True
        try:
            while offset < len(data):
                remaining = end_time - time.monotonic()
                if remaining <= 0:
                    self._log("!", f"timeout: peer stopped reading, {len(data) - offset} bytes unsent")
                    raise WriteTimeout(f"the target to read the {len(data) - offset} unsent bytes of {len(data)}")
                if self.closed_how is None:
                    events = self._selector.select(remaining)
                    readable = any(mask & selectors.EVENT_READ for _, mask in events)
                    writable = any(mask & selectors.EVENT_WRITE for _, mask in events)
                    if readable:
                        self._receive_available()
                else:
                    # The peer half-closed; keep writing until the kernel refuses.
                    writable = True
                if not writable:
                    continue
                piece = view[offset : offset + (write_size or RECEIVE_SIZE)]
                try:
                    sent = self._sock.send(piece)
                except BlockingIOError:
                    if self.closed_how is not None:
                        time.sleep(0.001)
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    self._after_send_failure()
                    raise ConnectionClosed(self.closed_how or "reset") from None
                offset += sent
                self.bytes_sent += sent
        finally:
            self._sending = False
            if self.closed_how is None and not self._closed_locally:
                self._selector.modify(self._sock, selectors.EVENT_READ)
            elif self.closed_how == "eof":
                self._shut_after_peer_eof()

    def _after_send_failure(self) -> None:
        """Learn how the peer closed (its FIN may still be queued) after a failed send."""
        if self.closed_how is not None:
            return
        end_time = time.monotonic() + 0.2
        while self.closed_how is None and self._wait_readable(end_time):
            self._receive_available()
        if self.closed_how is None:
            self._mark_closed("reset")

    def send_record(
        self,
        type: int,
        request_id: int,
        content: bytes = b"",
        *,
        padding_length: int = 0,
        padding_byte: int = 0,
        padding: bytes | None = None,
        version: int = 1,
        content_length: int | None = None,
        write_size: int | None = None,
    ) -> None:
        """Send one record, any field of it (version, padding, a declared length) as the case wants it."""
        data = encode_record(
            type,
            request_id,
            content,
            padding_length=padding_length,
            padding_byte=padding_byte,
            padding=padding,
            version=version,
            content_length=content_length,
        )
        self.send_raw(data, write_size=write_size)

    def send_records(self, encoded: Iterable[bytes], *, write_size: int | None = None) -> None:
        """Send several encoded records in one go (one trace line each)."""
        pieces = list(encoded)
        items: list[Record | bytes] = []
        for piece in pieces:
            items.extend(_trace_items_for(piece))
        self.send_raw(b"".join(pieces), write_size=write_size, trace_items=items)

    def begin(self, request_id: int, role: int = Role.RESPONDER, keep_conn: bool = True, *, flags: int | None = None) -> None:
        chosen_flags = (KEEP_CONN if keep_conn else 0) if flags is None else flags
        self.send_record(RecordType.BEGIN_REQUEST, request_id, begin_request_body(role, chosen_flags))

    def params(
        self,
        request_id: int,
        pairs: Iterable[tuple[bytes | str, bytes | str]],
        *,
        chunk_sizes: int | Sequence[int] | None = None,
        terminate: bool = True,
        long_form: bool = False,
    ) -> None:
        encoded = encode_params(pairs, long_form)
        self.send_records(
            stream_records(RecordType.PARAMS, request_id, encoded, chunk_sizes=chunk_sizes, terminate=terminate)
        )

    def stdin(
        self,
        request_id: int,
        data: bytes,
        *,
        chunk_sizes: int | Sequence[int] | None = None,
        terminate: bool = True,
    ) -> None:
        self.send_records(stream_records(RecordType.STDIN, request_id, data, chunk_sizes=chunk_sizes, terminate=terminate))

    def data(
        self,
        request_id: int,
        data: bytes,
        *,
        chunk_sizes: int | Sequence[int] | None = None,
        terminate: bool = True,
    ) -> None:
        self.send_records(stream_records(RecordType.DATA, request_id, data, chunk_sizes=chunk_sizes, terminate=terminate))

    def abort(self, request_id: int) -> None:
        self.send_record(RecordType.ABORT_REQUEST, request_id)

    def get_values(self, names: Iterable[bytes | str]) -> None:
        self.send_record(
            RecordType.GET_VALUES, MANAGEMENT_REQUEST_ID, encode_params((name, b"") for name in names)
        )

    # -- ending -------------------------------------------------------------------

    def close(self) -> None:
        """Closes gracefully (FIN)."""
        self._close("closed by harness")

    def reset(self) -> None:
        """Closes with an RST (SO_LINGER 0), as a crashed or impatient web server does."""
        if not self._closed_locally:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._close("reset by harness")

    def shutdown_write(self) -> None:
        """Half-closes: the peer reads EOF but can still answer.

        A connection the peer has reset meanwhile cannot be half-closed (ENOTCONN): that reset is
        then what the connection shows, to be read as ConnectionClosed like any other close.
        """
        if self._half_closed or self._write_shut or self._closed_locally:
            return
        self._half_closed = True
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._after_send_failure()
            return
        self._log("!", "half-closed (SHUT_WR) by harness")

    def _close(self, note: str) -> None:
        if self._closed_locally:
            return
        self._closed_locally = True
        try:
            self._selector.close()
        finally:
            self._sock.close()
        self._log("!", note)

    def format_trace(self, limit: int = 200) -> str:
        return format_trace(self.trace, limit=limit, label=self.label)


def _trace_items_for(data: bytes) -> list[Record | bytes]:
    """Show bytes as records when they are exactly whole records, else as raw bytes."""
    reader = RecordReader()
    records = reader.feed(data)
    if records and not reader.pending:
        return list(records)
    return [data]


def format_trace(entries: Sequence[TraceEntry], *, limit: int = 200, label: str = "") -> str:
    """One line per entry; long traces keep their head and tail."""
    lines: list[str] = [f"  [{label}]"] if label else []
    if len(entries) <= limit:
        shown: list[TraceEntry | None] = list(entries)
    else:
        head = limit // 2
        tail = limit - head
        shown = list(entries[:head]) + [None] + list(entries[-tail:])
    for entry in shown:
        if entry is None:
            lines.append(f"  ... {len(entries) - limit} entries omitted ...")
        else:
            lines.append("  " + entry.describe())
    return "\n".join(lines)


def request(
    conn: FcgiConnection,
    request_id: int,
    params: Iterable[tuple[bytes | str, bytes | str]],
    stdin: bytes = b"",
    *,
    role: int = Role.RESPONDER,
    keep_conn: bool = True,
    timeout: float | None = None,
) -> Response:
    """One whole exchange: BEGIN, PARAMS, STDIN (each stream terminated), then the response."""
    pieces = [encode_record(RecordType.BEGIN_REQUEST, request_id, begin_request_body(role, KEEP_CONN if keep_conn else 0))]
    pieces += stream_records(RecordType.PARAMS, request_id, encode_params(params))
    pieces += stream_records(RecordType.STDIN, request_id, stdin)
    conn.send_records(pieces)
    return conn.read_response(request_id, timeout)
