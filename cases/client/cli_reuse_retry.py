"""Retries after a reused connection dies under a request (CLI-REUSE-7, 8, 9, 10, 28).

The keep-alive race is made deterministic as the harness recipe says: the server reads the *whole*
next request on the reused connection and then closes (FIN, RST or close_notify) without a byte of
response, as if its idle timer had fired while the request was on the wire. CLI-REUSE-28 is a
stress run whose verdict does not depend on timing: a correct client has no error however the
races go.
"""

from __future__ import annotations

from harness.clients.cases import client_case, expect_error, expect_response, settle
from harness.clients.scenario_server import ANY, ScenarioServer, ServerConn, Step, response
from harness.verdicts import Level, Observed, RecommendationMissed, Unsupported, Violation

FAMILY = "Retries: a reused connection dies under a request"
FAMILY_ORDER = 3

IDEMPOTENT_RETRY = (
    'RFC 9110 §9.2.2: "Idempotent methods are distinguished because the request can be repeated automatically if '
    'a communication failure occurs before the client is able to read the server\'s response." RFC 9112 §9.3.1: '
    '"Implementations ought to anticipate the need to recover from asynchronous close events."'
)
NO_POST_RETRY = (
    'RFC 9110 §9.2.2: "A user agent SHOULD NOT automatically retry a request with a non-idempotent method unless '
    "it has some means to know that the request semantics are actually idempotent, regardless of the method, or "
    'some means to detect that the original request was never applied." (RFC 7230 §6.3.1: MUST NOT.)'
)
NO_RETRY_OF_RETRY = 'RFC 9110 §9.2.2: "A client SHOULD NOT automatically retry a failed automatic retry."'


def _require_reuse(server: ScenarioServer) -> None:
    """The race needs request 2 on the kept-alive connection of request 1."""
    if "/2" not in server.snapshot()[0].paths:
        raise Unsupported("the client did not reuse the connection for request 2 (see CLI-REUSE-1), "
                          "so the race cannot happen")


def _race(ctx, close: str, *, tls: bool = False) -> None:
    """c0 answers /1, reads /2 whole and closes unanswered; GET /2 must be retried once."""
    server = ctx.server({0: [Step(response()), Step(None, close=close)], ANY: [Step(response())]}, tls=tls)
    expect_response(ctx.get(server, "/1"), "request 1")
    result = ctx.get(server, "/2")
    settle()
    _require_reuse(server)
    layout = [c.paths for c in server.snapshot()]
    want = [["/1", "/2"], ["/2"]]
    if not result.ok:
        raise Violation("GET /2 retried once on a new connection, then 200", f"request 2: {result}; requests per "
                        f"connection {layout}")
    expect_response(result, "request 2")
    if layout != want:
        raise Violation(f"requests per connection {want}", f"{layout}")


@client_case(
    "CLI-REUSE-7",
    title="keep-alive race: the reused connection reads GET /2 and closes (FIN) unanswered; one retry on a new "
    "connection",
    requirement=IDEMPOTENT_RETRY,
    level=Level.RECOMMENDED,
    mistakes=("no-retry",),
)
def race_fin(ctx) -> None:
    _race(ctx, "fin")


@client_case(
    "CLI-REUSE-7b",
    title="keep-alive race with an RST: one retry of GET /2 on a new connection",
    requirement=IDEMPOTENT_RETRY,
    level=Level.RECOMMENDED,
    mistakes=("no-retry",),
)
def race_rst(ctx) -> None:
    _race(ctx, "rst")


@client_case(
    "CLI-REUSE-7c",
    title="keep-alive race over TLS, closed with close_notify: one retry of GET /2 on a new connection",
    requirement=IDEMPOTENT_RETRY,
    level=Level.RECOMMENDED,
    mistakes=("no-retry",),
)
def race_close_notify(ctx) -> None:
    _race(ctx, "notify", tls=True)


def _post_race(ctx, *headers: str) -> tuple[int, object]:
    server = ctx.server({0: [Step(response()), Step(None, close="fin")], ANY: [Step(response())]})
    expect_response(ctx.get(server, "/1"), "request 1")
    result = ctx.post(server, "/2", 1, *headers)
    settle()
    _require_reuse(server)
    return sum(1 for _, req in server.requests() if req.path == "/2"), result


@client_case(
    "CLI-REUSE-8",
    title="the same race for a POST: it is not resent, and the error reaches the caller",
    requirement=NO_POST_RETRY,
    level=Level.REQUIRED,
    mistakes=("retry-post",),
)
def race_post(ctx) -> None:
    sent, result = _post_race(ctx)
    if sent != 1:
        raise Violation("POST /2 sent exactly once", f"the server saw POST /2 {sent} times; the client said {result}")
    expect_error(result, "request 2", "the POST may have been applied; only the caller can decide to resend it")


@client_case(
    "CLI-REUSE-8b",
    title="the POST race with Idempotency-Key: k1 (Go resends it): what the client does",
    requirement="RFC 9110 §9.2.2 (a means \"to know that the request semantics are actually idempotent\"); "
    "draft-ietf-httpapi-idempotency-key-header",
    level=Level.UNSPECIFIED,
)
def race_post_idempotency_key(ctx) -> None:
    sent, result = _post_race(ctx, "Idempotency-Key:k1")
    raise Observed(f"POST /2 sent {sent} times; the client said {result}")


@client_case(
    "CLI-REUSE-9",
    title="every fresh connection closes without a response: the error reaches the caller, no retry loop",
    requirement=NO_RETRY_OF_RETRY + " curl: (52) Empty reply from server; Go makes no retry on a connection that "
    "was not reused.",
    level=Level.REQUIRED,
)
def fresh_connection_closes(ctx) -> None:
    server = ctx.server({ANY: [Step(None, close="fin")]})
    result = ctx.get(server, "/1")
    settle()
    opened = len(server.snapshot())
    expect_error(result, "request 1", "no server ever answered")
    if opened > 2:
        raise RecommendationMissed("at most one retry (1 or 2 connections)", f"{opened} connections")
    return f"{opened} connection(s)"


def _dies_on_second_request(conn: ServerConn) -> None:
    first = conn.read_request()
    if first is None:
        return
    if first.path.startswith("/fill"):
        conn.server.wait_requests(3, 2.0)  # the three fills are in flight together: three connections
    conn.send(response())
    if conn.read_request() is not None:
        conn.close("fin")


@client_case(
    "CLI-REUSE-10",
    title="every reused connection dies under the next request (3 pooled): bounded attempts, then a fresh "
    "connection",
    requirement=NO_RETRY_OF_RETRY + " Go bounds by the pooled connections, curl at 5 attempts.",
    level=Level.RECOMMENDED,
)
def retry_bound(ctx) -> None:
    server = ctx.server(_dies_on_second_request)
    fills = ctx.concurrent([f"GET {server.url(f'/fill{n}')}" for n in range(3)])
    for number, result in enumerate(fills):
        expect_response(result, f"fill {number}")
    result = ctx.get(server, "/x")
    settle()
    attempts = sum(1 for _, req in server.requests() if req.path == "/x")
    if attempts > 2:
        raise RecommendationMissed("GET /x sent at most twice (one retry)", f"sent {attempts} times; {result}")
    if not result.ok:
        raise RecommendationMissed("GET /x retried on a fresh connection, which answers", str(result))
    return f"GET /x sent {attempts} times"


@client_case(
    "CLI-REUSE-28",
    title="stress: 10 concurrent workers x 10 requests, the server closes every connection after its response",
    requirement=IDEMPOTENT_RETRY + " No hang, and no error where a retry on a fresh connection would do "
    "(Go TestStressSurpriseServerCloses).",
    level=Level.RECOMMENDED,
    timeout=30.0,
)
def stress_surprise_close(ctx) -> None:
    server = ctx.server({ANY: [Step(response(b"Hello"), close="fin")]})
    errors = []
    for round_ in range(10):
        results = ctx.concurrent([f"GET {server.url(f'/r{round_}w{w}')}" for w in range(10)])
        errors += [f"r{round_}w{w}: {r}" for w, r in enumerate(results) if not r.ok or r.body_length != 5]
    if errors:
        raise Violation("100 answers, no error", f"{len(errors)} errors: " + "; ".join(errors[:4]))
    return f"{len(server.snapshot())} connections"
