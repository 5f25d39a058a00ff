"""libfcgi CVE-2025-23016: 4-byte name-value lengths near 2^31 do not crash the application.

Source:
- https://nvd.nist.gov/vuln/detail/CVE-2025-23016
- https://github.com/FastCGI-Archives/fcgi2/commit/b0eabca
- https://github.com/FastCGI-Archives/fcgi2/commit/7c47639
Catalogue: ../shared/reference/fastcgi-spec-catalog.md section 6, row 16.
Symptom: ReadParams added two 4-byte lengths (0x7fffffff each) plus 2 in an int: the overflow gave a heap
  overflow in every libfcgi application (a crash, or worse).
Wire pattern: transcripts/libfcgi-cve-2025-23016-params-length-overflow.transcript: PARAMS `ff ff ff ff ff ff ff
  ff` and 16 bytes: both lengths 0x7fffffff. The application may close that connection (a protocol error, spec
  §7); it must not crash, and the liveness probe after the case must be answered.
Reproduced by: reference --fault abort-on-malformed.
"""

from __future__ import annotations

from pathlib import Path

from harness.suite.case import case
from harness.replay.engine import check_replay_file
from harness.verdicts import Level

SOURCE = 'https://nvd.nist.gov/vuln/detail/CVE-2025-23016'
TRANSCRIPT = Path(__file__).resolve().parent / "transcripts" / "libfcgi-cve-2025-23016-params-length-overflow.transcript"


@case(
    "REG-libfcgi-cve-2025-23016-params-length-overflow",
    title='libfcgi CVE-2025-23016: 4-byte name-value lengths near 2^31 do not crash the application',
    requirement=(
        'Spec §3.4: "FastCGI transmits a name-value pair as the length of the name, followed by the length of '
        'the value, followed by the name, followed by the value." Lengths that run past the record are a '
        'protocol error (§7: the application "may either continue or exit with nonzero status"); a crash is '
        'neither.'
    ),
    level=Level.REQUIRED,
    catches=('abort-on-malformed',),
    protocol_error=True,
)
def libfcgi_cve_2025_23016_params_length_overflow(ctx):
    return check_replay_file(ctx, TRANSCRIPT)
