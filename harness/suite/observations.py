"""One requirement per verdict: what a shared check does with a deviation it finds.

Every shared check (harness/suite/checks.py) checks one requirement, named by the id of the case
that owns it (the constants below). A deviation of the running case's own requirement is a
Violation, as always. A deviation of another requirement is that other case's failure: here it is
recorded on the running case as "also seen" (CaseContext.also_seen) and the check goes on where it
can; where the case then cannot check its own requirement and relies on that one (its prerequisites,
and COMMON_PREREQUISITES below), the judge (harness/suite/judge.py) makes it BLOCKED. A case may
also raise harness/verdicts.py Blocked itself. Outside a running case (the project's own tests call checks directly)
every deviation is a Violation.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import TYPE_CHECKING, Iterator, Sequence

from harness.verdicts import Deviation, Violation

if TYPE_CHECKING:
    from harness.suite.case import CaseContext

# The requirements the shared checks check, each the id of the case that owns it.
RECORD_FRAMING = "FCGI-3.3-1"  # every record the application sends is well framed
OWN_REQUEST_ID = "FCGI-3.3-2"  # every application record carries its request's id
NOTHING_AFTER_EMPTY_STDOUT = "FCGI-3.3-12"  # nothing follows the empty STDOUT record
KEEP_CONN_KEEPS = "FCGI-3.5-2"  # with FCGI_KEEP_CONN the connection stays open after a request
CGI_HEADERS = "FCGI-6.1-1"  # the response is CGI: Status and Location headers, no HTTP status line
GET_VALUES_KEEPS = "FCGI-3.5-5"  # GET_VALUES on a KEEP_CONN connection does not close it
UNKNOWN_TYPE_ANSWERED = "FCGI-4.2-1"  # an unknown management type gets UNKNOWN_TYPE
STDOUT_TERMINATED = "FCGI-5.3-6"  # STDOUT ends with an empty record before END_REQUEST
END_REQUEST_BODY = "FCGI-5.5-1"  # END_REQUEST bodies are 8 bytes
END_REQUEST_LAST = "FCGI-5.5-4"  # END_REQUEST is the last record of its request
APPLICATION_RECORD_TYPES = "FCGI-A-1"  # output is STDOUT/STDERR, not another stream type
END_REQUEST_ONCE = "FCGI-5.4-3"  # exactly one END_REQUEST per request
STDERR_TERMINATED = "FCGI-5.3-4"  # STDERR is absent or ends with an empty record
INACTIVE_NEVER_BEGUN = "FCGI-3.3-7"  # records for never-begun ids are ignored
INACTIVE_FINISHED = "FCGI-3.3-8"  # records for a finished id are ignored
GET_VALUES_ANSWERED = "FCGI-4.1-1"  # GET_VALUES gets one GET_VALUES_RESULT, with the null id
UNKNOWN_ROLE_REJECTED = "FCGI-5.1-2"  # an unknown role gets END_REQUEST UNKNOWN_ROLE, the connection kept
ABORT_ANSWERED = "FCGI-5.4-1"  # ABORT_REQUEST of an active request gets its END_REQUEST
# Checked by a request of their own when a case fails (harness/suite/prerequisite_checks.py).
PARAMS_AWAITED = "FCGI-5.2-1"  # nothing is answered before the PARAMS stream ends
RECORD_SPLITS = "FCGI-3.3-10"  # a stream's value does not depend on how it is cut into records
LONG_LENGTHS = "FCGI-3.4-1"  # 4-byte name-value lengths are read as such
LARGE_PARAMS = "FCGI-3.4-5"  # PARAMS of more than 8 KiB arrive whole
REQUEST_IDS = "FCGI-3.3-9"  # requests with ids above 255 are answered under their ids
PADDING = "FCGI-3.3-3"  # the padding of inbound records is skipped
ID_REUSE = "FCGI-3.3-6"  # an id is reused on a kept connection at once after its END_REQUEST

_running: contextvars.ContextVar["CaseContext | None"] = contextvars.ContextVar("fcgispec_running_case", default=None)


@contextlib.contextmanager
def observing(ctx: "CaseContext") -> Iterator[None]:
    """While a case runs: the checks it calls record other requirements' deviations on ctx."""
    token = _running.set(ctx)
    try:
        yield
    finally:
        _running.reset(token)


def is_own(requirement: str) -> bool:
    """Whether requirement is the running case's own (True outside a case: every check is then own)."""
    ctx = _running.get()
    return ctx is None or owns(ctx, requirement)


def owns(ctx: "CaseContext", requirement: str) -> bool:
    """Whether requirement is the case's own: its id, or one whose sentence its own states too."""
    return requirement == ctx.case.id or requirement in ctx.case.same_requirement_as


def deviation(
    requirement: str, expected: Sequence[str] | str, actual: str, *, what: str = "", evidence: str = ""
) -> None:
    """A deviation of requirement: a Violation in its own case, else recorded as also seen (as
    `what`, the actual by default)."""
    if is_own(requirement):
        raise Violation(list([expected] if isinstance(expected, str) else expected), actual)
    note(requirement, what or actual, evidence)


def note(requirement: str, what: str, evidence: str = "") -> None:
    """Record a deviation of another requirement on the running case (once per requirement)."""
    ctx = _running.get()
    if ctx is None:
        return
    # The first time is the evidence; the requirement fails in its own case.
    if all(d.requirement != requirement for d in ctx.also_seen):
        ctx.also_seen.append(Deviation(requirement, what, evidence))


# What every case relies on: without the first six a response cannot be read at all (its records
# misframed, under another id, of another type, END_REQUEST before the output or twice); without the
# next two a whole request sent in one write (BEGIN, PARAMS, STDIN) may end the connection when the
# target answers early (an unknown role, an abort); without PARAMS_AWAITED an answer may come from
# part of the request. The last five hold for a case that sent what they are about (padded records,
# streams in several records, PARAMS past 8 KiB, ids above 255, an id reused): their checks run only
# then (harness/suite/prerequisite_checks.py). A case that fails after seeing one deviate is BLOCKED
# by it (harness/suite/judge.py).
COMMON_PREREQUISITES = (
    RECORD_FRAMING, OWN_REQUEST_ID, APPLICATION_RECORD_TYPES, END_REQUEST_LAST, END_REQUEST_BODY, END_REQUEST_ONCE,
    INACTIVE_NEVER_BEGUN, INACTIVE_FINISHED, PARAMS_AWAITED, PADDING, RECORD_SPLITS, LARGE_PARAMS, REQUEST_IDS, ID_REUSE,
)


# Record types only a web server sends (spec §8): an application sending one misuses a stream.
_WEB_SERVER_TYPES = {1: "BEGIN_REQUEST", 2: "ABORT_REQUEST", 4: "PARAMS", 5: "STDIN", 8: "DATA", 9: "GET_VALUES"}
_BEGIN, _ABORT, _STDOUT, _STDERR, _END, _GET_VALUES = 1, 2, 6, 7, 3, 9
_KEEP_CONN = 1
_MAX_KNOWN_TYPE, _UNKNOWN_TYPE, _GET_VALUES_RESULT = 11, 11, 10
_STREAM_OR_ABORT = (2, 4, 5, 8)  # ABORT_REQUEST, PARAMS, STDIN, DATA
_PARAMS = 4
_UNKNOWN_ROLE_STATUS = 3
KEEP_CONN_CLOSED = "the connection was closed after a request sent with FCGI_KEEP_CONN"
EARLY_END_CLOSED = ("the connection was closed after a KEEP_CONN request ended early, its PARAMS and STDIN "
                    "following its END_REQUEST")
# Harness remarks in a trace (connection.note and its own) that say why the target may close.
_CLOSE_CAUSES = ("SIGTERM", "signal", "by harness")


def own_deviation_in_traces(ctx: "CaseContext") -> Deviation | None:
    """The running case's own requirement's deviation, where the traces show it too."""
    for conn in ctx.connections:
        for seen in trace_deviations(conn.label, conn.trace):
            if owns(ctx, seen.requirement):
                return seen
    return None


def deviations_in_traces(ctx: "CaseContext") -> list[Deviation]:
    """What every case's wire traces show of the requirements every response relies on, whatever
    the case checks itself: misframed records, replies under another id, web-server record types,
    END_REQUEST bodies not of 8 bytes, output after END_REQUEST, a second END_REQUEST, and a
    KEEP_CONN connection closed after a completed request. The running case's own requirement is
    left out (the case judges it)."""
    found: list[Deviation] = []
    for conn in ctx.connections:
        found.extend(trace_deviations(conn.label, conn.trace))
        pending = conn.pending_bytes
        if pending and pending[0] != 1:
            # A header that never became a record: misframed output the reader is still waiting on.
            found.append(Deviation(RECORD_FRAMING, f"a misframed record (a header of version {pending[0]}) "
                                   "from the target", f"{conn.label}: {len(pending)} bytes that are not a whole record"))
    unique: dict[str, Deviation] = {}
    for seen in found:
        if not owns(ctx, seen.requirement):
            unique.setdefault(seen.requirement, seen)
    return list(unique.values())


# What a stream check concludes when the response could not be read as one (misframed, under
# another id, as DATA, or with END_REQUEST first) is that deviation's consequence, not a deviation.
_CONSEQUENCES = (STDOUT_TERMINATED, STDERR_TERMINATED, NOTHING_AFTER_EMPTY_STDOUT)
_UNREADABLE = (RECORD_FRAMING, OWN_REQUEST_ID, APPLICATION_RECORD_TYPES, END_REQUEST_LAST)


def root_deviations(seen: Sequence[Deviation]) -> list[Deviation]:
    """The deviations without those another one explains: stream findings of a response that could
    not be read, and closes after records for inactive ids where the target closes a KEEP_CONN
    connection after every request anyway."""
    roots = list(seen)
    if any(d.requirement == KEEP_CONN_KEEPS for d in roots):
        roots = [d for d in roots if not (d.requirement in (INACTIVE_FINISHED, INACTIVE_NEVER_BEGUN)
                                          and d.what.startswith("the connection was closed after"))]
    if any(d.requirement in _UNREADABLE for d in roots):
        roots = [d for d in roots if d.requirement not in _CONSEQUENCES]
    return roots


def trace_deviations(label: str, trace: Sequence[object]) -> list[Deviation]:
    """One connection's trace (harness/wire/connection.py TraceEntry list), read in order."""
    found: list[Deviation] = []
    begun: dict[int, int] = {}  # id -> flags of its BEGIN_REQUEST, while not ended
    aborted: set[int] = set()
    ended: set[int] = set()  # ids whose END_REQUEST came and that were not begun again
    last_end: tuple[int, bool, bool] | None = None  # the last received was END_REQUEST: id, complete, others active
    sent_after_end: list[object] = []  # records sent since that END_REQUEST
    unknown_sent: list[int] = []  # unknown management types sent and not yet answered with UNKNOWN_TYPE
    received_since_unknown = False
    last_received_type: int | None = None
    inactive_sent: tuple[str, str] | None = None  # a record just sent for an inactive id: (requirement, what)
    abort_waited: set[int] = set()  # active ids aborted, then a wait for the target timed out
    unknown_roles: set[int] = set()  # ids begun with an unknown role, not yet ended
    get_values_pending = False  # GET_VALUES sent, no GET_VALUES_RESULT since
    get_values_waited = False  # ... and a wait for the target timed out meanwhile
    for entry in trace:
        direction, item = getattr(entry, "direction", ""), getattr(entry, "item", None)
        at = f"{label} at {getattr(entry, 'at_ms', 0.0):.1f} ms"
        if direction == ">" and hasattr(item, "type"):
            if item.type == _BEGIN:
                begun[item.request_id] = item.content[2] if len(item.content) > 2 else 0
                if len(item.content) >= 2 and int.from_bytes(item.content[:2], "big") not in (1, 2, 3):
                    unknown_roles.add(item.request_id)
                ended.discard(item.request_id)
                aborted.discard(item.request_id)
            elif item.type == _ABORT:
                aborted.add(item.request_id)
            elif item.type == _GET_VALUES:
                get_values_pending = True
            elif item.type in _STREAM_OR_ABORT and item.request_id != 0 and inactive_sent is None and (
                item.request_id in ended or item.request_id not in begun
            ):
                finished = item.request_id in ended
                inactive_sent = (INACTIVE_FINISHED if finished else INACTIVE_NEVER_BEGUN,
                                 f"{_WEB_SERVER_TYPES[item.type]} for the {'finished' if finished else 'never-begun'} "
                                 f"id {item.request_id}")
            elif item.type > _MAX_KNOWN_TYPE and item.request_id == 0 and not unknown_sent:
                unknown_sent.append(item.type)
                received_since_unknown = False
            if last_end is not None:
                sent_after_end.append(item)
            continue
        if direction == "!" and isinstance(item, str) and item.startswith("timeout"):
            abort_waited |= {i for i in aborted if i in begun and i not in ended}
            get_values_waited = get_values_waited or get_values_pending
        if direction == "!" and isinstance(item, str) and any(word in item for word in _CLOSE_CAUSES):
            last_end = None  # the harness made the target close (a signal, its own close): not the target's doing
            continue
        if direction != "<":
            continue
        if isinstance(item, str) and item in ("EOF", "RST") and unknown_roles:
            found.append(Deviation(UNKNOWN_ROLE_REJECTED, "the connection was closed on an unknown role, without "
                                   "END_REQUEST UNKNOWN_ROLE", f"{label}: {item} (id {min(unknown_roles)})"))
            continue
        if isinstance(item, str) and item in ("EOF", "RST") and inactive_sent is not None and not unknown_sent:
            found.append(Deviation(inactive_sent[0], f"the connection was closed after {inactive_sent[1]}",
                                   f"{label}: {item}"))
            continue
        if isinstance(item, str) and item in ("EOF", "RST") and unknown_sent:
            found.append(Deviation(UNKNOWN_TYPE_ANSWERED, f"the connection was closed after a record of unknown "
                                   f"type {unknown_sent[0]}, without UNKNOWN_TYPE", f"{label}: {item}"))
            unknown_sent.clear()
        elif isinstance(item, str) and item in ("EOF", "RST") and last_received_type == _GET_VALUES_RESULT and (
            _KEEP_CONN in begun.values() and not get_values_pending  # a later GET_VALUES may be the cause
        ):
            found.append(Deviation(GET_VALUES_KEEPS, "the connection was closed after GET_VALUES_RESULT on a "
                                   "KEEP_CONN connection", f"{label}: {item} after GET_VALUES_RESULT"))
        if isinstance(item, str) and item in ("EOF", "RST") and last_end is not None:
            end_id, complete, others_active = last_end
            if begun.get(end_id) == _KEEP_CONN and end_id not in aborted and not others_active and _plainly_next(
                end_id, sent_after_end
            ):
                evidence = f"{label}: {item} after END_REQUEST id={end_id}"
                if complete:
                    found.append(Deviation(KEEP_CONN_KEEPS, KEEP_CONN_CLOSED, evidence))
                else:
                    # Ended early (a rejected role): its PARAMS and STDIN, already on the way, reached a finished
                    # id. On the wire a close for those records looks the same as one for KEEP_CONN ignored.
                    found.append(Deviation(INACTIVE_FINISHED, EARLY_END_CLOSED, evidence))
            continue
        if not hasattr(item, "type"):
            continue
        if item.version != 1:
            found.append(Deviation(RECORD_FRAMING, "a misframed record (version "
                                   f"{item.version}) from the target", at))
            break  # nothing after a misframed record can be read
        described = f"{at}: {item.describe()}"
        last_received_type = item.type
        if item.type == _GET_VALUES_RESULT:
            get_values_pending = get_values_waited = False
            if item.request_id != 0:
                found.append(Deviation(GET_VALUES_ANSWERED, f"GET_VALUES_RESULT under request id {item.request_id}, "
                                       "not the null id", described))
        inactive_sent = None  # the target answered after it: a later close is not that record's doing
        if item.type == _UNKNOWN_TYPE:
            unknown_sent.clear()
        elif unknown_sent:
            received_since_unknown = True
        if item.type in _WEB_SERVER_TYPES:
            found.append(Deviation(APPLICATION_RECORD_TYPES, f"the target sent {_WEB_SERVER_TYPES[item.type]} "
                                   "records, a type only a web server sends", described))
        if item.type in (_STDOUT, _STDERR, _END, 8) and item.request_id == 0 and 0 not in begun:
            found.append(Deviation(OWN_REQUEST_ID, "application records with request id 0", described))
        if item.type == _END and len(item.content) != 8:
            found.append(Deviation(END_REQUEST_BODY, f"END_REQUEST bodies of {len(item.content)} bytes, not 8",
                                   described))
        mine = item.request_id in begun  # a request this connection began (else another check's matter)
        if item.type in (_STDOUT, _STDERR) and mine and item.request_id in ended:
            found.append(Deviation(END_REQUEST_LAST, "output records after the request's END_REQUEST", described))
        if item.type == _END and item.request_id in unknown_roles:
            unknown_roles.discard(item.request_id)
            if len(item.content) >= 5 and item.content[4] != _UNKNOWN_ROLE_STATUS:
                found.append(Deviation(UNKNOWN_ROLE_REJECTED, "an unknown role served, not rejected with "
                                       "UNKNOWN_ROLE", described))
        if item.type == _END and mine:
            if item.request_id in ended:
                found.append(Deviation(END_REQUEST_ONCE, "a second END_REQUEST for one request", described))
            ended.add(item.request_id)
            complete = len(item.content) >= 5 and item.content[4] == 0
            # Another request still in flight at this END_REQUEST may be what a close is for.
            others_active = any(i != item.request_id and i not in ended for i in begun)
            last_end, sent_after_end = (item.request_id, complete, others_active), []
        else:
            last_end = None
    if get_values_waited:
        found.append(Deviation(GET_VALUES_ANSWERED, "no GET_VALUES_RESULT to GET_VALUES",
                               f"{label}: a wait timed out after the GET_VALUES"))
    for request_id in sorted(abort_waited - ended):
        found.append(Deviation(ABORT_ANSWERED, f"no END_REQUEST after ABORT_REQUEST for the active id {request_id}",
                               f"{label}: a wait timed out after the ABORT_REQUEST"))
        break
    if unknown_sent and received_since_unknown:
        # Answers to what was sent after it came, UNKNOWN_TYPE never did.
        found.append(Deviation(UNKNOWN_TYPE_ANSWERED, f"no UNKNOWN_TYPE answer to a record of type {unknown_sent[0]}",
                               f"{label}: other records came after it, no UNKNOWN_TYPE"))
    return found


def _plainly_next(ended_id: int, sent: Sequence[object]) -> bool:
    """Whether what was sent after a request's END_REQUEST cannot itself explain a close: nothing, a
    GET_VALUES, or one new request of a known role under another id with parameters (a close on the
    same id reused, an unknown role, a second request, an empty PARAMS stream or late records is
    another requirement's matter)."""
    if not sent:
        return True
    first = sent[0]
    if first.type == _GET_VALUES:  # type: ignore[attr-defined]
        return True
    if first.type != _BEGIN or first.request_id == ended_id:  # type: ignore[attr-defined]
        return False
    role = int.from_bytes(first.content[:2], "big") if len(first.content) >= 2 else 0  # type: ignore[attr-defined]
    one_request = all(r.request_id == first.request_id and r.type in (_BEGIN, _PARAMS, 5, 8) for r in sent)  # type: ignore[attr-defined]
    # A known role (an unknown one may be closed on), one request (a second may be refused by a close).
    return role in (1, 2, 3) and one_request and sum(r.type == _BEGIN for r in sent) == 1 and any(  # type: ignore[attr-defined]
        r.type == _PARAMS and r.request_id == first.request_id and r.content for r in sent  # type: ignore[attr-defined]
    )


def kept_connection_closed(label: str, trace: Sequence[object]) -> Deviation | None:
    """The deviation if this connection's trace shows it closed by the target after a request sent
    with FCGI_KEEP_CONN: FCGI-3.5-2's, or FCGI-3.3-8's where the request had ended early."""
    return next((d for d in trace_deviations(label, trace) if d.what in (KEEP_CONN_CLOSED, EARLY_END_CLOSED)), None)
