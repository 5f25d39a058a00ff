"""§5.5 FCGI_END_REQUEST: its body, the three rejections (CANT_MPX_CONN, OVERLOADED; UNKNOWN_ROLE is
FCGI-5.1-2), its place as the last record of a request, and multiplexing as advertised (App. B.4).

Capability-driven: FCGI-5.5-2 applies to targets that do not multiplex (FCGI_MPXS_CONNS=0),
FCGI-5.5-5 to those that do (=1), FCGI-5.5-3 to targets advertising a small FCGI_MAX_REQS or
FCGI_MAX_CONNS; the others report unsupported. Limits that are not advertised cannot be found
from outside without exhausting the target, so they are not probed.
"""

from __future__ import annotations

import time

from harness.suite.case import CaseContext, case
from harness.suite.case_requests import (
    begin_and_params,
    begin_record,
    plain_request,
    request_records,
    start_open_stdin,
)
from harness.wire.connection import ConnectionClosed, FcgiConnection, ReadTimeout, Response
from harness.wire.codec import (
    EndRequest,
    ProtocolStatus,
    Record,
    RecordType,
    decode_end_request,
    encode_params,
    encode_record,
    stream_records,
)
from harness.wire.probe_app import probe_query
from harness.verdicts import Level, RecommendationMissed, Unsupported, Violation
from harness.suite.checks import (
    TIMEOUT,
    describe_event,
    expect_end_request,
    expect_probe_report,
    expect_stdin_received,
    next_event,
    read_response,
)

PARTIAL_BODY = b"the first part of a body"
PROTOCOL_STATUSES = tuple(int(s) for s in ProtocolStatus)


def _start_open_stdin(ctx: CaseContext, conn: FcgiConnection, request_id: int) -> None:
    """BEGIN, PARAMS, part of STDIN: the request is in flight until _finish_stdin."""
    start_open_stdin(conn, request_id, ctx.post_params(2 * len(PARTIAL_BODY)), PARTIAL_BODY)


def _finish_stdin(conn: FcgiConnection, request_id: int) -> None:
    conn.send_records(stream_records(RecordType.STDIN, request_id, PARTIAL_BODY))


def _start_open_params(ctx: CaseContext, conn: FcgiConnection, request_id: int) -> None:
    """BEGIN and the params without the empty PARAMS record: no responder may answer yet (§6.2),
    so the request stays active until _finish_params."""
    params = encode_params(ctx.probe_params())
    conn.send_records([begin_record(request_id), encode_record(RecordType.PARAMS, request_id, params)])


def _finish_params(conn: FcgiConnection, request_id: int) -> None:
    conn.send_records([encode_record(RecordType.PARAMS, request_id, b"")] + stream_records(RecordType.STDIN, request_id, b""))


def _status_name(status: int) -> str:
    try:
        return ProtocolStatus(status).name
    except ValueError:
        return str(status)


def _end_of(response: Response) -> EndRequest:
    """The decoded END_REQUEST of a response (an undecodable one is a violation)."""
    last = response.records[-1]
    if response.end is None:
        raise Violation(f"END_REQUEST id={response.request_id} with an 8-byte body", last.describe())
    return response.end


def _await_end(conn: FcgiConnection, request_id: int, timeout: float) -> Response | str:
    """The response for request_id, or 'Timeout' / 'EOF' / 'RST'."""
    try:
        return conn.read_response(request_id, timeout)
    except ReadTimeout:
        return TIMEOUT
    except ConnectionClosed as closed:
        return "EOF" if closed.how == "eof" else "RST"


@case(
    "FCGI-5.5-1",
    # More than one request on a KEEP_CONN connection: one aborted (answered: FCGI-5.4-1), one of an
    # unknown role (rejected: FCGI-5.1-2).
    prerequisites=("FCGI-3.5-2", "FCGI-5.1-2", "FCGI-5.4-1"),
    title="END_REQUEST bodies are 8 bytes with a defined protocolStatus: completed, rejected and aborted requests",
    requirement="typedef struct { unsigned char appStatusB3; unsigned char appStatusB2; unsigned char appStatusB1; "
    "unsigned char appStatusB0; unsigned char protocolStatus; unsigned char reserved[3]; } FCGI_EndRequestBody;",
    level=Level.REQUIRED,
    catches=("end-request-short-body",),
)
def end_request_body_shape(ctx: CaseContext) -> str | None:
    """END_REQUEST of a completed, a rejected and an aborted request: 8 bytes, the right protocolStatus."""
    conn = ctx.connect()
    conn.send_records(request_records(1, ctx.probe_params()))
    responses = [("a completed request", ProtocolStatus.REQUEST_COMPLETE, read_response(conn, 1, ctx.answer_wait))]
    conn = ctx.connection_for_next_request(conn)  # the bodies are judged, not the connection
    conn.send_records(request_records(2, ctx.probe_params(), role=0xFFFF))
    responses.append(("a request for role 0xFFFF", ProtocolStatus.UNKNOWN_ROLE, read_response(conn, 2, ctx.answer_wait)))
    conn = ctx.connection_for_next_request(conn)
    _start_open_stdin(ctx, conn, 3)
    conn.abort(3)
    responses.append(("an aborted request", ProtocolStatus.REQUEST_COMPLETE, read_response(conn, 3, ctx.answer_wait)))
    odd_reserved = []
    for what, status, response in responses:
        end = response.records[-1]
        wanted = f"END_REQUEST id={response.request_id} for {what}: an 8-byte body, protocolStatus {status.name}"
        if len(end.content) != 8:
            raise Violation(wanted, f"a {len(end.content)}-byte body: {end.content.hex()}")
        decoded = decode_end_request(end.content)
        if decoded.protocol_status != status:
            raise Violation(wanted, end.describe())
        if end.content[5:] != b"\0\0\0":
            odd_reserved.append(f"{what}: reserved bytes {end.content[5:].hex()}")
    return "; ".join(odd_reserved) or None


@case(
    "FCGI-5.5-2",
    # More than one request on a KEEP_CONN connection.
    prerequisites=("FCGI-3.5-2",),
    title="FCGI_MPXS_CONNS=0: a second concurrent request gets CANT_MPX_CONN (or waits), and the first completes",
    requirement="FCGI_CANT_MPX_CONN: rejecting a new request. This happens when a Web server sends concurrent "
    "requests over one connection to an application that is designed to process one request at a time per connection.",
    level=Level.REQUIRED,
    catches=("cant-mpx-close",),
    reference_args=("--no-mpx",),
)
def cant_mpx_conn(ctx: CaseContext) -> str | None:
    """Without multiplexing, a second active request gets CANT_MPX_CONN (or waits) and the first completes."""
    capabilities = ctx.capabilities
    if capabilities.mpxs_conns == 1:
        raise Unsupported("the target multiplexes (FCGI_MPXS_CONNS=1)")
    conn = ctx.connect()
    _start_open_params(ctx, conn, 1)
    conn.note("request 1 active (PARAMS not yet ended): request 2 begins on the same connection")
    conn.send_records(request_records(2, ctx.probe_params()))
    allowed = [
        "END_REQUEST id=2 CANT_MPX_CONN, then request 1 completes",
        "request 2 held until request 1 has ended, then served",
    ]
    second = _await_end(conn, 2, ctx.seconds(1.0))
    if second in ("EOF", "RST"):
        raise Violation(allowed, f"{describe_event(second)} after BEGIN_REQUEST id=2")
    _finish_params(conn, 1)
    first = _await_end(conn, 1, ctx.answer_wait)
    if not isinstance(first, Response):
        raise Violation([f"{allowed[0]}: END_REQUEST id=1", allowed[1]], describe_event(first))
    expect_end_request(first)
    note = None
    if second == TIMEOUT:
        second = _await_end(conn, 2, ctx.answer_wait)
        if not isinstance(second, Response):
            raise Violation(allowed, f"END_REQUEST id=1, then for id=2: {describe_event(second)}")
        note = "request 2 was held until request 1 had ended"
    status = _end_of(second).protocol_status
    if status == ProtocolStatus.OVERLOADED:
        raise RecommendationMissed(allowed, "END_REQUEST id=2 OVERLOADED (CANT_MPX_CONN says why)")
    if status == ProtocolStatus.REQUEST_COMPLETE and note is None:
        if capabilities.mpxs_conns is None:
            raise Unsupported("the target served both requests at once: it multiplexes (FCGI_MPXS_CONNS not advertised)")
        note = "the target served both requests at once although it advertises FCGI_MPXS_CONNS=0"
    elif status not in (ProtocolStatus.CANT_MPX_CONN, ProtocolStatus.REQUEST_COMPLETE):
        raise Violation(allowed, second.records[-1].describe())
    plain_request(ctx, conn, 3, "END_REQUEST id=3 on the same connection")
    return note


SMALL_LIMIT = 64


@case(
    "FCGI-5.5-3",
    title="One request past FCGI_MAX_REQS (or FCGI_MAX_CONNS) gets OVERLOADED or waits its turn, never a close or hang",
    requirement="FCGI_OVERLOADED: rejecting a new request. This happens when the application runs out of some "
    "resource, e.g. database connections.",
    level=Level.RECOMMENDED,
    catches=("overloaded-silent-close",),
    reference_args=("--max-reqs", "4"),
    timeout=15.0,
)
def overloaded_or_queued(ctx: CaseContext) -> str:
    """One request past FCGI_MAX_REQS (or FCGI_MAX_CONNS) gets OVERLOADED or waits its turn."""
    capabilities = ctx.capabilities
    if capabilities.max_reqs is not None and capabilities.max_reqs <= SMALL_LIMIT:
        name, limit = "FCGI_MAX_REQS", capabilities.max_reqs
        one_connection = capabilities.mpxs_conns == 1
    elif capabilities.max_conns is not None and capabilities.max_conns <= SMALL_LIMIT:
        name, limit, one_connection = "FCGI_MAX_CONNS", capabilities.max_conns, False
    else:
        raise Unsupported(f"no FCGI_MAX_REQS or FCGI_MAX_CONNS of at most {SMALL_LIMIT} advertised ({capabilities.describe()})")
    count = limit + 1
    if one_connection:
        shared = ctx.connect(f"{count} requests")
        conns = [shared] * count
        ids = list(range(1, count + 1))
    else:
        conns = [ctx.connect(f"request {n}") for n in range(1, count + 1)]
        ids = [1] * count
    for conn, request_id in zip(conns, ids):
        _start_open_params(ctx, conn, request_id)
    last_conn, last_id = conns[-1], ids[-1]
    last_conn.note(f"request {count} is one past {name}={limit}")
    allowed = [f"END_REQUEST for request {count} OVERLOADED", f"request {count} held, then served once the others end"]
    last = _await_end(last_conn, last_id, ctx.seconds(0.5))
    if last in ("EOF", "RST"):
        raise Violation(allowed, f"{describe_event(last)} for request {count}")
    for number, (conn, request_id) in enumerate(zip(conns[:-1], ids[:-1]), start=1):
        _finish_params(conn, request_id)
        response = _await_end(conn, request_id, ctx.answer_wait)
        wanted = f"END_REQUEST for request {number} of the {limit} within {name} once its PARAMS and STDIN ended"
        if not isinstance(response, Response):
            raise Violation(wanted, describe_event(response))
        if not one_connection:
            conn.close()  # as a web server whose client went away: room for the held connection
    if isinstance(last, Response):
        status = _end_of(last).protocol_status
        if status == ProtocolStatus.OVERLOADED:
            return f"request {count} (past {name}={limit}) got OVERLOADED"
        if status != ProtocolStatus.REQUEST_COMPLETE:
            raise Violation(allowed, last.records[-1].describe())
        return f"request {count} (past {name}={limit}) was served ({_status_name(status)})"
    _finish_params(last_conn, last_id)
    last = _await_end(last_conn, last_id, ctx.answer_wait)
    if not isinstance(last, Response):
        raise Violation(allowed, f"request {count}: {describe_event(last)} after the others ended")
    status = _end_of(last).protocol_status
    if status not in (ProtocolStatus.REQUEST_COMPLETE, ProtocolStatus.OVERLOADED):
        raise Violation(allowed, last.records[-1].describe())
    return f"request {count} (past {name}={limit}) was held, then answered {_status_name(status)}"


@case(
    "FCGI-5.5-4",
    # More than one request on a KEEP_CONN connection, one of them aborted (answered: FCGI-5.4-1).
    prerequisites=("FCGI-3.5-2", "FCGI-5.4-1"),
    title="END_REQUEST is the last record of its request: nothing for the id follows (completed, long, aborted)",
    requirement="The application sends a FCGI_END_REQUEST record to terminate a request, either because the "
    "application has processed the request or because the application has rejected the request.",
    level=Level.REQUIRED,
    catches=("end-before-stdout",),
)
def end_request_is_last(ctx: CaseContext) -> None:
    """Nothing for an id follows its END_REQUEST (a completed, a long and an aborted request)."""
    conn = ctx.connect()
    seen: list[Record] = []

    def until_end(request_id: int) -> None:
        while True:
            event = next_event(conn, ctx.answer_wait)
            if not isinstance(event, Record):
                raise Violation(f"END_REQUEST id={request_id}", describe_event(event))
            seen.append(event)
            if event.type == RecordType.END_REQUEST and event.request_id == request_id:
                return

    query = probe_query(out=300000, err="fcgispec") if ctx.has_probe_app else ""
    for request_id in (1, 2):
        conn.send_records(request_records(request_id, ctx.probe_params(query if request_id == 2 else "")))
        until_end(request_id)
    _start_open_stdin(ctx, conn, 3)
    conn.abort(3)
    until_end(3)
    seen.extend(conn.drain(ctx.seconds(0.3)))
    ended: set[int] = set()
    for index, record in enumerate(seen):
        if record.request_id in ended:
            raise Violation(
                f"nothing for id={record.request_id} after its END_REQUEST",
                f"{record.describe()} (record #{index + 1} received)",
            )
        if record.type == RecordType.END_REQUEST:
            ended.add(record.request_id)


CONCURRENT = 100
# Without a probe app, this many of the concurrent answers are compared with their request sent alone.
COMPARED_CONCURRENT = 3


@case(
    "FCGI-5.5-5",
    # More than one request on a KEEP_CONN connection.
    prerequisites=("FCGI-3.5-2", "FCGI-3.3-10"),
    title=f"FCGI_MPXS_CONNS=1: App. B.4 (two interleaved requests answered out of order), then {CONCURRENT} concurrent ids",
    requirement="FCGI_MPXS_CONNS: \"0\" if this application does not multiplex connections (i.e. handle concurrent "
    "requests over each connection), \"1\" otherwise.",
    level=Level.REQUIRED,
    catches=("mpx-serialized",),
    timeout=15.0,
)
def multiplexed_requests(ctx: CaseContext) -> None:
    """With multiplexing: App. B.4's two interleaved requests, then concurrent ids ended in reverse order."""
    capabilities = ctx.capabilities
    if capabilities.mpxs_conns != 1:
        raise Unsupported(f"the target does not advertise FCGI_MPXS_CONNS=1 ({capabilities.describe()})")
    conn = ctx.connect()
    marker = "FCGISPEC_REQUEST"
    params_2 = encode_params(ctx.probe_params(extra=[(marker, "two")]))
    conn.note("App. B.4: request 1 begins first and stays unfinished (STDIN open); request 2 interleaved")
    conn.send_records(
        begin_and_params(1, ctx.post_params(2 * len(PARTIAL_BODY), [(marker, "one")]))
        + [begin_record(2), encode_record(RecordType.PARAMS, 2, params_2)]
        + stream_records(RecordType.STDIN, 1, PARTIAL_BODY, terminate=False)
        + [encode_record(RecordType.PARAMS, 2, b"")]
        + stream_records(RecordType.STDIN, 2, b"")
    )
    second = _await_end(conn, 2, ctx.seconds(3.0))
    if not isinstance(second, Response):
        raise Violation(
            "END_REQUEST id=2 while request 1 (begun first, STDIN open) is still in flight",
            describe_event(second) + (" (requests served one at a time?)" if second == TIMEOUT else ""),
        )
    expect_end_request(second)
    _finish_stdin(conn, 1)
    first = read_response(conn, 1, ctx.answer_wait)
    expect_end_request(first)
    for response in (first, second):
        _expect_own_ids(response, {1, 2})
    if ctx.has_probe_app:
        for response, name in ((first, b"one"), (second, b"two")):
            report = expect_probe_report(response)
            if report.param(marker) != name:
                raise Violation(
                    f"request {response.request_id}'s own params ({marker}={name.decode()})",
                    f"{marker}={report.param(marker)!r}",
                )
        expect_stdin_received(expect_probe_report(first), PARTIAL_BODY * 2, "as two STDIN records")
    else:
        # Without a probe app: each answer is the one to the same request sent alone.
        ctx.expect_same_answer(
            first, "multiplexing it with request 2 (App. B.4)",
            ctx.post_params(2 * len(PARTIAL_BODY), [(marker, "one")]), PARTIAL_BODY * 2,
        )
        ctx.expect_same_answer(second, "multiplexing it with request 1 (App. B.4)", ctx.probe_params(extra=[(marker, "two")]))

    count = min(CONCURRENT, capabilities.max_reqs or CONCURRENT)
    ids = list(range(3, 3 + count))
    conn = ctx.connection_for_next_request(conn)  # multiplexing is judged, not the close after App. B.4
    conn.note(f"{count} requests begun, each with STDIN open; then their STDIN ends in reverse order")
    pieces: list[bytes] = []
    for request_id in ids:
        body = _body(request_id)
        pieces += request_records(request_id, ctx.post_params(len(body)), body[:4], terminate_stdin=False)
    conn.send_records(pieces)
    conn.send_records(
        [r for request_id in reversed(ids) for r in stream_records(RecordType.STDIN, request_id, _body(request_id)[4:])]
    )
    until = time.monotonic() + ctx.answer_wait
    for request_id in reversed(ids):
        response = read_response(
            conn, request_id, max(until - time.monotonic(), 0.0), expected=f"END_REQUEST for each of {count} concurrent ids"
        )
        expect_end_request(response)
        _expect_own_ids(response, set(ids))
        if ctx.has_probe_app:
            expect_stdin_received(expect_probe_report(response), _body(request_id), f"for request {request_id}")
        elif request_id in ids[-COMPARED_CONCURRENT:]:  # each needs a plain answer of its own: a few suffice
            body = _body(request_id)
            ctx.expect_same_answer(response, f"{count} concurrent requests on one connection", ctx.post_params(len(body)), body)


def _body(request_id: int) -> bytes:
    return f"body of request {request_id:05d}".encode()


def _expect_own_ids(response: Response, active: set[int]) -> None:
    for record in response.other_records:
        if record.request_id not in active:
            raise Violation(f"records tagged with the active ids {min(active)}..{max(active)}", record.describe())
