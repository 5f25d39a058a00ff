"""Keep-alive: a connection whose response was read to its end is reused (CLI-REUSE-1, 26).

Every scenario of the catalogue's family is here except 1d (the caller reads the body to its exact
length and never releases it): through the adapter protocol a body is always read to its end and
then dropped, so 1d is the same exchange as 1 from the server's side.
"""

from __future__ import annotations

import gzip

from harness.clients.cases import client_case, expect_response, settle
from harness.clients.scenario_server import ANY, Step, chunked, response
from harness.verdicts import Level, Violation

FAMILY = "Keep-alive: reuse after a complete response"
FAMILY_ORDER = 1

PERSISTENT = (
    'RFC 9112 §9.3: "HTTP/1.1 defaults to the use of "persistent connections", allowing multiple requests and '
    'responses to be carried over a single connection." A connection is recycled on the read that ends a '
    "Content-Length or chunked body (Go TestTransportReadToEndReusesConn)."
)
CLOSE_OPTION = (
    'RFC 9112 §9.6: "A client that receives a "close" connection option MUST cease sending requests on that '
    'connection and close the connection after reading the response message containing the "close" '
    'connection option"'
)


def _three_on_one_connection(ctx, reply: bytes, body: bytes | None = b"foo") -> None:
    server = ctx.server({ANY: [Step(reply)]})
    for number in (1, 2, 3):
        result = ctx.get(server, f"/{number}")
        expect_response(result, f"request {number}", body=body)
        if body is None and result.body_length not in (3, len(gzip.compress(b"foo", mtime=0))):
            raise Violation("the gzip body (3 bytes decoded, or the encoded bytes)", str(result))
    settle(0.1)
    conns = server.snapshot()
    if len(conns) != 1:
        ports = ", ".join(f"c{c.id} port {c.peer_port}: {c.paths}" for c in conns)
        raise Violation("all three requests on one connection (one client port)", f"{len(conns)} connections ({ports})")
    if conns[0].client_close is not None:
        raise Violation("the connection left open after the third response", f"the client closed it ({conns[0].client_close})")


@client_case(
    "CLI-REUSE-1",
    title="three sequential Content-Length responses read to the end: one connection, never closed",
    requirement=PERSISTENT,
    level=Level.REQUIRED,
    mistakes=("no-release-on-content-length-end",),
)
def content_length_keep_alive(ctx) -> None:
    _three_on_one_connection(ctx, response(b"foo"))


@client_case(
    "CLI-REUSE-1b",
    title="three sequential chunked responses read to the end: one connection, never closed",
    requirement=PERSISTENT,
    level=Level.REQUIRED,
)
def chunked_keep_alive(ctx) -> None:
    _three_on_one_connection(ctx, chunked(b"foo"))


@client_case(
    "CLI-REUSE-1c",
    title="three sequential gzip Content-Encoding responses: one connection, never closed",
    requirement=PERSISTENT,
    level=Level.REQUIRED,
)
def gzip_keep_alive(ctx) -> None:
    _three_on_one_connection(ctx, response(gzip.compress(b"foo", mtime=0), headers=["Content-Encoding: gzip"]), None)


@client_case(
    "CLI-REUSE-26",
    title="Connection: close on every second response (MaxKeepAliveRequests 2): 6 requests, 3 connections",
    requirement=CLOSE_OPTION,
    level=Level.REQUIRED,
    mistakes=("ignore-connection-close",),
)
def max_requests_per_connection(ctx) -> None:
    last = response(b"foo", headers=["Connection: close"])
    # The close after the second response is a FIN a little later, as Apache's lingering close
    # does: a client that sends again before it arrives is seen doing so.
    server = ctx.server({ANY: [Step(response(b"foo")), Step(last, close="fin", close_after=0.2)]})
    for number in range(1, 7):
        expect_response(ctx.get(server, f"/{number}"), f"request {number}")
    settle(0.1)
    layout = [c.paths for c in server.snapshot()]
    want = [["/1", "/2"], ["/3", "/4"], ["/5", "/6"]]
    if layout != want:
        raise Violation(f"requests per connection {want}", f"{layout}")
