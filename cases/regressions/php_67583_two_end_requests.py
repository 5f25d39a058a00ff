"""php-fpm bug #67583: exactly one END_REQUEST per request.

Source:
- https://bugs.php.net/bug.php?id=67583
- https://github.com/php/php-src/pull/709
- https://github.com/php/php-src/pull/1169
Catalogue: ../shared/reference/fastcgi-spec-catalog.md section 6, row 2.
Symptom: `fastcgi_finish_request()` and the pm.max_requests path both ended the request: the second END_REQUEST
  confused nginx on the kept connection.
Wire pattern: transcripts/php-67583-two-end-requests.transcript: two GETs on one kept connection (the second
  END_REQUEST of the first request lands in the second one).
Reproduced by: reference --fault end-request-twice; independent responder --bug end-request-twice.
"""

from __future__ import annotations

from pathlib import Path

from harness.suite.case import case
from harness.replay.engine import check_replay_file
from harness.verdicts import Level

SOURCE = 'https://bugs.php.net/bug.php?id=67583'
TRANSCRIPT = Path(__file__).resolve().parent / "transcripts" / "php-67583-two-end-requests.transcript"


@case(
    "REG-php-67583-two-end-requests",
    title='php-fpm bug #67583: exactly one END_REQUEST per request',
    requirement=(
        'Spec §3.3: "A request ID R becomes active when the application receives a record {FCGI_BEGIN_REQUEST,'
        ' R, ...} and becomes inactive when the application sends a record {FCGI_END_REQUEST, R, ...} to the '
        'Web server."'
    ),
    level=Level.REQUIRED,
    catches=('end-request-twice',),
)
def php_67583_two_end_requests(ctx):
    return check_replay_file(ctx, TRANSCRIPT)
