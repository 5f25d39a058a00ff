"""The CGI response the application writes on STDOUT: Status, Location (local and client redirects),
and responses that are not CGI responses at all (RFC 3875 §6)."""

from __future__ import annotations

from harness.gateways.application import AppConn, AppRequest, answer_each
from harness.gateways.cases import gateway_case
from harness.gateways.checks import expect_answer, expect_not_success
from harness.verdicts import Level, Observed, Violation

FAMILY = "The CGI response: Status, Location, malformed headers (RFC 3875 §6)"
FAMILY_ORDER = 7


def _answer_with(stdout: bytes):
    """The application's whole STDOUT is `stdout`."""
    return answer_each(lambda conn, request: _write(conn, request, stdout))


def _write(conn: AppConn, request: AppRequest, stdout: bytes) -> None:
    conn.stdout(request, stdout)
    conn.end(request)


@gateway_case(
    "GW-RFC3875-6.3.3-1",
    title="a Status header sets the HTTP status and is not passed on as a header",
    requirement='RFC 3875 §6.3.3: "The Status header field contains a 3-digit integer result code that indicates the '
    'level of success of the script\'s attempt to handle the request." and §6.3: "The response header fields are '
    'either CGI or extension header fields to be interpreted by the server, or protocol-specific header fields to '
    'be included in the response returned to the client." Status is a CGI field: the server interprets it.',
    level=Level.REQUIRED,
    bugs=("pass-status-header",),
    allowed=("HTTP status 404 with the body; no Status header in the HTTP response",),
)
def status_header(ctx) -> str:
    ctx.start(_answer_with(b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nno such thing"))
    got = ctx.request("GET", "/status")
    expect_answer(got, "GET", status=404, body=b"no such thing")
    if "status" in got.header_names():
        raise Violation("no Status header field in the HTTP response", f"Status: {got.header('Status')}")
    return f"404 {got.reason}"


@gateway_case(
    "GW-RFC3875-6.2.3-1",
    title="a client redirect (an absolute Location, no Status) becomes a 302 with that Location",
    requirement='RFC 3875 §6.2.3 (a client redirect response: a Location field with an absolute URI and no other CGI '
    'field): "For an HTTP client request, the server MUST generate a 302 \'Found\' HTTP response message." Spec §6.1: '
    '"FastCGI applications set response status using the Status and Location CGI headers."',
    level=Level.REQUIRED,
    bugs=("pass-status-header",),
    allowed=("302 with Location: http://example.test/elsewhere",),
)
def client_redirect(ctx) -> str:
    ctx.start(_answer_with(b"Location: http://example.test/elsewhere\r\n\r\n"))
    got = ctx.request("GET", "/redirect")
    if got.status != 302 or got.header("Location") != "http://example.test/elsewhere":
        raise Violation("302 with Location: http://example.test/elsewhere",
                        f"{got.describe()}, Location: {got.header('Location')!r}")
    return "302 Found with the Location"


@gateway_case(
    "GW-RFC3875-6.2.2-1",
    title="a local redirect (Location: /path, no Status): reprocessed by the server, or passed to the client",
    requirement='RFC 3875 §6.2.2: "The CGI script can return a URI path and query-string (\'local-pathquery\') for a '
    'local resource in a Location header field. This indicates to the server that it should reprocess the request '
    'using the path specified." Few gateways do; what each does is recorded.',
    level=Level.UNSPECIFIED,
    allowed=("a second request for /local-target reaches the application", "a 302 to the client with the Location"),
)
def local_redirect(ctx) -> str:
    def answer(conn: AppConn, request: AppRequest) -> None:
        if (request.param("REQUEST_URI") or "").startswith("/local-target"):
            _write(conn, request, b"Content-Type: text/plain\r\n\r\nlocal target")
        else:
            _write(conn, request, b"Location: /local-target?x=1\r\n\r\n")

    app = ctx.start(answer_each(answer))
    got = ctx.request("GET", "/local-redirect")
    reprocessed = any((r.param("REQUEST_URI") or "").startswith("/local-target") for r in app.requests())
    raise Observed(("reprocessed: the application received /local-target; " if reprocessed else "not reprocessed; ")
                   + f"the client got {got.describe()}, Location: {got.header('Location')!r}")


@gateway_case(
    "GW-RFC3875-6.2-1",
    title="output with no CGI header block is not delivered as a successful response",
    requirement='RFC 3875 §6.2: "The response comprises a message-header and a message-body, separated by a blank '
    'line." and "The script MUST return one of either a document response, a local redirect response or a client '
    'redirect (with optional document) response." Output without a header block is none of them; RFC 9110 '
    '§15.6.3: a 502 means the gateway "received an invalid response from an inbound server".',
    level=Level.RECOMMENDED,
    bugs=("lenient-headers",),
    allowed=("502 (or another 5xx)", "no complete response"),
)
def no_header_block(ctx) -> str:
    ctx.start(_answer_with(b"just a body, no header block at all"))
    got = ctx.request("GET", "/no-head")
    expect_not_success(got, "GET", "the application wrote no header block")
    return got.describe()


@gateway_case(
    "GW-RFC3875-6.3-1",
    title="a header block with a line that is no header field is not delivered as a successful response",
    requirement='RFC 3875 §6.3: "header-field = CGI-field | other-field" with "other-field = protocol-field | '
    'extension-field" and "generic-field = field-name \':\' [ field-value ] NL". A line without a colon is not a '
    'header field; RFC 9110 §15.6.3: 502 for an invalid response from an inbound server.',
    level=Level.RECOMMENDED,
    bugs=("lenient-headers",),
    allowed=("502 (or another 5xx)", "no complete response", "the line dropped, the rest delivered"),
)
def invalid_header_line(ctx) -> str:
    ctx.start(_answer_with(b"Content-Type: text/plain\r\nthis line has no colon\r\n\r\nbody"))
    got = ctx.request("GET", "/bad-head")
    if got.complete and got.status == 200 and b"this line has no colon" in got.head:
        raise Violation("502, no complete response, or the line dropped",
                        f"{got.describe()} with the line passed on as a header")
    return got.describe()
