"""fastcgi.nim #1: a POST body above 40 KB is read to its end.

Source:
- https://github.com/ba0f3/fastcgi.nim/issues/1
- https://github.com/eddic/fastcgipp/issues/17 (fastcgipp: uploads above about 500 KB)
Catalogue: ../shared/reference/fastcgi-spec-catalog.md section 6, row 31, 32.
Symptom: the page froze on a POST above 40 KB: the application stopped reading the connection.
Wire pattern: transcripts/fastcgi-nim-1-post-over-40k.transcript: a POST with a 60000-byte body in 8192-byte
  STDIN records.
Reproduced by: reference --fault stdin-stall-40k.
"""

from __future__ import annotations

from pathlib import Path

from harness.suite.case import case
from harness.replay.engine import check_replay_file
from harness.verdicts import Level

SOURCE = 'https://github.com/ba0f3/fastcgi.nim/issues/1'
TRANSCRIPT = Path(__file__).resolve().parent / "transcripts" / "fastcgi-nim-1-post-over-40k.transcript"


@case(
    "REG-fastcgi-nim-1-post-over-40k",
    title='fastcgi.nim #1: a POST body above 40 KB is read to its end',
    requirement=(
        'Spec §5.3: "FCGI_STDIN is a stream record type used in sending arbitrary data from the Web server to '
        'the application." The application reads a body of any size, record after record.'
    ),
    level=Level.REQUIRED,
    catches=('stdin-stall-40k',),
)
def fastcgi_nim_1_post_over_40k(ctx):
    return check_replay_file(ctx, TRANSCRIPT)
