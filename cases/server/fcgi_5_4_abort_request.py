"""§5.4 FCGI_ABORT_REQUEST, and the single END_REQUEST that ends every request."""

from __future__ import annotations

import time

from harness.case import CaseContext, case
from harness.fcgi_client import FcgiConnection
from harness.fcgi_codec import KEEP_CONN, RecordType, Role, begin_request_body, encode_params, encode_record, stream_records
from harness.probe_app import probe_params, probe_query
from harness.verdicts import Level, Violation
from harness.verify import complete_request, expect_end_request, expect_single_end_request, read_response

SLOW_REQUEST_MS = 5000
ABORT_ANSWER_SECONDS = 1.0


def _start_slow_request(conn: FcgiConnection, request_id: int) -> None:
    conn.send_records(
        [encode_record(RecordType.BEGIN_REQUEST, request_id, begin_request_body(Role.RESPONDER, KEEP_CONN))]
        + stream_records(RecordType.PARAMS, request_id, encode_params(probe_params(probe_query(delay=SLOW_REQUEST_MS))))
        + stream_records(RecordType.STDIN, request_id, b"")
    )


@case(
    "FCGI-5.4-1",
    title=f"ABORT_REQUEST during a {SLOW_REQUEST_MS} ms request gets END_REQUEST within {ABORT_ANSWER_SECONDS:g} s",
    requirement="After receiving {FCGI_ABORT_REQUEST, R}, the application responds as soon as possible with "
    "{FCGI_END_REQUEST, R, {FCGI_REQUEST_COMPLETE, appStatus}}.",
    level=Level.REQUIRED,
    catches=("abort-ignored", "end-request-twice"),
    needs_probe_app=True,
    timeout=15.0,
)
def abort_answered_promptly(ctx: CaseContext) -> None:
    conn = ctx.connect()
    _start_slow_request(conn, 1)
    time.sleep(ctx.seconds(0.1))
    conn.abort(1)
    sent_at = time.monotonic()
    wait = ctx.seconds(ABORT_ANSWER_SECONDS)
    response = read_response(conn, 1, wait, expected=f"END_REQUEST id=1 within {wait:g}s of ABORT_REQUEST")
    expect_end_request(response)
    elapsed = time.monotonic() - sent_at
    if elapsed > wait:
        raise Violation(f"END_REQUEST id=1 within {wait:g}s of ABORT_REQUEST", f"END_REQUEST after {elapsed:.2f}s")
    expect_single_end_request(conn, 1, ctx.seconds(0.5))
    complete_request(conn, 2, probe_params(), timeout=ctx.seconds(5.0), expected="END_REQUEST id=2 on the same connection after the abort")


@case(
    "FCGI-5.4-3",
    title="Exactly one END_REQUEST per request, for a normal and for an aborted request",
    requirement="A request ID R becomes active when the application receives a record {FCGI_BEGIN_REQUEST, R, ...} "
    "and becomes inactive when the application sends a record {FCGI_END_REQUEST, R, ...} to the Web server.",
    level=Level.REQUIRED,
    catches=("end-request-twice",),
    needs_probe_app=True,
    timeout=15.0,
)
def one_end_request_each(ctx: CaseContext) -> None:
    conn = ctx.connect()
    complete_request(conn, 1, probe_params(), timeout=ctx.seconds(5.0))
    expect_single_end_request(conn, 1, ctx.seconds(0.5))
    _start_slow_request(conn, 2)
    time.sleep(ctx.seconds(0.1))
    conn.abort(2)
    expect_end_request(read_response(conn, 2, ctx.seconds(SLOW_REQUEST_MS / 1000 + 2.0)))
    # An app that ignored the abort may still end the request when its work is done: wait past that.
    expect_single_end_request(conn, 2, ctx.seconds(0.5))
