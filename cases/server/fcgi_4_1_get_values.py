"""§4.1 FCGI_GET_VALUES, FCGI_GET_VALUES_RESULT."""

from __future__ import annotations

import time

from harness.wire.capabilities import Capabilities
from harness.suite.case import CaseContext, case
from harness.suite.case_requests import begin_and_params, plain_request, request_records
from harness.wire.connection import ConnectionClosed, FcgiConnection, FcgiTimeout
from harness.wire.codec import (
    MANAGEMENT_REQUEST_ID,
    CodecError,
    ProtocolStatus,
    Record,
    RecordType,
    decode_end_request,
    decode_params,
    stream_records,
)
from harness.wire.probe_app import probe_query
from harness.verdicts import Level, Unsupported, Violation
from harness.suite.checks import TIMEOUT, describe_event, expect_record, next_event
from harness.suite.observations import GET_VALUES_ANSWERED, deviation

# How long the mid-request GET_VALUES of FCGI-4.1-5 waits before STDIN is sent anyway.
MID_REQUEST_ANSWER_WAIT = 0.5

STANDARD_NAMES = (b"FCGI_MAX_CONNS", b"FCGI_MAX_REQS", b"FCGI_MPXS_CONNS")
RESPONDS = (
    "The application responds by sending a record {FCGI_GET_VALUES_RESULT, 0, ...} with the values supplied."
)


def _ask(ctx: CaseContext, conn: FcgiConnection, names: tuple[bytes, ...]) -> list[tuple[bytes, bytes]]:
    """Send GET_VALUES, read the one GET_VALUES_RESULT, return its decoded pairs. One under another
    id than 0 is FCGI-4.1-1's deviation (told as also seen): its pairs are still read."""
    conn.get_values(names)
    record = expect_record(conn, RecordType.GET_VALUES_RESULT, None, ctx.seconds(3.0), expected="GET_VALUES_RESULT id=0")
    if record.request_id != MANAGEMENT_REQUEST_ID:
        deviation(GET_VALUES_ANSWERED, "GET_VALUES_RESULT id=0", record.describe(),
                  what=f"GET_VALUES_RESULT under request id {record.request_id}, not the null id")
    try:
        return decode_params(record.content)
    except CodecError as error:
        raise Violation("GET_VALUES_RESULT holding name-value pairs", f"{record.describe()}: {error}") from None


@case(
    "FCGI-4.1-1",
    title="GET_VALUES for the three standard names: one GET_VALUES_RESULT, id 0, decimal values",
    requirement=RESPONDS,
    level=Level.REQUIRED,
    catches=("get-values-stream", "get-values-ignored", "get-values-id-1"),
)
def get_values_standard_names(ctx: CaseContext) -> None:
    conn = ctx.connect()
    pairs = _ask(ctx, conn, STANDARD_NAMES)
    for name, value in pairs:
        if not value.isdigit():
            raise Violation(f"{name.decode('latin-1')} as a decimal string", repr(value.decode("latin-1")))
        if name == b"FCGI_MPXS_CONNS" and value not in (b"0", b"1"):
            raise Violation('FCGI_MPXS_CONNS "0" or "1"', repr(value.decode("latin-1")))
    # GET_VALUES_RESULT is a discrete record: nothing (an empty "terminator") follows it.
    # (Closing the connection after it is FCGI-3.5-5's finding, not this one's.)
    extra = conn.drain(ctx.seconds(0.3))
    if extra:
        raise Violation("no record after the one GET_VALUES_RESULT", f"{extra[0].describe()} after it")


@case(
    "FCGI-4.1-2",
    # A GET_VALUES never answered at all (checked plainly) is FCGI-4.1-1's deviation.
    prerequisites=("FCGI-4.1-1",),
    title="Unknown names (FCGI_FOO, MAX_CONNS) are omitted from GET_VALUES_RESULT",
    requirement="If the application doesn't understand a variable name that was included in the query, "
    "it omits that name from the response.",
    level=Level.REQUIRED,
    catches=("get-values-unknown-name-hang",),
)
def get_values_unknown_names_omitted(ctx: CaseContext) -> None:
    conn = ctx.connect()
    # MAX_CONNS without the FCGI_ prefix is what php's own test client asks for.
    pairs = _ask(ctx, conn, (b"FCGI_FOO", b"MAX_CONNS", b"FCGI_MPXS_CONNS"))
    unknown = [name for name, _ in pairs if name in (b"FCGI_FOO", b"MAX_CONNS")]
    if unknown:
        raise Violation("FCGI_FOO and MAX_CONNS omitted", f"{unknown[0].decode('latin-1')} in the result")


@case(
    "FCGI-4.1-3",
    # GET_VALUES answered at all.
    prerequisites=("FCGI-4.1-1",),
    title="GET_VALUES_RESULT holds only the names asked for",
    requirement=RESPONDS,
    level=Level.RECOMMENDED,
    catches=("get-values-stream",),
)
def get_values_only_asked_names(ctx: CaseContext) -> None:
    conn = ctx.connect()
    pairs = _ask(ctx, conn, (b"FCGI_MPXS_CONNS",))
    extra = [name.decode("latin-1") for name, _ in pairs if name != b"FCGI_MPXS_CONNS"]
    if extra:
        raise Violation("only FCGI_MPXS_CONNS (the one name asked for)", f"also {', '.join(extra)}")


@case(
    "FCGI-4.1-4",
    prerequisites=("FCGI-4.1-1",),
    title="An empty GET_VALUES gets an empty GET_VALUES_RESULT",
    requirement=RESPONDS,
    level=Level.REQUIRED,
    catches=("get-values-stream",),
)
def get_values_empty_query(ctx: CaseContext) -> None:
    conn = ctx.connect()
    pairs = _ask(ctx, conn, ())
    if pairs:
        raise Violation("GET_VALUES_RESULT with no pairs", f"{len(pairs)} pairs ({pairs[0][0].decode('latin-1')}, …)")


@case(
    "FCGI-4.1-5",
    # Requests and GET_VALUES on one KEEP_CONN connection, which stays open after each; GET_VALUES answered.
    prerequisites=("FCGI-3.5-2", "FCGI-3.5-5", "FCGI-4.1-1"),
    title="GET_VALUES at any time: before a request, between PARAMS and STDIN, between requests",
    requirement="An application may receive a FCGI_GET_VALUES record at any time.",
    level=Level.REQUIRED,
    # get-values-close (a close after GET_VALUES_RESULT) is FCGI-3.5-5's: it blocks this case.
    catches=("mgmt-mid-request-close",),
)
def get_values_any_time(ctx: CaseContext) -> str | None:
    """GET_VALUES before a request, while it waits for STDIN, and after it: each answered, the requests served."""
    conn = ctx.connect()
    _ask(ctx, conn, (b"FCGI_MPXS_CONNS",))
    _start_open_request(ctx, conn, 1)
    conn.note("request 1 is active: PARAMS ended, STDIN not yet sent")
    conn.get_values([b"FCGI_MPXS_CONNS"])
    # The app may legitimately write STDOUT for request 1 already. It may also answer only
    # once request 1 is done (how promptly is FCGI-4.1-7's question): after a short wait the
    # STDIN is sent, and the answer may then come before or after END_REQUEST id=1.
    answered = request_ended = stdin_sent = False
    note = None
    end_time = time.monotonic() + ctx.answer_wait
    while not (answered and request_ended):
        if not answered and not stdin_sent:
            wait = ctx.seconds(MID_REQUEST_ANSWER_WAIT)
        else:
            wait = max(end_time - time.monotonic(), 0.0)
        event = next_event(conn, wait)
        if event == TIMEOUT and not stdin_sent:
            _end_stdin(conn, 1)
            stdin_sent = True
            note = f"GET_VALUES sent mid-request was not answered within {wait:g}s; STDIN sent to let request 1 end"
            continue
        if isinstance(event, str):
            wanted = [] if answered else ["GET_VALUES_RESULT id=0 (during or right after request 1)"]
            wanted += [] if request_ended else ["END_REQUEST id=1 after the mid-request GET_VALUES"]
            raise Violation(wanted, describe_event(event))
        if event.type == RecordType.GET_VALUES_RESULT and event.request_id == MANAGEMENT_REQUEST_ID:
            answered = True
        elif event.request_id == 1 and event.type == RecordType.END_REQUEST:
            request_ended = True
            _expect_complete(event, "END_REQUEST id=1 protocolStatus=REQUEST_COMPLETE after the mid-request GET_VALUES")
            if not stdin_sent:
                conn.note("request 1 ended before its STDIN (allowed)")
                stdin_sent = True
        if answered and not stdin_sent:
            _end_stdin(conn, 1)
            stdin_sent = True
    _ask(ctx, conn, (b"FCGI_MPXS_CONNS",))
    plain_request(ctx, conn, 2, "END_REQUEST id=2 on the same connection")
    return note


def _expect_complete(record: Record, wanted: str) -> None:
    try:
        status = decode_end_request(record.content).protocol_status
    except ValueError:
        raise Violation([wanted, "an 8-byte END_REQUEST body"], record.describe()) from None
    if status != ProtocolStatus.REQUEST_COMPLETE:
        raise Violation(wanted, record.describe())


# -- FCGI-4.1-6: advertised values against behaviour -------------------------------------------

# Advertised limits above this are not exhausted (it would take too many sockets and too long);
# the note says they were not checked.
LIMIT_CHECK_MAX = 16
# How long an answer may take before the request counts as queued (not refused, not served yet).
QUEUE_WAIT = 0.5
# Once a slot is freed, how long a queued request may take to be served.
DEQUEUE_WAIT = 3.0


def _start_open_request(ctx: CaseContext, conn: FcgiConnection, request_id: int, *, keep_conn: bool = True) -> None:
    """A request that stays active: PARAMS ended, STDIN left open (a responder waits for its end)."""
    conn.send_records(begin_and_params(request_id, ctx.probe_params(), keep_conn=keep_conn))


def _send_whole_request(ctx: CaseContext, conn: FcgiConnection, request_id: int, *, keep_conn: bool = True) -> None:
    conn.send_records(request_records(request_id, ctx.probe_params(), keep_conn=keep_conn))


def _end_stdin(conn: FcgiConnection, request_id: int) -> None:
    conn.send_records(stream_records(RecordType.STDIN, request_id, b""))


def _outcome(conn: FcgiConnection, request_id: int, wait: float) -> str:
    """What became of a request within wait: a protocolStatus name, 'queued', or 'EOF'/'RST'.

    'REQUEST_COMPLETE' (served), 'OVERLOADED', 'CANT_MPX_CONN', 'UNKNOWN_ROLE', 'bad END_REQUEST'.
    """
    try:
        response = conn.read_response(request_id, wait)
    except FcgiTimeout:
        return "queued"
    except ConnectionClosed as closed:
        return "EOF" if closed.how == "eof" else "RST"
    if response.end is None:
        return "bad END_REQUEST"
    try:
        return ProtocolStatus(response.end.protocol_status).name
    except ValueError:
        return f"protocolStatus={response.end.protocol_status}"


def _shown(outcome: str) -> str:
    if outcome in ("EOF", "RST"):
        return describe_event(outcome) + " without END_REQUEST"
    if outcome == "queued":
        return TIMEOUT
    return f"END_REQUEST {outcome}"


def _check_multiplexing(ctx: CaseContext, caps: Capabilities) -> str:
    """MPXS_CONNS=1: a second request is served while the first is still open."""
    conn = ctx.connect("multiplexing: two requests at once")
    _start_open_request(ctx, conn, 1)
    _send_whole_request(ctx, conn, 2)
    wait = ctx.seconds(1.0)
    outcome = _outcome(conn, 2, wait)
    wanted = f"END_REQUEST id=2 REQUEST_COMPLETE while request 1 is still open (FCGI_MPXS_CONNS=1), within {wait:g}s"
    if outcome == "OVERLOADED" and caps.max_reqs is not None and caps.max_reqs < 2:
        note = "request 2 got OVERLOADED (FCGI_MAX_REQS < 2)"
    elif outcome == "queued":
        raise Violation(wanted, "Timeout: request 2 waits for request 1 (served one at a time)")
    elif outcome != "REQUEST_COMPLETE":
        raise Violation(wanted, _shown(outcome))
    else:
        note = "two concurrent requests served"
    _end_stdin(conn, 1)
    outcome = _outcome(conn, 1, ctx.seconds(DEQUEUE_WAIT))
    if outcome != "REQUEST_COMPLETE":
        raise Violation("END_REQUEST id=1 REQUEST_COMPLETE once its STDIN ends", _shown(outcome))
    conn.close()
    return note


def _check_no_multiplexing(ctx: CaseContext) -> str:
    """MPXS_CONNS=0: a second concurrent request is refused with CANT_MPX_CONN (or served, or waits)."""
    conn = ctx.connect("no multiplexing: a second request while one is open")
    _start_open_request(ctx, conn, 1)
    _send_whole_request(ctx, conn, 2)
    outcome = _outcome(conn, 2, ctx.seconds(QUEUE_WAIT))
    wanted = [
        "END_REQUEST id=2 CANT_MPX_CONN (FCGI_MPXS_CONNS=0)",
        "request 2 served (at once, or once request 1 has ended)",
    ]
    if outcome in ("CANT_MPX_CONN", "REQUEST_COMPLETE"):
        note = f"second concurrent request: {outcome}"
        _end_stdin(conn, 1)
        later = _outcome(conn, 1, ctx.seconds(DEQUEUE_WAIT))
        if later != "REQUEST_COMPLETE":
            raise Violation("END_REQUEST id=1 REQUEST_COMPLETE once its STDIN ends", _shown(later))
    elif outcome == "queued":
        _end_stdin(conn, 1)
        first = _outcome(conn, 1, ctx.seconds(DEQUEUE_WAIT))
        if first != "REQUEST_COMPLETE":
            raise Violation("END_REQUEST id=1 REQUEST_COMPLETE once its STDIN ends", _shown(first))
        later = _outcome(conn, 2, ctx.seconds(DEQUEUE_WAIT))
        if later not in ("CANT_MPX_CONN", "REQUEST_COMPLETE"):
            raise Violation(wanted, f"no answer while request 1 ran, then {_shown(later)}")
        note = f"second concurrent request: no answer until request 1 ended, then {later}"
    else:
        raise Violation(wanted, _shown(outcome))
    conn.close()
    return note


def _check_max_reqs(ctx: CaseContext, limit: int, multiplexes: bool) -> str:
    """FCGI_MAX_REQS=N: with N requests open, request N+1 gets OVERLOADED or waits for a free slot."""
    wanted = [
        f"request {limit + 1} (past FCGI_MAX_REQS={limit}): END_REQUEST OVERLOADED",
        f"request {limit + 1} served (at once, or once an earlier request ends)",
    ]
    if multiplexes:
        conn = ctx.connect(f"FCGI_MAX_REQS={limit}: {limit + 1} requests on one connection")
        held = [(conn, request_id) for request_id in range(1, limit + 1)]
        for _, request_id in held:
            _start_open_request(ctx, conn, request_id)
        extra, extra_id = conn, limit + 1
    else:
        held = []
        for index in range(limit):
            conn = ctx.connect(f"FCGI_MAX_REQS={limit}: open request {index + 1}")
            _start_open_request(ctx, conn, 1, keep_conn=False)
            held.append((conn, 1))
        extra, extra_id = ctx.connect(f"FCGI_MAX_REQS={limit}: request {limit + 1}"), 1
    _send_whole_request(ctx, extra, extra_id, keep_conn=multiplexes)
    outcome = _outcome(extra, extra_id, ctx.seconds(QUEUE_WAIT))
    if outcome == "queued":
        first_conn, first_id = held[0]
        _end_stdin(first_conn, first_id)  # frees a slot: request 1 ends (its connection too, without KEEP_CONN)
        if not multiplexes:
            # Done with that connection once request 1 is answered: closing it frees the slot for a
            # server that serves one connection at a time (php-cgi -b waits for the web server's close).
            _outcome(first_conn, first_id, ctx.seconds(DEQUEUE_WAIT))
            first_conn.close()
        later = _outcome(extra, extra_id, ctx.seconds(DEQUEUE_WAIT))
        if later != "REQUEST_COMPLETE":
            raise Violation(wanted, f"no answer while {limit} requests were open, then (request 1 ended) {_shown(later)}")
        note = f"request {limit + 1} waited for a free slot"
    elif outcome == "OVERLOADED":
        note = f"request {limit + 1} got OVERLOADED"
    elif outcome == "REQUEST_COMPLETE":
        note = f"request {limit + 1} served (more than FCGI_MAX_REQS={limit})"
    else:
        raise Violation(wanted, _shown(outcome))
    for conn, _ in held:
        conn.close()
    extra.close()
    return note


def _check_max_conns(ctx: CaseContext, limit: int) -> str:
    """FCGI_MAX_CONNS=N: connection N+1 gets OVERLOADED or waits until a connection closes, never a silent close."""
    wanted_refused = "END_REQUEST OVERLOADED on a connection past the limit"
    opened: list[FcgiConnection] = []
    for index in range(1, limit + 2):
        conn = ctx.connect(f"FCGI_MAX_CONNS={limit}: connection {index}")
        _send_whole_request(ctx, conn, 1)
        outcome = _outcome(conn, 1, ctx.seconds(QUEUE_WAIT))
        if outcome == "REQUEST_COMPLETE":
            opened.append(conn)
            continue
        wanted = [wanted_refused, "the request served once an earlier connection closes"]
        if outcome == "OVERLOADED":
            note = f"connection {index} got OVERLOADED"
        elif outcome == "queued" and opened:
            opened.pop(0).close()  # frees a connection slot
            later = _outcome(conn, 1, ctx.seconds(DEQUEUE_WAIT))
            if later != "REQUEST_COMPLETE":
                raise Violation(
                    wanted, f"no answer on connection {index} while {len(opened) + 1} were open, then {_shown(later)}"
                )
            note = f"connection {index} waited until another closed"
        else:
            raise Violation(wanted, f"connection {index} of {limit + 1}: {_shown(outcome)}")
        break
    else:
        note = f"{limit + 1} connections served (more than FCGI_MAX_CONNS={limit})"
    for conn in opened:
        conn.close()
    return note


@case(
    "FCGI-4.1-6",
    title="Advertised values match behaviour: MPXS_CONNS (concurrent requests served or CANT_MPX_CONN), "
    "MAX_REQS and MAX_CONNS (one more gets OVERLOADED or waits, never a close or a hang)",
    requirement="FCGI_MAX_CONNS: The maximum number of concurrent transport connections this application will accept. "
    "FCGI_MAX_REQS: The maximum number of concurrent requests this application will accept. "
    'FCGI_MPXS_CONNS: "0" if this application does not multiplex connections '
    '(i.e. handle concurrent requests over each connection), "1" otherwise.',
    level=Level.RECOMMENDED,
    catches=("overloaded-silent-close", "mpx-serialized"),
    reference_args=("--max-reqs", "4", "--max-conns", "4"),
    timeout=15.0,
)
def advertised_values_hold(ctx: CaseContext) -> str:
    """Puts the target to its advertised FCGI_MPXS_CONNS, FCGI_MAX_REQS and FCGI_MAX_CONNS."""
    caps = ctx.capabilities
    if not caps.answered:
        raise Unsupported(f"nothing advertised to check: {caps.describe()}")
    notes: list[str] = []
    if caps.mpxs_conns == 1:
        notes.append(_check_multiplexing(ctx, caps))
    elif caps.mpxs_conns == 0:
        notes.append(_check_no_multiplexing(ctx))
    else:
        notes.append("FCGI_MPXS_CONNS not advertised")
    for name, value in (("FCGI_MAX_REQS", caps.max_reqs), ("FCGI_MAX_CONNS", caps.max_conns)):
        if value is None or value < 1:
            notes.append(f"{name} not advertised" if value is None else f"{name}={value} not checked")
        elif value > LIMIT_CHECK_MAX:
            notes.append(f"{name}={value} not exhausted (above {LIMIT_CHECK_MAX})")
        elif name == "FCGI_MAX_REQS":
            notes.append(_check_max_reqs(ctx, value, caps.mpxs_conns == 1))
        else:
            notes.append(_check_max_conns(ctx, value))
    if caps.mpxs_conns is None and caps.max_reqs is None and caps.max_conns is None:
        raise Unsupported(f"none of the three values advertised ({caps.describe()})")
    return "; ".join(notes)


# -- FCGI-4.1-7: the library answers, not the application proper --------------------------------

BUSY_MS = 1500
LATENCY = 0.5


def _late_answer(ctx: CaseContext, conn: FcgiConnection, sent: float) -> str:
    """After the wait: when GET_VALUES_RESULT came, waiting until the busy request has surely ended."""
    until = sent + BUSY_MS / 1000.0 + ctx.answer_wait  # the probe sleeps BUSY_MS, unscaled
    while True:
        event = next_event(conn, max(until - time.monotonic(), 0.0))
        if isinstance(event, str):
            return "; no GET_VALUES_RESULT at all"
        if event.type == RecordType.GET_VALUES_RESULT:
            return f"; GET_VALUES_RESULT came after {(time.monotonic() - sent) * 1000:.0f} ms"


@case(
    "FCGI-4.1-7",
    title=f"GET_VALUES while a request is busy is answered within {LATENCY:g} s, before that request ends",
    requirement="An application may receive a FCGI_GET_VALUES record at any time. "
    "The application's response should not involve the application proper but only the FastCGI library.",
    level=Level.RECOMMENDED,
    # An answer under another id is still an answer; one that never comes is FCGI-4.1-1's deviation.
    prerequisites=("FCGI-4.1-1",),
    catches=("get-values-after-requests",),
)
def get_values_while_busy(ctx: CaseContext) -> str:
    """GET_VALUES while request 1 is busy is answered in time, before END_REQUEST id=1."""
    conn = ctx.connect()
    if ctx.has_probe_app:
        # The application proper is busy (sleeping BUSY_MS) with all of its input read.
        conn.send_records(request_records(1, ctx.probe_params(probe_query(delay=BUSY_MS))))
        busy = f"request 1 busy for {BUSY_MS} ms"
    else:
        _start_open_request(ctx, conn, 1)
        busy = "request 1 waiting for its STDIN"
    conn.note(busy)
    conn.get_values([b"FCGI_MPXS_CONNS"])
    sent = time.monotonic()
    wait = ctx.seconds(LATENCY)
    wanted = f"GET_VALUES_RESULT id=0 within {wait:g}s while {busy}"
    while True:
        event = next_event(conn, max(sent + wait - time.monotonic(), 0.0))
        if event == TIMEOUT:
            # How late it came (if at all) is the evidence; an answer that never comes is FCGI-4.1-1's.
            raise Violation(wanted, "Timeout" + _late_answer(ctx, conn, sent))
        if isinstance(event, str):
            raise Violation(wanted, describe_event(event))
        if event.type == RecordType.GET_VALUES_RESULT:
            if event.request_id != MANAGEMENT_REQUEST_ID:
                deviation(GET_VALUES_ANSWERED, "GET_VALUES_RESULT id=0", event.describe(),
                          what=f"GET_VALUES_RESULT under request id {event.request_id}, not the null id")
            return f"answered in {(time.monotonic() - sent) * 1000:.0f} ms while {busy}"
        if event.type == RecordType.END_REQUEST and event.request_id == 1:
            if not ctx.has_probe_app:
                # Request 1 was to be kept busy by its STDIN held back: the target answered it without
                # that STDIN, so no request was busy when the GET_VALUES came.
                raise Unsupported(
                    f"no request could be kept busy: the target answered request 1 ({event.describe()}) without "
                    "waiting for its STDIN, and without the probe app (delay=) nothing else keeps it busy"
                )
            raise Violation(wanted, f"{event.describe()} before any GET_VALUES_RESULT (answered only between requests)")
