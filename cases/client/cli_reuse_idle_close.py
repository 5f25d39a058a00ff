"""The server closes an idle kept-alive connection (CLI-REUSE-2, 3, 4, 5, 6, 25, 29).

The catalogue's races are made deterministic as its harness recipe says: "the FIN already arrived"
is a close 50 ms after the response and a 300 ms pause before the next request; the TLS close_notify
of CLI-REUSE-4 leaves in the same TCP write as the last response record, so the client has it
before it can decide to reuse. CLI-REUSE-25 is the one timed scenario (the server's 1 s idle timer
against 1 s pauses): whichever way each race goes, a correct client shows no error, so its
verdict does not depend on timing. The server reads on after closing, so a request sent on a
closed connection is seen in the ledger.
"""

from __future__ import annotations

import sys

from harness.clients.cases import client_case, connection_ids, expect_response, late_requests, settle
from harness.clients.scenario_server import ANY, ServerConn, Step, response
from harness.verdicts import Level, RecommendationMissed, Unsupported, Violation

FAMILY = "Idle close: FIN, RST and close_notify on a pooled connection"
FAMILY_ORDER = 2

RECOVER = (
    'RFC 9112 §9.3.1: "Connections can be closed at any time, with or without intention. Implementations '
    'ought to anticipate the need to recover from asynchronous close events." A pooled connection that the '
    "server already closed is not reused (Go TestTransportRemovesDeadIdleConnections)."
)
CLOSE_NOTIFY = (
    'RFC 8446 §6.1: "close_notify: This alert notifies the recipient that the sender will not send any more '
    'messages on this connection." RFC 9112 §9.8: "When a valid closure alert is received, an implementation '
    'can be assured that no further data will be received on that connection." The client learns "closed" no '
    "later than the read that completes the body (golang.org/issue/3514, TestTLSServerClosesConnection)."
)
GAP = 0.3


def _closed_while_idle(ctx, step: Step, *, tls: bool = False) -> None:
    """req1, the server closes 50 ms later, a 300 ms pause, req2: on a new connection, no error."""
    server = ctx.server({0: [step], ANY: [Step(response())]}, tls=tls)
    expect_response(ctx.get(server, "/1"), "request 1")
    ctx.sleep(GAP)
    result = ctx.get(server, "/2")
    settle()
    late = late_requests(server)
    if late:
        raise Violation("no request on the connection the server had closed", "; ".join(late))
    expect_response(result, "request 2 (on a new connection, without an error)")
    first, second = connection_ids(server, "/1", "/2")
    if first == second:
        raise Violation("request 2 on a new connection", f"both on c{first}")


@client_case(
    "CLI-REUSE-2",
    title="server FIN 50 ms after the response; the next request 300 ms later goes on a new connection",
    requirement=RECOVER,
    level=Level.RECOMMENDED,
    mistakes=("reuse-after-eof",),
)
def fin_while_idle(ctx) -> None:
    _closed_while_idle(ctx, Step(response(), close="fin", close_after=0.05))


@client_case(
    "CLI-REUSE-3",
    title="TLS: FIN without close_notify while idle; the complete response is no error, the next request "
    "goes on a new connection",
    requirement=RECOVER + ' RFC 9112 §6.3: "its decimal value defines the expected message body length in octets"',
    level=Level.REQUIRED,
    mistakes=("reuse-after-eof",),
)
def tls_fin_without_close_notify(ctx) -> None:
    server = ctx.server({0: [Step(response(), close="fin", close_after=0.05)], ANY: [Step(response())]}, tls=True)
    expect_response(ctx.get(server, "/1"), "request 1 (its body was complete before the FIN)")
    ctx.sleep(GAP)
    result = ctx.get(server, "/2")
    settle()
    late = late_requests(server)
    expect_response(result, "request 2")
    if late:
        raise RecommendationMissed("no request on the connection the server had closed", "; ".join(late))


@client_case(
    "CLI-REUSE-4",
    title="TLS: close_notify in the same TCP segment as the last response record, FIN 200 ms later: "
    "a new connection every time, 20 trials, zero failures",
    requirement=CLOSE_NOTIFY,
    level=Level.REQUIRED,
    mistakes=("reuse-after-close-notify",),
    timeout=25.0,
)
def close_notify_coalesced(ctx) -> None:
    trials = 20
    server = ctx.server({ANY: [Step(response(), close="notify_coalesced", close_after=0.2)]}, tls=True)
    failures = []
    for number in range(trials + 1):
        result = ctx.get(server, f"/t{number}")
        if not result.ok or result.status != 200 or result.body_length != 3:
            failures.append(f"/t{number}: {result}")
    settle(0.1)
    conns = server.snapshot()
    shared = [f"c{c.id}: {c.paths}" for c in conns if len(c.requests) != 1]
    late = late_requests(server)
    if failures or shared or late or len(conns) != trials + 1:
        problems = failures + late + shared
        raise Violation(
            f"{trials + 1} requests on {trials + 1} connections, none after a close_notify, no failure",
            f"{len(conns)} connections; {len(failures)} failed requests; " + "; ".join(problems[:6]),
        )


@client_case(
    "CLI-REUSE-5",
    title="TLS: close_notify while idle with the TCP connection left open; the next request goes on a new "
    "connection",
    requirement=CLOSE_NOTIFY,
    level=Level.RECOMMENDED,
    mistakes=("reuse-after-close-notify",),
)
def close_notify_keep_tcp(ctx) -> None:
    _closed_while_idle(ctx, Step(response(), close="notify_keep", close_after=0.05, keep_open=2.0), tls=True)


@client_case(
    "CLI-REUSE-6",
    title="server RST 50 ms after the response; the next request goes on a new connection without an error",
    requirement=RECOVER,
    level=Level.RECOMMENDED,
)
def rst_while_idle(ctx) -> None:
    _closed_while_idle(ctx, Step(response(), close="rst", close_after=0.05))


def _idle_timeout_server(conn: ServerConn) -> None:
    """Keep-Alive: timeout=1, and a FIN after exactly 1 s of idleness (Apache KeepAliveTimeout 1)."""
    while True:
        if conn.read_request(1.0) is None:
            if conn.ledger.client_close is None:
                conn.close("fin")
            return
        conn.send(response(headers=["Keep-Alive: timeout=1, max=100"]))


@client_case(
    "CLI-REUSE-25",
    title="Keep-Alive: timeout=1 and a server closing idle connections after 1 s; requests 1 s apart "
    "never fail",
    requirement=RECOVER + " (Node test-http-keep-alive-timeout-race-condition, curl test_12_02)",
    level=Level.RECOMMENDED,
)
def idle_timeout_race(ctx) -> None:
    server = ctx.server(_idle_timeout_server)
    errors = []
    for number in range(1, 5):
        if number > 1:
            ctx.sleep(1.0)
        result = ctx.get(server, f"/{number}")
        if not result.ok or result.status != 200:
            errors.append(f"/{number}: {result}")
    if errors:
        raise Violation("no user-visible error (expire the connection first, or retry the GET)", "; ".join(errors))
    return f"{len(server.snapshot())} connections for 4 requests"


def _late_ticket_server(conn: ServerConn) -> None:
    while conn.read_request() is not None:
        conn.send(response())
        conn.sleep(0.1)
        conn.send_session_ticket()


@client_case(
    "CLI-REUSE-29",
    title="TLS 1.3: a NewSessionTicket arrives on the idle connection; it is still reused",
    requirement="RFC 8446 §4.6.1: \"At any time after the server has received the client Finished message, it MAY "
    "send a NewSessionTicket message.\" A post-handshake message is not a sign of a dead connection (a raw "
    "poll/MSG_PEEK liveness probe mistakes it for data: a performance-only failure).",
    level=Level.RECOMMENDED,
)
def late_session_ticket(ctx) -> None:
    if sys.implementation.name != "cpython":
        raise Unsupported("sending a post-handshake ticket needs CPython's ssl module")
    server = ctx.server(_late_ticket_server, tls=True)
    expect_response(ctx.get(server, "/1"), "request 1")
    ctx.sleep(GAP)
    expect_response(ctx.get(server, "/2"), "request 2")
    first, second = connection_ids(server, "/1", "/2")
    if first != second:
        raise RecommendationMissed("request 2 on the connection of request 1 (the ticket is harmless)",
                                   "a new connection (acceptable, but a needless reconnect)")
