"""Regressions of known gateway bugs, each named after its report and shaped like it, quoting the
requirement it broke."""

from __future__ import annotations

import re
import time

from harness.gateways.application import AppConn, AppRequest, answer_after_stdin_ends, answer_each, serve
from harness.gateways.cases import gateway_case
from harness.gateways.checks import expect_answer, expect_fetched
from harness.verdicts import Level, Observed, Violation
from harness.wire.codec import CodecError, Record, RecordType

FAMILY = "Regressions of known gateway bugs"
FAMILY_ORDER = 10


@gateway_case(
    "GW-REG-haproxy-743",
    title="HAProxy #743: a short STDERR message before the response turned it into a 502",
    requirement='Spec §5.3: "FCGI_STDOUT and FCGI_STDERR are stream record types for sending arbitrary data and error '
    'data respectively from the application to the Web server." and §6.1: FCGI_STDERR is used "just the way stderr '
    'is used in conventional applications programming: to report application-level errors". The response is what '
    'STDOUT says.',
    level=Level.REQUIRED,
    bugs=("stderr-as-error",),
    allowed=("200 with the body",),
)
def haproxy_743(ctx) -> str:
    def answer(conn: AppConn, request: AppRequest) -> None:
        conn.stderr(request, b"PHP Notice:  Undefined index: foo in /var/www/index.php on line 3\n")
        conn.respond(request, b"the page")

    ctx.start(answer_each(answer))
    expect_answer(ctx.request("GET", "/index.php"), "GET", body=b"the page")
    return "STDERR before STDOUT: 200 with the page"


# Body sizes around the buffer sizes gateways use (8, 16 and 32 KiB, a record's 65535) and a chunk's size line.
SIZES_886 = (4095, 4096, 8191, 8192, 8193, 16383, 16384, 16385, 32767, 32768, 65535, 65536, 65537, 100000)


@gateway_case(
    "GW-REG-haproxy-886",
    title="HAProxy #886: responses without Content-Length truncated at certain sizes",
    requirement='Spec §3.3: "The contentData components of a stream\'s records, when concatenated, form a byte '
    'sequence; this byte sequence is the value of the stream." The response body is that value, whole, at every '
    'size.',
    level=Level.REQUIRED,
    bugs=("truncate-at-size",),
    allowed=("every size whole",),
    timeout=60.0,
)
def haproxy_886(ctx) -> str:
    def answer(conn: AppConn, request: AppRequest) -> None:
        # The size is in the path, and whichever of the path's variables the gateway sends carries it: this case
        # is about the response, not about which CGI variables arrive.
        where = " ".join(request.param(n) or "" for n in ("REQUEST_URI", "PATH_INFO", "SCRIPT_NAME", "DOCUMENT_URI"))
        found = re.search(r"/sized/([0-9]+)", where)
        size = int(found.group(1)) if found else 0
        conn.stdout(request, b"Content-Type: application/octet-stream\r\n\r\n")
        conn.stdout(request, bytes((i * 13) & 0xFF for i in range(size)), chunk=[1000, 4096, 65535])
        conn.end(request)

    ctx.start(answer_each(answer))
    for size in SIZES_886:
        # Through the reference HTTP client, which checks the chunked framing as it reads.
        expect_fetched(ctx.fetch("GET", f"/sized/{size}"), f"GET of {size} bytes",
                       body=bytes((i * 13) & 0xFF for i in range(size)))
    return f"{len(SIZES_886)} sizes from {SIZES_886[0]} to {SIZES_886[-1]} bytes, all whole"


@gateway_case(
    "GW-REG-haproxy-2499",
    title="HAProxy #2499: an empty POST sent with no FCGI_STDIN record, so the application waited for ever",
    requirement='Spec §6.1: "When a role protocol calls for transmitting a stream other than FCGI_STDERR, at least '
    'one record of the stream type is always transmitted, even if the stream is empty."',
    level=Level.REQUIRED,
    bugs=("no-empty-stdin",),
    allowed=("an empty STDIN record, and the application's answer",),
)
def haproxy_2499(ctx) -> str:
    app = ctx.start(answer_each(answer_after_stdin_ends(b"posted", hold=ctx.read_timeout + 2)))
    got = ctx.request("POST", "/form", headers=("Content-Type: application/x-www-form-urlencoded",),
                      timeout=ctx.read_timeout + 4)
    if app.requests() and not app.requests()[0].stdin_ended:
        raise Violation("an empty STDIN record for the empty POST", f"none; the HTTP client got {got.describe()}")
    expect_answer(got, "the empty POST", body=b"posted")
    return "the empty POST got its empty STDIN record"


@gateway_case(
    "GW-REG-haproxy-3358",
    title="HAProxy #3358: request ids allocated linearly and never reused on a kept connection",
    requirement='Spec §3.3: "The Web server attempts to keep FastCGI request IDs small. That way the application can '
    'keep track of request ID states using a short array". Recorded: how high the ids go over 300 requests.',
    level=Level.UNSPECIFIED,
    allowed=("any id from 1 to 65535; small ones are kinder",),
    timeout=90.0,
)
def haproxy_3358(ctx) -> str:
    app = ctx.start(serve)
    conn = ctx.http()
    for index in range(300):
        got = ctx.request("GET", f"/n/{index}", conn=conn)
        if not got.complete:
            conn = ctx.http()
    ids = [r.request_id for r in app.requests()]
    kept = max((len(c.requests) for c in app.connections()), default=0)
    raise Observed(f"300 requests on {len(app.connections())} connections (up to {kept} on one); ids from "
                   f"{min(ids, default=0)} to {max(ids, default=0)}")


@gateway_case(
    "GW-REG-apache-68278",
    title="Apache bug 68278: mod_proxy_fcgi passed NULL to memcpy for an empty request body",
    requirement='Spec §6.1: "When a role protocol calls for transmitting a stream other than FCGI_STDERR, at least '
    'one record of the stream type is always transmitted, even if the stream is empty." An empty body is such a '
    'stream; the gateway sends it, serves the request, and keeps running.',
    level=Level.REQUIRED,
    bugs=("crash-on-empty-body",),
    allowed=("200 with the application's answer; the gateway still running",),
)
def apache_68278(ctx) -> str:
    ctx.start(serve)
    expect_answer(ctx.request("POST", "/empty", body=b""), "POST with an empty body", body=b"hello")
    expect_answer(ctx.request("PUT", "/empty", body=b""), "PUT with an empty body", body=b"hello")
    return "empty POST and PUT answered"


@gateway_case(
    "GW-REG-caddy-5420",
    title="Caddy #5420: an unbuffered slow upload holds an application worker for the upload's whole length",
    requirement='Spec §6.1: "As the application begins to receive the final stream input, it can begin writing its '
    'output." Whether the gateway streams STDIN as it arrives or buffers it first is its choice; a buffer spares the '
    'application a slow client. Recorded: when BEGIN_REQUEST came, relative to the end of the upload.',
    level=Level.UNSPECIFIED,
    allowed=("BEGIN_REQUEST after the whole body arrived (buffered)", "BEGIN_REQUEST while the body still uploads"),
)
def caddy_5420(ctx) -> str:
    app = ctx.start(serve)
    conn = ctx.http()
    body = b"u" * 40000
    conn.send_request("POST", "/slow-upload", headers=(f"Content-Length: {len(body)}",), send_body=False)
    for offset in range(0, len(body), 10000):
        if offset:
            time.sleep(0.4)
        conn.send_raw(body[offset:offset + 10000])
    finished = time.monotonic()
    got = conn.read_response("POST", timeout=ctx.read_timeout + 4)
    ctx.log_http("POST /slow-upload (1.6 s upload)", got)
    began = app.requests()[0].began_at if app.requests() else None
    if began is None:
        raise Observed(f"no request reached the application; the client got {got.describe()}")
    lead = finished - began
    raise Observed(f"BEGIN_REQUEST {lead:.1f} s before the upload ended" if lead > 0.2
                   else "BEGIN_REQUEST after the whole body arrived (buffered)")


@gateway_case(
    "GW-REG-nginx-misframed",
    title='nginx "upstream sent unsupported FastCGI protocol version: 0": a misframed response is an error, '
    'not content',
    requirement='Spec §3.3: "version: Identifies the FastCGI protocol version." A record stream that no longer '
    'parses (a contentLength that does not match the bytes) yields no valid response; RFC 9110 §15.6.3: 502 for "an '
    'invalid response from an inbound server".',
    level=Level.REQUIRED,
    bugs=("misframed-as-complete",),
    allowed=("502", "a response cut short (no last chunk, a close)"),
)
def nginx_misframed(ctx) -> str:
    def answer(conn: AppConn, request: AppRequest) -> None:
        conn.stdout(request, b"Content-Type: text/plain\r\n\r\nstart ")
        # A STDOUT record that declares 5 bytes and carries 21: a reader that trusts contentLength takes the
        # next header from the 16 bytes after them, whose version byte is 0.
        header = Record(RecordType.STDOUT, request.request_id, b"x" * 5).encode()[:8]
        conn.send(header + b"xxxxx" + b"\0" * 8 + b"leftover", "a STDOUT record that declares 5 bytes and "
                  "carries 21: then a header of version 0")
        conn.sleep(0.5)
        conn.end(request)
        conn.sleep(0.3)
        conn.close()

    ctx.start(answer_each(answer))
    got = ctx.request("GET", "/misframed")
    if got.complete and got.status is not None and got.status < 400:
        raise Violation(["502", "a response cut short"], f"{got.describe()}: {got.body[:60]!r}")
    return got.describe()


@gateway_case(
    "GW-REG-nginx-1194",
    title="nginx #1194: PARAMS sized with one length of a variable and filled with another",
    requirement='Spec §3.4: each name-value pair is "the length of the name, followed by the length of the value, '
    'followed by the name, followed by the value". nginx sized its PARAMS buffer in one pass and filled it in '
    'another, so a variable whose length changed in between overflowed it or misframed the pairs. Here every '
    'request carries values whose lengths change from request to request across the 1- and 4-byte forms, on one '
    'HTTP connection; each must arrive whole.',
    level=Level.REQUIRED,
    bugs=("wrong-4-byte-length",),
    same_requirement_as=("GW-FCGI-3.4-1",),
    allowed=("every value whole under its name",),
)
def nginx_1194(ctx) -> str:
    app = ctx.start(serve)
    conn = ctx.http()
    lengths = (5, 127, 128, 126, 300, 129, 1, 4000, 127)
    for index, length in enumerate(lengths):
        value = "".join("0123456789abcdef"[(index + i) % 16] for i in range(length))
        expect_answer(ctx.request("GET", f"/vary/{index}?q={'x' * (length % 200)}", conn=conn,
                                  headers=[f"X-Vary: {value}"]), f"GET {index + 1}", body=b"hello")
        received = app.requests()[-1]
        try:
            received.pairs()
        except CodecError as error:
            raise Violation(f"request {index + 1}: PARAMS that decode", f"they do not: {error}") from None
        if received.param("HTTP_X_VARY") != value:
            got = received.param("HTTP_X_VARY")
            raise Violation(f"request {index + 1}: HTTP_X_VARY with its {length} bytes",
                            "missing" if got is None else f"{len(got)} bytes")
    return f"{len(lengths)} requests, values of {min(lengths)} to {max(lengths)} bytes, each whole"
