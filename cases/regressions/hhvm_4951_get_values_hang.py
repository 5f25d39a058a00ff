"""HHVM #4951: FCGI_GET_VALUES is answered.

Source: https://github.com/facebook/hhvm/issues/4951
Catalogue: ../shared/reference/fastcgi-spec-catalog.md section 6, row 22.
Symptom: HHVM never answered FCGI_GET_VALUES: the web server's read hung.
Wire pattern: transcripts/hhvm-4951-get-values-hang.transcript: GET_VALUES for FCGI_MAX_CONNS, FCGI_MAX_REQS and
  FCGI_MPXS_CONNS on a new connection.
Reproduced by: reference --fault get-values-ignored.
"""

from __future__ import annotations

from pathlib import Path

from harness.suite.case import case
from harness.replay.engine import check_replay_file
from harness.verdicts import Level

SOURCE = 'https://github.com/facebook/hhvm/issues/4951'
TRANSCRIPT = Path(__file__).resolve().parent / "transcripts" / "hhvm-4951-get-values-hang.transcript"


@case(
    "REG-hhvm-4951-get-values-hang",
    title='HHVM #4951: FCGI_GET_VALUES is answered',
    requirement=(
        'Spec §4.1: "The application responds by sending a record {FCGI_GET_VALUES_RESULT, 0, ...} with the '
        'values supplied."'
    ),
    level=Level.REQUIRED,
    catches=('get-values-ignored',),
)
def hhvm_4951_get_values_hang(ctx):
    return check_replay_file(ctx, TRANSCRIPT)
