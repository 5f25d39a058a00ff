"""§5.1 FCGI_BEGIN_REQUEST: the Responder flow, roles, flags, and malformed or repeated BEGIN records.

The rejection of unknown roles itself is §5.5's FCGI_UNKNOWN_ROLE; roles the target may
not offer (Authorizer, Filter) are judged in fcgi_6_roles.py.
"""

from __future__ import annotations

import time

from harness.suite.case import CaseContext, case
from harness.suite.case_requests import begin_record, kept_connection, plain_request, request_records, send_request
from harness.wire.connection import FcgiConnection, Response
from harness.wire.codec import (
    ProtocolStatus,
    Record,
    RecordType,
    Role,
    begin_request_body,
    encode_params,
    encode_record,
    stream_records,
    type_name,
)
from harness.verdicts import Level, Violation
from harness.suite.checks import (
    TIMEOUT,
    describe_event,
    expect_closed,
    expect_end_request,
    expect_probe_report,
    expect_stdin_received,
    expect_stream_terminated,
    next_event,
    read_response,
)

# 0 is below the defined roles, 4 just above them, 0x0101 has both bytes set (a role
# read from one byte looks like Responder), 0xFFFF uses both role bytes fully.
UNKNOWN_ROLES = (0, 4, 0x0101, 0xFFFF)
RESPONDER_OUTPUT_TYPES = (RecordType.STDOUT, RecordType.STDERR, RecordType.END_REQUEST)


def _check_responder_response(response: Response, what: str) -> None:
    """App. B.1/B.2: STDOUT data, the empty STDOUT record, END_REQUEST{REQUEST_COMPLETE} last."""
    for record in response.records:
        if record.type not in RESPONDER_OUTPUT_TYPES:
            raise Violation(f"{what}: only STDOUT, STDERR and END_REQUEST records for the request", record.describe())
    expect_end_request(response)
    expect_stream_terminated(response.records, RecordType.STDOUT)
    if not response.stdout:
        raise Violation(f"{what}: a CGI response on STDOUT (at least its headers)", "an empty STDOUT stream")


@case(
    "FCGI-5.1-1",
    title="BEGIN_REQUEST{RESPONDER}: the flows of App. B.1 (no stdin) and B.2 (PARAMS split, stdin data) are answered",
    requirement="roughly speaking the Web server first sends parameters and other data to the application, then the "
    "application sends result data to the Web server, and finally the application sends the Web server an indication "
    "that the request is complete.",
    level=Level.REQUIRED,
    # The output's shape is other cases' (FCGI-5.3-6 its empty record, FCGI-5.5-4 END_REQUEST last,
    # FCGI-A-1 its record type); here: answered once the parameters are in, which FCGI-5.2-1 says too.
    catches=("output-before-params-end",),
    same_requirement_as=("FCGI-5.2-1",),
)
def responder_flow(ctx: CaseContext) -> None:
    # App. B.1, with flags 0 as shown there: a connection of its own.
    """Runs the Responder exchanges of App. B.1 and B.2 and checks each answer (probe: the STDIN received)."""
    conn = ctx.connect()
    conn.note("App. B.1: a simple request with no data on stdin")
    conn.send_records(request_records(1, ctx.probe_params(), keep_conn=False))
    _check_responder_response(read_response(conn, 1, ctx.answer_wait), "App. B.1")
    conn.close()  # before the next one: a target may serve one connection at a time

    # App. B.2: the same with stdin data, PARAMS cut inside a name as in the spec's example.
    body = b"quantity=100&item=3047936"
    encoded = encode_params(ctx.post_params(len(body)))
    cut = encoded.index(b"SERVER_NAME") + 3
    conn = ctx.connect()
    conn.note("App. B.2: PARAMS in two records (cut inside SERVER_NAME), then stdin data")
    conn.send_records(
        [
            begin_record(1, keep_conn=False),
            encode_record(RecordType.PARAMS, 1, encoded[:cut]),
            encode_record(RecordType.PARAMS, 1, encoded[cut:]),
            encode_record(RecordType.PARAMS, 1, b""),
        ]
        + stream_records(RecordType.STDIN, 1, body)
    )
    response = read_response(conn, 1, ctx.answer_wait)
    _check_responder_response(response, "App. B.2")
    if ctx.has_probe_app:
        expect_stdin_received(expect_probe_report(response), body)
    else:
        ctx.expect_same_answer(response, "PARAMS in two records cut inside SERVER_NAME", ctx.post_params(len(body)), body)


@case(
    "FCGI-5.1-2",
    # More than one request on a KEEP_CONN connection.
    prerequisites=("FCGI-3.5-2",),
    title="Unknown roles 0, 4, 0x0101, 0xFFFF get END_REQUEST UNKNOWN_ROLE; the connection stays usable",
    requirement="FCGI_UNKNOWN_ROLE: rejecting a new request. This happens when the Web server has specified "
    "a role that is unknown to the application.",
    level=Level.REQUIRED,
    catches=("unknown-role-close", "unknown-role-served"),
)
def unknown_role_rejected(ctx: CaseContext) -> None:
    conn = ctx.connect()
    for request_id, role in enumerate(UNKNOWN_ROLES, start=1):
        conn.note(f"request {request_id} asks for role {role}")
        # Sent whole, as a web server would: PARAMS and STDIN follow BEGIN at once.
        send_request(conn, request_id, ctx.probe_params(), role=role)
        response = read_response(
            conn, request_id, ctx.answer_wait, expected=f"END_REQUEST id={request_id} protocolStatus=UNKNOWN_ROLE"
        )
        expect_end_request(response, ProtocolStatus.UNKNOWN_ROLE)
    plain_request(ctx, conn, len(UNKNOWN_ROLES) + 1, "a RESPONDER request answered on the same connection afterwards")


@case(
    "FCGI-5.1-3",
    # More than one request on a KEEP_CONN connection.
    prerequisites=("FCGI-3.5-2",),
    title="Unused flag bits and non-zero reserved bytes are ignored: flags 0xFF keeps the connection, 0xFE closes it",
    requirement="flags & FCGI_KEEP_CONN: If zero, the application closes the connection after responding to this "
    "request. If not zero, the application does not close the connection after responding to this request",
    level=Level.RECOMMENDED,
    catches=("flags-exact-match",),
)
def unused_flag_bits_ignored(ctx: CaseContext) -> None:
    """BEGIN_REQUEST flags 0xFF and 0xFE, odd reserved bytes: only KEEP_CONN decides whether the connection stays."""
    reserved = b"\xa5" * 5
    conn = kept_connection(ctx)  # kept with flags exactly KEEP_CONN: then with the other bits set?
    conn.note("flags 0xFF (KEEP_CONN and every unused bit), reserved bytes 0xA5")
    for request_id in (1, 2):
        conn.send_records(
            [encode_record(RecordType.BEGIN_REQUEST, request_id, begin_request_body(Role.RESPONDER, 0xFF, reserved))]
            + stream_records(RecordType.PARAMS, request_id, encode_params(ctx.probe_params()))
            + stream_records(RecordType.STDIN, request_id, b"")
        )
        wanted = f"END_REQUEST id={request_id} REQUEST_COMPLETE" + (
            "" if request_id == 1 else " on the same connection (flags 0xFF has KEEP_CONN set)"
        )
        expect_end_request(read_response(conn, request_id, ctx.answer_wait, expected=wanted))
    conn.close()  # before the next one: a target may serve one connection at a time

    conn = ctx.connect()
    conn.note("flags 0xFE (every unused bit, KEEP_CONN clear), reserved bytes 0xA5")
    conn.send_records(
        [encode_record(RecordType.BEGIN_REQUEST, 1, begin_request_body(Role.RESPONDER, 0xFE, reserved))]
        + stream_records(RecordType.PARAMS, 1, encode_params(ctx.probe_params()))
        + stream_records(RecordType.STDIN, 1, b"")
    )
    expect_end_request(read_response(conn, 1, ctx.answer_wait))
    expect_closed(
        conn,
        ctx.seconds(2.0),
        how=("eof", "reset"),
        expected="connection closed after END_REQUEST (flags 0xFE has KEEP_CONN clear)",
    )


def _observe(conn: FcgiConnection, request_id: int, timeout: float) -> str:
    """What the target did with a request: its END_REQUEST, a close, or nothing in time."""
    seen: list[str] = []
    while True:
        event = next_event(conn, timeout)
        if isinstance(event, Record):
            if event.type == RecordType.END_REQUEST and event.request_id == request_id:
                shown = event.describe().split(" ", 2)[-1]
                return (f"answered ({', '.join(seen)}, " if seen else "answered (") + f"END_REQUEST {shown})"
            seen.append(type_name(event.type))
            continue
        if event == TIMEOUT:
            return "no answer" + (f" after {', '.join(seen)}" if seen else "") + f" within {timeout:g}s"
        return describe_event(event) + (f" after {', '.join(seen)}" if seen else "")


# BEGIN_REQUEST bodies of the wrong size: empty, one byte short, one too many, two bodies' worth.
BAD_BEGIN_SIZES = (0, 7, 9, 16)


@case(
    "FCGI-5.1-4",
    title="BEGIN_REQUEST bodies of 0, 7, 9 and 16 bytes: what the target does (the target must survive)",
    requirement="The contentData component of a FCGI_BEGIN_REQUEST record has the form: typedef struct { "
    "unsigned char roleB1; unsigned char roleB0; unsigned char flags; unsigned char reserved[5]; } "
    "FCGI_BeginRequestBody;",
    level=Level.UNSPECIFIED,
    catches=("exit-on-malformed", "abort-on-malformed"),
    protocol_error=True,
)
def begin_body_wrong_length(ctx: CaseContext) -> str:
    conns = []
    # Every connection is sent its request first, so the waits below overlap.
    for size in BAD_BEGIN_SIZES:
        body = (begin_request_body(Role.RESPONDER, 1) * 2)[:size]
        conn = ctx.connect(f"{size}-byte BEGIN_REQUEST body")
        conn.send_records(
            [encode_record(RecordType.BEGIN_REQUEST, 1, body)]
            + stream_records(RecordType.PARAMS, 1, encode_params(ctx.probe_params()))
            + stream_records(RecordType.STDIN, 1, b"")
        )
        conns.append((size, conn))
    # One shared wait: the targets worked on all connections at once.
    until = time.monotonic() + ctx.seconds(0.5)
    notes = [f"{size} bytes: {_observe(conn, 1, max(until - time.monotonic(), 0.05))}" for size, conn in conns]
    return "; ".join(notes)


@case(
    "FCGI-5.1-5",
    title="A second BEGIN_REQUEST for an active id (mid-PARAMS): what the target does (the target must survive)",
    requirement="A request ID R becomes active when the application receives a record {FCGI_BEGIN_REQUEST, R, ...} "
    "and becomes inactive when the application sends a record {FCGI_END_REQUEST, R, ...} to the Web server.",
    level=Level.UNSPECIFIED,
    catches=("exit-on-malformed", "abort-on-malformed"),
    protocol_error=True,
)
def duplicate_begin(ctx: CaseContext) -> str:
    """A second BEGIN_REQUEST for id 1 mid-PARAMS: notes the END_REQUESTs that come and how a next request fares."""
    conn = ctx.connect()
    encoded = encode_params(ctx.probe_params())
    half = len(encoded) // 2
    begin = begin_record(1)
    conn.send_records([begin, encode_record(RecordType.PARAMS, 1, encoded[:half])])
    conn.note("request 1 is active (PARAMS half sent): a second BEGIN_REQUEST for id 1")
    conn.send_records(
        [begin, encode_record(RecordType.PARAMS, 1, encoded[half:]), encode_record(RecordType.PARAMS, 1, b"")]
        + stream_records(RecordType.STDIN, 1, b"")
    )
    ends: list[str] = []
    events: list[str] = []
    wait = ctx.seconds(2.0)
    while True:
        event = next_event(conn, wait)
        if not isinstance(event, Record):
            if event != TIMEOUT or not ends:
                events.append(describe_event(event))
            break
        if event.request_id == 1 and event.type == RecordType.END_REQUEST:
            ends.append(event.describe().split(" ", 2)[-1])
            wait = ctx.seconds(0.3)  # a second END_REQUEST for the repeated BEGIN would come soon
    note = f"{len(ends)} END_REQUEST for id 1" + (f" ({'; '.join(ends)})" if ends else "")
    if events:
        note += f", then {events[-1]}"
    if conn.closed_how is None and ends:
        response = _observe_follow_up(ctx, conn)
        note += f"; a following request id 2: {response}"
    return note


def _observe_follow_up(ctx: CaseContext, conn: FcgiConnection) -> str:
    conn.send_records(request_records(2, ctx.probe_params()))
    return _observe(conn, 2, ctx.seconds(2.0))
