"""§5.4 FCGI_ABORT_REQUEST at every phase of a request, and the single END_REQUEST that ends it.

Without the probe app a request is kept running by leaving its STDIN open (CONTENT_LENGTH
promises more): no responder can have finished reading it. A responder may still answer
before STDIN ends (§6.2 "needn't finish reading from FCGI_STDIN"); its END_REQUEST then
simply comes before the ABORT, which is accepted. "This is truly a response from the
application, not a low-level acknowledgement from the FastCGI library" cannot be told
apart from outside: both look the same on the wire.
"""

from __future__ import annotations

import time

from harness.suite.case import CaseContext, case
from harness.suite.case_requests import begin_record, kept_connection, plain_request, request_records, start_open_stdin
from harness.wire.connection import ConnectionClosed, FcgiConnection, Response
from harness.wire.codec import ProtocolStatus, Record, RecordType, encode_params, encode_record
from harness.wire.probe_app import probe_query
from harness.verdicts import Level, Violation
from harness.suite.checks import (
    describe_event,
    expect_closed,
    expect_end_request,
    next_event,
    read_response,
)

ABORT_ANSWER_SECONDS = 1.0
SLOW_REQUEST_MS = 5000
# Far more output than socket buffers hold: the target is still writing when the ABORT comes.
LONG_OUTPUT = 64 * 1024 * 1024
PARTIAL_BODY = b"the first part of a body that never comes whole"
ABORTS = (
    "After receiving {FCGI_ABORT_REQUEST, R}, the application responds as soon as possible with "
    "{FCGI_END_REQUEST, R, {FCGI_REQUEST_COMPLETE, appStatus}}."
)


def _start_open_stdin(ctx: CaseContext, conn: FcgiConnection, request_id: int, *, keep_conn: bool = True) -> None:
    """BEGIN, PARAMS, and part of a STDIN that CONTENT_LENGTH says is longer: the request is in flight."""
    start_open_stdin(conn, request_id, ctx.post_params(len(PARTIAL_BODY) * 10), PARTIAL_BODY, keep_conn=keep_conn)
    conn.note(f"request {request_id} in flight: STDIN open")


def _abort_answered(ctx: CaseContext, conn: FcgiConnection, request_id: int, phase: str) -> Response:
    """Send ABORT; END_REQUEST{REQUEST_COMPLETE} must follow within ABORT_ANSWER_SECONDS."""
    try:
        conn.abort(request_id)
    except ConnectionClosed:
        pass  # it answered before STDIN ended and closed (KEEP_CONN clear): its END_REQUEST is read below
    sent_at = time.monotonic()
    wait = ctx.seconds(ABORT_ANSWER_SECONDS)
    wanted = f"END_REQUEST id={request_id} REQUEST_COMPLETE within {wait:g}s of ABORT_REQUEST {phase}"
    response = read_response(conn, request_id, wait, expected=wanted)
    elapsed = time.monotonic() - sent_at
    if elapsed > wait:
        raise Violation(wanted, f"END_REQUEST after {elapsed:.2f}s")
    try:
        expect_end_request(response)
    except Violation as violation:
        raise Violation(wanted, violation.actual) from None
    return response


@case(
    "FCGI-5.4-1",
    title=f"ABORT_REQUEST mid-STDIN (probe: also while working) gets END_REQUEST within {ABORT_ANSWER_SECONDS:g} s; "
    "probe: mid-STDOUT too",
    requirement=ABORTS,
    level=Level.REQUIRED,
    catches=("abort-ignored", "no-end-after-abort"),
    timeout=15.0,
)
def abort_answered_promptly(ctx: CaseContext) -> str | None:
    """Aborts a request mid-STDIN, while the app works and mid-STDOUT; each gets its END_REQUEST in time."""
    conn = ctx.connect("abort mid-STDIN")
    _start_open_stdin(ctx, conn, 1)
    _abort_answered(ctx, conn, 1, "while STDIN was open")
    if not ctx.has_probe_app:
        return None
    # Each phase closes its connection before the next: a target may serve one connection at a time.
    conn.close()

    conn = ctx.connect("abort while the app works")
    conn.send_records(request_records(1, ctx.probe_params(probe_query(delay=SLOW_REQUEST_MS))))
    time.sleep(ctx.seconds(0.1))
    _abort_answered(ctx, conn, 1, f"during a {SLOW_REQUEST_MS} ms delay after STDIN ended")
    conn.close()

    conn = ctx.connect("abort mid-STDOUT")
    conn.send_records(request_records(1, ctx.probe_params(probe_query(out=LONG_OUTPUT))))
    while True:
        event = next_event(conn, ctx.answer_wait)
        if not isinstance(event, Record):
            raise Violation(f"STDOUT data of a {LONG_OUTPUT}-byte response", describe_event(event))
        if event.request_id == 1 and event.type == RecordType.STDOUT and event.content:
            break
        if event.request_id == 1 and event.type == RecordType.END_REQUEST:
            raise Violation(f"STDOUT data of a {LONG_OUTPUT}-byte response, then the ABORT", event.describe())
    conn.note("the output has started: ABORT now")
    conn.abort(1)
    # Output already in socket buffers still arrives after the ABORT, and on Linux those
    # autotune to tens of MiB: how much more comes says little, so the END_REQUEST is
    # judged and the amount is reported.
    after_abort = 0
    wanted = "END_REQUEST id=1 REQUEST_COMPLETE after the ABORT in the middle of the output"
    while True:
        event = next_event(conn, ctx.answer_wait)
        if not isinstance(event, Record):
            raise Violation(wanted, f"{describe_event(event)} after {after_abort} bytes of STDOUT since the ABORT")
        if event.request_id != 1:
            continue
        if event.type == RecordType.END_REQUEST:
            break
        after_abort += len(event.content)
    if len(event.content) != 8 or event.content[4] != ProtocolStatus.REQUEST_COMPLETE:
        raise Violation(wanted, event.describe())
    cut = "cut short" if after_abort < LONG_OUTPUT * 0.9 else "not cut short"
    return f"mid-STDOUT abort: {after_abort} bytes of the {LONG_OUTPUT}-byte output came after the ABORT ({cut})"


@case(
    "FCGI-5.4-2",
    # More than one request on a KEEP_CONN connection.
    prerequisites=("FCGI-3.5-2", "FCGI-5.4-1"),
    title="ABORT before PARAMS, mid-PARAMS (END_REQUEST), for a never-begun id and after END_REQUEST (ignored)",
    requirement=ABORTS,
    level=Level.REQUIRED,
    # An ABORT never answered at all is FCGI-5.4-1's deviation (seen in the traces): it blocks this case.
    catches=("late-record-close",),
)
def abort_at_every_phase(ctx: CaseContext) -> None:
    conn = kept_connection(ctx)  # a target that closes after every request is not judged on ABORTs
    conn.send_records([begin_record(1)])
    conn.note("request 1: BEGIN only")
    _abort_answered(ctx, conn, 1, "sent right after BEGIN_REQUEST")

    encoded = encode_params(ctx.probe_params())
    conn.send_records([begin_record(2), encode_record(RecordType.PARAMS, 2, encoded[: len(encoded) // 2])])
    conn.note("request 2: PARAMS half sent, not ended")
    _abort_answered(ctx, conn, 2, "before PARAMS ended")

    conn.note("ABORT for id 3, never begun: to be ignored")
    conn.abort(3)
    plain_request(ctx, conn, 4)
    conn.note("ABORT for id 4, which has ended: to be ignored")
    conn.abort(4)
    plain_request(ctx, conn, 5, "END_REQUEST id=5 after ABORTs for inactive ids 3 and 4")
    for record in conn.drain(ctx.seconds(0.25)):
        raise Violation("nothing more (ABORTs for inactive ids are ignored)", record.describe())


@case(
    "FCGI-5.4-3",
    # More than one request on a KEEP_CONN connection: one aborted (answered: FCGI-5.4-1), one of an
    # unknown role (rejected: FCGI-5.1-2).
    prerequisites=("FCGI-3.5-2", "FCGI-5.1-2", "FCGI-5.4-1"),
    title="Exactly one END_REQUEST per request: completed, aborted mid-STDIN, rejected (probe: aborted while working)",
    requirement="A request ID R becomes active when the application receives a record {FCGI_BEGIN_REQUEST, R, ...} "
    "and becomes inactive when the application sends a record {FCGI_END_REQUEST, R, ...} to the Web server.",
    level=Level.REQUIRED,
    catches=("end-request-twice",),
)
def one_end_request_each(ctx: CaseContext) -> None:
    """Completed, aborted and rejected requests on one connection get exactly one END_REQUEST each."""
    conn = ctx.connect()
    ended: dict[int, str] = {}

    def check(response: Response, what: str) -> None:
        ended[response.request_id] = what
        for record in response.other_records:
            if record.request_id in ended:
                raise Violation(
                    f"nothing for id={record.request_id} ({ended[record.request_id]}) after its END_REQUEST",
                    record.describe(),
                )

    check(plain_request(ctx, conn, 1), "completed")
    _start_open_stdin(ctx, conn, 2)
    check(_abort_answered(ctx, conn, 2, "while STDIN was open"), "aborted")
    conn.send_records(request_records(3, ctx.probe_params(), role=4))
    response = read_response(conn, 3, ctx.answer_wait, expected="END_REQUEST id=3 UNKNOWN_ROLE (role 4)")
    expect_end_request(response, ProtocolStatus.UNKNOWN_ROLE)
    check(response, "rejected")
    if ctx.has_probe_app:
        conn.send_records(request_records(4, ctx.probe_params(probe_query(delay=SLOW_REQUEST_MS))))
        time.sleep(ctx.seconds(0.05))
        check(_abort_answered(ctx, conn, 4, "during a delay"), "aborted while working")
    for record in conn.drain(ctx.seconds(0.3)):
        if record.request_id in ended:
            raise Violation(
                f"nothing for id={record.request_id} ({ended[record.request_id]}) after its END_REQUEST",
                record.describe(),
            )


@case(
    "FCGI-5.4-4",
    # More than one request on a KEEP_CONN connection, one of them aborted (answered: FCGI-5.4-1).
    prerequisites=("FCGI-3.5-2", "FCGI-5.4-1"),
    title="After an aborted request a KEEP_CONN connection serves the next one; without KEEP_CONN it closes",
    requirement="If not zero, the application does not close the connection after responding to this request; "
    "the Web server retains responsibility for the connection.",
    level=Level.REQUIRED,
    catches=("abort-closes-connection", "keep-conn-never-close"),
)
def connection_after_abort(ctx: CaseContext) -> None:
    conn = kept_connection(ctx, "KEEP_CONN set")  # kept after a plain request: then after an abort?
    _start_open_stdin(ctx, conn, 1)
    _abort_answered(ctx, conn, 1, "while STDIN was open")
    plain_request(ctx, conn, 2, "END_REQUEST id=2 on the connection (KEEP_CONN set)")
    conn.close()  # before the next one: a target may serve one connection at a time

    conn = ctx.connect("KEEP_CONN clear")
    _start_open_stdin(ctx, conn, 1, keep_conn=False)
    _abort_answered(ctx, conn, 1, "while STDIN was open")
    expect_closed(
        conn,
        ctx.seconds(2.0),
        how=("eof", "reset"),
        expected="connection closed after the aborted request's END_REQUEST (KEEP_CONN clear)",
    )
