"""protocol-fcgi #6: STDOUT is ended by its empty record before END_REQUEST.

Source: https://github.com/lisachenko/protocol-fcgi/issues/6
Catalogue: ../shared/reference/fastcgi-spec-catalog.md section 6, row 27.
Symptom: the library sent END_REQUEST without the empty STDOUT record (and without echoing the id): nginx logged
  "unexpected FastCGI request id low byte: 0" and hung waiting for the end of the stream.
Wire pattern: transcripts/protocol-fcgi-6-unterminated-stdout.transcript: one GET.
Reproduced by: reference --fault no-empty-stdout; independent responder --bug no-empty-stdout.
"""

from __future__ import annotations

from pathlib import Path

from harness.suite.case import case
from harness.replay.engine import check_replay_file
from harness.verdicts import Level

SOURCE = 'https://github.com/lisachenko/protocol-fcgi/issues/6'
TRANSCRIPT = Path(__file__).resolve().parent / "transcripts" / "protocol-fcgi-6-unterminated-stdout.transcript"


@case(
    "REG-protocol-fcgi-6-unterminated-stdout",
    title='protocol-fcgi #6: STDOUT is ended by its empty record before END_REQUEST',
    requirement=(
        'Spec §3.3: "A stream record is part of a stream, i.e. a series of zero or more non-empty records '
        '(length != 0) of the stream type, followed by an empty record (length == 0) of the stream type."'
    ),
    level=Level.REQUIRED,
    catches=('no-empty-stdout',),
)
def protocol_fcgi_6_unterminated_stdout(ctx):
    return check_replay_file(ctx, TRANSCRIPT)
