"""Kept connections the application closes: the FastCGI twin of the HTTP client's reuse race
(RFC 9110 §9.2.2; spec §3.5). The application ends a kept connection right after END_REQUEST,
while it is idle, or with a reset; the next HTTP request must still be served, and a POST must
never reach the application twice.

These cases need a gateway that keeps FastCGI connections (FCGI_KEEP_CONN): against one that
does not, the race cannot arise and they are unsupported.
"""

from __future__ import annotations

from harness.gateways.application import AppConn, serve
from harness.gateways.cases import gateway_case
from harness.gateways.checks import expect_answer, expect_fetched, request_with
from harness.verdicts import Level, RecommendationMissed, Violation

FAMILY = "Kept connections the application closes (RFC 9110 §9.2.2, spec §3.5)"
FAMILY_ORDER = 5

RETRY_SENTENCE = ('RFC 9110 §9.2.2: "A user agent SHOULD NOT automatically retry a request with a non-idempotent '
                  'method unless it has some means to know that the request semantics are actually idempotent" and '
                  '"A proxy MUST NOT automatically retry non-idempotent requests."')
IDEMPOTENT_SENTENCE = ('RFC 9110 §9.2.2: idempotent methods "are distinguished because the request can be repeated '
                       'automatically if a communication failure occurs before the client is able to read the '
                       'server\'s response"; spec '
                       '§3.5: "The Web server controls the lifetime of transport connections", so a kept connection '
                       'the application closed is the gateway\'s to notice: the HTTP client should not see a 502 for '
                       'a GET the application never received.')


def _close_after_first(how: str, *, idle: float = 0.0):
    """On the first connection: answer one request, then close it (FIN or RST), at once or after `idle` s."""

    def first(conn: AppConn) -> None:
        request = conn.next_request()
        if request is None:
            return
        conn.respond(request, b"first")
        if not request.keep_conn:  # not a kept connection: the plain close of §5.1 (the case is unsupported)
            conn.close()
            return
        if idle:
            conn.sleep(idle)
        conn.reset() if how == "RST" else conn.close()

    def script(conn: AppConn) -> None:
        (first if conn.id == 1 else serve)(conn)

    return script


def _second_get_served(ctx, how: str, idle: float, pause: float) -> str:
    """Two GETs through the reference HTTP client (which keeps its HTTP connection to the gateway)."""
    app = ctx.start(_close_after_first(how, idle=idle))
    expect_fetched(ctx.fetch("GET", "/first"), "GET 1", body=b"first")
    ctx.need_kept_connections(app.requests()[0] if app.requests() else None)
    ctx.sleep(pause)
    second = ctx.fetch("GET", "/second")
    ctx.settle()
    if not second.ok or second.status != 200:
        raise RecommendationMissed("GET 2 served on a new connection (200)", f"GET 2: {second}")
    expect_fetched(second, "GET 2", body=b"hello")
    return f"GET 2 served; the application saw {len(app.connections())} connections"


@gateway_case(
    "GW-RFC9110-9.2.2-1",
    title="the application closes a kept connection right after END_REQUEST: the next GET is still served",
    requirement=IDEMPOTENT_SENTENCE,
    level=Level.RECOMMENDED,
    bugs=("no-retry",),
    allowed=("200 for the next GET (a new connection, or a retry of it there)",),
)
def close_after_end_request(ctx) -> str:
    return _second_get_served(ctx, "FIN", idle=0.0, pause=0.05)


@gateway_case(
    "GW-RFC9110-9.2.2-2",
    title="the application closes a kept connection while it is idle: the next GET is still served",
    requirement=IDEMPOTENT_SENTENCE,
    level=Level.RECOMMENDED,
    bugs=("no-retry",),
    allowed=("200 for the next GET",),
)
def close_while_idle(ctx) -> str:
    return _second_get_served(ctx, "FIN", idle=0.3, pause=0.6)


@gateway_case(
    "GW-RFC9110-9.2.2-3",
    title="the application resets a kept connection while it is idle: the next GET is still served",
    requirement=IDEMPOTENT_SENTENCE,
    level=Level.RECOMMENDED,
    bugs=("no-retry",),
    allowed=("200 for the next GET",),
)
def reset_while_idle(ctx) -> str:
    return _second_get_served(ctx, "RST", idle=0.3, pause=0.6)


def _post_dropped(conn: AppConn) -> None:
    """Connection 1: answers the first request; reads the POST that comes next, and closes without answering."""
    if conn.id != 1:
        serve(conn)
        return
    first = conn.next_request()
    if first is None:
        return
    conn.respond(first, b"first")
    if not first.keep_conn:  # not a kept connection: the plain close of §5.1 (the case is unsupported)
        conn.close()
        return
    second = conn.next_request()
    if second is None:
        return
    conn.note(f"the application received request {second.ordinal} and closes without answering")
    conn.close()


@gateway_case(
    "GW-RFC9110-9.2.2-4",
    title="a POST on a kept connection that the application drops without an answer reaches the application once",
    requirement=RETRY_SENTENCE,
    level=Level.REQUIRED,
    bugs=("retry-post",),
    allowed=("the POST received once; the HTTP client gets an error (502)",),
)
def post_never_twice(ctx) -> str:
    app = ctx.start(_post_dropped)
    conn = ctx.http()
    expect_answer(ctx.request("GET", "/first", conn=conn), "GET 1", body=b"first")
    ctx.need_kept_connections(app.requests()[0] if app.requests() else None)
    if not app.connections() or len(app.connections()) != 1:
        raise Violation("the GET on one connection", f"{len(app.connections())} connections")
    answer = ctx.request("POST", "/charge-once", conn=conn, body=b"amount=100")
    ctx.settle(0.5)
    posts = request_with(app, "/charge-once")
    if len(posts) > 1:
        where = ", ".join(f"connection {r.conn_id}" for r in posts)
        raise Violation("the POST received by the application once", f"received {len(posts)} times ({where}); the "
                        f"HTTP client got {answer.describe()}")
    if not posts:
        return f"the POST went to a new connection, not the kept one; {answer.describe()}"
    if posts[0].conn_id != 1:
        return f"the POST went to connection {posts[0].conn_id}: {answer.describe()}"
    return f"the POST reached the application once; the HTTP client got {answer.describe()}"
