"""Request bodies on FCGI_STDIN: delivered whole, and always ended by an empty record (spec §5.3, §3.3)."""

from __future__ import annotations

from harness.gateways.application import answer_after_stdin_ends, answer_each
from harness.gateways.cases import gateway_case
from harness.gateways.checks import expect_answer, first_difference, only_request, sha
from harness.gateways.observations import STDIN_TERMINATED
from harness.verdicts import Level, Violation

FAMILY = "Request bodies on FCGI_STDIN (spec §5.3)"
FAMILY_ORDER = 3

STDIN_SENTENCE = ('Spec §5.3: "FCGI_STDIN is a stream record type used in sending arbitrary data from the Web server '
                  'to the application." and §3.3: a stream is "a series of zero or more non-empty records (length != '
                  '0) of the stream type, followed by an empty record (length == 0) of the stream type."')
EMPTY_STREAM_SENTENCE = ('Spec §6.1: "When a role protocol calls for transmitting a stream other than FCGI_STDERR, at '
                         'least one record of the stream type is always transmitted, even if the stream is empty."')


def _body(length: int) -> bytes:
    return bytes((i * 7 + 3) & 0xFF for i in range(length))


# Answers with the number of body bytes it received and their sha256, so the HTTP side shows it too.
_echo_length = answer_each(lambda conn, request: conn.respond(request, f"{len(request.stdin)} {sha(request.stdin)}".encode()))


@gateway_case(
    STDIN_TERMINATED,
    title="a request body on STDIN is ended by an empty STDIN record",
    requirement=STDIN_SENTENCE,
    level=Level.REQUIRED,
    bugs=("no-stdin-terminator",),
    allowed=("the body's STDIN records, then one empty STDIN record",),
)
def stdin_terminated(ctx) -> str:
    app = ctx.start(_echo_length)
    body = _body(5000)
    expect_answer(ctx.request("POST", "/stdin-end", body=body), "POST of 5000 bytes",
                  body=f"5000 {sha(body)}".encode())
    ctx.settle()
    request = only_request(app, "the POST")
    return f"{len([r for r in request.stdin_records if r.content])} STDIN records, then the empty one"


@gateway_case(
    "GW-FCGI-5.3-2",
    title="a request without a body still gets its empty STDIN record (a GET, and a POST with Content-Length: 0)",
    requirement=EMPTY_STREAM_SENTENCE + " An application waits for the end of STDIN before it answers (HAProxy "
    "#2499: an empty POST sent with no STDIN record left the application waiting).",
    level=Level.REQUIRED,
    bugs=("no-empty-stdin",),
    relies_on=(),
    allowed=("an empty STDIN record right after the empty PARAMS record",),
)
def empty_stdin(ctx) -> str:
    app = ctx.start(answer_each(answer_after_stdin_ends(hold=ctx.read_timeout + 2)))
    for method in ("GET", "POST"):
        answer = ctx.request(method, f"/empty-body/{method}", timeout=ctx.read_timeout + 4)
        received = [r for r in app.requests() if r.param("REQUEST_METHOD") == method]
        if received and not received[-1].stdin_ended:
            raise Violation(f"{method} without a body: an empty STDIN record", f"{method}: PARAMS, then no STDIN record "
                            f"(the HTTP client got {answer.describe()})")
        expect_answer(answer, f"{method} without a body", body=b"hello")
    return "GET and empty POST each ended STDIN with an empty record"


def _chunks() -> list[bytes]:
    return [_body(n) for n in (1, 100, 7000, 65536, 3, 20000)]


@gateway_case(
    "GW-FCGI-5.3-3",
    title="a chunked upload reaches STDIN whole, with CONTENT_LENGTH its decoded length or absent",
    requirement='RFC 3875 §4.1.2: "The CONTENT_LENGTH value must reflect the length of the message-body after the '
    'server has removed any transfer-codings" and spec §5.3: STDIN carries the request body ("arbitrary data from '
    'the Web server to the application").',
    level=Level.REQUIRED,
    bugs=("chunked-upload-cut",),
    allowed=("the whole decoded body on STDIN, CONTENT_LENGTH equal to its length",
             "the whole decoded body on STDIN without CONTENT_LENGTH",
             "a 4xx refusal before the application (411 Length Required, 400): not exercised"),
)
def chunked_upload(ctx) -> str:
    from harness.verdicts import Unsupported

    app = ctx.start(_echo_length)
    chunks = _chunks()
    body = b"".join(chunks)
    answer = ctx.request("POST", "/chunked", chunks=chunks)
    if answer.status is not None and 400 <= answer.status < 500 and not app.requests():
        # Refusing a chunked upload is GW-RFC9112-6.3-2's to judge; this case has nothing to look at.
        raise Unsupported(f"the gateway refuses the chunked upload with {answer.status} {answer.reason} before any "
                          "request reaches the application")
    request = only_request(app, "the chunked POST")
    if request.stdin != body:
        raise Violation(f"the {len(body)}-byte decoded body on STDIN",
                        f"{len(request.stdin)} bytes: {first_difference(request.stdin, body)}")
    length = request.param("CONTENT_LENGTH")
    if length not in (None, "", str(len(body))):
        raise Violation(f"CONTENT_LENGTH {len(body)} or none", f"CONTENT_LENGTH={length!r}")
    expect_answer(answer, "the chunked POST", body=f"{len(body)} {sha(body)}".encode())
    return f"{len(body)} bytes in {len(request.stdin_records) - 1} STDIN records, CONTENT_LENGTH={length!r}"


@gateway_case(
    "GW-RFC9112-6.3-2",
    title="a chunked upload is taken, or refused only with 411 Length Required (or 413), never called malformed",
    requirement='RFC 9112 §7.1: "A recipient MUST be able to parse and decode the chunked transfer coding." and §6.3: "A server '
    'MAY reject a request that contains a message body but not a Content-Length by responding with 411 (Length '
    'Required)." A 400 tells the client its valid request was malformed.',
    level=Level.REQUIRED,
    bugs=("chunked-400",),
    allowed=("the upload passed on (2xx from the application)", "411 Length Required", "413 Content Too Large"),
)
def chunked_upload_accepted(ctx) -> str:
    app = ctx.start(_echo_length)
    chunks = [_body(1000)] * 40
    answer = ctx.request("POST", "/chunked-40k", chunks=chunks)
    if answer.status in (411, 413):
        return f"refused with {answer.status} {answer.reason}"
    if answer.status is not None and 400 <= answer.status < 500:
        raise Violation(["the upload passed on", "411 Length Required", "413 Content Too Large"],
                        f"{answer.describe()} for a valid 40000-byte chunked upload; the application received "
                        f"{len(app.requests())} requests")
    return f"passed on: {answer.describe()}"


@gateway_case(
    "GW-FCGI-5.3-4",
    title="a 2 MiB POST body reaches STDIN byte for byte",
    requirement='Spec §5.3: "FCGI_STDIN is a stream record type used in sending arbitrary data from the Web server to '
    'the application." and §3.3: contentLength is at most 65535, so the body spans many records.',
    level=Level.REQUIRED,
    bugs=("short-body",),
    allowed=("the whole body on STDIN",),
)
def large_post(ctx) -> str:
    app = ctx.start(_echo_length)
    body = _body(2 * 1024 * 1024)
    answer = ctx.request("POST", "/large-post", body=body)
    request = only_request(app, "the POST")
    if request.stdin != body:
        raise Violation(f"the {len(body)}-byte body on STDIN",
                        f"{len(request.stdin)} bytes: {first_difference(request.stdin, body)}")
    expect_answer(answer, "the POST", body=f"{len(body)} {sha(body)}".encode())
    sizes = sorted({len(r.content) for r in request.stdin_records if r.content})
    return f"{len(request.stdin_records) - 1} STDIN records of {sizes[0]}..{sizes[-1]} bytes"
