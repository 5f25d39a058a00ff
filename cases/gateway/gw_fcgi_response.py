"""What the application sends back: STDOUT however it is cut into records, padding, STDERR, the end
of the request, records the gateway must ignore, protocol statuses, and a large response to a
slow reader (spec §3.3, §4.2, §5.3, §5.5)."""

from __future__ import annotations

from harness.gateways.application import AppConn, AppRequest, answer_each
from harness.gateways.cases import gateway_case
from harness.gateways.checks import expect_answer, expect_not_success, sha
from harness.verdicts import Level, Observed, Violation
from harness.wire.codec import ProtocolStatus, Record, RecordType, unknown_type_body

FAMILY = "What the application sends back (spec §3.3, §4.2, §5.3, §5.5)"
FAMILY_ORDER = 6

HEAD = b"Content-Type: text/plain\r\n\r\n"
BODY = bytes(range(32, 127)) * 40  # 3800 bytes whose every offset is visible in a diff


def _get(ctx, answer, path: str = "/response", **request_options):
    ctx.start(answer_each(answer))
    return ctx.request("GET", path, **request_options)


@gateway_case(
    "GW-FCGI-3.3-10",
    title="a response body in 1-byte STDOUT records arrives whole",
    requirement='Spec §3.3: "The contentData components of a stream\'s records, when concatenated, form a byte '
    'sequence; this byte sequence is the value of the stream. Therefore the value of a stream is independent of how '
    'many records it contains or how its bytes are divided among the non-empty records."',
    level=Level.REQUIRED,
    bugs=("first-body-record-only",),
    allowed=("the body intact",),
)
def one_byte_records(ctx) -> str:
    def answer(conn: AppConn, request: AppRequest) -> None:
        conn.stdout(request, HEAD)
        conn.stdout(request, BODY[:600], chunk=1)
        conn.stdout(request, BODY[600:])
        conn.end(request)

    expect_answer(_get(ctx, answer), "GET", body=BODY)
    return "600 one-byte STDOUT records and the rest: body intact"


@gateway_case(
    "GW-FCGI-3.3-11",
    title="the CGI header block split across STDOUT records, inside a header line and inside the blank line",
    requirement='Spec §3.3: "the value of a stream is independent of how many records it contains or how its bytes '
    'are divided among the non-empty records"; the header block of the CGI response (RFC 3875 §6.2) is part of the '
    'STDOUT stream.',
    level=Level.REQUIRED,
    bugs=("header-split-misread",),
    allowed=("status, headers and body as one unsplit answer would give them",),
)
def header_block_split(ctx) -> str:
    head = b"Status: 201 Created\r\nContent-Type: text/plain\r\nX-Split: across-records\r\n\r\n"

    def answer(conn: AppConn, request: AppRequest) -> None:
        conn.stdout(request, head + b"split body", chunk=[3, 9, 17, 1, 30, 1, 1])
        conn.end(request)

    got = _get(ctx, answer)
    expect_answer(got, "GET", status=201, body=b"split body")
    if got.header("X-Split") != "across-records":
        raise Violation("X-Split: across-records", f"X-Split: {got.header('X-Split')!r}")
    return "header block in 8 records: status, header and body intact"


@gateway_case(
    "GW-FCGI-3.3-12",
    title="255 bytes of padding on every record the application sends are skipped",
    requirement='Spec §3.3: "The protocol allows senders to pad the records they send, and requires receivers to '
    'interpret the paddingLength and skip the paddingData." and "paddingData: Between 0 and 255 bytes of data, '
    'which are ignored."',
    level=Level.REQUIRED,
    bugs=("padding-misread",),
    allowed=("the body intact, no padding byte in it",),
)
def padding_255(ctx) -> str:
    def answer(conn: AppConn, request: AppRequest) -> None:
        conn.stdout(request, HEAD + BODY, chunk=500, padding=255)
        conn.send_records([Record(RecordType.STDOUT, request.request_id, b"", b"\0" * 255),
                           Record(RecordType.END_REQUEST, request.request_id, b"\0" * 8, b"\0" * 255)])
        request.ended_at = request.ended_at or __import__("time").monotonic()

    expect_answer(_get(ctx, answer), "GET", body=BODY)
    return "every record with 255 bytes of padding: body intact"


STDERR_SENTENCE = ('Spec §6.1: "role protocols that use both FCGI_STDOUT and FCGI_STDERR allow these two streams to '
                   'be interleaved", and FCGI_STDERR is used "just the way stderr is used in conventional applications '
                   'programming: to report application-level errors". It is not part of the response: the response '
                   'stays what STDOUT says.')


@gateway_case(
    "GW-FCGI-5.3-5",
    title="STDERR interleaved with STDOUT, 100 KiB of it, leaves the response intact",
    requirement=STDERR_SENTENCE,
    level=Level.REQUIRED,
    bugs=("stderr-as-error",),
    allowed=("the STDOUT response, complete; the STDERR text logged or dropped",),
)
def stderr_interleaved(ctx) -> str:
    def answer(conn: AppConn, request: AppRequest) -> None:
        conn.stderr(request, b"warning: before the head\n")
        conn.stdout(request, HEAD + BODY[:1000])
        conn.stderr(request, b"E" * 100 * 1024, chunk=8000)
        conn.stdout(request, BODY[1000:])
        conn.stderr(request, b"")
        conn.end(request)

    expect_answer(_get(ctx, answer), "GET", body=BODY)
    return "100 KiB of STDERR around STDOUT: response intact"


@gateway_case(
    "GW-FCGI-5.5-1",
    title="END_REQUEST ends the response even when the empty STDOUT record is missing before it",
    requirement='Spec §5.5: "The application sends a FCGI_END_REQUEST record to terminate a request, either because '
    'the application has processed the request or because the application has rejected the request."',
    level=Level.REQUIRED,
    bugs=("needs-stdout-terminator",),
    allowed=("the response complete, without waiting for a timeout",),
)
def end_without_stdout_terminator(ctx) -> str:
    def answer(conn: AppConn, request: AppRequest) -> None:
        conn.stdout(request, HEAD + BODY)
        conn.end(request, close_streams=False)

    got = _get(ctx, answer, timeout=ctx_timeout_guess())
    expect_answer(got, "GET", body=BODY)
    return "END_REQUEST without the empty STDOUT: response complete"


def ctx_timeout_guess() -> float:
    """Well under a gateway's read timeout: END_REQUEST must end the response, not the timer."""
    return 3.0


@gateway_case(
    "GW-FCGI-3.3-13",
    title="STDOUT after END_REQUEST is neither in this response nor in the next one",
    requirement='Spec §3.3: "A request ID R becomes active when the application receives a record '
    '{FCGI_BEGIN_REQUEST, R, ...} and becomes inactive when the application sends a record {FCGI_END_REQUEST, R, '
    '...} to the Web server." and "requestId: Identifies the FastCGI request to which the record belongs": output '
    'after END_REQUEST belongs to no request, least of all the next one.',
    level=Level.REQUIRED,
    bugs=("garbage-after-end",),
    allowed=("both responses intact; the late output dropped, or the connection closed",),
)
def output_after_end(ctx) -> str:
    def answer(conn: AppConn, request: AppRequest) -> None:
        conn.respond(request, b"answer " + str(request.ordinal).encode())
        # A moment later, so that it reaches a connection the gateway has already put back to rest.
        conn.sleep(0.05)
        conn.send_records([Record(RecordType.STDOUT, request.request_id, b"LATE OUTPUT AFTER END_REQUEST\r\n")])

    ctx.start(answer_each(answer))
    conn = ctx.http()
    first = ctx.request("GET", "/late/1", conn=conn)
    ctx.sleep(0.2)
    second = ctx.request("GET", "/late/2", conn=conn)
    for name, got in (("GET 1", first), ("GET 2", second)):
        if b"LATE" in got.body or b"LATE" in got.head:
            raise Violation(f"{name}: no late output", f"{name}: {got.describe()}: {got.body[:60]!r}")
    expect_answer(first, "GET 1", body=b"answer 1")
    if not (second.complete and second.status == 200 and second.body.startswith(b"answer ")):
        raise Violation("GET 2: the application's answer", f"GET 2: {second.describe()}: {second.body[:60]!r}")
    return "late output dropped"


@gateway_case(
    "GW-FCGI-3.3-14",
    title="STDOUT records for another request id never become part of the response",
    requirement='Spec §3.3: "requestId: Identifies the FastCGI request to which the record belongs." A response is '
    'the STDOUT stream of its own request; a record of another id is not part of it.',
    level=Level.REQUIRED,
    bugs=("other-id-output",),
    allowed=("the response intact, the other id's output dropped",
             "an error (502, or the connection closed): the gateway takes the record as a protocol error"),
)
def other_id_output(ctx) -> str:
    def answer(conn: AppConn, request: AppRequest) -> None:
        other = (request.request_id % 65535) + 7
        conn.stdout(request, HEAD + BODY[:100])
        conn.send_records([Record(RecordType.STDOUT, other, b"FOREIGN OUTPUT")])
        conn.stdout(request, BODY[100:])
        conn.end(request)

    got = _get(ctx, answer)
    if b"FOREIGN" in got.body:
        raise Violation("no byte of the other id's output in the response", f"{got.describe()}: the body has it")
    if got.complete and got.status == 200 and got.body != BODY:
        raise Violation("the response intact, or an error", f"{got.describe()}: the body differs")
    return f"another id's STDOUT: {'ignored, response intact' if got.body == BODY else 'an error: ' + got.describe()}"


@gateway_case(
    "GW-FCGI-4.2-1",
    title="an FCGI_UNKNOWN_TYPE record the gateway did not ask for",
    requirement='Spec §4.2: "the application responds with an FCGI_UNKNOWN_TYPE record" to a management record '
    'type it does not understand. A Web server that sent no such record has nothing to match it with; what it '
    'does is its choice.',
    level=Level.UNSPECIFIED,
    allowed=("the response intact", "an error", "the connection closed"),
)
def unsolicited_unknown_type(ctx) -> str:
    def answer(conn: AppConn, request: AppRequest) -> None:
        conn.send_records([Record(RecordType.UNKNOWN_TYPE, 0, unknown_type_body(200))])
        conn.respond(request, BODY)

    got = _get(ctx, answer)
    raise Observed(f"after an unsolicited UNKNOWN_TYPE: {got.describe()}"
                   + (", body intact" if got.body == BODY else ""))


def _status_case(case_id: str, status: ProtocolStatus, sentence: str):
    @gateway_case(
        case_id,
        title=f"END_REQUEST with protocolStatus {status.name}: the HTTP client is not told the request succeeded",
        requirement=sentence,
        level=Level.REQUIRED,
        bugs=("ignore-protocol-status",),
        allowed=("a 5xx status (502, 503)", "no complete response"),
    )
    def run(ctx) -> str:
        def answer(conn: AppConn, request: AppRequest) -> None:
            conn.end(request, protocol_status=status, close_streams=False)

        got = _get(ctx, answer)
        expect_not_success(got, "GET", f"the application rejected the request with {status.name}")
        return f"{status.name}: {got.describe()}"

    return run


cant_mpx = _status_case(
    "GW-FCGI-5.5-2", ProtocolStatus.CANT_MPX_CONN,
    'Spec §5.5: "FCGI_CANT_MPX_CONN: rejecting a new request. This happens when a Web server sends concurrent '
    'requests over one connection to an application that is designed to process one request at a time per '
    'connection."')
overloaded = _status_case(
    "GW-FCGI-5.5-3", ProtocolStatus.OVERLOADED,
    'Spec §5.5: "FCGI_OVERLOADED: rejecting a new request. This happens when the application runs out of some '
    'resource, e.g. database connections."')
unknown_role = _status_case(
    "GW-FCGI-5.5-4", ProtocolStatus.UNKNOWN_ROLE,
    'Spec §5.5: "FCGI_UNKNOWN_ROLE: rejecting a new request. This happens when the Web server has specified a role '
    'that is unknown to the application."')


@gateway_case(
    "GW-FCGI-5.3-6",
    title="an 8 MiB response to an HTTP client that reads slowly arrives whole",
    requirement='Spec §5.3: "FCGI_STDOUT and FCGI_STDERR are stream record types for sending arbitrary data and error '
    'data respectively from the application to the Web server", and §5.4: "the Web server providing output buffering '
    'if the client is slow". The whole stream reaches the HTTP client, whatever its pace.',
    level=Level.REQUIRED,
    bugs=("drop-when-client-slow",),
    allowed=("the 8 MiB body intact",),
    timeout=60.0,
)
def large_response_slow_reader(ctx) -> str:
    big = bytes((i * 31 + 7) & 0xFF for i in range(8 * 1024 * 1024))

    def answer(conn: AppConn, request: AppRequest) -> None:
        conn.stdout(request, b"Content-Type: application/octet-stream\r\n\r\n" + big)
        conn.end(request)

    ctx.start(answer_each(answer))
    conn = ctx.http(rcvbuf=16384, timeout=50)
    conn.send_request("GET", "/big")
    got = conn.read_response("GET", timeout=ctx.time_left(), pace=0.002)
    ctx.log_http("GET /big (slow reader)", got)
    if got.body != big or not got.complete:
        raise Violation(f"the {len(big)}-byte body, complete", f"{got.describe()}, sha256 {sha(got.body)}")
    return f"8 MiB read slowly: intact ({got.framing})"
