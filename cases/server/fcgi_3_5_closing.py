"""§3.5 Closing transport connections, as delegated by FCGI_KEEP_CONN (§5.1).

The web server's closes (FCGI-3.5-3, FCGI-3.5-4) are judged by what can be seen from outside: the
application goes on serving (a bystander connection and new connections), and, for a target the
harness spawns, its descriptors and memory come back to where they were (a leaked connection or
request shows as a descriptor that is never closed). For a tcp:/unix: target only the protocol-level
part runs; the note says so.
"""

from __future__ import annotations

import contextlib
import time
from typing import Iterator

from harness.suite.case import CaseContext, case
from harness.suite.case_requests import begin_and_params, plain_request, request_records
from harness.wire.connection import ConnectionClosed, FcgiTimeout
from harness.wire.codec import MANAGEMENT_REQUEST_ID, RecordType, encode_params, encode_record
from harness.wire.probe_app import probe_query
from harness.targets.base import ProcessStats, TargetUnreachable
from harness.verdicts import Level, RecommendationMissed, Violation
from harness.suite.checks import (
    TIMEOUT,
    expect_closed,
    expect_end_request,
    expect_open,
    expect_record,
    next_event,
    read_response,
)

KEEP_CONN_CLEAR = (
    "flags & FCGI_KEEP_CONN: If zero, the application closes the connection after responding to this request."
)
KEEP_CONN_SET = (
    "If not zero, the application does not close the connection after responding to this request; "
    "the Web server retains responsibility for the connection."
)


WEB_SERVER_CLOSES = (
    "The Web server controls the lifetime of transport connections. "
    "The Web server can close a connection when no requests are active."
)
# Slack for descriptors a target may legitimately hold a moment longer (a logger, a lazily opened file).
FD_SLACK = 2
# Memory is noisy (allocator caches, thread stacks): only growth well beyond that is reported.
RSS_SLACK_KIB = 16 * 1024
SETTLE_SECONDS = 1.0
IDLE_ROUNDS = 6
MID_REQUEST_ROUNDS = 4
# Large enough that the application is still writing when the web server goes away.
OUTPUT_BYTES = 512 * 1024


@case(
    "FCGI-3.5-1",
    title="KEEP_CONN clear: the application closes after END_REQUEST, with a FIN, also when a GET_VALUES "
    "followed the request",
    requirement=KEEP_CONN_CLEAR,
    level=Level.REQUIRED,
    catches=("keep-conn-never-close", "close-with-rst"),
)
def closes_without_keep_conn(ctx: CaseContext) -> None:
    """Without KEEP_CONN the app closes with a FIN after END_REQUEST, also with a GET_VALUES still unread."""
    conn = ctx.connect("plain request")
    plain_request(ctx, conn, 1, keep_conn=False)
    how = expect_closed(
        conn, ctx.seconds(2.0), how=("eof", "reset"), expected="connection closed (EOF) after END_REQUEST"
    )
    if how == "reset":
        # Closed, as required; but an RST can destroy the response in flight (php-src PR #1333).
        raise RecommendationMissed("a graceful close (FIN)", "connection reset (RST)")
    # Bytes the application has not read when it closes turn a bare close() into an RST, which
    # can destroy the response in flight (php-fpm closed without shutdown() and drain: php-src
    # PR #1333/#1421, nginx 502). A GET_VALUES ("at any time") right behind the request leaves such bytes.
    conn = ctx.connect("request, then GET_VALUES in the same write")
    conn.send_records(
        request_records(1, ctx.probe_params(), keep_conn=False)
        + [encode_record(RecordType.GET_VALUES, MANAGEMENT_REQUEST_ID, encode_params([("FCGI_MPXS_CONNS", "")]))]
    )
    response = read_response(conn, 1, ctx.answer_wait)
    expect_end_request(response)
    # The GET_VALUES may be answered before the close, or not at all: only the close is judged.
    how = conn.wait_closed(ctx.seconds(2.0))
    stray = [r for r in conn.unread_records() if r.request_id != MANAGEMENT_REQUEST_ID]
    if stray:
        raise Violation(
            ["connection closed after END_REQUEST id=1", "no further records"], f"{stray[0].describe()} before the close"
        )
    if how == "open":
        raise Violation(
            "connection closed (EOF) after END_REQUEST, a GET_VALUES having followed the request",
            f"connection still open after {ctx.seconds(2.0):g}s",
        )
    if how == "reset":
        raise RecommendationMissed(
            "a graceful close (FIN: shutdown, then drain what the web server still sent)",
            "connection reset (RST) when a GET_VALUES was still unread",
        )


@case(
    "FCGI-3.5-2",
    title="KEEP_CONN set: three requests on one connection, which stays open",
    requirement=KEEP_CONN_SET,
    level=Level.REQUIRED,
    catches=("keep-conn-close",),
)
def keeps_connection_with_keep_conn(ctx: CaseContext) -> None:
    conn = ctx.connect()
    for request_id in (1, 2, 3):
        wanted = f"END_REQUEST id={request_id} (request {request_id} of 3 on one KEEP_CONN connection)"
        plain_request(ctx, conn, request_id, wanted)
    expect_open(conn, ctx.seconds(0.3), expected="connection still open after the third request")


def _stats(ctx: CaseContext) -> ProcessStats | None:
    return ctx.target.process_stats()


def _expect_target_running(ctx: CaseContext, what: str) -> None:
    """A spawned target that exited after the web server's closes fails here, with how it ended."""
    target = ctx.target
    if target.exit_status() is not None:  # None for a target the harness did not spawn
        raise Violation(f"the application keeps running after {what}", f"the process {target.exit_text()}")


@contextlib.contextmanager
def _surviving(ctx: CaseContext, what: str) -> Iterator[None]:
    """Whatever goes wrong while the web server closes connections, a dead process is the finding."""
    try:
        yield
    except (Violation, FcgiTimeout, ConnectionClosed, TargetUnreachable) as error:
        _expect_target_running(ctx, what)
        if isinstance(error, TargetUnreachable):
            raise Violation(f"new connections accepted during {what}", str(error)) from None
        raise


def _expect_resources_back(ctx: CaseContext, baseline: ProcessStats | None, what: str) -> str:
    """Descriptors come back to the baseline (+FD_SLACK) within SETTLE_SECONDS; RSS does not balloon.

    Returns a note of what was measured ('' when nothing could be).
    """
    if baseline is None:
        return "descriptors and memory not checked (the harness has no process to look at)"
    end_time = time.monotonic() + ctx.seconds(SETTLE_SECONDS)
    current = _stats(ctx)
    while current is not None and current.fds > baseline.fds + FD_SLACK and time.monotonic() < end_time:
        time.sleep(0.02)
        current = _stats(ctx)
    if current is None:
        _expect_target_running(ctx, what)
        return "process statistics unavailable after the closes"
    if current.pids != baseline.pids:
        # A pool that spawned or reaped workers: the sums are not comparable.
        return f"process set changed ({len(baseline.pids)} -> {len(current.pids)} processes): not compared"
    if current.fds > baseline.fds + FD_SLACK:
        raise Violation(
            f"open descriptors back to {baseline.fds} (+{FD_SLACK}) within {ctx.seconds(SETTLE_SECONDS):g}s "
            f"after {what}",
            f"{current.fds} open descriptors ({current.fds - baseline.fds} more: "
            "connections the web server closed are kept open)",
        )
    growth = current.rss_kib - baseline.rss_kib
    if growth > RSS_SLACK_KIB:
        raise Violation(
            f"resident memory within {RSS_SLACK_KIB // 1024} MiB of {baseline.rss_kib} KiB after {what}",
            f"{current.rss_kib} KiB (+{growth} KiB)",
        )
    return f"descriptors {baseline.fds} -> {current.fds}, RSS {baseline.rss_kib} -> {current.rss_kib} KiB"


@case(
    "FCGI-3.5-3",
    title="The web server closes idle connections (with no request, after a request; FIN and RST): "
    "nothing leaks, new requests are served",
    requirement=WEB_SERVER_CLOSES,
    level=Level.REQUIRED,
    catches=("fd-leak-on-eof",),
)
def web_server_closes_idle(ctx: CaseContext) -> str:
    def one_round(n: int) -> None:
        ctx.connect(f"round {n}: no request, closed (FIN)").close()
        ctx.connect(f"round {n}: no request, reset (RST)").reset()
        for how in ("FIN", "RST"):
            conn = ctx.connect(f"round {n}: one request, then closed idle ({how})")
            plain_request(ctx, conn, 1)
            conn.close() if how == "FIN" else conn.reset()

    closed = f"{(IDLE_ROUNDS + 1) * 4} idle connections closed by the web server"
    with _surviving(ctx, closed):
        one_round(0)  # warm-up: lazily created workers and buffers exist before the baseline
        baseline = _settled_baseline(ctx)
        for n in range(1, IDLE_ROUNDS + 1):
            one_round(n)
        _expect_target_running(ctx, closed)
        _served_after(ctx, closed)
    return _expect_resources_back(ctx, baseline, closed)


def _served_after(ctx: CaseContext, closed: str) -> None:
    """A new connection after the closes is served."""
    conn = ctx.connect("after the closes")
    plain_request(ctx, conn, 1, f"END_REQUEST id=1 on a new connection after {closed}")
    conn.close()


def _settled_baseline(ctx: CaseContext) -> ProcessStats | None:
    """Stats once the descriptor count has stopped falling (the warm-up's closes are done)."""
    stats = _stats(ctx)
    end_time = time.monotonic() + ctx.seconds(0.3)
    while stats is not None and time.monotonic() < end_time:
        time.sleep(0.02)
        later = _stats(ctx)
        if later is None or later.fds >= stats.fds:
            break
        stats = later
    return stats


@case(
    "FCGI-3.5-4",
    # More than one request on a KEEP_CONN connection.
    prerequisites=("FCGI-3.5-2",),
    title="The web server closes mid-request (during PARAMS, during STDIN, during output; FIN and RST): "
    "the application survives, other connections are untouched, nothing leaks",
    requirement=WEB_SERVER_CLOSES + " When an application closes a connection or finds that a connection has closed, "
    "the application initiates a new connection.",
    level=Level.REQUIRED,
    catches=("exit-on-write-error",),
    timeout=15.0,
)
def web_server_closes_mid_request(ctx: CaseContext) -> str:
    # A bystander connection held open throughout shows that one peer's close touches no other
    # connection; not for a target that serves one connection at a time (it would wait on it).
    """Closes connections mid-PARAMS, mid-STDIN and mid-output; the target keeps serving and frees what it used."""
    max_conns = ctx.capabilities.max_conns
    bystander = None
    if max_conns is None or max_conns >= 2:
        bystander = ctx.connect("bystander (KEEP_CONN)")
        plain_request(ctx, bystander, 1, "END_REQUEST id=1 on the bystander connection")
    output_started = True  # False once the output round saw no output in time: then it waits no more

    def one_round(n: int) -> None:
        nonlocal output_started
        conn = ctx.connect(f"round {n}: closed during PARAMS (FIN)")
        conn.send_records(begin_and_params(1, ctx.probe_params())[:2])
        conn.close()
        for how in ("FIN", "RST"):
            conn = ctx.connect(f"round {n}: closed during STDIN ({how})")
            conn.send_records(request_records(1, ctx.probe_params(), b"x" * 1000, terminate_stdin=False))
            conn.close() if how == "FIN" else conn.reset()
        conn = ctx.connect(f"round {n}: reset (RST) during output")
        if ctx.has_probe_app:
            # Long STDOUT and STDERR (php-fpm #68571 crashed writing stderr to a closed peer).
            params = ctx.probe_params(probe_query(out=OUTPUT_BYTES, err="fcgispec-stderr-", err_repeat=4096))
            conn.send_records(request_records(1, params))
            if output_started:  # the application has started writing
                output_started = next_event(conn, ctx.seconds(1.0)) != TIMEOUT
        else:
            conn.send_records(request_records(1, ctx.probe_params()))
        conn.reset()

    closed = f"{(MID_REQUEST_ROUNDS + 1) * 4} connections closed by the web server mid-request"
    with _surviving(ctx, closed):
        one_round(0)
        baseline = _settled_baseline(ctx)
        for n in range(1, MID_REQUEST_ROUNDS + 1):
            one_round(n)
        time.sleep(ctx.seconds(0.05))  # let the application meet the last closes before asking it anything
        _expect_target_running(ctx, closed)
        if bystander is not None:
            plain_request(ctx, bystander, 2, f"END_REQUEST id=2 on the bystander connection after {closed}")
            bystander.close()
        _served_after(ctx, closed)
    return _expect_resources_back(ctx, baseline, closed)


@case(
    "FCGI-3.5-5",
    # More than one request on a KEEP_CONN connection, GET_VALUES answered between them.
    prerequisites=("FCGI-3.5-2", "FCGI-4.1-1"),
    title="GET_VALUES on a KEEP_CONN connection, before and between requests, does not close it",
    requirement=WEB_SERVER_CLOSES + " (An application may receive a FCGI_GET_VALUES record at any time.)",
    level=Level.REQUIRED,
    catches=("get-values-close",),
)
def management_keeps_connection(ctx: CaseContext) -> None:
    conn = ctx.connect()
    for request_id in (1, 2):
        conn.get_values([b"FCGI_MPXS_CONNS"])
        expect_record(
            conn, RecordType.GET_VALUES_RESULT, MANAGEMENT_REQUEST_ID, ctx.seconds(3.0),
            expected="GET_VALUES_RESULT id=0, the connection staying open",
        )
        if request_id == 1:
            expect_open(
                conn, ctx.seconds(0.2), expected="connection open after GET_VALUES_RESULT (the web server owns its lifetime)"
            )
        plain_request(ctx, conn, request_id, f"END_REQUEST id={request_id} on the connection that carried GET_VALUES")
