"""php-fpm bug #76922: GET_VALUES does not close the connection.

Source:
- https://bugs.php.net/bug.php?id=76922
- https://github.com/php/php-src/pull/12387 (test bug76922-fcgi-get-value-conn.phpt)
Catalogue: ../shared/reference/fastcgi-spec-catalog.md section 6, row 4.
Symptom: php-fpm answered FCGI_GET_VALUES and closed the connection (fcgi_read_request returned 0), so the
  request the web server sent next on it failed.
Wire pattern: transcripts/php-76922-close-after-get-values.transcript: GET_VALUES for FCGI_MAX_CONNS,
  FCGI_MAX_REQS and FCGI_MPXS_CONNS, then a GET on the same connection.
Reproduced by: reference --fault get-values-close; independent responder --bug get-values-close.
"""

from __future__ import annotations

from pathlib import Path

from harness.suite.case import case
from harness.replay.engine import check_replay_file
from harness.verdicts import Level

SOURCE = 'https://bugs.php.net/bug.php?id=76922'
TRANSCRIPT = Path(__file__).resolve().parent / "transcripts" / "php-76922-close-after-get-values.transcript"


@case(
    "REG-php-76922-close-after-get-values",
    title='php-fpm bug #76922: GET_VALUES does not close the connection',
    requirement=(
        'Spec §3.5: "The Web server controls the lifetime of transport connections. The Web server can close a'
        ' connection when no requests are active." and §4.1: "An application may receive a FCGI_GET_VALUES '
        'record at any time."'
    ),
    level=Level.REQUIRED,
    catches=('get-values-close',),
)
def php_76922_close_after_get_values(ctx):
    return check_replay_file(ctx, TRANSCRIPT)
