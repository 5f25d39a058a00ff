"""HHVM #4077: FCGI_ABORT_REQUEST stops a running request.

Source: https://github.com/facebook/hhvm/issues/4077
Bug table row: 24 (docs/bug-to-regression.md).
Symptom: HHVM ignored FCGI_ABORT_REQUEST: a script whose client had gone kept running to its end, holding its
  worker, and its END_REQUEST came only then.
Wire pattern (code: it needs a request that takes long, which the probe app's delay= gives): a whole GET that
  the application answers after 3 s, FCGI_ABORT_REQUEST 100 ms later; END_REQUEST must come well before the
  3 s are up, and the kept connection must serve the next request.
Reproduced by: reference --fault abort-ignored; independent responder --bug abort-ignored.
"""

from __future__ import annotations

import time

from harness.suite.case import CaseContext, case
from harness.suite.case_requests import plain_request, send_request
from harness.wire.probe_app import probe_query
from harness.verdicts import Level, Violation
from harness.suite.checks import expect_end_request, read_response

SOURCE = "https://github.com/facebook/hhvm/issues/4077"
DELAY_MS = 3000
PROMPT_SECONDS = 1.5  # "as soon as possible": well before the answer would have come by itself


@case(
    "REG-hhvm-4077-abort-ignored",
    title="HHVM #4077: FCGI_ABORT_REQUEST ends a request that would take 3 s, at once",
    requirement=(
        'Spec §5.4: "After receiving {FCGI_ABORT_REQUEST, R}, the application responds as soon as possible '
        'with {FCGI_END_REQUEST, R, {FCGI_REQUEST_COMPLETE, appStatus}}."'
    ),
    level=Level.REQUIRED,
    needs_probe_app=True,
    catches=("abort-ignored",),
)
def hhvm_4077_abort_ignored(ctx: CaseContext) -> None:
    conn = ctx.connect("a slow request, then FCGI_ABORT_REQUEST")
    send_request(conn, 1, ctx.probe_params(probe_query(delay=DELAY_MS)))
    time.sleep(0.1)
    conn.abort(1)
    aborted_at = time.monotonic()
    response = read_response(conn, 1, ctx.seconds(DELAY_MS / 1000 + 2.0),
                             expected="END_REQUEST id=1 soon after FCGI_ABORT_REQUEST")
    took = time.monotonic() - aborted_at
    expect_end_request(response)
    if took > PROMPT_SECONDS:
        raise Violation(f"END_REQUEST id=1 within {PROMPT_SECONDS:g}s of FCGI_ABORT_REQUEST (the request would "
                        f"have taken {DELAY_MS} ms by itself)", f"END_REQUEST {took:.2f}s after the abort: the "
                        "request ran to its end")
    plain_request(ctx, conn, 1, "END_REQUEST id=1 for the next request on the kept connection")
