"""php-fpm PR #1333: the last response is closed with a FIN, not an RST.

Source:
- https://github.com/php/php-src/pull/1333
- https://github.com/php/php-src/pull/1421
Catalogue: ../shared/reference/fastcgi-spec-catalog.md section 6, row 5.
Symptom: when pm.max_requests was reached php-fpm close()d the socket without shutdown() and drain: the RST
  destroyed the last response in flight and nginx answered 502 ("recv() failed (104: Connection reset by
  peer)").
Wire pattern: transcripts/php-1333-rst-after-last-response.transcript: one GET with FCGI_KEEP_CONN clear
  (lighttpd's way), whose answer the application must end with a graceful close.
Reproduced by: reference --fault close-with-rst.
"""

from __future__ import annotations

from pathlib import Path

from harness.suite.case import case
from harness.replay.engine import check_replay_file
from harness.verdicts import Level

SOURCE = 'https://github.com/php/php-src/pull/1333'
TRANSCRIPT = Path(__file__).resolve().parent / "transcripts" / "php-1333-rst-after-last-response.transcript"


@case(
    "REG-php-1333-rst-after-last-response",
    title='php-fpm PR #1333: the last response is closed with a FIN, not an RST',
    requirement=(
        'Spec §5.1: "flags & FCGI_KEEP_CONN: If zero, the application closes the connection after responding '
        'to this request."'
    ),
    level=Level.REQUIRED,
    catches=('close-with-rst',),
)
def php_1333_rst_after_last_response(ctx):
    return check_replay_file(ctx, TRANSCRIPT)
