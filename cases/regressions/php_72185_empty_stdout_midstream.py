"""php-fpm bug #72185: no empty STDOUT record in the middle of the output.

Source:
- https://bugs.php.net/bug.php?id=72185
- https://github.com/php/php-src/pull/3198
- https://github.com/php/php-src/pull/8511 (the fix; test bug72185-fcgi-empty-frame.phpt)
Catalogue: ../shared/reference/fastcgi-spec-catalog.md section 6, row 1.
Symptom: php-fpm wrote an empty STDOUT record and then more data: nginx took the empty record for the end of the
  output and answered 502, Apache truncated the page.
Wire pattern: transcripts/php-72185-empty-stdout-midstream.transcript: one GET whose 20000-byte answer takes
  several STDOUT records.
Reproduced by: reference --fault stdout-after-empty.
"""

from __future__ import annotations

from pathlib import Path

from harness.suite.case import case
from harness.replay.engine import check_replay_file
from harness.verdicts import Level

SOURCE = 'https://bugs.php.net/bug.php?id=72185'
TRANSCRIPT = Path(__file__).resolve().parent / "transcripts" / "php-72185-empty-stdout-midstream.transcript"


@case(
    "REG-php-72185-empty-stdout-midstream",
    title='php-fpm bug #72185: no empty STDOUT record in the middle of the output',
    requirement=(
        'Spec §3.3: "A stream record is part of a stream, i.e. a series of zero or more non-empty records '
        '(length != 0) of the stream type, followed by an empty record (length == 0) of the stream type."'
    ),
    level=Level.REQUIRED,
    catches=('stdout-after-empty',),
)
def php_72185_empty_stdout_midstream(ctx):
    return check_replay_file(ctx, TRANSCRIPT)
