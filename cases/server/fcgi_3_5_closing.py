"""§3.5 Closing transport connections, as delegated by FCGI_KEEP_CONN (§5.1)."""

from __future__ import annotations

from harness.case import CaseContext, case
from harness.probe_app import probe_params
from harness.verdicts import Level, RecommendationMissed
from harness.verify import complete_request, expect_closed, expect_open

KEEP_CONN_CLEAR = (
    "flags & FCGI_KEEP_CONN: If zero, the application closes the connection after responding to this request."
)
KEEP_CONN_SET = (
    "If not zero, the application does not close the connection after responding to this request; "
    "the Web server retains responsibility for the connection."
)


@case(
    "FCGI-3.5-1",
    title="KEEP_CONN clear: the application closes the connection after END_REQUEST (FIN, no further bytes)",
    requirement=KEEP_CONN_CLEAR,
    level=Level.REQUIRED,
    catches=("keep-conn-never-close",),
)
def closes_without_keep_conn(ctx: CaseContext) -> None:
    conn = ctx.connect()
    complete_request(conn, 1, probe_params(), keep_conn=False, timeout=ctx.seconds(5.0))
    how = expect_closed(conn, ctx.seconds(2.0), how=("eof", "reset"), expected="connection closed (EOF) after END_REQUEST")
    if how == "reset":
        # Closed, as required; but an RST can destroy the response in flight (php-src PR #1333).
        raise RecommendationMissed("a graceful close (FIN)", "connection reset (RST)")


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
        complete_request(
            conn,
            request_id,
            probe_params(),
            keep_conn=True,
            timeout=ctx.seconds(5.0),
            expected=f"END_REQUEST id={request_id} (request {request_id} of 3 on one KEEP_CONN connection)",
        )
    expect_open(conn, ctx.seconds(0.5), expected="connection still open after the third request")
