"""Go issue 11824: malformed params do not take the server down.

Source: https://github.com/golang/go/issues/11824 (TestMalformedParams)
Catalogue: ../shared/reference/fastcgi-spec-catalog.md section 6, row 10.
Symptom: a name length past the end of PARAMS made net/http/fcgi panic: one bad record took the whole server
  down. The fix returns an error for that connection and the server goes on; this case holds a server to that
  fix (an exit, which spec §7 tolerates, fails it too).
Wire pattern: transcripts/go-11824-malformed-params.transcript: PARAMS `7f 01 41 42`: a 127-byte name and a
  1-byte value declared, 2 bytes there. The application may close that connection; it must still answer a new
  one (the liveness probe after the case).
Reproduced by: reference --fault exit-on-malformed, abort-on-malformed.
"""

from __future__ import annotations

from pathlib import Path

from harness.suite.case import case
from harness.replay.engine import check_replay_file
from harness.verdicts import Level

SOURCE = 'https://github.com/golang/go/issues/11824'
TRANSCRIPT = Path(__file__).resolve().parent / "transcripts" / "go-11824-malformed-params.transcript"


@case(
    "REG-go-11824-malformed-params",
    title='Go issue 11824: malformed params do not take the server down',
    requirement=(
        'Spec §3.4: "FastCGI transmits a name-value pair as the length of the name, followed by the length of '
        'the value, followed by the name, followed by the value." Lengths that run past the record are a '
        'protocol error (§7: the application "may either continue or exit with nonzero status"); a crash is '
        'neither.'
    ),
    level=Level.REQUIRED,
    catches=('exit-on-malformed', 'abort-on-malformed'),
)
def go_11824_malformed_params(ctx):
    return check_replay_file(ctx, TRANSCRIPT)
