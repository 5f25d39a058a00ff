"""Go net/http/fcgi: a request id reused on a kept connection right after its END_REQUEST is served.

Source: https://github.com/golang/go/commit/a387f915 (child.go: free the id before END_REQUEST is sent)
Catalogue: ../shared/reference/fastcgi-spec-catalog.md section 6, row 15.
Symptom: nginx with `fastcgi_keep_conn on` and upstream keepalive sends every request as id 1; Go answered the
  first and dropped the connection on the second ("fcgi: received ID that is already in-flight"), so nginx
  logged "recv() failed (104: Connection reset by peer) while reading response header from upstream" and
  answered 502.
Wire pattern: transcripts/go-a387f915-request-id-reuse.transcript: three GETs with id 1 on one kept connection,
  each sent after the previous END_REQUEST, as nginx does.
Reproduced by: reference --fault go-id-reuse; independent responder --bug go-id-reuse.
"""

from __future__ import annotations

from pathlib import Path

from harness.suite.case import case
from harness.replay.engine import check_replay_file
from harness.verdicts import Level

SOURCE = 'https://github.com/golang/go/commit/a387f915'
TRANSCRIPT = Path(__file__).resolve().parent / "transcripts" / "go-a387f915-request-id-reuse.transcript"


@case(
    "REG-go-a387f915-request-id-reuse",
    title='Go net/http/fcgi: a request id reused on a kept connection right after its END_REQUEST is served',
    requirement=(
        'Spec §3.3: "A request ID R becomes active when the application receives a record {FCGI_BEGIN_REQUEST,'
        ' R, ...} and becomes inactive when the application sends a record {FCGI_END_REQUEST, R, ...} to the '
        'Web server."'
    ),
    level=Level.REQUIRED,
    catches=('go-id-reuse',),
)
def go_a387f915_request_id_reuse(ctx):
    return check_replay_file(ctx, TRANSCRIPT)
