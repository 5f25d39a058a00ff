"""HyperFastCgi #55: output on a reused connection stays framed.

Source: https://github.com/xplicit/HyperFastCgi/issues/55
Catalogue: ../shared/reference/fastcgi-spec-catalog.md section 6, row 28.
Symptom: under keep-alive nginx logged "upstream sent unsupported FastCGI protocol version: 0": the output of
  the second request on a kept connection was misframed.
Wire pattern: transcripts/hyperfastcgi-55-misframed-on-reuse.transcript: two GETs with 3000-byte answers on one
  kept connection.
Reproduced by: reference --fault misframe-on-reuse.
"""

from __future__ import annotations

from pathlib import Path

from harness.suite.case import case
from harness.replay.engine import check_replay_file
from harness.verdicts import Level

SOURCE = 'https://github.com/xplicit/HyperFastCgi/issues/55'
TRANSCRIPT = Path(__file__).resolve().parent / "transcripts" / "hyperfastcgi-55-misframed-on-reuse.transcript"


@case(
    "REG-hyperfastcgi-55-misframed-on-reuse",
    title='HyperFastCgi #55: output on a reused connection stays framed',
    requirement=(
        'Spec §3.3: "A FastCGI record consists of a fixed-length prefix followed by a variable number of '
        'content and padding bytes." A misframed stream makes nginx read a stray byte as the next record\'s '
        'version.'
    ),
    level=Level.REQUIRED,
    catches=('misframe-on-reuse',),
)
def hyperfastcgi_55_misframed_on_reuse(ctx):
    return check_replay_file(ctx, TRANSCRIPT)
