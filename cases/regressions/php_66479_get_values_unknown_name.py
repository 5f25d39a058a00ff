"""php-fpm bug #66479: FCGI_GET_VALUES with a name the application does not know.

Source:
- https://bugs.php.net/bug.php?id=66479
- https://github.com/php/php-src/pull/883
- https://github.com/php/php-src/pull/884
Bug table row: 3 (docs/bug-to-regression.md).
Symptom: a GET_VALUES query holding a name php-fpm did not know made it loop forever (the `q = q->list_next`
  before `continue` was missing) or send an invalid response.
Wire pattern (code: the answer is judged by its names, and a second record must not follow): GET_VALUES for
  FCGI_MAX_CONNS, FCGI_FOO (unknown) and FCGI_MPXS_CONNS; exactly one GET_VALUES_RESULT must come, without
  FCGI_FOO, and the connection must then serve a request.
Reproduced by: reference --fault get-values-unknown-name-hang (the loop: no answer to a query with an unknown
  name), --fault get-values-stream (an answer in two records).
"""

from __future__ import annotations

from harness.suite.case import CaseContext, case
from harness.suite.case_requests import plain_request
from harness.wire.codec import CodecError, MANAGEMENT_REQUEST_ID, Record, RecordType, decode_params
from harness.verdicts import Level, Violation
from harness.suite.checks import describe_event, expect_no_record, next_event

SOURCE = "https://bugs.php.net/bug.php?id=66479"
ASKED = ("FCGI_MAX_CONNS", "FCGI_FOO", "FCGI_MPXS_CONNS")


@case(
    "REG-php-66479-get-values-unknown-name",
    title="php-fpm bug #66479: GET_VALUES with an unknown name gets one answer, without that name",
    requirement=(
        'Spec §4.1: "If the application doesn\'t understand a variable name that was included in the query, it '
        'omits that name from the response." The answer is one discrete FCGI_GET_VALUES_RESULT record.'
    ),
    level=Level.REQUIRED,
    # No answer to any GET_VALUES at all (checked plainly) is FCGI-4.1-1's deviation, not this bug.
    prerequisites=("FCGI-4.1-1",),
    catches=("get-values-unknown-name-hang", "get-values-stream"),
)
def php_66479_get_values_unknown_name(ctx: CaseContext) -> None:
    conn = ctx.connect("GET_VALUES with an unknown name")
    conn.get_values(ASKED)
    answer = next_event(conn, ctx.answer_wait)
    wanted = "one FCGI_GET_VALUES_RESULT id=0 for " + ", ".join(ASKED)
    if not isinstance(answer, Record) or answer.type != RecordType.GET_VALUES_RESULT \
            or answer.request_id != MANAGEMENT_REQUEST_ID:
        raise Violation(wanted, describe_event(answer))
    try:
        names = [name.decode("latin-1") for name, _ in decode_params(answer.content)]
    except CodecError as error:
        raise Violation(f"{wanted}, holding well-formed name-value pairs", f"{answer.describe()}: {error}") from None
    if "FCGI_FOO" in names:
        raise Violation("the unknown name FCGI_FOO left out of the answer", f"the answer names {', '.join(names)}")
    quiet = ctx.quiet_wait
    expect_no_record(conn, quiet * 1000, expected=f"nothing after the one GET_VALUES_RESULT (within {quiet:g}s)")
    plain_request(ctx, conn, 1, "END_REQUEST id=1 for a request on the same connection after GET_VALUES")
