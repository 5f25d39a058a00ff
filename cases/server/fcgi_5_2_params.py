"""§5.2 Name-Value Pair Stream: FCGI_PARAMS (with §6.2's rule that output waits for its end)."""

from __future__ import annotations

from harness.suite.case import CaseContext, case
from harness.suite.case_requests import begin_record, plain_request
from harness.wire.codec import RecordType, decode_params, encode_params, encode_record, stream_records
from harness.wire.probe_app import probe_query
from harness.verdicts import Level, Violation
from harness.suite.checks import complete_request, expect_end_request, expect_no_record, expect_probe_report, read_response

QUIET_MS = 250


@case(
    "FCGI-5.2-1",
    title=f"Nothing is written while PARAMS is unterminated ({QUIET_MS} ms), and the request is answered once it ends",
    requirement="The application must wait to finish reading FCGI_PARAMS before it begins writing FCGI_STDOUT "
    "and FCGI_STDERR, but it needn't finish reading from FCGI_STDIN before it begins writing these two streams.",
    level=Level.REQUIRED,
    catches=("output-before-params-end",),
)
def no_output_before_params_end(ctx: CaseContext) -> None:
    # echo=1 asks a probe app for its headers as early as it may write them: when PARAMS ends.
    # Two PARAMS records of whole pairs: an app that decodes each record as it comes could start at once.
    """No record comes while PARAMS is unterminated; once it ends, the request is answered."""
    params = ctx.probe_params(probe_query(echo=1))
    encoded = encode_params(params)
    cut = len(encode_params(params[: len(params) // 2]))
    conn = ctx.connect()
    conn.send_records(
        [
            begin_record(1),
            encode_record(RecordType.PARAMS, 1, encoded[:cut]),
            encode_record(RecordType.PARAMS, 1, encoded[cut:]),
        ]
    )
    conn.note("all params sent, but not the empty PARAMS record that ends the stream")
    expect_no_record(
        conn,
        ctx.seconds(QUIET_MS / 1000) * 1000,
        expected="no record while FCGI_PARAMS is unterminated, and the connection open",
    )
    conn.send_records([encode_record(RecordType.PARAMS, 1, b"")] + stream_records(RecordType.STDIN, 1, b""))
    expect_end_request(read_response(conn, 1, ctx.answer_wait, expected="END_REQUEST id=1 once PARAMS and STDIN ended"))


@case(
    "FCGI-5.2-2",
    # More than one request on a KEEP_CONN connection.
    prerequisites=("FCGI-3.5-2",),
    title="PARAMS in reverse order is served; an empty PARAMS stream gets an END_REQUEST and the connection stays usable",
    requirement="The name-value pairs are sent down the stream one after the other, in no specified order.",
    level=Level.REQUIRED,
    catches=("empty-params-close",),
)
def params_any_order_or_none(ctx: CaseContext) -> str:
    """Params in reverse order are served; an empty PARAMS stream gets END_REQUEST and the connection stays usable."""
    conn = ctx.connect()
    params = list(reversed(ctx.probe_params(probe_query(status=200))))
    response = complete_request(
        conn, 1, params, timeout=ctx.answer_wait, expected="END_REQUEST id=1 REQUEST_COMPLETE for params in reverse order"
    )
    if ctx.has_probe_app:
        report = expect_probe_report(response)
        sent = decode_params(encode_params(params))
        if not ctx.params_match(sorted(report.params), sorted(sent)):
            raise Violation(f"the {len(sent)} params as sent (in any order)", f"{len(report.params)} params, differing")

    conn = ctx.connection_for_next_request(conn)  # the empty PARAMS stream is judged, not the first request's close
    conn.note("request 2: an empty PARAMS stream (its terminator alone)")
    conn.send_records(
        [
            begin_record(2),
            encode_record(RecordType.PARAMS, 2, b""),
        ]
        + stream_records(RecordType.STDIN, 2, b"")
    )
    response = read_response(
        conn, 2, ctx.answer_wait, expected="END_REQUEST id=2 for a request without params (any CGI status)"
    )
    end = response.records[-1]
    if len(end.content) != 8:
        raise Violation("END_REQUEST id=2 with an 8-byte body", end.describe())
    plain_request(ctx, conn, 3, "END_REQUEST id=3 on the same connection afterwards")
    status = response.stdout.split(b"\r\n", 1)[0].decode("latin-1")[:40] if response.stdout else "no STDOUT"
    return f"empty PARAMS answered with {end.describe().split(' ', 2)[-1]} ({status!r})"
