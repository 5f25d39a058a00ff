"""Replay as a case: a transcript replayed inside a running case and judged (cases/replay/, and the
regressions of cases/regressions/ that are transcripts, harness/replay/regressions.py).

check_replay raises Violation with the replay's report (the first divergence and the records around
it), or returns the note of a target that answered as captured. Content (stdout, stderr, appStatus)
is compared when the target runs the capture's application, or as FCGISPEC_REPLAY_CONTENT says.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from harness.targets.base import Target
from harness.capture.transcript import Transcript, read_transcript
from harness.verdicts import Violation
from harness.replay.runner import replay

if TYPE_CHECKING:
    from harness.suite.case import CaseContext

ROOT = Path(__file__).resolve().parents[2]
# "1" compares stdout/stderr/appStatus with the capture whatever the target, "0" never does;
# unset: only when the target runs the capture's application (same_application).
CONTENT_ENV = "FCGISPEC_REPLAY_CONTENT"
PROTOCOL_EXPECTATIONS = (
    "every request the capture saw answered gets exactly one END_REQUEST with the captured protocolStatus",
    "STDOUT and STDERR well formed, each ended by its empty record before END_REQUEST; nothing after END_REQUEST",
    "every record carries the id of a request in flight (0 only for management answers)",
    "the connection stays open while FCGI_KEEP_CONN is set, and is closed (FIN) after END_REQUEST when it is clear",
)
CONTENT_EXPECTATION = "stdout, stderr and appStatus of every request as in the capture"


def same_application(transcript: Transcript, target: Target) -> bool:
    """Does the target run the application the capture was made in front of?

    Only known for the reference responder's probe app (the golden captures' `app: reference ...`):
    a target that is the reference responder (with any options or fault modes) runs it too, unless
    its probe app is switched off (--app hello).
    """
    return target.is_reference and target.has_probe_app is not False and transcript.meta_value("app").startswith("reference")


def content_wanted(transcript: Transcript, target: Target, environ: dict[str, str] | None = None) -> bool:
    """Compare content in a replay case? FCGISPEC_REPLAY_CONTENT=1/0 decides, else same_application."""
    asked = (os.environ if environ is None else environ).get(CONTENT_ENV, "").strip().lower()
    if asked in ("1", "yes", "true", "on"):
        return True
    if asked in ("0", "no", "false", "off"):
        return False
    return same_application(transcript, target)


def check_replay(ctx: CaseContext, transcript: Transcript, *, source: str, content: bool | None = None,
                 base_wait: float | None = None) -> str:
    """Replay a transcript inside a case and judge it.

    Raises Violation with the replay's report (the first divergence and the records around it);
    returns a note for the report when the target answered as captured. Each wait is the case's
    answer wait (base_wait seconds when given), scaled by --fcgi-timeout; content=None decides with
    content_wanted().
    """
    target = ctx.target
    compare = content_wanted(transcript, target) if content is None else content
    wait = ctx.answer_wait if base_wait is None else ctx.seconds(base_wait)
    # The case keeps the replay's connections: their traces show the deviations of other requirements.
    result = replay(transcript, target, content=compare, timeout=wait, source=source, first_only=True,
                    on_connection=ctx.connections.append)
    expected = [*PROTOCOL_EXPECTATIONS, *([CONTENT_EXPECTATION] if compare else [])]
    if compare:
        # The content is compared with the captured answers: the probe app's reports, when the
        # target runs the capture's application, else whatever application answered then.
        if same_application(transcript, target):
            ctx.checked_by_probe()
        else:
            ctx.checked_by_comparison()
    if not result.ok:
        raise Violation(expected, result.report())
    requests = sum(c.requests for c in result.connections)
    answered = sum(c.answered for c in result.connections)
    return f"{len(result.connections)} connection(s), {answered}/{requests} request(s) answered ({result.level})"


def check_replay_file(ctx: CaseContext, path: str | Path, *, content: bool | None = None,
                      base_wait: float | None = None) -> str:
    """check_replay of a transcript file (read at run time), named relative to the repository in reports."""
    path = Path(path).resolve()
    source = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    return check_replay(ctx, read_transcript(path), source=source, content=content, base_wait=base_wait)
