"""The HTTP client going away, and an application that goes silent: what the gateway tells the
application (ABORT_REQUEST, a close, or nothing), what it does with the application's later output,
and how long it waits (spec §5.4; RFC 9110 §15.6.5)."""

from __future__ import annotations

import time

from harness.gateways.application import AppConn, serve
from harness.gateways.cases import gateway_case
from harness.gateways.checks import expect_answer
from harness.verdicts import Level, Observed, RecommendationMissed, Violation

FAMILY = "The HTTP client going away; a silent application (spec §5.4)"
FAMILY_ORDER = 9

ABORT_SENTENCE = ('Spec §5.4: "A Web server aborts a FastCGI request when an HTTP client closes its transport '
                  'connection while the FastCGI request is running on behalf of that client." and "When a Web server '
                  'is not multiplexing requests over a transport connection, the Web server can abort a request by '
                  'closing the request\'s transport connection."')


def _hold_first(seconds: float):
    """Connection 1: takes the request and answers only after `seconds` (watching for an ABORT or a close)."""

    def script(conn: AppConn) -> None:
        if conn.id != 1:
            serve(conn)
            return
        request = conn.next_request()
        if request is None:
            return
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and request.aborted_at is None and not conn.gateway_closed:
            conn.observe(0.05)
        if conn.gateway_closed:
            return
        conn.respond(request, b"late answer " + b"L" * 20000)
        if not request.keep_conn:
            conn.close()
            return
        serve(conn)

    return script


@gateway_case(
    "GW-FCGI-5.4-1",
    title="the HTTP client closes while the application works: the gateway aborts the request or closes the connection",
    requirement=ABORT_SENTENCE + " Telling the application is how it stops work nobody will read.",
    level=Level.RECOMMENDED,
    bugs=("no-abort",),
    allowed=("FCGI_ABORT_REQUEST for the request", "the FastCGI connection closed",
             "nothing (a warning: the application works on for nobody)"),
)
def abort_on_client_gone(ctx) -> str:
    app = ctx.start(_hold_first(ctx.read_timeout + 1))
    conn = ctx.http()
    conn.send_request("GET", "/work")
    if not app.wait_requests(1, 5.0):
        raise Violation("the request reaches the application", "no request arrived")
    ctx.sleep(0.3)
    conn.close()
    # Promptly: well before the gateway's own read timeout would end the request anyway.
    wait = min(2.0, ctx.read_timeout / 2)
    told = app.wait_for(lambda a: a.requests()[0].aborted_at is not None or a.connections()[0].closed_by == "gateway",
                        wait)
    request = app.requests()[0]
    if request.aborted_at is not None:
        return f"FCGI_ABORT_REQUEST {request.aborted_at - request.began_at:.2f} s after the request began"
    if told:
        return "the gateway closed the FastCGI connection"
    raise RecommendationMissed(["FCGI_ABORT_REQUEST", "the FastCGI connection closed"],
                               f"neither within {wait:g} s of the client's close")


@gateway_case(
    "GW-FCGI-5.4-2",
    title="after the HTTP client left, the application's late answer does not stop the gateway serving the next request",
    requirement='Spec §5.4: after an abort "the application responds as soon as possible with {FCGI_END_REQUEST ...}"'
    ' and §3.3: the request becomes inactive with its END_REQUEST; the connection, and the gateway, go on.',
    level=Level.REQUIRED,
    bugs=("pool-while-active",),
    allowed=("the next request answered by the application, intact",),
)
def late_answer_then_next(ctx) -> str:
    ctx.start(_hold_first(1.0))
    conn = ctx.http()
    conn.send_request("GET", "/abandoned")
    ctx.sleep(0.3)
    conn.close()
    # While the abandoned request still runs: its late answer comes after this one was sent.
    ctx.sleep(0.2)
    expect_answer(ctx.request("GET", "/next"), "the next GET", body=b"hello")
    return "the next GET answered intact"


@gateway_case(
    "GW-RFC9110-15.6.5-1",
    title="an application that never answers: the HTTP client gets 504 (or 502) within the gateway's timeout",
    requirement='RFC 9110 §15.6.5: "The 504 (Gateway Timeout) status code indicates that the server, while acting as '
    'a gateway or proxy, did not receive a timely response from an upstream server it needed to access in order to '
    'complete the request." A gateway configured to wait READ_TIMEOUT seconds answers by then.',
    level=Level.RECOMMENDED,
    bugs=("no-read-timeout",),
    allowed=("504", "502", "the connection closed, within the timeout and some slack"),
)
def silent_application(ctx) -> str:
    def silent(conn: AppConn) -> None:
        conn.next_request()
        conn.observe(ctx.read_timeout * 3 + 5)

    ctx.start(silent)
    limit = ctx.read_timeout * 2 + 3
    started = time.monotonic()
    got = ctx.request("GET", "/silent", timeout=limit)
    waited = time.monotonic() - started
    if got.status is None and "timeout" in got.ended:
        raise RecommendationMissed(f"504 or 502 within {limit:g} s (the gateway waits {ctx.read_timeout:g} s)",
                                   f"nothing after {waited:.1f} s")
    if got.complete and got.status is not None and got.status < 500:
        raise Violation("504, 502 or a close", f"{got.describe()} after {waited:.1f} s")
    return f"{got.describe()} after {waited:.1f} s"


def _stream_until_told(conn: AppConn) -> None:
    """Streams a 4 MiB response in 64 KiB pieces, 20 ms apart, and stops early when the gateway aborts the
    request or closes the connection (then, after an abort, ends the request as §5.4 asks)."""
    request = conn.next_request()
    if request is None:
        return
    conn.stdout(request, b"Content-Type: application/octet-stream\r\n\r\n")
    for _ in range(64):
        if request.aborted_at is not None or conn.gateway_closed:
            break
        try:
            conn.stdout(request, b"s" * 65536)
        except Exception:
            return
        conn.observe(0.02)
    if not conn.gateway_closed:
        conn.end(request)


@gateway_case(
    "GW-FCGI-5.4-3",
    title="the HTTP client closes in the middle of a long response: the gateway aborts the request or closes",
    requirement=ABORT_SENTENCE + " A response nobody reads is work the application can stop.",
    level=Level.RECOMMENDED,
    bugs=("no-abort",),
    allowed=("FCGI_ABORT_REQUEST", "the FastCGI connection closed", "nothing (a warning)"),
)
def abort_mid_response(ctx) -> str:
    app = ctx.start(_stream_until_told)
    conn = ctx.http()
    conn.send_request("GET", "/long")
    conn.read_response("GET", timeout=5.0, limit=16384)
    conn.reset()
    left = time.monotonic()
    wait = min(2.0, ctx.read_timeout / 2)
    told = app.wait_for(lambda a: bool(a.requests()) and (a.requests()[0].aborted_at is not None
                                                           or a.connections()[0].closed_by == "gateway"), wait)
    request = app.requests()[0] if app.requests() else None
    if request is not None and request.aborted_at is not None:
        return f"FCGI_ABORT_REQUEST {request.aborted_at - left:.2f} s after the client left"
    if told:
        ledger = app.connections()[0]
        return f"the gateway closed the connection ({ledger.close_how}) {ledger.closed_at - left:.2f} s after"
    raise RecommendationMissed(["FCGI_ABORT_REQUEST", "the FastCGI connection closed"],
                               f"neither within {wait:g} s of the client's reset, while the application streamed")


@gateway_case(
    "GW-FCGI-5.4-4",
    title="the HTTP client closes in the middle of its upload: what the application sees",
    requirement='Spec §5.4 (FCGI_ABORT_REQUEST) and §5.3 (STDIN). A gateway that buffers the upload sends the '
    'application nothing; one that streams it has begun a request whose STDIN will never end, and tells the '
    'application or leaves it waiting. Recorded.',
    level=Level.UNSPECIFIED,
    allowed=("no request", "a request, then ABORT_REQUEST or a close", "a request left waiting for its STDIN"),
)
def client_gone_mid_upload(ctx) -> str:
    app = ctx.start()
    conn = ctx.http()
    conn.send_request("POST", "/upload", headers=("Content-Length: 1048576",), send_body=False)
    conn.send_raw(b"u" * 300000)
    ctx.sleep(0.5)
    conn.reset()
    ctx.sleep(min(2.0, ctx.read_timeout / 2))
    request = app.requests()[0] if app.requests() else None
    if request is None:
        raise Observed("no request reached the application (the upload was buffered)")
    ledger = app.connections()[0]
    told = ("FCGI_ABORT_REQUEST" if request.aborted_at is not None else
            f"the connection closed by the {ledger.closed_by}" if ledger.closed_by else "nothing: left waiting")
    raise Observed(f"a request with {len(request.stdin)} of 1048576 STDIN bytes; then {told}")
