"""nginx PR #1648: parameter names of 128 bytes and more (4-byte name lengths).

Source:
- https://github.com/nginx/nginx/pull/1648
- https://github.com/h2o/h2o/issues/3204 (h2o, the 127/128 boundary)
- https://github.com/monkey/monkey/pull/278 (Monkey)
Catalogue: ../shared/reference/fastcgi-spec-catalog.md section 6, row 33, 34.
Symptom: nginx wrote the length of a 128-byte name in one byte: PHP-CGI reset the connection and nginx answered
  502. The application side of the same boundary: it must read 4-byte lengths whole.
Wire pattern: transcripts/nginx-1648-128-byte-param-name.transcript: a GET with a 300-byte parameter name, a
  127-byte value and a 128-byte value (4-byte and 1-byte lengths side by side; past 255 bytes a length read from
  one byte is wrong even for a reader that gets 128 right).
Reproduced by: reference --fault nv-long-length-1byte.
"""

from __future__ import annotations

from pathlib import Path

from harness.suite.case import case
from harness.replay.engine import check_replay_file
from harness.verdicts import Level

SOURCE = 'https://github.com/nginx/nginx/pull/1648'
TRANSCRIPT = Path(__file__).resolve().parent / "transcripts" / "nginx-1648-128-byte-param-name.transcript"


@case(
    "REG-nginx-1648-128-byte-param-name",
    title='nginx PR #1648: parameter names of 128 bytes and more (4-byte name lengths)',
    requirement=(
        'Spec §3.4: "The high-order bit of the first byte of a length indicates the length\'s encoding. A high-'
        'order zero implies a one-byte encoding, a one a four-byte encoding."'
    ),
    level=Level.REQUIRED,
    catches=('nv-long-length-1byte',),
)
def nginx_1648_128_byte_param_name(ctx):
    return check_replay_file(ctx, TRANSCRIPT)
