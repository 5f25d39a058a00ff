"""php-fpm bug #68571: the application survives a web server that goes away while it writes.

Source:
- https://bugs.php.net/bug.php?id=68571
- https://github.com/php/php-src/pull/948
Bug table row: 6 (docs/bug-to-regression.md).
Symptom: php-fpm dumped core when the web server closed the socket while a script wrote heavy stderr: the
  failed write left out_pos unreset, its return value unchecked, and the next write overflowed.
Wire pattern (code: the close has to land while the application is still writing, which a fixed transcript
  cannot time): a GET for 24 MB of stdout and 64 KiB of stderr, reset (RST) as soon as the output starts, three
  times; then a new connection must be answered.
Reproduced by: reference --fault exit-on-write-error.
"""

from __future__ import annotations

import time

from harness.suite.case import CaseContext, case
from harness.suite.case_requests import plain_request, send_request
from harness.wire.probe_app import probe_query
from harness.verdicts import Level, Violation
from harness.suite.checks import next_event

SOURCE = "https://bugs.php.net/bug.php?id=68571"
ROUNDS = 3


@case(
    "REG-php-68571-crash-on-peer-close",
    title="php-fpm bug #68571: a web server that resets the connection mid-output does not crash the application",
    requirement=(
        'Spec §3.5: "The Web server controls the lifetime of transport connections." A write to a peer that went '
        "away is that connection's end, not the application's."
    ),
    level=Level.REQUIRED,
    catches=("exit-on-write-error",),
    timeout=15.0,
)
def php_68571_crash_on_peer_close(ctx: CaseContext) -> str:
    # More output than the socket buffers on both sides can take in (loopback's receive buffer grows to
    # megabytes while the harness does not read): the application is still writing when the reset lands.
    query = probe_query(out=24_000_000, err="php-68571-", err_repeat=6000) if ctx.has_probe_app else ""
    for round_number in range(1, ROUNDS + 1):
        conn = ctx.connect(f"round {round_number}: reset while the application writes")
        send_request(conn, 1, ctx.probe_params(query))
        next_event(conn, ctx.seconds(1.0))  # the output has started (or the target is slow: reset anyway)
        conn.reset()
    target = ctx.target
    if target.spawned:
        time.sleep(ctx.seconds(0.1))  # let it meet the resets
        if target.exit_status() is not None:
            raise Violation("the application keeps running after the web server reset mid-output",
                            f"the process {target.exit_text()}")
    conn = ctx.connect("a new connection after the resets")
    plain_request(ctx, conn, 1, f"END_REQUEST id=1 on a new connection after {ROUNDS} resets mid-output")
    return "" if ctx.has_probe_app else "without the probe app the output is short: the reset may come after it"

