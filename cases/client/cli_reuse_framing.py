"""Message framing decides reuse: bodiless responses, excess and unsolicited bytes, interim responses,
close-delimited and truncated bodies (CLI-REUSE-11 to 17, 20, 21).

Not here: 17c (101 then 204, Go TestTransportTreat101Terminal): a 101 the client never asked for
switches the connection to another protocol, and what an adapter reports for it is outside the
adapter protocol. Every other scenario of the family is deterministic: junk that must not be
parsed as the next response is sent either in the same TCP write as the response (12, 13b, 14: a
client may discard it and reuse the connection, RFC 9112 §6.3 "MAY discard") or 50 ms later,
followed by a 300 ms pause before the next request (11, 13: bytes on an idle connection make it
unusable, and a request that arrives where they wait gets `WRONG!` as its body, so a desynchronised
client cannot pass by luck).
"""

from __future__ import annotations

from harness.clients.cases import client_case, connection_ids, expect_error, expect_response, settle
from harness.clients.scenario_server import ANY, ServerConn, Step, response
from harness.verdicts import Level, Observed, RecommendationMissed, Violation

FAMILY = "Framing: bodiless responses, excess bytes, interim and close-delimited responses"
FAMILY_ORDER = 4

NO_EXTRA_RESPONSE = (
    'RFC 9112 §6.3: "If the final response to the last request on a connection has been completely received and '
    "there remains additional data to read, a user agent MAY discard the remaining data [...] A client MUST NOT "
    'process, cache, or forward such extra data as a separate response"'
)
NO_BODY = (
    'RFC 9112 §6.3: "Any response to a HEAD request and any response with a 1xx (Informational), 204 (No '
    'Content), or 304 (Not Modified) status code is always terminated by the first empty line after the header '
    'fields, regardless of the header fields present in the message, and thus cannot contain a message body"'
)
INTERIM = (
    'RFC 9110 §15.2: "A client MUST be able to parse one or more 1xx responses received prior to a final '
    'response, even if the client does not expect one."'
)
INCOMPLETE = (
    'RFC 9112 §8: "A client that receives an incomplete response message, which can occur when a connection is '
    'closed prematurely [...] MUST record the message as incomplete."'
)
CLOSE_DELIMITED = (
    'RFC 9112 §6.3: "Otherwise, this is a response message without a declared message body length, so the '
    'message body length is determined by the number of octets received prior to the server closing the '
    'connection."'
)
WRONG = response(b"WRONG!")
GAP = 0.3
NO_CONTENT = "204 No Content"
NOT_MODIFIED = "304 Not Modified"


def _junk_then_next(ctx, first: Step, status: int, *, gap: float = GAP, headers: tuple[str, ...] = ()) -> None:
    """Request 1 gets `first` (with junk); request 2 must get `foo` and never the junk."""
    server = ctx.server({0: [first, Step(WRONG)], ANY: [Step(response())]})
    expect_response(ctx.get(server, "/1", *headers), "request 1", status=status, body=b"")
    ctx.sleep(gap)
    expect_response(ctx.get(server, "/2"), "request 2 (never the junk after response 1)")


@client_case(
    "CLI-REUSE-11",
    title="an unsolicited 408 on the idle connection is never delivered as the next response",
    requirement=NO_EXTRA_RESPONSE + " (Go TestTransportIgnores408)",
    level=Level.REQUIRED,
    mistakes=("deliver-unsolicited-408",),
)
def unsolicited_408(ctx) -> None:
    late = response(b"", "408 Request Timeout", ["Connection: close"])
    server = ctx.server({0: [Step(response(), later=late, later_after=0.05), Step(WRONG)], ANY: [Step(response())]})
    expect_response(ctx.get(server, "/1"), "request 1")
    ctx.sleep(GAP)
    expect_response(ctx.get(server, "/2"), "request 2 (200 on a new connection, not the 408)")


@client_case(
    "CLI-REUSE-12",
    title="excess bytes after a Content-Length body, same segment: never the start of the next response",
    requirement=NO_EXTRA_RESPONSE,
    level=Level.REQUIRED,
)
def excess_after_content_length(ctx) -> None:
    server = ctx.server({0: [Step(response(b"fooBAR", length=3)), Step(response())], ANY: [Step(response())]})
    expect_response(ctx.get(server, "/1"), "request 1 (3 bytes: Content-Length)")
    expect_response(ctx.get(server, "/2"), "request 2 (BAR is not the start of its response)")


@client_case(
    "CLI-REUSE-13",
    title="204 with Content-Length: 5 has no body; the 'hello' 50 ms later makes the connection unusable",
    requirement=NO_BODY + "; " + NO_EXTRA_RESPONSE,
    level=Level.REQUIRED,
    mistakes=("parse-body-on-204",),
)
def no_content_then_late_junk(ctx) -> None:
    head = response(b"", NO_CONTENT, length=5)
    _junk_then_next(ctx, Step(head, later=b"hello", later_after=0.05), 204)


@client_case(
    "CLI-REUSE-13b",
    title="204 with Content-Length: 5 and 'hello' in the same segment: no body, 'hello' is never parsed",
    requirement=NO_BODY + "; " + NO_EXTRA_RESPONSE,
    level=Level.REQUIRED,
    mistakes=("parse-body-on-204",),
)
def no_content_with_junk(ctx) -> None:
    # As in 12 and 14, a client may discard what follows a complete response (RFC 9112 §6.3 "MAY
    # discard") and reuse the connection: request 2 is then answered there too.
    server = ctx.server({0: [Step(response(b"", NO_CONTENT, length=5) + b"hello"), Step(response())],
                         ANY: [Step(response())]})
    expect_response(ctx.get(server, "/1"), "request 1 (no body: 'hello' is not its body)", status=204, body=b"")
    expect_response(ctx.get(server, "/2"), "request 2 ('hello' is never the start of its response)")


@client_case(
    "CLI-REUSE-14",
    title="304 with Transfer-Encoding: chunked and a bogus 0-chunk: empty body, the junk never parsed onward",
    requirement=NO_BODY + " (Go TestNoBodyOnChunked304Response)",
    level=Level.REQUIRED,
)
def not_modified_chunked_junk(ctx) -> None:
    reply = f"HTTP/1.1 {NOT_MODIFIED}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".encode()
    server = ctx.server({0: [Step(reply), Step(response())], ANY: [Step(response())]})
    expect_response(ctx.get(server, "/1", 'If-None-Match:"v1"'), "request 1", status=304, body=b"")
    expect_response(ctx.get(server, "/2"), "request 2")


def _bodiless_then_reuse(ctx, reply: bytes, status: int, *, method: str = "GET", headers: tuple[str, ...] = ()) -> None:
    """Request 1 gets a bodiless response with framing headers (and no body bytes at all); it must
    end at the empty line, and the connection carry request 2."""

    def handle(conn: ServerConn) -> None:
        number = 0
        while conn.read_request() is not None:
            conn.send(reply if number == 0 else response())
            number += 1

    server = ctx.server(handle)
    expect_response(ctx.get(server, "/1", *headers, method=method), f"{method} /1 (no body, no wait)",
                    status=status, body=b"")
    expect_response(ctx.get(server, "/2"), "GET /2")
    settle()
    first, second = connection_ids(server, "/1", "/2")
    if first != second:
        raise RecommendationMissed("GET /2 on the connection of request 1 (its response was complete)",
                                   "a new connection")


@client_case(
    "CLI-REUSE-15",
    title="HEAD answered with Content-Length: 123: no body read, no wait, the connection reused",
    requirement=NO_BODY + " (Go TestTransportHeadResponses)",
    level=Level.REQUIRED,
    mistakes=("parse-body-on-head",),
)
def head_content_length(ctx) -> None:
    _bodiless_then_reuse(ctx, response(b"", length=123), 200, method="HEAD")


@client_case(
    "CLI-REUSE-15b",
    title="HEAD answered with Transfer-Encoding: chunked: no body read, no wait, the connection reused",
    requirement=NO_BODY + " (Go TestTransportHeadChunkedResponse)",
    level=Level.REQUIRED,
    mistakes=("parse-body-on-head",),
)
def head_chunked(ctx) -> None:
    _bodiless_then_reuse(ctx, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 200, method="HEAD")


@client_case(
    "CLI-REUSE-15c",
    title="HEAD answered without any length: no body read until close, the connection reused",
    requirement=NO_BODY + " (curl test 48)",
    level=Level.REQUIRED,
    mistakes=("parse-body-on-head",),
)
def head_no_length(ctx) -> None:
    _bodiless_then_reuse(ctx, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n", 200, method="HEAD")


@client_case(
    "CLI-REUSE-16",
    title="204 with Content-Length: 5 and no body bytes: an empty body at once, the connection reused",
    requirement=NO_BODY + " (Go response_test: 204 has ContentLength 0, Close false)",
    level=Level.REQUIRED,
    mistakes=("parse-body-on-204",),
)
def no_content_length_header(ctx) -> None:
    _bodiless_then_reuse(ctx, response(b"", NO_CONTENT, length=5), 204)


@client_case(
    "CLI-REUSE-16b",
    title="304 with Content-Length: 100 and no body bytes: an empty body at once, the connection reused",
    requirement=NO_BODY,
    level=Level.REQUIRED,
    mistakes=("parse-body-on-304",),
)
def not_modified_length_header(ctx) -> None:
    _bodiless_then_reuse(ctx, response(b"", NOT_MODIFIED, length=100), 304, headers=('If-None-Match:"v1"',))


@client_case(
    "CLI-REUSE-16c",
    title="204 with Transfer-Encoding: chunked and no chunks: an empty body at once, the connection reused",
    requirement=NO_BODY + " (Go TestChunkedNoContent)",
    level=Level.REQUIRED,
    mistakes=("parse-body-on-204",),
)
def no_content_chunked_header(ctx) -> None:
    _bodiless_then_reuse(ctx, f"HTTP/1.1 {NO_CONTENT}\r\nTransfer-Encoding: chunked\r\n\r\n".encode(), 204)


@client_case(
    "CLI-REUSE-17",
    title="three 1xx interim responses (103, 123, 100) before 200: skipped, the connection reused",
    requirement=INTERIM + " (Go uses HTTP/1.1 123 OneTwoThree)",
    level=Level.REQUIRED,
)
def interim_responses(ctx) -> None:
    interim = (b"HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n"
               b"HTTP/1.1 123 OneTwoThree\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n")
    _bodiless_then_reuse_body(ctx, interim + response())


def _bodiless_then_reuse_body(ctx, reply: bytes) -> None:
    server = ctx.server({0: [Step(reply), Step(response())], ANY: [Step(response())]})
    expect_response(ctx.get(server, "/1"), "request 1 (the final 200 after the interim responses)")
    expect_response(ctx.get(server, "/2"), "request 2")
    settle()
    first, second = connection_ids(server, "/1", "/2")
    if first != second:
        raise RecommendationMissed("request 2 on the connection of request 1", "a new connection")


@client_case(
    "CLI-REUSE-17b",
    title="100 Continue and then the server closes: an error, not a response",
    requirement=INCOMPLETE + " (CPython test_100_close: RemoteDisconnected)",
    level=Level.REQUIRED,
)
def interim_then_close(ctx) -> None:
    server = ctx.server({ANY: [Step(b"HTTP/1.1 100 Continue\r\n\r\n", close="fin")]})
    expect_error(ctx.get(server, "/1"), "request 1", "no final response arrived")


def _interim_flood(conn: ServerConn) -> None:
    if conn.read_request() is None:
        return
    for _ in range(400):  # 2 s of 103s, one every 5 ms
        conn.send(b"HTTP/1.1 103 Early Hints\r\n\r\n")
        conn.sleep(0.005)
        if conn.ledger.client_close is not None:
            return
        conn.drain_now()
    conn.close("fin")


@client_case(
    "CLI-REUSE-17d",
    title="an endless stream of 1xx responses: the client gives up (a cap on interim responses)",
    requirement=INTERIM + " A bound on their number (Go: 5, 'too many 1xx informational responses') keeps a "
    "server from holding the client forever.",
    level=Level.RECOMMENDED,
)
def interim_flood(ctx) -> None:
    server = ctx.server(_interim_flood)
    result = ctx.get(server, "/1")
    settle()
    conn = server.snapshot()[0]
    if result.ok:
        raise Violation("an error (no final response ever came)", str(result))
    if conn.server_close is not None and (conn.client_closed_at is None or conn.client_closed_at > conn.server_closed_at):
        raise RecommendationMissed("the client closes the connection while the 1xx keep coming",
                                   "it read 1xx responses until the server gave up after 2 s")


def _close_delimited(ctx, close: str, *, tls: bool = False) -> tuple[object, object]:
    body = response(b"hello", headers=["Content-Type: text/plain"], framing=False)
    server = ctx.server({0: [Step(body, close=close)], ANY: [Step(response())]}, tls=tls)
    first = ctx.get(server, "/1")
    second = ctx.get(server, "/2")
    return first, second


@client_case(
    "CLI-REUSE-20",
    title="a close-delimited body (no length) ended by FIN: body 'hello', the next request on a new connection",
    requirement=CLOSE_DELIMITED,
    level=Level.REQUIRED,
)
def close_delimited(ctx) -> None:
    first, second = _close_delimited(ctx, "fin")
    expect_response(first, "request 1", body=b"hello")
    expect_response(second, "request 2")


@client_case(
    "CLI-REUSE-20b",
    title="TLS: a close-delimited body ended by close_notify and FIN: body 'hello', no error",
    requirement=CLOSE_DELIMITED,
    level=Level.REQUIRED,
)
def close_delimited_tls(ctx) -> None:
    first, second = _close_delimited(ctx, "notify", tls=True)
    expect_response(first, "request 1", body=b"hello")
    expect_response(second, "request 2")


@client_case(
    "CLI-REUSE-20c",
    title="TLS: a close-delimited body ended by FIN without close_notify (a truncation policy): what the client "
    "reports",
    requirement='RFC 9112 §9.8: "When an incomplete close is received [...] the client [...] MAY consider the '
    "response complete\" only where framing says so; OpenSSL 3 reports SSL_R_UNEXPECTED_EOF_WHILE_READING, Go "
    "accepts at a record boundary (curl#17471).",
    level=Level.UNSPECIFIED,
)
def close_delimited_tls_truncated(ctx) -> None:
    first, second = _close_delimited(ctx, "fin", tls=True)
    expect_response(second, "request 2")
    raise Observed(f"request 1: {first}")


@client_case(
    "CLI-REUSE-21",
    title="Content-Length: 10 but 3 bytes and FIN: a truncation error, the next request on a new connection",
    requirement=INCOMPLETE,
    level=Level.REQUIRED,
    mistakes=("reuse-after-truncated-body",),
)
def truncated_body(ctx) -> None:
    server = ctx.server({0: [Step(response(b"foo", length=10), close="fin")], ANY: [Step(response())]})
    first = ctx.get(server, "/1")
    expect_error(first, "request 1", "3 of 10 body bytes, then the connection closed")
    expect_response(ctx.get(server, "/2"), "request 2")


