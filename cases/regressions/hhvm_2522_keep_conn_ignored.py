"""HHVM #2522: a second request on a kept connection is served.

Source:
- https://github.com/facebook/hhvm/issues/2522
- https://github.com/facebook/hhvm/issues/1690
- https://github.com/ceph/ceph/pull/20579 (Ceph RGW, the same)
Catalogue: ../shared/reference/fastcgi-spec-catalog.md section 6, row 20.
Symptom: HHVM closed the connection after each request even with FCGI_KEEP_CONN set: the second request nginx
  sent on the kept connection was never executed.
Wire pattern: transcripts/hhvm-2522-keep-conn-ignored.transcript: two GETs with FCGI_KEEP_CONN on one
  connection.
Reproduced by: reference --fault keep-conn-close; independent responder --bug keep-conn-ignored.
"""

from __future__ import annotations

from pathlib import Path

from harness.suite.case import case
from harness.replay.engine import check_replay_file
from harness.verdicts import Level

SOURCE = 'https://github.com/facebook/hhvm/issues/2522'
TRANSCRIPT = Path(__file__).resolve().parent / "transcripts" / "hhvm-2522-keep-conn-ignored.transcript"


@case(
    "REG-hhvm-2522-keep-conn-ignored",
    title='HHVM #2522: a second request on a kept connection is served',
    requirement=(
        'Spec §5.1: "If not zero, the application does not close the connection after responding to this '
        'request; the Web server retains responsibility for the connection."'
    ),
    level=Level.REQUIRED,
    catches=('keep-conn-close',),
)
def hhvm_2522_keep_conn_ignored(ctx):
    return check_replay_file(ctx, TRANSCRIPT)
