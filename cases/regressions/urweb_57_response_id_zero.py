"""urweb #57: responses carry the request's id, not 0.

Source:
- https://github.com/urweb/urweb/issues/57
- https://github.com/urweb/urweb/pull/60
Catalogue: ../shared/reference/fastcgi-spec-catalog.md section 6, row 26.
Symptom: Ur/Web answered every request with request id 0: nginx rejected the responses ("unexpected FastCGI
  request id low byte: 0").
Wire pattern: transcripts/urweb-57-response-id-zero.transcript: one GET with id 1.
Reproduced by: reference --fault reply-id-zero; independent responder --bug reply-id-zero.
"""

from __future__ import annotations

from pathlib import Path

from harness.suite.case import case
from harness.replay.engine import check_replay_file
from harness.verdicts import Level

SOURCE = 'https://github.com/urweb/urweb/issues/57'
TRANSCRIPT = Path(__file__).resolve().parent / "transcripts" / "urweb-57-response-id-zero.transcript"


@case(
    "REG-urweb-57-response-id-zero",
    title="urweb #57: responses carry the request's id, not 0",
    requirement=(
        'Spec §3.3: "Application records have a nonzero requestId."'
    ),
    level=Level.REQUIRED,
    catches=('reply-id-zero',),
)
def urweb_57_response_id_zero(ctx):
    return check_replay_file(ctx, TRANSCRIPT)
