"""libfcgi: an unknown role gets END_REQUEST{UNKNOWN_ROLE}, and the connection goes on.

Source: https://github.com/FastCGI-Archives/fcgi2/blob/master/libfcgi/fcgiapp.c (`goto TryAgain` on an unknown
  role)
Catalogue: ../shared/reference/fastcgi-spec-catalog.md section 6, row 17, 9.
Symptom: libfcgi (and php-fpm) drop the connection on a role they do not know instead of answering
  FCGI_UNKNOWN_ROLE (read from the code; the catalogue marks it [I]).
Wire pattern: transcripts/libfcgi-unknown-role.transcript: a BEGIN_REQUEST with role 9, its PARAMS and STDIN,
  then a GET on the same connection.
Reproduced by: reference --fault unknown-role-close, unknown-role-served; independent responder --bug unknown-
  role-close.
"""

from __future__ import annotations

from pathlib import Path

from harness.suite.case import case
from harness.replay.engine import check_replay_file
from harness.verdicts import Level

SOURCE = 'https://github.com/FastCGI-Archives/fcgi2/blob/master/libfcgi/fcgiapp.c'
TRANSCRIPT = Path(__file__).resolve().parent / "transcripts" / "libfcgi-unknown-role.transcript"


@case(
    "REG-libfcgi-unknown-role",
    title='libfcgi: an unknown role gets END_REQUEST{UNKNOWN_ROLE}, and the connection goes on',
    requirement=(
        'Spec §5.5: "FCGI_UNKNOWN_ROLE: rejecting a new request. This happens when the Web server has '
        'specified a role that is unknown to the application."'
    ),
    level=Level.REQUIRED,
    catches=('unknown-role-close', 'unknown-role-served'),
)
def libfcgi_unknown_role(ctx):
    return check_replay_file(ctx, TRANSCRIPT)
