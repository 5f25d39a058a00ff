"""§7 Errors.

SIGTERM needs an instance the harness starts (ctx.spawn_variant), so FCGI-7-1 is unsupported for a
target it does not (tcp:, unix:). The signal goes to the variant's process group, as a process
manager stopping a service does, so that a shell wrapper in a cmd: target does not hide the
application behind it.

Not testable from outside, so not cases:
- "applications report lower-level errors, including FastCGI protocol errors ... to syslog": the
  harness does not watch syslog, and where an application logs is its own business.
- "Depending upon the severity of the error, the application may either continue or exit with nonzero
  status": both are allowed. What is checked after every case instead is the liveness probe (a new
  connection and a simple request), which fails a case whose input left the application dead or wedged.
- Exit status 0 versus nonzero: how a web server treats either "is outside the scope of this
  specification"; FCGI-7-1 records it.
"""

from __future__ import annotations

import os
import signal
import time

from harness.suite.case import CaseContext, case
from harness.suite.case_requests import plain_request
from harness.targets.base import Target
from harness.targets.process import group_members
from harness.verdicts import Level, Unsupported, Violation

EXIT_WAIT = 3.0


def _group_gone(target: Target) -> bool:
    """True once no process of the target's group is left (the leader reaped, no stragglers)."""
    process = target.process
    if process is None:
        return True
    process.poll()  # reaps the leader once it has exited
    return process.returncode is not None and not group_members(process.pid)


@case(
    "FCGI-7-1",
    title=f"SIGTERM (with an idle KEEP_CONN connection open) makes the application exit within {EXIT_WAIT:g} s",
    requirement="A Web server can request that a FastCGI application exit by sending it SIGTERM. "
    "If the application ignores SIGTERM the Web server can resort to SIGKILL.",
    # The spec expects SIGTERM to be ignorable (the web server then uses SIGKILL):
    # exiting on it is what an application should do, not what it must.
    level=Level.RECOMMENDED,
    catches=("sigterm-ignored",),
)
def exits_on_sigterm(ctx: CaseContext) -> str:
    """SIGTERM to a variant with an idle KEEP_CONN connection: its whole process group is gone in time."""
    variant = ctx.spawn_variant()
    if variant.process is None:
        raise Unsupported("the variant has no process the harness can signal")
    conn = ctx.connect("idle KEEP_CONN connection", target=variant)
    plain_request(ctx, conn, 1, wait=3.0)
    conn.note("SIGTERM to the application's process group")
    os.killpg(variant.process.pid, signal.SIGTERM)
    sent = time.monotonic()
    wait = ctx.seconds(EXIT_WAIT)
    while not _group_gone(variant):
        if time.monotonic() - sent > wait:
            left = group_members(variant.process.pid)
            os.killpg(variant.process.pid, signal.SIGKILL)  # what the web server resorts to; saves the harness's grace
            raise Violation(
                f"the application exits within {wait:g}s of SIGTERM",
                f"still running after {wait:g}s ({len(left)} process(es) left: {', '.join(map(str, left))})",
            )
        time.sleep(0.01)
    elapsed_ms = (time.monotonic() - sent) * 1000
    closed = conn.wait_closed(ctx.seconds(0.2))
    idle = "the idle connection was closed" if closed != "open" else "the idle connection stayed open (!)"
    return f"{variant.exit_text()} {elapsed_ms:.0f} ms after SIGTERM; {idle}"
