"""Known application bugs behind the gateway: the reference responder replays one with its fault mode
(reference-server/faults.c) and the gateway must still keep its side of the protocol. Each case is
named after the application's bug report and quotes the requirement the gateway meets in front of it.

The responder's probe app answers `?out=N` with N bytes `abc...zabc...` and no Content-Length, so
a response the gateway cuts or ends early shows in its body.
"""

from __future__ import annotations

from harness.gateways.application import AppRequest, ScriptedApp
from harness.gateways.cases import GatewayContext, gateway_case
from harness.gateways.checks import expect_answer, expect_fetched, expect_not_success
from harness.verdicts import Level, RecommendationMissed, Unsupported
from harness.wire.probe_app import pattern_bytes

FAMILY = "Known application bugs behind the gateway (the reference responder's fault modes)"
FAMILY_ORDER = 11

# Requests a case sends until one goes out on a FastCGI connection the gateway reused.
REUSE_ATTEMPTS = 4
# Well under a gateway's read timeout: END_REQUEST must end a response, not the gateway's timer.
END_WAIT = 3.0


def _reused_request(app: ScriptedApp, path: str) -> AppRequest | None:
    """The request for this path, if it went out on a connection that had served one before."""
    found = [r for r in app.requests() if (r.param("REQUEST_URI") or "").startswith(path)]
    return found[-1] if found and found[-1].ordinal > 1 else None


@gateway_case(
    "GW-REG-hhvm-2522",
    title="HHVM #2522: an application that closes after every END_REQUEST, FCGI_KEEP_CONN or not: GETs in a row "
    "are all served",
    requirement='RFC 9110 §9.2.2: idempotent methods "are distinguished because the request can be repeated '
                'automatically if a communication failure occurs before the client is able to read the server\'s '
                'response"; spec §3.5: "The Web server controls the lifetime of transport connections", so a kept '
                'connection the application closed is the gateway\'s to notice. HHVM (and Ceph RGW) closed every '
                'connection after END_REQUEST although FCGI_KEEP_CONN asked it to stay open.',
    level=Level.RECOMMENDED,
    bugs=("no-retry",),
    allowed=("200 with the whole body for every GET (a new connection each time, or a retry there)",),
)
def hhvm_2522(ctx: GatewayContext) -> str:
    app = ctx.start_reference("keep-conn-close")
    first = ctx.fetch("GET", "/hhvm-2522/1?out=100")
    expect_fetched(first, "GET 1", body=pattern_bytes(100))
    ctx.need_kept_connections(app.requests()[0] if app.requests() else None)
    for index in range(2, 5):
        ctx.sleep(0.05)
        got = ctx.fetch("GET", f"/hhvm-2522/{index}?out={100 * index}")
        if not got.ok or got.status != 200:
            raise RecommendationMissed(f"GET {index} served on a new connection (200)", f"GET {index}: {got}")
        expect_fetched(got, f"GET {index}", body=pattern_bytes(100 * index))
    return f"4 GETs served; the application closed each of the {len(app.connections())} connections"


@gateway_case(
    "GW-REG-hyperfastcgi-55",
    title='HyperFastCgi #55: from the second request on a kept connection the application\'s records are '
    'misframed ("upstream sent unsupported FastCGI protocol version: 0"): the response is an error, not content',
    requirement='Spec §3.3: "version: Identifies the FastCGI protocol version." A record stream that no longer '
    'parses yields no END_REQUEST and no valid response; RFC 9110 §15.6.3: 502 for "an invalid response from an '
    'inbound server"; RFC 9112 §8: a message received incomplete must not be passed on as complete.',
    level=Level.REQUIRED,
    bugs=("misframed-as-complete",),
    allowed=("502", "504 after the gateway's read timeout", "a response cut short (no last chunk, a close)"),
)
def hyperfastcgi_55(ctx: GatewayContext) -> str:
    app = ctx.start_reference("misframe-on-reuse")
    conn = ctx.http()
    expect_answer(ctx.request("GET", "/hyperfastcgi-55/1?out=100", conn=conn), "GET 1", body=pattern_bytes(100))
    ctx.need_kept_connections(app.requests()[0] if app.requests() else None)
    # The bug shows only on a reused FastCGI connection: a gateway with several may open a new one first.
    for index in range(2, 2 + REUSE_ATTEMPTS):
        path = f"/hyperfastcgi-55/{index}"
        got = ctx.request("GET", f"{path}?out=100", conn=conn)
        if _reused_request(app, path) is not None:
            expect_not_success(got, f"GET {index}", "its records stopped parsing before END_REQUEST")
            return f"GET {index}, on the reused connection: {got.describe()}"
        expect_answer(got, f"GET {index} (on a new FastCGI connection)", body=pattern_bytes(100))
    raise Unsupported(f"{ctx.gateway_name()} sent none of {REUSE_ATTEMPTS} further requests on a FastCGI connection "
                      "it had used before: the misframing appears only there")


@gateway_case(
    "GW-REG-phpfpm-67583",
    title="php-fpm bug #67583: an application that sends END_REQUEST twice: every later response is whole and its own",
    requirement='Spec §3.3: "A request ID R becomes active when the application receives a record '
    '{FCGI_BEGIN_REQUEST, R, ...} and becomes inactive when the application sends a record {FCGI_END_REQUEST, R, '
    '...} to the Web server." The second END_REQUEST belongs to no active request: it must not end the next request '
    'that reuses the id.',
    level=Level.REQUIRED,
    bugs=("garbage-after-end",),
    allowed=("every response whole; the stray END_REQUEST dropped, or the connection closed",),
)
def phpfpm_67583(ctx: GatewayContext) -> str:
    app = ctx.start_reference("end-request-twice")
    conn = ctx.http()
    for index in range(1, 5):
        expect_answer(ctx.request("GET", f"/phpfpm-67583/{index}?out={100 * index}", conn=conn), f"GET {index}",
                      body=pattern_bytes(100 * index))
    reused = sum(1 for r in app.requests() if r.ordinal > 1)
    return (f"4 responses whole; {reused} of the requests went on a reused FastCGI connection, "
            f"{len(app.connections())} connections in all")


@gateway_case(
    "GW-REG-protocolfcgi-6",
    title="lisachenko/protocol-fcgi #6: an application that ends STDOUT without its empty record: END_REQUEST still "
    "ends the response",
    requirement='Spec §5.5: "The application sends a FCGI_END_REQUEST record to terminate a request, either because '
    'the application has processed the request or because the application has rejected the request."',
    level=Level.REQUIRED,
    bugs=("needs-stdout-terminator",),
    same_requirement_as=("GW-FCGI-5.5-1",),
    allowed=("every response complete, without waiting for a timeout",),
)
def protocolfcgi_6(ctx: GatewayContext) -> str:
    ctx.start_reference("no-empty-stdout")
    conn = ctx.http()
    for index in (1, 2):
        expect_answer(ctx.request("GET", f"/protocol-fcgi-6/{index}?out=300", conn=conn, timeout=END_WAIT),
                      f"GET {index}", body=pattern_bytes(300))
    return "2 responses complete without the empty STDOUT record"
