"""Yaws #283: a second empty STDIN record does not close the connection.

Source: https://github.com/erlyaws/yaws/issues/283
Catalogue: ../shared/reference/fastcgi-spec-catalog.md section 6, row 25.
Symptom: Yaws sent the empty STDIN record twice; HHVM closed the connection before answering and Yaws answered
  500.
Wire pattern: transcripts/yaws-283-second-empty-stdin.transcript: BEGIN, PARAMS, two empty STDIN records in one
  write, then a second GET on the kept connection.
Reproduced by: reference --fault late-record-close; independent responder --bug late-record-close.
"""

from __future__ import annotations

from pathlib import Path

from harness.suite.case import case
from harness.replay.engine import check_replay_file
from harness.verdicts import Level

SOURCE = 'https://github.com/erlyaws/yaws/issues/283'
TRANSCRIPT = Path(__file__).resolve().parent / "transcripts" / "yaws-283-second-empty-stdin.transcript"


@case(
    "REG-yaws-283-second-empty-stdin",
    title='Yaws #283: a second empty STDIN record does not close the connection',
    requirement=(
        'Spec §3.3: "While a request ID R is inactive, the application ignores records with requestId == R, '
        'except for FCGI_BEGIN_REQUEST records as just described."'
    ),
    level=Level.REQUIRED,
    catches=('late-record-close',),
)
def yaws_283_second_empty_stdin(ctx):
    return check_replay_file(ctx, TRANSCRIPT)
