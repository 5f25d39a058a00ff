"""§3.3 Records, "Managing Request IDs" and the null request id: which ids a request may use,
when an id is active, and what happens to records for ids that are not.

Every case here works against any responder (the probe app only adds content checks):
a request that is "active" for longer is one whose STDIN is left unterminated.

Seen only with the probe app: a target that takes STDIN records of a foreign id as the
active request's body (php-fpm's fcgi_read) answers that request as usual, and a responder
may end a request before its STDIN has ended, so without a report of the body it received
nothing on the wire tells the two apart (FCGI-3.3-7 then checks only that the foreign
records get no answer and do not break the connection).
"""

from __future__ import annotations

from harness.suite.case import CaseContext, case
from harness.suite.case_requests import kept_connection, plain_request, request_records
from harness.wire.connection import FcgiConnection, Response
from harness.wire.codec import (
    MANAGEMENT_REQUEST_ID,
    Record,
    RecordType,
    decode_end_request,
    encode_params,
    encode_record,
    stream_records,
    type_name,
)
from harness.wire.mutations import random_request_id
from harness.verdicts import Level, Violation
from harness.suite.checks import TIMEOUT, describe_event, next_event, read_response
from harness.suite.checks import expect_end_request, expect_probe_report, expect_single_end_request, expect_stdin_received

INACTIVE_REQUIREMENT = (
    "While a request ID R is inactive, the application ignores records with requestId == R, "
    "except for FCGI_BEGIN_REQUEST records as just described."
)


def _check_body(ctx: CaseContext, response: Response, body: bytes, how: str, variation: str) -> None:
    """With the probe app: the request's STDIN was exactly body. Without it: the answer is the one to
    the same POST sent plainly, alone on a connection of its own (variation: what differed)."""
    if ctx.has_probe_app:
        expect_stdin_received(expect_probe_report(response), body, how)
    else:
        ctx.expect_same_answer(response, variation, ctx.post_params(len(body)), body)


def _response_after(ctx: CaseContext, conn: FcgiConnection, request_id: int, early: list[Record]) -> Response:
    """The response to request_id, some of whose records (maybe all) were already read into early."""
    response = Response(request_id)
    for record in early:
        if record.request_id != request_id:
            response.other_records.append(record)
            continue
        response.records.append(record)
        if record.type == RecordType.END_REQUEST:
            response.end = decode_end_request(record.content) if len(record.content) == 8 else None
            return response
    rest = read_response(conn, request_id, ctx.answer_wait)
    response.records += rest.records
    response.other_records += rest.other_records
    response.end = rest.end
    return response


def _expect_nothing_for(conn: FcgiConnection, ids: set[int], seconds: float, after: str) -> list[Record]:
    """Within `seconds`, no record for these ids and no close; other records are returned."""
    seen: list[Record] = []
    while True:
        event = next_event(conn, seconds)
        if event == TIMEOUT:
            return seen
        if not isinstance(event, Record):
            raise Violation(
                [f"records for {after} ignored: the connection stays open"], describe_event(event)
            )
        if event.request_id in ids:
            raise Violation([f"records for {after} ignored: nothing sent for id={event.request_id}"], event.describe())
        seen.append(event)


@case(
    "FCGI-3.3-2",
    # More than one request on a KEEP_CONN connection.
    prerequisites=("FCGI-3.5-2",),
    title="Every application record carries the request's own id (1, 256, 65535)",
    requirement="Application records have a nonzero requestId.",
    # Ids above 255 answered under other ids are what FCGI-3.3-9 says too.
    same_requirement_as=("FCGI-3.3-9",),
    level=Level.REQUIRED,
    catches=("reply-id-zero", "id-high-byte-dropped"),
)
def replies_carry_request_id(ctx: CaseContext) -> None:
    conn = ctx.connect()
    # 256 has a zero low byte and 65535 fills both bytes: the ids byte-order bugs show on.
    for request_id in (1, 256, 65535):
        # The requirement is about ids, not the connection: a target that closes it still gets judged.
        conn = ctx.connection_for_next_request(conn)
        conn.send_records(request_records(request_id, ctx.probe_params()))
        response = Response(request_id)
        while True:
            event = next_event(conn, ctx.answer_wait)
            wanted = f"STDOUT, STDERR or END_REQUEST records with id={request_id}"
            if isinstance(event, str):
                raise Violation(wanted, describe_event(event))
            if event.request_id != request_id:
                raise Violation(wanted, event.describe())
            response.records.append(event)
            if event.type == RecordType.END_REQUEST:
                response.end = decode_end_request(event.content) if len(event.content) == 8 else None
                break
        # The id must not change the answer either (without a probe app: compared with id 1 on a
        # connection of its own).
        ctx.expect_same_answer(response, f"request id {request_id} on a kept connection")


REUSE_COUNT = 1000


@case(
    "FCGI-3.3-6",
    # More than one request on a KEEP_CONN connection.
    prerequisites=("FCGI-3.5-2",),
    title=f"Request id 1 reused at once after END_REQUEST, {REUSE_COUNT} times on one connection (as nginx does)",
    requirement="A request ID R becomes active when the application receives a record {FCGI_BEGIN_REQUEST, R, ...} "
    "and becomes inactive when the application sends a record {FCGI_END_REQUEST, R, ...} to the Web server.",
    level=Level.REQUIRED,
    catches=("go-id-reuse",),
    timeout=60.0,
)
def request_id_reused_at_once(ctx: CaseContext) -> None:
    conn = ctx.connect()
    request_bytes = b"".join(request_records(1, ctx.probe_params()))
    for number in range(1, REUSE_COUNT + 1):
        # The next BEGIN leaves the moment END_REQUEST is read, like nginx's upstream keepalive.
        conn.send_records([request_bytes])
        response = read_response(
            conn, 1, ctx.answer_wait, expected=f"END_REQUEST id=1 for request {number} of {REUSE_COUNT} (id 1 reused)"
        )
        try:
            expect_end_request(response)
        except Violation as violation:
            raise Violation([f"request {number} of {REUSE_COUNT}: " + e for e in violation.expected], violation.actual)
        if number == 1:
            ctx.glance_for_close(conn)  # a KEEP_CONN close is not the reused id's doing


FOREIGN_BODY = b"FOREIGN STDIN FOR AN INACTIVE ID " * 4


def _foreign_records(request_id: int) -> list[bytes]:
    """PARAMS, STDIN, DATA (each with data, then terminated) and ABORT for an id that was never begun."""
    return (
        stream_records(RecordType.PARAMS, request_id, encode_params([("FCGISPEC_FOREIGN", "yes")]))
        + stream_records(RecordType.STDIN, request_id, FOREIGN_BODY)
        + stream_records(RecordType.DATA, request_id, b"foreign data")
        + [encode_record(RecordType.ABORT_REQUEST, request_id)]
    )


@case(
    "FCGI-3.3-7",
    # More than one request on a KEEP_CONN connection.
    prerequisites=("FCGI-3.5-2", "FCGI-3.3-10"),
    title="PARAMS, STDIN, DATA and ABORT for never-begun ids (before and during request 1) are ignored",
    requirement=INACTIVE_REQUIREMENT,
    level=Level.REQUIRED,
    catches=("late-record-close", "foreign-id-stdin-accepted"),
)
def inactive_id_records_ignored(ctx: CaseContext) -> None:
    """Records for never-begun ids, before and during request 1, get no answer and do not reach request 1."""
    conn = ctx.connect()
    conn.note("records for id 5 before any request")
    conn.send_records(_foreign_records(5))
    _expect_nothing_for(conn, {5}, ctx.quiet_wait, "the never-begun id 5")

    body = b"request one's own body, first half|" + b"second half of request one's body"
    half = body.index(b"|") + 1
    conn.send_records(request_records(1, ctx.post_params(len(body)), body[:half], terminate_stdin=False))
    conn.note("request 1 is active (its STDIN not yet ended): records for ids 7 and 2")
    conn.send_records(_foreign_records(7) + _foreign_records(2))
    # Request 1 may be answered already (a responder may finish before STDIN ends): keep what comes for it.
    early = _expect_nothing_for(
        conn, {7, 2}, ctx.quiet_wait, "the never-begun ids 7 and 2 while request 1 is active"
    )
    conn.send_records(stream_records(RecordType.STDIN, 1, body[half:]))
    response = _response_after(ctx, conn, 1, early)
    strays = [r for r in response.other_records if r.request_id in (5, 7, 2)]
    if strays:
        raise Violation("nothing sent for the never-begun ids 5, 7 and 2", strays[0].describe())
    expect_end_request(response)
    _check_body(
        ctx, response, body, "(its own STDIN only, not the STDIN records of ids 7 and 2)",
        "records for the never-begun ids 7 and 2 sent while the request was active",
    )
    # The connection is still open and framed.
    plain_request(
        ctx, conn, 3, "END_REQUEST id=3 protocolStatus=REQUEST_COMPLETE for a plain request "
        "on the same connection after the records for never-begun ids",
    )


@case(
    "FCGI-3.3-8",
    # More than one request on a KEEP_CONN connection.
    prerequisites=("FCGI-3.5-2", "FCGI-3.3-6"),
    title="Late records for a finished id (a 2nd empty STDIN, then STDIN, PARAMS, DATA, ABORT after END_REQUEST) are ignored",
    requirement=INACTIVE_REQUIREMENT,
    level=Level.REQUIRED,
    catches=("late-record-close",),
)
def late_records_ignored(ctx: CaseContext) -> None:
    """A repeated empty STDIN and late records for a finished id get no answer; id 1 begun again is served alone."""
    conn = kept_connection(ctx)  # a target that closes after every request is not judged on late records
    body = b"late-records body"
    # Yaws sent the empty STDIN twice (erlyaws/yaws#283): the request must still be answered, once.
    conn.note("request 1 with its empty STDIN record sent twice")
    conn.send_records(request_records(1, ctx.post_params(len(body)), body) + [encode_record(RecordType.STDIN, 1, b"")])
    response = read_response(conn, 1, ctx.answer_wait)
    expect_end_request(response)
    _check_body(ctx, response, body, "(the duplicate empty STDIN changes nothing)", "a duplicate empty STDIN record")

    conn.note("late records for id 1, whose END_REQUEST has been sent")
    conn.send_records(
        [
            encode_record(RecordType.STDIN, 1, b""),
            encode_record(RecordType.PARAMS, 1, encode_params([("FCGISPEC_LATE", "yes")])),
            encode_record(RecordType.PARAMS, 1, b""),
            encode_record(RecordType.STDIN, 1, b"late stdin"),
            encode_record(RecordType.DATA, 1, b""),
            encode_record(RecordType.ABORT_REQUEST, 1),
        ]
    )
    _expect_nothing_for(conn, {1}, ctx.quiet_wait, "the finished id 1")

    # Id 1 again: served on its own, the late STDIN above not part of it.
    conn.send_records(request_records(1, ctx.post_params(len(body)), body))
    response = read_response(conn, 1, ctx.answer_wait, expected="END_REQUEST id=1 for id 1 begun again after the late records")
    expect_end_request(response)
    _check_body(
        ctx, response, body, "(the late STDIN record is not part of it)",
        "late records for id 1 before it was begun again",
    )
    # Nothing for an id after its END_REQUEST.
    expect_single_end_request(conn, 1, ctx.quiet_wait)


@case(
    "FCGI-3.3-9",
    # More than one request on a KEEP_CONN connection.
    prerequisites=("FCGI-3.5-2",),
    title="Requests with ids 256, 257, 32768, 65535 and a random id are served, each answered with its own id",
    requirement="requestId: Identifies the FastCGI request to which the record belongs.",
    level=Level.REQUIRED,
    catches=("id-high-byte-dropped",),
)
def large_request_ids_served(ctx: CaseContext) -> str:
    # 257: both bytes 1 (a server keeping one byte sees id 1); 32768: the sign bit of a 16-bit id.
    """Serves one request for each of several large ids on one connection; every record of the answer must carry that id."""
    ids = (256, 257, 32768, 65535, random_request_id())
    conn = ctx.connect()
    for request_id in ids:
        conn = ctx.connection_for_next_request(conn)  # the ids are judged, not the connection
        body = f"body of request {request_id}".encode()
        conn.send_records(request_records(request_id, ctx.post_params(len(body)), body))
        response = Response(request_id)
        while response.end is None:
            event = next_event(conn, ctx.answer_wait)
            wanted = f"STDOUT, STDERR and END_REQUEST records with id={request_id}"
            if not isinstance(event, Record) or event.request_id != request_id:
                raise Violation(wanted, describe_event(event))
            response.records.append(event)
            if event.type == RecordType.END_REQUEST:
                response.end = decode_end_request(event.content) if len(event.content) == 8 else None
                break
        expect_end_request(response)
        _check_body(ctx, response, body, f"for request id {request_id}", f"request id {request_id} (instead of 1)")
    # Ids active at once (1 and 257 share a low byte) are the multiplexing cases' business (§5.5):
    # a target that serializes requests would fail here for the wrong reason.
    where = "on one connection" if len(ctx.connections) == 1 else f"on {len(ctx.connections)} connections"
    return f"ids {', '.join(map(str, ids))} served one after another {where}"


APPLICATION_OUTPUT = (RecordType.STDOUT, RecordType.STDERR, RecordType.END_REQUEST)


@case(
    "FCGI-3.3-13",
    title="A request sent with the null id 0 (BEGIN, PARAMS, STDIN) is never served: no STDOUT or END_REQUEST with id 0",
    requirement="Management records have a requestId value of zero, also called the null request ID. "
    "Application records have a nonzero requestId.",
    level=Level.REQUIRED,
    catches=("begin-id-zero-served",),
    protocol_error=True,
)
def null_id_request_not_served(ctx: CaseContext) -> str:
    """A whole request with id 0 gets no STDOUT, STDERR or END_REQUEST; a plain request afterwards is served."""
    conn = ctx.connect()
    conn.send_records(request_records(MANAGEMENT_REQUEST_ID, ctx.probe_params()))
    wanted = [
        "the id-0 request ignored, answered with UNKNOWN_TYPE records (id 0), or the connection closed",
        "never STDOUT, STDERR or END_REQUEST (an id-0 request is not a request)",
    ]
    answers: list[str] = []
    while True:
        event = next_event(conn, ctx.quiet_wait)
        if event == TIMEOUT:
            break
        if not isinstance(event, Record):
            return f"closed the connection ({describe_event(event)}) after a request with id 0"
        if event.type in APPLICATION_OUTPUT:
            raise Violation(wanted, event.describe())
        answers.append(
            f"UNKNOWN_TYPE for {type_name(event.content[0])}"
            if event.type == RecordType.UNKNOWN_TYPE and event.content
            else event.describe()
        )
    reaction = "answered " + ", ".join(answers) if answers else "ignored it"
    # The connection must still be usable (or be closed now, if the target decided to close it).
    conn.send_records(request_records(1, ctx.probe_params()))
    while True:
        event = next_event(conn, ctx.answer_wait)
        if event == TIMEOUT:
            raise Violation(
                "END_REQUEST id=1 for a plain request after the id-0 request, or the connection closed", "Timeout"
            )
        if not isinstance(event, Record):
            return f"{reaction}, then closed the connection ({describe_event(event)}) at the next request"
        if event.request_id == MANAGEMENT_REQUEST_ID and event.type in APPLICATION_OUTPUT:
            raise Violation(wanted, event.describe())
        if event.request_id == 1 and event.type == RecordType.END_REQUEST:
            break
    return f"{reaction}; a plain request on the same connection was served afterwards"
