"""php-fpm: an unknown management record gets FCGI_UNKNOWN_TYPE, and the connection goes on.

Source: https://github.com/php/php-src/blob/master/main/fastcgi.c (fcgi_read_request: `else return 0`)
Catalogue: ../shared/reference/fastcgi-spec-catalog.md section 6, row 9.
Symptom: php-fpm closes the connection on a management record type it does not know, with no FCGI_UNKNOWN_TYPE
  answer (read from the code; the catalogue marks it [I]).
Wire pattern: transcripts/php-fpm-unknown-management-type.transcript: a management record of type 100, then a
  GET on the same connection.
Reproduced by: reference --fault unknown-type-close, unknown-type-ignored; independent responder --bug unknown-
  type-ignored.
"""

from __future__ import annotations

from pathlib import Path

from harness.suite.case import case
from harness.replay.engine import check_replay_file
from harness.verdicts import Level

SOURCE = 'https://github.com/php/php-src/blob/master/main/fastcgi.c'
TRANSCRIPT = Path(__file__).resolve().parent / "transcripts" / "php-fpm-unknown-management-type.transcript"


@case(
    "REG-php-fpm-unknown-management-type",
    title='php-fpm: an unknown management record gets FCGI_UNKNOWN_TYPE, and the connection goes on',
    requirement=(
        'Spec §4.2: "When an application receives a management record whose type T it does not understand, the'
        ' application responds with {FCGI_UNKNOWN_TYPE, 0, {T}}."'
    ),
    level=Level.REQUIRED,
    catches=('unknown-type-close', 'unknown-type-ignored'),
)
def php_fpm_unknown_management_type(ctx):
    return check_replay_file(ctx, TRANSCRIPT)
