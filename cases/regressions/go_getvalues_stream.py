"""Go net/http/fcgi: FCGI_GET_VALUES is answered with one record holding what was asked.

Source: https://github.com/golang/go/blob/master/src/net/http/fcgi/child.go (GET_VALUES written with writePairs,
  a stream; TestGetValues in fcgi_test.go expects it)
Bug table row: 15a (docs/bug-to-regression.md).
Symptom: Go answers GET_VALUES with FCGI_MPXS_CONNS whatever was asked, and then a second, empty
  GET_VALUES_RESULT record, as if the result were a stream: a web server reading one discrete record finds a
  stray one on the connection.
Wire pattern (code): GET_VALUES for FCGI_MAX_REQS alone; exactly one GET_VALUES_RESULT, naming nothing else.
Reproduced by: reference --fault get-values-stream.
"""

from __future__ import annotations

from harness.suite.case import CaseContext, case
from harness.suite.case_requests import plain_request
from harness.wire.codec import CodecError, MANAGEMENT_REQUEST_ID, Record, RecordType, decode_params
from harness.verdicts import Level, Violation
from harness.suite.checks import describe_event, expect_no_record, next_event

SOURCE = "https://github.com/golang/go/blob/master/src/net/http/fcgi/child.go"


@case(
    "REG-go-getvalues-stream",
    title="Go net/http/fcgi: GET_VALUES for one name gets one GET_VALUES_RESULT record, with that name only",
    requirement=(
        'Spec §4.1: "The application responds by sending a record {FCGI_GET_VALUES_RESULT, 0, ...} with the '
        'values supplied." Appendix A: FCGI_GET_VALUES_RESULT is a discrete record, not a stream.'
    ),
    level=Level.REQUIRED,
    prerequisites=("FCGI-4.1-1",),
    catches=("get-values-stream",),
)
def go_getvalues_stream(ctx: CaseContext) -> None:
    conn = ctx.connect("GET_VALUES for FCGI_MAX_REQS")
    conn.get_values(["FCGI_MAX_REQS"])
    answer = next_event(conn, ctx.answer_wait)
    wanted = "one FCGI_GET_VALUES_RESULT id=0"
    if not isinstance(answer, Record) or answer.type != RecordType.GET_VALUES_RESULT \
            or answer.request_id != MANAGEMENT_REQUEST_ID:
        raise Violation(wanted, describe_event(answer))
    try:
        names = sorted({name.decode("latin-1") for name, _ in decode_params(answer.content)})
    except CodecError as error:
        raise Violation(f"{wanted} of well-formed name-value pairs", f"{answer.describe()}: {error}") from None
    if set(names) - {"FCGI_MAX_REQS"}:
        raise Violation("only FCGI_MAX_REQS (the name asked for) in the answer", f"the answer names {', '.join(names)}")
    quiet = ctx.quiet_wait
    expect_no_record(conn, quiet * 1000, expected=f"nothing after the one GET_VALUES_RESULT (within {quiet:g}s)")
    plain_request(ctx, conn, 1, "END_REQUEST id=1 for a request on the same connection after GET_VALUES")
