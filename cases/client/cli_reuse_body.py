"""Bodies the client does not finish: an early response to an upload, an abandoned download
(CLI-REUSE-22, 23).

CLI-REUSE-22 is made deterministic by a small receive buffer on the server's socket and a 4 MiB
upload: the response arrives while the client is still blocked sending the body. The server then
reads the rest of the body, so a client that finishes its upload may reuse the connection; one that
stops uploading must not, and a next request found *inside* the declared body is the curl bug.
"""

from __future__ import annotations

import time

from harness.clients.cases import client_case, expect_response
from harness.clients.scenario_server import ServerConn, response
from harness.verdicts import Level, RecommendationMissed, Violation

FAMILY = "Unfinished bodies: early responses and abandoned downloads"
FAMILY_ORDER = 6

UPLOAD = 4 * 1024 * 1024


def _early_response(conn: ServerConn) -> None:
    first = conn.read_request(body=False)
    if first is None:
        return
    conn.send(response())
    conn.sleep(0.3)
    remaining = int(first.headers.get("content-length", "0") or 0)
    while remaining > 0:
        if not conn.buf:
            try:
                if not conn.fill(time.monotonic() + 5.0):
                    return
            except Exception:
                return
        piece = conn._consume(min(remaining, len(conn.buf)))
        remaining -= len(piece)
        stray = piece.replace(b"x", b"")
        if stray:
            at = piece.find(stray[:1])
            conn.note(f"a non-body byte inside the declared body: {piece[at:at + 40]!r}")
            conn.ledger.first_bytes_after_close = piece[at:at + 200]
            return
    while conn.read_request() is not None:
        conn.send(response())


@client_case(
    "CLI-REUSE-22",
    title="an early 200 while a 4 MiB POST body is still uploading: the next request never goes inside the "
    "unfinished body",
    requirement='RFC 9112 §6.3: "If a valid Content-Length header field is present without Transfer-Encoding, its '
    'decimal value defines the expected message body length in octets." A connection whose request body was cut '
    "short is not reused (Go TestTransportNoReuseAfterEarlyResponse; curl issue 11678).",
    level=Level.REQUIRED,
)
def early_response(ctx) -> None:
    server = ctx.server(_early_response, rcvbuf=16384)
    first = ctx.post(server, "/1", UPLOAD)
    second = ctx.get(server, "/2")
    stray = [e for c in server.snapshot() for _, e in c.events if "non-body byte" in e]
    if stray:
        raise Violation("the next request on a new connection, or after the whole body", stray[0])
    if first.ok and first.status != 200:
        raise Violation("request 1: the early 200 (or an error)", str(first))
    expect_response(second, "request 2")
    return f"request 1: {first}"


def _endless(conn: ServerConn) -> None:
    seen = conn.read_request()
    if seen is None:
        return
    if seen.path != "/big":
        conn.send(response())
        while conn.read_request() is not None:
            conn.send(response())
        return
    conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n" % 16384 + b"y" * 16384 + b"\r\n"
    if not conn.stream_until_closed(chunk, 5.0):
        conn.close("fin")


@client_case(
    "CLI-REUSE-23",
    title="the caller reads 10 bytes of an endless chunked body and drops it: the connection is closed, not pooled",
    requirement='RFC 9112 §6.3: "A client MUST NOT process, cache, or forward such extra data as a separate '
    'response". A connection with unread body bytes is closed, or drained a bounded amount, never pooled (Go '
    "TestTransportCloseResponseBody, urllib3 test_closing_response_actually_closes_connection).",
    level=Level.REQUIRED,
    mistakes=("reuse-after-abandoned-body",),
)
def abandoned_body(ctx) -> None:
    server = ctx.server(_endless)
    result = ctx.request(f"ABANDON {server.url('/big')} 10")
    if not result.ok or result.body_length != 10:
        raise Violation("ABANDON: 200 and the 10 bytes read", str(result))
    closed = server.wait_for(lambda led: led[0].client_close is not None, 1.0)
    second = ctx.get(server, "/2")
    expect_response(second, "request 2 (on a new connection)")
    if not closed:
        raise RecommendationMissed("the client closes the abandoned connection at once (within 1 s)",
                                   "still open 1 s after the caller dropped the response")
