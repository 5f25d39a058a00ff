"""The concurrent replay: every connection of a transcript at the same time, each on its own thread.

A web server keeps several connections open at once; shared state, FCGI_MAX_CONNS and ids in use on
two connections only show then. With timing=True too, each connection opens at its captured offset
from the first connection's opening and every step keeps its captured time on that common clock. Each
connection is judged exactly as in the sequential replay (harness/replay/engine.py), and has a bound
(its start, the captured times, every wait's timeout): past it, all its waits end and the connection
diverges, so no connection can hang the replay.
"""

from __future__ import annotations

import threading
import time

from harness.wire.connection import format_trace
from harness.targets.base import Target
from harness.capture.transcript import Connection
from harness.replay.plan import Plan
from harness.replay.results import ConnectionResult, Divergence
from harness.replay.engine import CONTEXT_ENTRIES, KEEP_OPEN_GRACE, REUSE_GRACE, ConnectionReplay, replay_connection

# How long past its bound a connection's thread may take to wind up before it is left behind.
BOUND_SLACK = 2.0


def opening_us(connection: Connection) -> int | None:
    """The captured time of a connection's first item (its opening)."""
    return next((i.time_us for i in connection.items if i.time_us is not None), None)


def connection_bound(plan: Plan, timeout: float, start: float, last_step: float) -> float:
    """Seconds from the start of a concurrent replay by which one connection's replay must be over.

    start: when it opens; last_step: when its last step is due (timing), both from the replay's start.
    Then each step may wait its timeout for the target to catch up and again to send; the close and
    the final answers two more each, plus the short graces; and the connect one.
    """
    steps = len(plan.steps)
    waits = (2 * steps + 5) * timeout + steps * (REUSE_GRACE + 0.2) + KEEP_OPEN_GRACE
    return max(start, last_step) + waits


class _Slot:
    """What one connection's thread hands back (written by that thread only, read after it ended)."""

    def __init__(self, plan: Plan, start: float, bound: float) -> None:
        self.plan = plan
        self.start = start  # seconds after the replay's start
        self.bound = bound
        self.thread: threading.Thread | None = None
        self.run: ConnectionReplay | None = None
        self.result: ConnectionResult | None = None
        self.error: BaseException | None = None


def replay_concurrently(plans: list[Plan], target: Target, *, content: bool, timing: bool, timeout: float,
                        first_only: bool) -> list[ConnectionResult]:
    """Replay every plan at once, one thread each; the results in connection order (see the module's text)."""
    origin = time.monotonic()
    openings = [opening_us(plan.connection) for plan in plans]
    origin_us = min((t for t in openings if t is not None), default=None) if timing else None
    slots: list[_Slot] = []
    for plan, opening in zip(plans, openings):
        start = last_step = 0.0
        if origin_us is not None and opening is not None:
            start = (opening - origin_us) / 1e6
            last_step = max(((s.time_us - origin_us) / 1e6 for s in plan.steps if s.time_us is not None),
                            default=start)
        slots.append(_Slot(plan, start, connection_bound(plan, timeout, start, last_step)))
    diverged = threading.Event()

    def work(slot: _Slot) -> None:
        deadline = origin + slot.bound

        def started(run: ConnectionReplay) -> None:
            slot.run = run

        try:
            # One clock for every connection's trace, so that their records can be set side by side.
            result = replay_connection(slot.plan, target, content=content, timing=timing, timeout=timeout,
                                       time_origin=None if origin_us is None else (origin_us, origin),
                                       clock_origin=origin, deadline=deadline, started=started)
            if result.divergence is not None and time.monotonic() >= deadline:
                result.divergence = _overran(slot, result.divergence)
            slot.result = result
        except BaseException as error:  # a harness error: raised again in the caller's thread
            slot.error = error
        finally:
            if slot.result is None or slot.result.divergence is not None:
                diverged.set()

    # Started in the order they opened in the capture (connection order when the times say nothing).
    for slot in sorted(slots, key=lambda s: s.start):
        delay = slot.start - (time.monotonic() - origin)
        if first_only:
            if diverged.wait(max(delay, 0.0)):
                break
        elif delay > 0:
            time.sleep(delay)
        slot.thread = threading.Thread(target=work, args=(slot,), name=f"replay {slot.plan.connection.number}",
                                       daemon=True)
        slot.thread.start()
    started_slots = [slot for slot in slots if slot.thread is not None]  # first_only may have left some out
    for slot in started_slots:
        assert slot.thread is not None
        slot.thread.join(max(origin + slot.bound + BOUND_SLACK - time.monotonic(), 0.0))
    errors = [slot.error for slot in started_slots if slot.error is not None]
    if errors:
        raise errors[0]  # a harness error in a connection's thread, raised once all were waited for
    results: list[ConnectionResult] = []
    for slot in started_slots:  # connection order
        assert slot.thread is not None
        if slot.thread.is_alive():
            # Every wait of the connection ends at its bound; a thread still running is left behind (a daemon).
            number = slot.plan.connection.number
            entries = list(slot.run.conn.trace) if slot.run is not None else []  # a copy: the thread may still add
            context = format_trace(entries[-CONTEXT_ENTRIES:], limit=CONTEXT_ENTRIES).splitlines() if entries else []
            results.append(ConnectionResult(number, len(slot.plan.requests), 0,
                                            _overran(slot, Divergence(number, None, "", context), still_running=True)))
            continue
        assert slot.result is not None
        results.append(slot.result)
    return results


def _overran(slot: _Slot, divergence: Divergence, *, still_running: bool = False) -> Divergence:
    """The divergence of a connection whose replay went past its bound.

    Where it was is kept (the records and the place in the capture); the message of the wait the bound
    cut short is not (it would name the full timeout).
    """
    what = "is still running" if still_running else "was stopped"
    message = (f"the replay of this connection took longer than its bound of {slot.bound:g}s after the start "
               f"(its start, the captured times and every wait's timeout) and {what}")
    return Divergence(divergence.connection, divergence.request, message, divergence.target_context,
                      divergence.capture_context)
