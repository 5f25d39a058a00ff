"""Replay a transcript against a target and judge the answers by meaning.

The web-server side of each captured connection is sent again, connection by
connection, in flights: the bytes the web server sent between two things the
application sent, or (writes=True) in the captured write pieces, or (timing=True)
also at the captured times. Before each flight the replay waits until the target
has got as far as the captured application had at that point (output started /
END_REQUEST sent, per request), so the web server's side keeps its causality: a
request that nginx sent only after the previous END_REQUEST is sent only after
the target's END_REQUEST.

The application side is never compared byte for byte (padding, record splitting
and timing are free). Always judged (protocol level): each request the capture
saw answered gets exactly one END_REQUEST, well formed, with the captured
protocolStatus; STDOUT (and STDERR when used) ends with its empty record, nothing
follows END_REQUEST; every record carries the id of a request in flight (or 0
for management answers); a connection with FCGI_KEEP_CONN set stays open, one
with it clear is closed after END_REQUEST. With content=True also: stdout, stderr
and appStatus equal the capture's (for a target running the same application).

The first divergence of each connection ends that connection's replay and is
reported with the records around it, on the target's side and in the capture.

concurrent=True replays every connection at the same time instead of one after
another, each on its own thread (a web server keeps several connections open at
once; shared state, FCGI_MAX_CONNS and ids in use on two connections only show
then). With timing=True too, each connection opens at its captured offset from
the first connection's opening and every step keeps its captured time on that
common clock. Each connection is judged exactly as in the sequential mode, and
has a bound (its start, the captured times, every wait's timeout): past it, all
its waits end and the connection diverges, so no connection can hang the replay.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from harness.wire.connection import (
    ConnectionClosed,
    FcgiConnection,
    ReadTimeout,
    WriteTimeout,
    format_trace,
)
from harness.wire.codec import (
    KEEP_CONN,
    MANAGEMENT_REQUEST_ID,
    CodecError,
    EndRequest,
    Record,
    RecordType,
    decode_end_request,
    type_name,
)
from harness.targets.base import Target, TargetError
from harness.capture.transcript import (
    WS_TO_APP,
    CloseItem,
    Connection,
    RecordItem,
    Transcript,
    WriteItem,
    format_item,
)

DEFAULT_TIMEOUT = 5.0
# How long a kept connection must stay open after the last END_REQUEST before the web server's own close.
KEEP_OPEN_GRACE = 0.15
# Before a request reuses an id on a kept connection: long enough for a close or a stray record that the
# target sent right after the previous END_REQUEST to arrive, so that it is blamed on the right request.
REUSE_GRACE = 0.02
# Concurrent mode: how long past its bound a connection's thread may take to wind up before it is left behind.
BOUND_SLACK = 2.0
CONTEXT_ENTRIES = 12
NO_OUTPUT, OUTPUT, ENDED = 0, 1, 2
_STAGE_TEXT = {OUTPUT: "output (STDOUT/STDERR)", ENDED: "END_REQUEST"}
# Record types an application never sends.
_WS_ONLY_TYPES = {RecordType.BEGIN_REQUEST, RecordType.ABORT_REQUEST, RecordType.PARAMS, RecordType.STDIN,
                  RecordType.DATA, RecordType.GET_VALUES}


# -- what the capture says -------------------------------------------------------------


@dataclass
class CapturedRequest:
    number: int  # 1-based, per connection, in BEGIN_REQUEST order
    request_id: int
    keep_conn: bool
    begin_position: int
    begin_end_offset: int  # where the BEGIN_REQUEST ends in the web server's stream
    reused_from: int | None = None  # number of an earlier, finished request with the same id
    number_with_id: int = 1  # this is the n-th request with its id on the connection
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    end: EndRequest | None = None
    aborted: bool = False
    ws_records: list[tuple[int, str]] = field(default_factory=list)  # (end offset, type name)


@dataclass
class Step:
    """One thing the web server did: send bytes, or close (FIN/RST)."""

    position: int  # index of its first item in connection.items
    kind: str  # 'send', 'FIN', 'RST'
    data: bytes = b""
    time_us: int | None = None
    stages: dict[int, int] = field(default_factory=dict)  # request number -> stage reached in the capture
    management: dict[int, int] = field(default_factory=dict)  # record type -> count, id 0 answers


@dataclass
class Plan:
    connection: Connection
    requests: list[CapturedRequest]
    steps: list[Step]
    app_close_positions: list[int]


def plan_connection(connection: Connection, *, writes: bool = False) -> Plan:
    """The web server's steps and the captured answers of one connection."""
    ws_stream = connection.stream(WS_TO_APP)
    use_writes = writes and any(isinstance(i, WriteItem) and i.direction == WS_TO_APP for i in connection.items)
    requests: list[CapturedRequest] = []
    by_id: dict[int, CapturedRequest] = {}
    steps: list[Step] = []
    stages: dict[int, int] = {}
    management: dict[int, int] = {}
    app_closes: list[int] = []
    flight: Step | None = None
    offset = 0  # bytes of the web server's stream seen so far (records and raw)
    write_offset = 0

    def new_step(position: int, kind: str, time_us: int | None) -> Step:
        step = Step(position, kind, time_us=time_us, stages=dict(stages), management=dict(management))
        steps.append(step)
        return step

    for position, item in enumerate(connection.items):
        if getattr(item, "direction", None) == WS_TO_APP:
            if isinstance(item, WriteItem):
                if use_writes:
                    step = new_step(position, "send", item.time_us)
                    step.data = ws_stream[write_offset : write_offset + item.size]
                    write_offset += item.size
                continue
            if isinstance(item, CloseItem):
                flight = None
                new_step(position, item.how, item.time_us)
                continue
            data = item.record.encode() if isinstance(item, RecordItem) else item.data  # a RawItem
            if not use_writes:
                if flight is None:
                    flight = new_step(position, "send", item.time_us)
                flight.data += data
            offset += len(data)
            if isinstance(item, RecordItem):
                _note_ws_record(item.record, position, offset, requests, by_id)
            continue
        flight = None
        if isinstance(item, CloseItem):
            app_closes.append(position)
        elif isinstance(item, RecordItem):
            record = item.record
            if record.request_id == MANAGEMENT_REQUEST_ID:
                management[record.type] = management.get(record.type, 0) + 1
                continue
            request = by_id.get(record.request_id)
            if request is None:
                continue
            if record.type in (RecordType.STDOUT, RecordType.STDERR):
                stages[request.number] = max(stages.get(request.number, NO_OUTPUT), OUTPUT)
                (request.stdout if record.type == RecordType.STDOUT else request.stderr).extend(record.content)
            elif record.type == RecordType.END_REQUEST:
                stages[request.number] = ENDED
                try:
                    request.end = decode_end_request(record.content)
                except CodecError:
                    request.end = EndRequest(0, -1)
    return Plan(connection, requests, steps, app_closes)


def _note_ws_record(record: Record, position: int, end_offset: int, requests: list[CapturedRequest],
                    by_id: dict[int, CapturedRequest]) -> None:
    if record.type == RecordType.BEGIN_REQUEST and record.request_id != MANAGEMENT_REQUEST_ID:
        flags = record.content[2] if len(record.content) > 2 else 0
        earlier = by_id.get(record.request_id)
        request = CapturedRequest(len(requests) + 1, record.request_id, bool(flags & KEEP_CONN), position, end_offset,
                                  reused_from=earlier.number if earlier is not None and earlier.end is not None else None,
                                  number_with_id=1 + sum(1 for r in requests if r.request_id == record.request_id))
        requests.append(request)
        by_id[record.request_id] = request
    request = by_id.get(record.request_id)
    if request is None or record.request_id == MANAGEMENT_REQUEST_ID:
        return
    request.ws_records.append((end_offset, type_name(record.type)))
    if record.type == RecordType.ABORT_REQUEST:
        request.aborted = True


# -- what the target does ----------------------------------------------------------------


@dataclass
class TargetRequest:
    captured: CapturedRequest
    records: list[Record] = field(default_factory=list)
    stage: int = NO_OUTPUT
    end: EndRequest | None = None
    stdout_ended: bool = False
    stderr_ended: bool = False

    def stream(self, record_type: int) -> bytes:
        return b"".join(r.content for r in self.records if r.type == record_type)


@dataclass
class Divergence:
    connection: int
    request: int | None
    message: str
    target_context: list[str] = field(default_factory=list)
    capture_context: list[str] = field(default_factory=list)

    def describe(self) -> str:
        lines = [f"connection {self.connection}: {self.message}"]
        if self.target_context:
            lines.append("  target (last records, '>' sent by the replay, '<' from the target):")
            lines.extend("  " + line for line in self.target_context)
        if self.capture_context:
            lines.append("  capture (around this point, '=>' marks it):")
            lines.extend("  " + line for line in self.capture_context)
        return "\n".join(lines)


@dataclass
class ConnectionResult:
    number: int
    requests: int
    answered: int
    divergence: Divergence | None = None


@dataclass
class ReplayResult:
    source: str
    target: str
    level: str
    connections: list[ConnectionResult] = field(default_factory=list)
    concurrent: bool = False

    @property
    def divergences(self) -> list[Divergence]:
        return [c.divergence for c in self.connections if c.divergence is not None]

    @property
    def ok(self) -> bool:
        return not self.divergences

    @property
    def first_divergence(self) -> Divergence | None:
        found = self.divergences
        return found[0] if found else None

    def report(self) -> str:
        requests = sum(c.requests for c in self.connections)
        answered = sum(c.answered for c in self.connections)
        at_once = ", connections concurrently" if self.concurrent else ""
        head = (f"replay of {self.source} against {self.target} ({self.level}{at_once}): "
                f"{len(self.connections)} connection(s), {answered}/{requests} request(s) answered as captured")
        if self.ok:
            return head + "\nno divergence"
        lines = [head, f"{len(self.divergences)} connection(s) diverged; the first:", self.divergences[0].describe()]
        for other in self.divergences[1:]:
            lines.append(f"also: connection {other.connection}: {other.message}")
        return "\n".join(lines)


class _Diverged(Exception):
    pass


class _ConnectionReplay:
    def __init__(self, plan: Plan, conn: FcgiConnection, *, content: bool, timing: bool, timeout: float,
                 time_origin: tuple[int, float] | None = None) -> None:
        self.plan = plan
        self.conn = conn
        self.content = content
        self.timing = timing
        self.timeout = timeout
        # (captured time_us, monotonic time) that match: captured times are kept on that clock.
        # None: the connection's own first step is sent at once and the others keep their distance to it.
        self.time_origin = time_origin
        self.number = plan.connection.number
        self.requests: dict[int, TargetRequest] = {}
        self.active_by_id: dict[int, TargetRequest] = {}
        self.management: dict[int, int] = {}
        self.sent = 0
        self.closed_how: str | None = None
        self.we_closed = False
        self.step_index = 0
        self.divergence: Divergence | None = None

    # -- reporting ------------------------------------------------------------

    def diverge(self, message: str, request: int | None = None, position: int | None = None) -> None:
        if position is None:
            steps = self.plan.steps
            position = steps[min(self.step_index, len(steps) - 1)].position if steps else 0
        items = self.plan.connection.items
        capture = []
        for index in range(max(0, position - 6), min(len(items), position + 4)):
            marker = "=>" if index == position else "  "
            capture.append(f"{marker} {format_item(items[index])[0]}")
        # The client notes each timed-out wait; they are noise here, the records are the evidence.
        entries = [e for e in self.conn.trace if not (isinstance(e.item, str) and e.item.startswith("timeout ("))]
        trace = format_trace(entries[-CONTEXT_ENTRIES:], limit=CONTEXT_ENTRIES).splitlines()
        self.divergence = Divergence(self.number, request, message, trace, capture)
        raise _Diverged()

    def where(self, request: TargetRequest) -> str:
        return f"request {request.captured.number} on connection {self.number} (id {request.captured.request_id})"

    # -- receiving --------------------------------------------------------------

    def pump(self, until: Callable[[], bool], timeout: float) -> bool:
        """Handle the target's records until until() holds (True) or timeout/close (False)."""
        end_time = time.monotonic() + timeout
        while not until():
            if self.closed_how is not None and not self.conn.unread_records():
                return False
            try:
                record = self.conn.read_record(max(end_time - time.monotonic(), 0.0))
            except ReadTimeout:
                return until()
            except ConnectionClosed as closed:
                self.on_close(closed.how)
                continue
            self.on_record(record)
        return True

    def on_record(self, record: Record) -> None:
        if record.type in _WS_ONLY_TYPES:
            self.diverge(f"the target sent {record.describe()}, a record type only a web server sends")
        if record.request_id == MANAGEMENT_REQUEST_ID:
            if record.type not in (RecordType.GET_VALUES_RESULT, RecordType.UNKNOWN_TYPE):
                self.diverge(f"the target sent {record.describe()} with the management id 0")
            self.management[record.type] = self.management.get(record.type, 0) + 1
            return
        request = self.active_by_id.get(record.request_id)
        if request is None:
            self.diverge(f"the target sent {record.describe()} for id {record.request_id}, "
                         "which no request on this connection has")
        if record.type in (RecordType.GET_VALUES_RESULT, RecordType.UNKNOWN_TYPE):
            self.diverge(f"the target sent {record.describe()} for {self.where(request)}; "
                         "management records carry id 0")
        if request.end is not None:
            self.diverge(f"the target sent {record.describe()} for {self.where(request)} after its END_REQUEST",
                         request.captured.number)
        request.records.append(record)
        if record.type in (RecordType.STDOUT, RecordType.STDERR):
            ended = request.stdout_ended if record.type == RecordType.STDOUT else request.stderr_ended
            if ended:
                self.diverge(f"{self.where(request)}: {type_name(record.type)} after the empty record that ended "
                             "the stream", request.captured.number)
            if not record.content:
                if record.type == RecordType.STDOUT:
                    request.stdout_ended = True
                else:
                    request.stderr_ended = True
            request.stage = max(request.stage, OUTPUT)
        elif record.type == RecordType.END_REQUEST:
            self.on_end(request, record)

    def on_end(self, request: TargetRequest, record: Record) -> None:
        number = request.captured.number
        try:
            request.end = decode_end_request(record.content)
        except CodecError as error:
            self.diverge(f"{self.where(request)}: malformed END_REQUEST ({error})", number)
        request.stage = ENDED
        if request.stream(RecordType.STDOUT) and not request.stdout_ended:
            self.diverge(f"{self.where(request)}: END_REQUEST before the empty STDOUT record that ends stdout", number)
        if request.stream(RecordType.STDERR) and not request.stderr_ended:
            self.diverge(f"{self.where(request)}: END_REQUEST before the empty STDERR record that ends stderr", number)

    def on_close(self, how: str) -> None:
        if self.closed_how is not None:
            return
        self.closed_how = how
        if not self.we_closed:
            self.judge_close(how)

    def judge_close(self, how: str) -> None:
        """The target closed while the web server still had the connection open: was it entitled to?"""
        app_closes_here = self.capture_app_closes_here()
        what = "closed the connection (EOF)" if how == "eof" else "reset the connection (RST)"
        # Records that came before the close are judged first.
        for record in self.conn.unread_records():
            self.conn.read_record(0)
            self.on_record(record)
        outstanding = [r for r in self.requests.values()
                       if r.end is None and (r.captured.end is not None or not app_closes_here)]
        for request in outstanding:
            captured = request.captured
            sent_types = [name for end, name in captured.ws_records if end <= self.sent]
            summary = ", ".join(_counted(sent_types))
            reuse = ""
            if captured.reused_from is not None:
                reuse = (f" reused id {captured.request_id} (request {captured.reused_from} on this connection had "
                         "it and was complete);")
            self.diverge(
                f"request {captured.number} on connection {self.number}{reuse or f' (id {captured.request_id})'} "
                f"the target {what} after BEGIN_REQUEST id={captured.request_id} without END_REQUEST "
                f"(sent for this request: {summary})",
                captured.number, captured.begin_position)
        if app_closes_here:
            if how != "eof" and self.requests and not self.capture_app_reset():
                last = max(self.requests.values(), key=lambda r: r.captured.number)
                self.diverge(f"{self.where(last)}: the target reset the connection (RST) where the captured "
                             "application closed it (FIN); an RST can destroy the last response before the web "
                             "server reads it", last.captured.number)
            return
        if not self.requests:
            self.diverge(f"the target {what} before any request was answered")
        last = max(self.requests.values(), key=lambda r: r.captured.number)
        if last.captured.keep_conn:
            self.diverge(f"{self.where(last)}: the target {what} after END_REQUEST although FCGI_KEEP_CONN was "
                         "set (the web server would reuse it)", last.captured.number)
        if how != "eof":
            self.diverge(f"{self.where(last)}: the target reset the connection after END_REQUEST instead of "
                         "closing it (FIN); the web server may lose the response", last.captured.number)

    def capture_app_closes_here(self) -> bool:
        """Did the captured application close before the web server's next step?"""
        steps = self.plan.steps
        limit = steps[self.step_index + 1].position if self.step_index + 1 < len(steps) else len(self.plan.connection.items)
        return any(position < limit for position in self.plan.app_close_positions)

    def capture_app_reset(self) -> bool:
        """Did the captured application reset (rather than close) the connection?"""
        items = self.plan.connection.items
        return any(getattr(items[p], "how", "") == "RST" for p in self.plan.app_close_positions)

    # -- sending ------------------------------------------------------------------

    def register_sent(self) -> None:
        for captured in self.plan.requests:
            if captured.number not in self.requests and captured.begin_end_offset <= self.sent:
                request = TargetRequest(captured)
                self.requests[captured.number] = request
                self.active_by_id[captured.request_id] = request

    def wait_for(self, step: Step) -> None:
        """Wait until the target has got as far as the captured application had before this step."""
        def reached() -> bool:
            return all(self.requests[n].stage >= s for n, s in step.stages.items() if n in self.requests) and all(
                self.management.get(t, 0) >= c for t, c in step.management.items())
        if self.pump(reached, self.timeout):
            return
        for number, stage in sorted(step.stages.items()):
            request = self.requests.get(number)
            if request is not None and request.stage < stage:
                got = "nothing" if request.stage == NO_OUTPUT else "output but no END_REQUEST"
                closed = f"; the target {'closed' if self.closed_how == 'eof' else 'reset'} the connection" \
                    if self.closed_how else ""
                self.diverge(f"{self.where(request)}: the capture had {_STAGE_TEXT[stage]} here, the target sent "
                             f"{got} within {self.timeout:g}s{closed}", number, step.position)
        for record_type, count in step.management.items():
            if self.management.get(record_type, 0) < count:
                self.diverge(f"the capture had {count} {type_name(record_type)} answer(s) to management records "
                             f"here, the target sent {self.management.get(record_type, 0)}", None, step.position)

    def run(self) -> None:
        steps = self.plan.steps
        if self.time_origin is not None:
            first_time, started = self.time_origin
        else:
            first_time = next((s.time_us for s in steps if s.time_us is not None), None)
            started = time.monotonic()
        for index, step in enumerate(steps):
            self.step_index = index
            if self.timing and step.time_us is not None and first_time is not None:
                delay = (step.time_us - first_time) / 1e6 - (time.monotonic() - started)
                if delay > 0:
                    self.pump(lambda: False, delay)
            self.wait_for(step)
            if self.closed_how is not None:
                if step.kind == "send":
                    self.diverge(f"the target closed the connection before the web server sent its next "
                                 f"{len(step.data)} bytes", None, step.position)
            if step.kind == "send":
                self.send(step)
            else:
                self.close(step)
        self.step_index = len(steps)
        self.finish()

    def reuses_id(self, step: Step) -> bool:
        """Does this step begin a request whose id an earlier request on this connection had?"""
        after = self.sent + len(step.data)
        return any(r.reused_from is not None and self.sent < r.begin_end_offset <= after for r in self.plan.requests)

    def send(self, step: Step) -> None:
        if self.reuses_id(step):
            self.pump(lambda: self.closed_how is not None, REUSE_GRACE)
            if self.closed_how is not None:
                return
        try:
            self.conn.send_raw(step.data, timeout=self.timeout)
        except ConnectionClosed as closed:
            self.sent += len(step.data)
            self.register_sent()
            self.on_close(closed.how)
            return
        except WriteTimeout:
            self.diverge(f"the target stopped reading: {len(step.data)} bytes could not be sent in "
                         f"{self.timeout:g}s", None, step.position)
        self.sent += len(step.data)
        self.register_sent()
        self.pump(lambda: False, 0.0)

    def close(self, step: Step) -> None:
        requests = list(self.requests.values())
        last = max(requests, key=lambda r: r.captured.number) if requests else None
        if last is not None and last.end is not None and self.closed_how is None:
            if last.captured.keep_conn:
                # Kept connections must still be open when the web server decides to close them.
                self.pump(lambda: False, KEEP_OPEN_GRACE)
            else:
                if not self.pump(lambda: self.closed_how is not None, self.timeout) and self.closed_how is None:
                    self.diverge(f"{self.where(last)}: FCGI_KEEP_CONN was clear, but the target kept the "
                                 f"connection open {self.timeout:g}s after END_REQUEST", last.captured.number,
                                 step.position)
        if self.closed_how is not None:
            return
        self.we_closed = True
        if step.kind == "RST":
            self.conn.reset()
            return
        self.conn.shutdown_write()
        # After a half-close the target may still answer what it had (judged as usual) and then close,
        # as it is entitled to: collect that until it closes.
        self.pump(lambda: self.closed_how is not None, min(self.timeout, 2.0))

    def finish(self) -> None:
        if not self.we_closed and self.closed_how is None:
            # The capture ended with the connection open: wait for the answers the capture had.
            final = Step(len(self.plan.connection.items) - 1, "end",
                         stages={r.number: ENDED for r in self.plan.requests if r.end is not None})
            self.wait_for(final)
        for captured in self.plan.requests:
            request = self.requests.get(captured.number)
            if captured.end is None or request is None:
                continue
            if request.end is None:
                self.diverge(f"{self.where(request)}: no END_REQUEST (the capture had "
                             f"{captured.end.describe()})", captured.number, captured.begin_position)
            if request.end.protocol_status != captured.end.protocol_status:
                self.diverge(f"{self.where(request)}: END_REQUEST {request.end.describe()}, the capture had "
                             f"{captured.end.describe()}", captured.number, captured.begin_position)
            if self.content and not captured.aborted:
                self.compare_content(request)

    def compare_content(self, request: TargetRequest) -> None:
        captured = request.captured
        for name, want, got in (("stdout", bytes(captured.stdout), request.stream(RecordType.STDOUT)),
                                ("stderr", bytes(captured.stderr), request.stream(RecordType.STDERR))):
            if want != got:
                self.diverge(f"{self.where(request)}: {name} differs from the capture {_first_difference(want, got)}",
                             captured.number, captured.begin_position)
        assert captured.end is not None and request.end is not None
        if captured.end.app_status != request.end.app_status:
            self.diverge(f"{self.where(request)}: appStatus {request.end.app_status}, the capture had "
                         f"{captured.end.app_status}", captured.number, captured.begin_position)


def _counted(names: list[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        if out and out[-1].split(" x")[0] == name:
            count = int(out[-1].split(" x")[1]) if " x" in out[-1] else 1
            out[-1] = f"{name} x{count + 1}"
        else:
            out.append(name)
    return out


def _first_difference(want: bytes, got: bytes) -> str:
    index = next((i for i, (a, b) in enumerate(zip(want, got)) if a != b), min(len(want), len(got)))
    return (f"at byte {index} (capture {len(want)} bytes: {want[index:index + 24]!r}; "
            f"target {len(got)} bytes: {got[index:index + 24]!r})")


def replay(
    transcript: Transcript,
    target: Target,
    *,
    content: bool = False,
    timing: bool = False,
    writes: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    source: str = "transcript",
    first_only: bool = False,
    concurrent: bool = False,
) -> ReplayResult:
    """Replay every connection of a transcript against a started target.

    first_only: stop at the first connection that diverges (a case's verdict needs no more);
    concurrently, no connection is started after one diverged (those running finish).
    concurrent: all connections at the same time, one thread each (see the module's text);
    the results come in connection order all the same.
    """
    level = "protocol and content" if content else "protocol level"
    result = ReplayResult(source, target.description, level, concurrent=concurrent)
    plans = [plan for plan in (plan_connection(c, writes=writes or timing) for c in transcript.connections)
             if plan.steps]
    if concurrent:
        result.connections = _replay_concurrently(plans, target, content=content, timing=timing, timeout=timeout,
                                                  first_only=first_only)
        return result
    for plan in plans:
        if first_only and not result.ok:
            break
        result.connections.append(_replay_connection(plan, target, content=content, timing=timing, timeout=timeout))
    return result


def _replay_connection(plan: Plan, target: Target, *, content: bool, timing: bool, timeout: float,
                       time_origin: tuple[int, float] | None = None, clock_origin: float | None = None,
                       deadline: float | None = None,
                       started: Callable[[_ConnectionReplay], None] | None = None) -> ConnectionResult:
    """Open a connection and replay one plan on it.

    clock_origin: where the trace's times count from; deadline: a monotonic time that ends every wait.
    """
    number = plan.connection.number
    try:
        conn = target.connect(timeout if deadline is None else max(min(timeout, deadline - time.monotonic()), 0.01),
                              label=f"connection {number}", clock_origin=clock_origin,
                              deadline=None if deadline is None else (lambda: deadline))
    except TargetError as error:
        return ConnectionResult(number, len(plan.requests), 0, Divergence(number, None, str(error)))
    run = _ConnectionReplay(plan, conn, content=content, timing=timing, timeout=timeout, time_origin=time_origin)
    if started is not None:
        started(run)
    try:
        run.run()
    except _Diverged:
        pass
    finally:
        conn.close()
    answered = sum(1 for r in run.requests.values() if r.end is not None)
    return ConnectionResult(number, len(plan.requests), answered, run.divergence)


def _opening_us(connection: Connection) -> int | None:
    """The captured time of a connection's first item (its opening)."""
    return next((i.time_us for i in connection.items if i.time_us is not None), None)


def connection_bound(plan: Plan, timeout: float, start: float, last_step: float) -> float:
    """Seconds from the start of a concurrent replay by which one connection's replay must be over.

    start: when it opens; last_step: when its last step is due (timing), both from the replay's start.
    Then each step may wait its timeout for the target to catch up and again to send; the close and
    the final answers two more each, plus the short graces; and the connect one.
    """
    steps = len(plan.steps)
    waits = (2 * steps + 5) * timeout + steps * (REUSE_GRACE + 0.2) + KEEP_OPEN_GRACE
    return max(start, last_step) + waits


class _Slot:
    """What one connection's thread hands back (written by that thread only, read after it ended)."""

    def __init__(self, plan: Plan, start: float, bound: float) -> None:
        self.plan = plan
        self.start = start  # seconds after the replay's start
        self.bound = bound
        self.thread: threading.Thread | None = None
        self.run: _ConnectionReplay | None = None
        self.result: ConnectionResult | None = None
        self.error: BaseException | None = None


def _replay_concurrently(plans: list[Plan], target: Target, *, content: bool, timing: bool, timeout: float,
                         first_only: bool) -> list[ConnectionResult]:
    origin = time.monotonic()
    openings = [_opening_us(plan.connection) for plan in plans]
    origin_us = min((t for t in openings if t is not None), default=None) if timing else None
    slots: list[_Slot] = []
    for plan, opening in zip(plans, openings):
        start = last_step = 0.0
        if origin_us is not None and opening is not None:
            start = (opening - origin_us) / 1e6
            last_step = max(((s.time_us - origin_us) / 1e6 for s in plan.steps if s.time_us is not None),
                            default=start)
        slots.append(_Slot(plan, start, connection_bound(plan, timeout, start, last_step)))
    diverged = threading.Event()

    def work(slot: _Slot) -> None:
        deadline = origin + slot.bound

        def started(run: _ConnectionReplay) -> None:
            slot.run = run

        try:
            # One clock for every connection's trace, so that their records can be set side by side.
            result = _replay_connection(slot.plan, target, content=content, timing=timing, timeout=timeout,
                                        time_origin=None if origin_us is None else (origin_us, origin),
                                        clock_origin=origin, deadline=deadline, started=started)
            if result.divergence is not None and time.monotonic() >= deadline:
                result.divergence = _overran(slot, result.divergence)
            slot.result = result
        except BaseException as error:  # a harness error: raised again in the caller's thread
            slot.error = error
        finally:
            if slot.result is None or slot.result.divergence is not None:
                diverged.set()

    # Started in the order they opened in the capture (connection order when the times say nothing).
    for slot in sorted(slots, key=lambda s: s.start):
        delay = slot.start - (time.monotonic() - origin)
        if first_only:
            if diverged.wait(max(delay, 0.0)):
                break
        elif delay > 0:
            time.sleep(delay)
        slot.thread = threading.Thread(target=work, args=(slot,), name=f"replay {slot.plan.connection.number}",
                                       daemon=True)
        slot.thread.start()
    started_slots = [slot for slot in slots if slot.thread is not None]  # first_only may have left some out
    for slot in started_slots:
        assert slot.thread is not None
        slot.thread.join(max(origin + slot.bound + BOUND_SLACK - time.monotonic(), 0.0))
    errors = [slot.error for slot in started_slots if slot.error is not None]
    if errors:
        raise errors[0]  # a harness error in a connection's thread, raised once all were waited for
    results: list[ConnectionResult] = []
    for slot in started_slots:  # connection order
        assert slot.thread is not None
        if slot.thread.is_alive():
            # Every wait of the connection ends at its bound; a thread still running is left behind (a daemon).
            number = slot.plan.connection.number
            entries = list(slot.run.conn.trace) if slot.run is not None else []  # a copy: the thread may still add
            context = format_trace(entries[-CONTEXT_ENTRIES:], limit=CONTEXT_ENTRIES).splitlines() if entries else []
            results.append(ConnectionResult(number, len(slot.plan.requests), 0,
                                            _overran(slot, Divergence(number, None, "", context), still_running=True)))
            continue
        assert slot.result is not None
        results.append(slot.result)
    return results


def _overran(slot: _Slot, divergence: Divergence, *, still_running: bool = False) -> Divergence:
    """The divergence of a connection whose replay went past its bound.

    Where it was is kept (the records and the place in the capture); the message of the wait the bound
    cut short is not (it would name the full timeout).
    """
    what = "is still running" if still_running else "was stopped"
    message = (f"the replay of this connection took longer than its bound of {slot.bound:g}s after the start "
               f"(its start, the captured times and every wait's timeout) and {what}")
    return Divergence(divergence.connection, divergence.request, message, divergence.target_context,
                      divergence.capture_context)



# -- replay as a case (cases/replay/, cases/regressions/) --------------------------------------------

# "1" compares stdout/stderr/appStatus with the capture whatever the target, "0" never does;
# unset: only when the target runs the capture's application (same_application).
CONTENT_ENV = "FCGISPEC_REPLAY_CONTENT"
PROTOCOL_EXPECTATIONS = (
    "every request the capture saw answered gets exactly one END_REQUEST with the captured protocolStatus",
    "STDOUT and STDERR well formed, each ended by its empty record before END_REQUEST; nothing after END_REQUEST",
    "every record carries the id of a request in flight (0 only for management answers)",
    "the connection stays open while FCGI_KEEP_CONN is set, and is closed (FIN) after END_REQUEST when it is clear",
)
CONTENT_EXPECTATION = "stdout, stderr and appStatus of every request as in the capture"


def same_application(transcript: Transcript, target: Target) -> bool:
    """Does the target run the application the capture was made in front of?

    Only known for the reference responder's probe app (the golden captures' `app: reference ...`):
    a target that is the reference responder (with any options or fault modes) runs it too.
    """
    from harness.targets.base import ReferenceTarget

    return isinstance(target, ReferenceTarget) and transcript.meta_value("app").startswith("reference")


def content_wanted(transcript: Transcript, target: Target, environ: dict[str, str] | None = None) -> bool:
    """Compare content in a replay case? FCGISPEC_REPLAY_CONTENT=1/0 decides, else same_application."""
    import os

    asked = (os.environ if environ is None else environ).get(CONTENT_ENV, "").strip().lower()
    if asked in ("1", "yes", "true", "on"):
        return True
    if asked in ("0", "no", "false", "off"):
        return False
    return same_application(transcript, target)


def check_replay(ctx: object, transcript: Transcript, *, source: str, content: bool | None = None,
                 base_wait: float = DEFAULT_TIMEOUT) -> str:
    """Replay a transcript inside a case (ctx: a harness.suite.case.CaseContext) and judge it.

    Raises Violation with the replay's report (the first divergence and the records around it);
    returns a note for the report when the target answered as captured. Each wait is base_wait
    seconds scaled by --fcgi-timeout; content=None decides with content_wanted().
    """
    from harness.verdicts import Violation

    target = ctx.target  # type: ignore[attr-defined]
    compare = content_wanted(transcript, target) if content is None else content
    wait = ctx.seconds(base_wait)  # type: ignore[attr-defined]
    result = replay(transcript, target, content=compare, timeout=wait, source=source, first_only=True)
    expected = [*PROTOCOL_EXPECTATIONS, *([CONTENT_EXPECTATION] if compare else [])]
    if not result.ok:
        raise Violation(expected, result.report())
    requests = sum(c.requests for c in result.connections)
    answered = sum(c.answered for c in result.connections)
    return f"{len(result.connections)} connection(s), {answered}/{requests} request(s) answered ({result.level})"


def check_replay_file(ctx: object, path: "str | Path", **options: object) -> str:
    """check_replay of a transcript file (read at run time), named relative to the repository in reports."""
    from harness.capture.transcript import read_transcript

    path = Path(path).resolve()
    root = Path(__file__).resolve().parents[2]
    source = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
    return check_replay(ctx, read_transcript(path), source=source, **options)  # type: ignore[arg-type]


# -- comparing two captures by meaning -------------------------------------------------------------

# Params that differ between two runs of the same scenario (ports are picked at run time).
VOLATILE_PARAMS = frozenset({b"REMOTE_PORT", b"SERVER_PORT", b"HTTP_HOST", b"SERVER_ADDR", b"REMOTE_ADDR"})


def meaning(transcript: Transcript, volatile: frozenset[bytes] = VOLATILE_PARAMS) -> list[tuple[str, ...]]:
    """What a capture says, without bytes that may differ between equivalent runs.

    One tuple per connection, sorted (concurrent connections open in any order): per
    request its role, flags, params (volatile values masked), stdin length and digest,
    whether it was aborted; the answer's status line and protocolStatus; who closed first.
    Record splitting, padding, times and write pieces are left out.
    """
    import hashlib

    from harness.wire.codec import decode_params

    summaries = []
    for connection in transcript.connections:
        plan = plan_connection(connection)
        lines: list[str] = []
        ws_records = connection.records(WS_TO_APP)
        for captured in plan.requests:
            params = b"".join(r.content for r in ws_records if r.type == RecordType.PARAMS
                              and r.request_id == captured.request_id)
            stdin = b"".join(r.content for r in ws_records if r.type == RecordType.STDIN
                             and r.request_id == captured.request_id)
            if sum(1 for r in plan.requests if r.request_id == captured.request_id) > 1:
                # Several requests shared the id on this connection: split the streams by request.
                params, stdin = _streams_of(connection, captured)
            try:
                pairs = [f"{n.decode('latin-1')}={'*' if n in volatile else v.decode('latin-1')}"
                         for n, v in decode_params(params)]
            except CodecError:
                pairs = [f"undecodable params {len(params)} bytes"]
            status = bytes(captured.stdout).split(b"\r\n", 1)[0].decode("latin-1") if captured.stdout else "-"
            end = captured.end.describe() if captured.end else "no END_REQUEST"
            lines.append(f"request id={captured.request_id} keep_conn={captured.keep_conn} aborted={captured.aborted} "
                         f"params=[{', '.join(pairs)}] stdin={len(stdin)}:{hashlib.sha256(stdin).hexdigest()[:16]} "
                         f"answer=[{status}] stderr={len(captured.stderr)} {end}")
        first = connection.closed_first()
        lines.append(f"closed first: {first.direction.split('->')[0]} {first.how}" if first else "never closed")
        summaries.append(tuple(lines))
    return sorted(summaries)


def _streams_of(connection: Connection, captured: CapturedRequest) -> tuple[bytes, bytes]:
    """PARAMS and STDIN of one request, where its id is shared with other requests on the connection."""
    params, stdin = bytearray(), bytearray()
    current = 0
    for item in connection.items:
        if not isinstance(item, RecordItem) or item.direction != WS_TO_APP:
            continue
        record = item.record
        if record.type == RecordType.BEGIN_REQUEST and record.request_id == captured.request_id:
            current += 1
        if current != captured.number_with_id or record.request_id != captured.request_id:
            continue
        if record.type == RecordType.PARAMS:
            params += record.content
        elif record.type == RecordType.STDIN:
            stdin += record.content
    return bytes(params), bytes(stdin)


def compare_meaning(expected: Transcript, actual: Transcript) -> list[str]:
    """Differences in meaning between two captures ([] when they say the same)."""
    import difflib

    want = ["\n".join(c) for c in meaning(expected)]
    got = ["\n".join(c) for c in meaning(actual)]
    if want == got:
        return []
    return list(difflib.unified_diff("\n\n".join(want).splitlines(), "\n\n".join(got).splitlines(),
                                     "expected", "actual", lineterm="", n=1))
