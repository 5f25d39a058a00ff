"""HHVM #2240: FCGI_ABORT_REQUEST is answered, and the application goes on.

Source:
- https://github.com/facebook/hhvm/issues/2240
- https://github.com/facebook/hhvm/pull/2420 (the fix)
Catalogue: ../shared/reference/fastcgi-spec-catalog.md section 6, row 19.
Symptom: HHVM crashed with std::underflow_error on FCGI_ABORT_REQUEST (a wrong byte count): every connection
  went down with it.
Wire pattern: transcripts/hhvm-2240-abort-crash.transcript: a POST whose body is still coming (10 of 100 bytes),
  FCGI_ABORT_REQUEST, then a GET on the same kept connection.
Reproduced by: reference --fault no-end-after-abort, abort-closes-connection, abort-ignored; independent
  responder --bug abort-ignored.
"""

from __future__ import annotations

from pathlib import Path

from harness.suite.case import case
from harness.replay.engine import check_replay_file
from harness.verdicts import Level

SOURCE = 'https://github.com/facebook/hhvm/issues/2240'
TRANSCRIPT = Path(__file__).resolve().parent / "transcripts" / "hhvm-2240-abort-crash.transcript"


@case(
    "REG-hhvm-2240-abort-crash",
    title='HHVM #2240: FCGI_ABORT_REQUEST is answered, and the application goes on',
    requirement=(
        'Spec §5.4: "After receiving {FCGI_ABORT_REQUEST, R}, the application responds as soon as possible '
        'with {FCGI_END_REQUEST, R, {FCGI_REQUEST_COMPLETE, appStatus}}."'
    ),
    level=Level.REQUIRED,
    catches=('no-end-after-abort', 'abort-closes-connection', 'abort-ignored'),
)
def hhvm_2240_abort_crash(ctx):
    return check_replay_file(ctx, TRANSCRIPT)
