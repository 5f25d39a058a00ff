"""Replay one connection of a transcript against a target and judge the answers by meaning.

The web-server side of the connection (a Plan, harness/replay/plan.py) is sent again in its steps.
Before each step the replay waits until the target has got as far as the captured application had
at that point (output started / END_REQUEST sent, per request), so the web server's side keeps its
causality: a request that nginx sent only after the previous END_REQUEST is sent only after the
target's END_REQUEST. With timing=True each step also keeps its captured time.

The application side is never compared byte for byte (padding, record splitting and timing are
free). Always judged (protocol level): each request the capture saw answered gets exactly one
END_REQUEST, well formed, with the captured protocolStatus; STDOUT (and STDERR when used) ends with
its empty record, nothing follows END_REQUEST; every record carries the id of a request in flight
(or 0 for management answers); a connection with FCGI_KEEP_CONN set stays open, one with it clear is
closed after END_REQUEST. With content=True also: stdout, stderr and appStatus equal the capture's
(for a target running the same application).

The first divergence ends the connection's replay and is reported with the records around it, on
the target's side and in the capture (harness/replay/results.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from harness.wire.connection import (
    ConnectionClosed,
    FcgiConnection,
    ReadTimeout,
    WriteTimeout,
    format_trace,
)
from harness.wire.codec import (
    MANAGEMENT_REQUEST_ID,
    CodecError,
    EndRequest,
    Record,
    RecordType,
    decode_end_request,
    type_name,
)
from harness.targets.base import Target, TargetError
from harness.capture.transcript import format_item
from harness.replay.plan import ENDED, NO_OUTPUT, OUTPUT, CapturedRequest, Plan, Step
from harness.replay.results import ConnectionResult, Divergence

# The wait for each step (seconds) when the caller names none.
DEFAULT_TIMEOUT = 5.0
# How long a kept connection must stay open after the last END_REQUEST before the web server's own close.
KEEP_OPEN_GRACE = 0.15
# Before a request reuses an id on a kept connection: long enough for a close or a stray record that the
# target sent right after the previous END_REQUEST to arrive, so that it is blamed on the right request.
REUSE_GRACE = 0.02
# Records of the target's side shown around a divergence.
CONTEXT_ENTRIES = 12
_STAGE_TEXT = {OUTPUT: "output (STDOUT/STDERR)", ENDED: "END_REQUEST"}
# Record types an application never sends.
_WS_ONLY_TYPES = {RecordType.BEGIN_REQUEST, RecordType.ABORT_REQUEST, RecordType.PARAMS, RecordType.STDIN,
                  RecordType.DATA, RecordType.GET_VALUES}


@dataclass
class TargetRequest:
    """What the target did for one captured request."""

    captured: CapturedRequest
    records: list[Record] = field(default_factory=list)
    stage: int = NO_OUTPUT
    end: EndRequest | None = None
    stdout_ended: bool = False
    stderr_ended: bool = False

    def stream(self, record_type: int) -> bytes:
        return b"".join(r.content for r in self.records if r.type == record_type)


class _Diverged(Exception):
    pass


class ConnectionReplay:
    """The replay of one plan on one open connection: sends its steps, reads and judges the target's records."""

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
        """Judge one record of the target's and note it on its request (diverges when it is out of place)."""
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
        """Send every step of the plan (each when the target has caught up, and on time with timing), then finish."""
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
        """Send one flight of the web server's bytes (a close or a stop in reading on the way is judged)."""
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
        """The web server's close (FIN or RST), after judging whether the target kept or closed the connection."""
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
        """After the last step: every request the capture saw answered has its END_REQUEST, as captured."""
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


def replay_connection(plan: Plan, target: Target, *, content: bool, timing: bool, timeout: float,
                      time_origin: tuple[int, float] | None = None, clock_origin: float | None = None,
                      deadline: float | None = None,
                      started: Callable[[ConnectionReplay], None] | None = None) -> ConnectionResult:
    """Open a connection and replay one plan on it.

    clock_origin: where the trace's times count from; deadline: a monotonic time that ends every wait.
    """
    number = plan.connection.number
    try:
        conn = target.connect(timeout if deadline is None else max(min(timeout, deadline - time.monotonic()), 0.01),
                              label=f"connection {number}", clock_origin=clock_origin,
                              deadline=None if deadline is None else (lambda: deadline))
    except TargetError as error:
        return ConnectionResult(number, len(plan.requests), 0, Divergence(number, None, str(error)), connected=False)
    run = ConnectionReplay(plan, conn, content=content, timing=timing, timeout=timeout, time_origin=time_origin)
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
