"""fcgi2 #13: PARAMS above 8 KiB.

Source:
- https://github.com/FastCGI-Archives/fcgi2/issues/13
- https://github.com/php/php-src/issues/16042
Catalogue: ../shared/reference/fastcgi-spec-catalog.md section 6, row 18.
Symptom: a fixed 8 KiB parameter buffer (cgi-fcgi) broke requests with more than about 8 KB of params, such as a
  large cookie.
Wire pattern: transcripts/fcgi2-13-params-over-8k.transcript: a GET with a 10000-byte HTTP_COOKIE.
Reproduced by: reference --fault params-8k-buffer.
"""

from __future__ import annotations

from pathlib import Path

from harness.suite.case import case
from harness.replay.engine import check_replay_file
from harness.verdicts import Level

SOURCE = 'https://github.com/FastCGI-Archives/fcgi2/issues/13'
TRANSCRIPT = Path(__file__).resolve().parent / "transcripts" / "fcgi2-13-params-over-8k.transcript"


@case(
    "REG-fcgi2-13-params-over-8k",
    title='fcgi2 #13: PARAMS above 8 KiB',
    requirement=(
        'Spec §3.4: "FastCGI applications need to read and write varying numbers of variable-length values"; '
        'nothing limits PARAMS to 8 KiB.'
    ),
    level=Level.REQUIRED,
    catches=('params-8k-buffer',),
)
def fcgi2_13_params_over_8k(ctx):
    return check_replay_file(ctx, TRANSCRIPT)
