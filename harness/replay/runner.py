"""Replay a transcript against a target: the web-server side of each captured connection is sent
again, connection by connection, and the target's answers are judged by meaning.

The steps of each connection come from harness/replay/plan.py: flights (the bytes the web server sent
between two things the application sent), or (writes=True) the captured write pieces, or
(timing=True) also at the captured times. One connection is replayed and judged by
harness/replay/engine.py; concurrent=True replays every connection at the same time instead of one
after another (harness/replay/concurrency.py). The result and its report: harness/replay/results.py.
"""

from __future__ import annotations

from typing import Callable

from harness.wire.connection import FcgiConnection
from harness.targets.base import Target
from harness.capture.transcript import Transcript
from harness.replay.plan import plan_connection
from harness.replay.results import ReplayResult
from harness.replay.engine import DEFAULT_TIMEOUT, replay_connection
from harness.replay.concurrency import replay_concurrently


def replay(
    transcript: Transcript,
    target: Target,
    *,
    content: bool = False,
    timing: bool = False,
    writes: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    source: str = "transcript",
    first_only: bool = False,
    concurrent: bool = False,
    on_connection: Callable[[FcgiConnection], None] | None = None,
) -> ReplayResult:
    """Replay every connection of a transcript against a started target.

    first_only: stop at the first connection that diverges (a case's verdict needs no more);
    concurrently, no connection is started after one diverged (those running finish).
    concurrent: all connections at the same time, one thread each (harness/replay/concurrency.py);
    the results come in connection order all the same.
    on_connection: told each connection as it opens (one after another only), e.g. so that a case
    keeps its trace.
    """
    level = "protocol and content" if content else "protocol level"
    result = ReplayResult(source, target.description, level, concurrent=concurrent)
    plans = [plan for plan in (plan_connection(c, writes=writes or timing) for c in transcript.connections)
             if plan.steps]
    if concurrent:
        result.connections = replay_concurrently(plans, target, content=content, timing=timing, timeout=timeout,
                                                 first_only=first_only)
        return result
    for plan in plans:
        if first_only and not result.ok:
            break
        started = None if on_connection is None else (lambda run: on_connection(run.conn))
        result.connections.append(replay_connection(plan, target, content=content, timing=timing, timeout=timeout,
                                                    started=started))
    return result

