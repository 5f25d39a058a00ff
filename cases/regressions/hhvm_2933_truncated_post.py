"""HHVM PR #2933: a POST body sent in several STDIN records arrives whole.

Source: https://github.com/facebook/hhvm/pull/2933
Bug table row: 23 (docs/bug-to-regression.md).
Symptom: HHVM accepted only the first of two STDIN records: the application saw a truncated POST body.
Wire pattern (code: what the application received is seen only through the probe app's report): a POST of
  20000 bytes in two STDIN records (8192 and 11808 bytes), as nginx cuts a body; the probe app must report
  20000 bytes with the body's SHA-256.
Reproduced by: reference --fault stdin-first-record-only.
"""

from __future__ import annotations

from harness.suite.case import CaseContext, case
from harness.suite.case_requests import send_request
from harness.wire.probe_app import pattern_bytes
from harness.verdicts import Level
from harness.suite.checks import expect_end_request, expect_probe_report, expect_stdin_received, read_response

SOURCE = "https://github.com/facebook/hhvm/pull/2933"
BODY = pattern_bytes(20000)


@case(
    "REG-hhvm-2933-truncated-post",
    title="HHVM PR #2933: a POST body in two STDIN records is received whole",
    requirement=(
        'Spec §3.3: "the value of a stream is independent of how many records it contains or how its bytes are '
        'divided among the non-empty records."'
    ),
    level=Level.REQUIRED,
    needs_probe_app=True,
    same_requirement_as=("FCGI-3.3-10",),
    catches=("stdin-first-record-only",),
)
def hhvm_2933_truncated_post(ctx: CaseContext) -> None:
    conn = ctx.connect("a POST in two STDIN records")
    send_request(conn, 1, ctx.post_params(len(BODY)), BODY, stdin_chunk_sizes=[8192, len(BODY) - 8192])
    response = read_response(conn, 1, ctx.answer_wait)
    expect_end_request(response)
    expect_stdin_received(expect_probe_report(response), BODY, "in two STDIN records")
