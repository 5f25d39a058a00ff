"""HHVM #1690: connections the web server closes are released.

Source: https://github.com/facebook/hhvm/issues/1690
Bug table row: 21 (docs/bug-to-regression.md).
Symptom: with `fastcgi_keep_conn on`, HHVM never released the connections nginx closed: open descriptors
  grew until the process ran out of them.
Wire pattern (code: the leak is seen in the target's process, not on the wire): 40 kept connections, one
  request each, closed idle by the web server (FIN) the way nginx drops surplus upstream connections; the
  application's open descriptors must come back to where they were. Needs a target the harness spawns
  (reference, cmd:, a named server): tcp:/unix: targets are unsupported.
Reproduced by: reference --fault fd-leak-on-eof.
"""

from __future__ import annotations

import time

from harness.suite.case import CaseContext, case
from harness.suite.case_requests import plain_request
from harness.verdicts import Level, Unsupported, Violation

SOURCE = "https://github.com/facebook/hhvm/issues/1690"
CONNECTIONS = 40
FD_SLACK = 8  # a worker pool may keep a few descriptors of its own
SETTLE_SECONDS = 1.0


@case(
    "REG-hhvm-1690-connection-leak",
    title=f"HHVM #1690: {CONNECTIONS} kept connections closed idle by the web server leave no descriptor behind",
    requirement=(
        'Spec §3.5: "The Web server controls the lifetime of transport connections. The Web server can close a '
        'connection when no requests are active."'
    ),
    level=Level.REQUIRED,
    catches=("fd-leak-on-eof",),
    timeout=20.0,
)
def hhvm_1690_connection_leak(ctx: CaseContext) -> str:
    warm = ctx.connect("warm-up")
    plain_request(ctx, warm, 1)
    warm.close()
    time.sleep(ctx.seconds(0.1))
    baseline = ctx.target.process_stats()
    if baseline is None:
        raise Unsupported("the harness has no process to count the descriptors of (a tcp: or unix: target)")
    for number in range(1, CONNECTIONS + 1):
        conn = ctx.connect(f"kept connection {number}")
        plain_request(ctx, conn, 1)
        conn.close()
    end_time = time.monotonic() + ctx.seconds(SETTLE_SECONDS)
    current = ctx.target.process_stats()
    while current is not None and current.fds > baseline.fds + FD_SLACK and time.monotonic() < end_time:
        time.sleep(0.02)
        current = ctx.target.process_stats()
    if current is None:
        raise Violation("the application still running after the closes", "its process is gone")
    if current.pids != baseline.pids:
        return f"process set changed ({len(baseline.pids)} -> {len(current.pids)} processes): descriptors not compared"
    if current.fds > baseline.fds + FD_SLACK:
        raise Violation(f"open descriptors back to {baseline.fds} (+{FD_SLACK}) after {CONNECTIONS} idle closes",
                        f"{current.fds} open descriptors ({current.fds - baseline.fds} more)")
    return f"descriptors {baseline.fds} -> {current.fds} after {CONNECTIONS} idle closes"
