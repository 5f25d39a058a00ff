"""Connections and FCGI_KEEP_CONN: a connection is reused only when the gateway said so, and
multiplexed only when the application said it can (spec §5.1, §3.5, §4.1)."""

from __future__ import annotations

from harness.gateways.application import REQUEST_WAIT, AppConn, answer_each, respond_with
from harness.gateways.cases import gateway_case
from harness.gateways.checks import expect_answer
from harness.gateways.observations import NO_REUSE_WITHOUT_KEEP_CONN
from harness.verdicts import Level, Observed, RecommendationMissed, Violation

FAMILY = "Connections and FCGI_KEEP_CONN (spec §5.1, §3.5, §4.1)"
FAMILY_ORDER = 4

KEEP_CONN_SENTENCE = ('Spec §5.1: "flags & FCGI_KEEP_CONN: If zero, the application closes the connection after '
                      'responding to this request. If not zero, the application does not close the connection after '
                      'responding to this request; the Web server retains responsibility for the connection."')


def _close_late_without_keep_conn(conn: AppConn) -> None:
    """Answers every request; after one without KEEP_CONN it closes as §5.1 says, but only after 1 s, so that a
    gateway that sends a further request there has the time to (a gateway may also wait for this close)."""
    keep = True
    while True:
        request = conn.next_request(REQUEST_WAIT if keep else 1.0)
        if request is None:
            if not keep and not conn.gateway_closed:
                conn.close()
            return
        conn.respond(request, b"hello")
        keep = request.keep_conn


@gateway_case(
    NO_REUSE_WITHOUT_KEEP_CONN,
    title="no further request on a connection whose request did not set FCGI_KEEP_CONN",
    requirement=KEEP_CONN_SENTENCE + " Without the flag the application may close at any moment after END_REQUEST, "
    "so a request sent there may be lost.",
    level=Level.REQUIRED,
    bugs=("no-keepconn-but-reuse",),
    allowed=("every connection whose request lacks KEEP_CONN carries that one request",),
)
def no_reuse_without_keep_conn(ctx) -> str:
    app = ctx.start(_close_late_without_keep_conn)
    conn = ctx.http()
    for index in range(3):
        expect_answer(ctx.request("GET", f"/sequence/{index}", conn=conn), f"GET {index + 1}", body=b"hello")
    ctx.settle()
    flags = ["KEEP_CONN" if r.keep_conn else "no KEEP_CONN" for r in app.requests()]
    return f"3 requests on {len(app.connections())} connections ({', '.join(flags)})"


@gateway_case(
    "GW-FCGI-5.1-2",
    title="FCGI_KEEP_CONN set only on a connection the gateway goes on to use",
    requirement=KEEP_CONN_SENTENCE + " A gateway that sets the flag and then closes after every request makes the "
    "application keep connections it never needed to.",
    level=Level.RECOMMENDED,
    bugs=("keepconn-but-close",),
    allowed=("no KEEP_CONN, one request per connection",
             "KEEP_CONN, and later requests on the same connection"),
)
def keep_conn_means_reuse(ctx) -> str:
    app = ctx.start(_close_late_without_keep_conn)
    conn = ctx.http()
    for index in range(3):
        expect_answer(ctx.request("GET", f"/reuse/{index}", conn=conn), f"GET {index + 1}", body=b"hello")
        ctx.sleep(0.1)
    ctx.settle()
    ledgers = app.connections()
    kept = [c for c in ledgers if c.requests and c.requests[0].keep_conn]
    wasted = [c for c in kept if len(c.requests) == 1 and c.closed_by == "gateway"]
    if kept and len(wasted) == len(kept):
        raise RecommendationMissed("KEEP_CONN only on connections that carry further requests",
                                   f"KEEP_CONN on all {len(kept)} connections, each closed by the gateway after one "
                                   "request")
    return f"3 requests on {len(ledgers)} connections, {len(kept)} with KEEP_CONN"


@gateway_case(
    "GW-FCGI-4.1-1",
    title="no two active requests on one connection when the application says FCGI_MPXS_CONNS 0",
    requirement='Spec §4.1: "FCGI_MPXS_CONNS: "0" if this application does not multiplex connections (i.e. handle '
    'concurrent requests over each connection), "1" otherwise." and §5.5: "FCGI_CANT_MPX_CONN: rejecting a new request. '
    'This happens when a Web server sends concurrent requests over one connection to an application that is designed '
    'to process one request at a time per connection."',
    level=Level.REQUIRED,
    bugs=("multiplex",),
    allowed=("each concurrent request on a connection of its own",),
)
def no_multiplexing(ctx) -> str:
    app = ctx.start(answer_each(respond_with(b"slow", delay=0.8)),
                    values={"FCGI_MPXS_CONNS": "0", "FCGI_MAX_CONNS": "16", "FCGI_MAX_REQS": "16"})
    answers = ctx.concurrent_gets([f"/mpx/{index}" for index in range(3)])
    ctx.settle()
    for ledger in app.connections():
        for request in ledger.requests:
            overlapping = [r for r in ledger.requests if r is not request and r.request_id != request.request_id
                           and r.began_at > request.began_at and (request.ended_at is None or r.began_at < request.ended_at)]
            if overlapping:
                raise Violation("one active request per connection",
                                f"connection {ledger.id}: id {overlapping[0].request_id} began while id "
                                f"{request.request_id} was active")
    asked = any(r.type == 9 for c in app.connections() for _, r in c.received)
    for index, answer in enumerate(answers):
        if answer is None:
            raise Violation("three concurrent GETs answered", f"GET {index + 1}: no answer in time")
        expect_answer(answer, f"concurrent GET {index + 1}", body=b"slow")
    return (f"3 concurrent requests on {len(app.connections())} connections; "
            f"{'asked' if asked else 'did not ask'} FCGI_GET_VALUES")


@gateway_case(
    "GW-FCGI-4.1-2",
    title="what the gateway asks with FCGI_GET_VALUES, and whether it multiplexes when the application allows it",
    requirement='Spec §4.1: "The Web server can query specific variables within the application" with '
    'FCGI_GET_VALUES (FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS). Whether a gateway asks, and whether it '
    'multiplexes, is its choice.',
    level=Level.UNSPECIFIED,
    allowed=("any",),
)
def get_values_seen(ctx) -> str:
    app = ctx.start(answer_each(respond_with(b"slow", delay=0.5)),
                    values={"FCGI_MPXS_CONNS": "1", "FCGI_MAX_CONNS": "16", "FCGI_MAX_REQS": "16"})
    ctx.concurrent_gets([f"/mpx-allowed/{index}" for index in range(3)])
    ctx.settle()
    from harness.wire.codec import decode_params

    asked = [n.decode("latin-1") for c in app.connections() for _, r in c.received if r.type == 9
             for n, _ in decode_params(r.content)]
    shared = max((len(c.requests) for c in app.connections()), default=0)
    raise Observed(f"GET_VALUES asked for: {', '.join(sorted(set(asked))) or 'nothing'}; with FCGI_MPXS_CONNS 1, "
                   f"3 concurrent requests on {len(app.connections())} connections (at most {shared} on one)")
