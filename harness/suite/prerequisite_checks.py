"""The requirements a failed case relies on that its traces cannot show, each checked by one small
request that isolates it.

A trace shows a misframed record or a close after a KEEP_CONN request (observations.py). It cannot
show that the application answered from the first PARAMS record, kept only the first STDIN record,
read a 4-byte length as one byte, gave up on PARAMS past 8 KiB, mishandled an id above 255 or an
id reused at once, closed on a late record for a finished id, or closed on a role it does not play
instead of answering UNKNOWN_ROLE: the case only meets a wrong answer or a close, and would fail
its own requirement for another's bug. So when a case fails, every requirement among its
prerequisites (and COMMON_PREREQUISITES) that has a check below is checked, if the case's traces
show it sent what the check isolates (PrerequisiteCheck.met), once per target (the findings are
kept on it: target.prerequisite_findings). A deviation found is recorded on the case as also seen,
its evidence saying it was checked after the case failed, and the judge makes the case BLOCKED by
it (unless the case's traces show its own requirement broken).

Each check first sends the request plainly and needs it served intact (else it cannot tell its own
requirement's deviation from another's and finds nothing); then the same request differing only in
the trait it isolates, on a connection of its own. Content is judged by the probe app's report when
the target has one, else by comparison with the plain answer (harness/suite/comparison.py), else
not at all (a complete answer is then enough).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

from harness.wire.codec import RecordType, Role, begin_request_body, encode_params, encode_record, stream_records
from harness.wire.connection import ConnectionClosed, FcgiConnection, FcgiTimeout, Response
from harness.wire.probe_app import ProbeError, parse_cgi, parse_probe_report, sha256_hex
from harness.suite.case_requests import begin_record, request_records
from harness.suite.checks import describe_event, next_event
from harness.suite.comparison import CANONICAL_BODY, Answer, NotComparable, oracle_of
from harness.suite.observations import (
    ABORT_ANSWERED, GET_VALUES_ANSWERED, ID_REUSE, INACTIVE_FINISHED, LARGE_PARAMS, LONG_LENGTHS, PADDING, PARAMS_AWAITED,
    RECORD_SPLITS, REQUEST_IDS, UNKNOWN_ROLE_REJECTED, owns,
)
from harness.verdicts import Deviation, Violation

if TYPE_CHECKING:
    from harness.suite.case import CaseContext

Params = Sequence[tuple[bytes | str, bytes | str]]
CHECK_ID = 1
HIGH_ID = 256  # the first id whose high byte is not zero
LONG_VALUE_BYTES = 300  # a value length that needs the 4-byte form
LARGE_PAIRS = 90  # PARAMS past 8 KiB in one record, of 100-byte values (1-byte lengths: no 4-byte form needed)
LARGE_VALUE_BYTES = 100
STDIN_RECORD_BYTES = 16  # CANONICAL_BODY in 8 STDIN records
UNKNOWN_ROLE = 0xFFFF


@dataclass(frozen=True)
class PrerequisiteCheck:
    """One requirement's isolating check: None, or the deviation it found. It is run only for a case
    whose traces show it sent what the check isolates (met: a case that never did cannot have been
    kept from its own requirement by that deviation)."""

    requirement: str
    name: str  # what it sends, in a few words (the key its finding is kept under)
    run: Callable[["CaseContext", str], CheckedDeviation | None]
    met: Callable[[Sequence[Sequence[object]]], bool]
    # A deviation read from the traces that may be the case's own variation's effect (no answer to
    # the case's odd GET_VALUES), what it says first: it stands only if this check finds it too.
    confirms: str = ""


def _unanswered(raised: BaseException | None) -> bool:
    """Whether the case failed on a close by the target, or on its silence."""
    if isinstance(raised, (ConnectionClosed, FcgiTimeout)):
        return True
    return isinstance(raised, Violation) and any(word in raised.actual for word in ("EOF", "RST", "closed", "Timeout"))


def _sent(traces: Sequence[Sequence[object]]) -> list[list[object]]:
    """Per connection, the records sent and received, in order (trace entries of other kinds left out)."""
    return [[e for e in trace if getattr(e, "direction", "") in (">", "<") and hasattr(getattr(e, "item", None), "type")]
            for trace in traces]


def _streams(traces: Sequence[Sequence[object]], record_type: int) -> list[list[bytes]]:
    """Every request's non-empty records of one stream type, as sent."""
    streams: list[list[bytes]] = []
    for entries in _sent(traces):
        current: dict[int, list[bytes]] = {}
        for entry in entries:
            record = getattr(entry, "item")
            if getattr(entry, "direction") != ">":
                continue
            if record.type == RecordType.BEGIN_REQUEST or (record.type == record_type and record.request_id not in current):
                current[record.request_id] = []
                streams.append(current[record.request_id])
            if record.type == record_type and record.content:
                current[record.request_id].append(record.content)
    return streams


def _split(record_type: int) -> Callable[[Sequence[Sequence[object]]], bool]:
    return lambda traces: any(len(stream) > 1 for stream in _streams(traces, record_type))


def _large_params(traces: Sequence[Sequence[object]]) -> bool:
    return any(sum(map(len, stream)) > 8192 for stream in _streams(traces, RecordType.PARAMS))


def _begun(traces: Sequence[Sequence[object]]) -> list[list[int]]:
    return [[e.item.request_id for e in entries if e.direction == ">" and e.item.type == RecordType.BEGIN_REQUEST]  # type: ignore[attr-defined]
            for entries in _sent(traces)]


def _high_id(traces: Sequence[Sequence[object]]) -> bool:
    return any(i > 255 for ids in _begun(traces) for i in ids)


def _id_reused(traces: Sequence[Sequence[object]]) -> bool:
    return any(len(set(ids)) < len(ids) for ids in _begun(traces))


def _late_record_sent(traces: Sequence[Sequence[object]]) -> bool:
    """A stream record or ABORT sent for an id after its END_REQUEST came, before it was begun again;
    or a request ended early (rejected: its PARAMS and STDIN, already sent, reached a finished id)."""
    for entries in _sent(traces):
        ended: set[int] = set()
        for entry in entries:
            record = getattr(entry, "item")
            if getattr(entry, "direction") == "<" and record.type == RecordType.END_REQUEST:
                if len(record.content) > 4 and record.content[4] != 0:
                    return True
                ended.add(record.request_id)
            elif record.type == RecordType.BEGIN_REQUEST:
                ended.discard(record.request_id)
            elif record.request_id in ended and record.type in (RecordType.ABORT_REQUEST, RecordType.PARAMS,
                                                                RecordType.STDIN, RecordType.DATA):
                return True
    return False


def _params_sent(traces: Sequence[Sequence[object]]) -> bool:
    return any(stream for stream in _streams(traces, RecordType.PARAMS))


def _declared(traces: Sequence[Sequence[object]]) -> bool:
    """No trait the traces show for sure (a 4-byte length hides inside PARAMS): the declaration decides."""
    return True


def _to_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1")


def _answer(ctx: "CaseContext", label: str, records: Sequence[bytes], request_id: int = CHECK_ID) -> Response | str:
    """The response to records sent in one write on a new connection, or what happened instead."""
    conn = ctx.connect(label)
    try:
        conn.send_records(records)
        return conn.read_response(request_id, ctx.answer_wait)
    except FcgiTimeout:
        return f"no END_REQUEST id={request_id} within {ctx.answer_wait:g} s"
    except ConnectionClosed as closed:
        return f"the connection was closed ({closed.how}) before END_REQUEST id={request_id}"
    finally:
        conn.close()


def _probe_difference(ctx: "CaseContext", response: Response, params: Params, stdin: bytes) -> str | None:
    """What the probe app reports receiving differently from what was sent, or None."""
    try:
        report = parse_probe_report(parse_cgi(response.stdout).body)
    except ProbeError as error:
        return f"no probe report: {error}"
    sent = [(_to_bytes(n), _to_bytes(v)) for n, v in params]
    if not ctx.params_match(report.params, sent):
        return f"params received as {len(report.params)} pairs, not the {len(sent)} sent"
    if (report.stdin_length, report.stdin_sha256) != (len(stdin), sha256_hex(stdin)):
        return f"a body of {report.stdin_length} bytes received, not the {len(stdin)} sent"
    return None


def _content_differs(ctx: "CaseContext", response: Response, params: Params, stdin: bytes) -> str | None:
    """What the application got or answered differently from the request sent plainly, or None
    (also when content cannot be judged on this target)."""
    if response.end is None or response.end.protocol_status != 0:
        return f"END_REQUEST {response.end.describe() if response.end else 'malformed'}"
    if ctx.has_probe_app:
        return _probe_difference(ctx, response, params, stdin)
    try:
        return oracle_of(ctx).compare(ctx, Answer.of(response), list(params), stdin, 1)
    except NotComparable:
        return None


@dataclass(frozen=True)
class CheckedDeviation(Deviation):
    """A deviation a check found, and whether it is the target's close or silence (unanswered) or a
    different answer: it explains only a case that failed the same way (a lost padded body does not
    explain a reset), unless it is any (None: an answer from half a request explains anything)."""

    unanswered: bool | None = None


# How the checks say they got no answer (harness/suite/checks.py and _answer's texts).
_NO_ANSWER = ("no END_REQUEST", "the connection was closed", "no GET_VALUES_RESULT")
# Deviations that explain any failure: an answer written from part of the request, or one under
# another id (which the case waits for in vain).
_EXPLAIN_ANY = (PARAMS_AWAITED, REQUEST_IDS)


def _deviation(requirement: str, what: str, found: str, label: str) -> CheckedDeviation:
    unanswered = None if requirement in _EXPLAIN_ANY else found.startswith(_NO_ANSWER)
    return CheckedDeviation(requirement, what, f"{label}: {found}; checked after the case failed", unanswered)


def _params_awaited(ctx: "CaseContext", label: str) -> CheckedDeviation | None:
    """BEGIN_REQUEST and a PARAMS record, the stream left open: nothing may come before it ends."""
    conn = ctx.connect(label)
    try:
        params = encode_params(ctx.probe_params())
        conn.send_records([begin_record(CHECK_ID, keep_conn=False), encode_record(RecordType.PARAMS, CHECK_ID, params)])
        event = next_event(conn, ctx.quiet_wait)
    finally:
        conn.close()
    if isinstance(event, str):
        return None  # silence (TIMEOUT), or a close: not an answer
    return _deviation(PARAMS_AWAITED, "the application answered before the PARAMS stream ended",
                      describe_event(event), label)


def _plain_served(ctx: "CaseContext", label: str, params: Params, stdin: bytes) -> bool:
    """Whether the same request sent plainly (one record per stream) is served intact: without that
    a check cannot tell its own requirement's deviation from any other."""
    records = [begin_record(CHECK_ID, keep_conn=False), *stream_records(RecordType.PARAMS, CHECK_ID, encode_params(params)),
               *stream_records(RecordType.STDIN, CHECK_ID, stdin)]
    response = _answer(ctx, f"{label}, sent plainly first", records)
    if isinstance(response, str) or response.end is None or response.end.protocol_status != 0:
        return False
    return not ctx.has_probe_app or _probe_difference(ctx, response, params, stdin) is None


def _stream_check(what: str, params_of: Callable[["CaseContext"], Params], stdin: bytes,
                  params_cut: Callable[[bytes], list[int]] | None, stdin_chunks: int | None) -> Callable[["CaseContext", str], CheckedDeviation | None]:
    def run(ctx: "CaseContext", label: str) -> CheckedDeviation | None:
        params = params_of(ctx)
        if _finding(ctx, PARAMS_AWAITED_CHECK) is not None or not _plain_served(ctx, label, params, stdin):
            return None  # an answer from the first PARAMS record would differ too: FCGI-5.2-1's matter
        encoded = encode_params(params)
        records = [begin_record(CHECK_ID, keep_conn=False)]
        records += stream_records(RecordType.PARAMS, CHECK_ID, encoded, chunk_sizes=params_cut(encoded) if params_cut else None)
        records += stream_records(RecordType.STDIN, CHECK_ID, stdin, chunk_sizes=stdin_chunks)
        response = _answer(ctx, label, records)
        found = response if isinstance(response, str) else _content_differs(ctx, response, params, stdin)
        return None if found is None else _deviation(RECORD_SPLITS, what, found, label)
    return run


def _value_check(requirement: str, what: str, extra: Params) -> Callable[["CaseContext", str], CheckedDeviation | None]:
    def run(ctx: "CaseContext", label: str) -> CheckedDeviation | None:
        if not _plain_served(ctx, label, ctx.probe_params(), b""):
            return None
        params = ctx.probe_params(extra=extra)
        response = _answer(ctx, label, [begin_record(CHECK_ID, keep_conn=False),
                                        *stream_records(RecordType.PARAMS, CHECK_ID, encode_params(params)),
                                        *stream_records(RecordType.STDIN, CHECK_ID, b"")])
        if isinstance(response, str):
            return _deviation(requirement, what, response, label)
        if not ctx.has_probe_app:
            # The plain request differs by the value itself: only a complete answer can be asked for.
            ok = response.end is not None and response.end.protocol_status == 0
            return None if ok else _deviation(requirement, what, f"END_REQUEST {response.end and response.end.describe()}", label)
        found = _content_differs(ctx, response, params, b"")
        return None if found is None else _deviation(requirement, what, found, label)
    return run


def _request_id_check(ctx: "CaseContext", label: str) -> CheckedDeviation | None:
    """The canonical GET under id 256: answered under 256, as under id 1."""
    what = f"a request with id {HIGH_ID} was not answered under its id"
    params = ctx.probe_params()
    if not _plain_served(ctx, label, params, b""):
        return None
    conn = ctx.connect(label)
    try:
        conn.send_records([begin_record(HIGH_ID, keep_conn=False),
                           *stream_records(RecordType.PARAMS, HIGH_ID, encode_params(params)),
                           *stream_records(RecordType.STDIN, HIGH_ID, b"")])
        ends = conn.read_all_until(lambda r: r.type == RecordType.END_REQUEST, ctx.answer_wait)
    except FcgiTimeout:
        return _deviation(REQUEST_IDS, what, f"no END_REQUEST within {ctx.answer_wait:g} s", label)
    except ConnectionClosed as closed:
        return _deviation(REQUEST_IDS, what, f"the connection was closed ({closed.how})", label)
    finally:
        conn.close()
    ids = sorted({r.request_id for r in ends})
    if ids != [HIGH_ID]:
        return _deviation(REQUEST_IDS, what, f"records under id {', '.join(map(str, ids))}", label)
    return None


def _no_answer(ctx: "CaseContext", conn: FcgiConnection, exchange: Callable[[], object], awaited: str) -> str | None:
    """None when exchange() on conn gets its answer, else how the target left it unanswered; conn is closed."""
    try:
        exchange()
    except FcgiTimeout:
        return f"no {awaited} within {ctx.answer_wait:g} s"
    except ConnectionClosed as closed:
        return f"the connection was closed ({closed.how})"
    finally:
        conn.close()
    return None


def _id_reuse_check(ctx: "CaseContext", label: str) -> CheckedDeviation | None:
    """KEEP_CONN requests with ids 1 and 2 on one connection, then id 1 again: answered too."""
    conn = ctx.connect(label)
    if not _two_kept_requests(ctx, conn):
        conn.close()
        return None  # a kept connection does not carry two requests: another requirement's matter

    def again() -> None:
        conn.send_records(request_records(CHECK_ID, ctx.probe_params()))
        conn.read_response(CHECK_ID, ctx.answer_wait)

    found = _no_answer(ctx, conn, again, f"END_REQUEST id={CHECK_ID} for the id sent again")
    return None if found is None else _deviation(ID_REUSE, f"request id {CHECK_ID} reused after its END_REQUEST was not served", found, label)


def _two_kept_requests(ctx: "CaseContext", conn: FcgiConnection) -> bool:
    """Whether KEEP_CONN requests with ids 1 and 2 are served, one after the other, on conn, and it
    stays open and in step."""
    try:
        for request_id in (CHECK_ID, CHECK_ID + 1):
            conn.send_records(request_records(request_id, ctx.probe_params()))
            response = conn.read_response(request_id, ctx.answer_wait)
            if response.end is None or conn.pending_bytes or conn.wait_closed(ctx.quiet_wait) != "open":
                return False
    except (FcgiTimeout, ConnectionClosed):
        return False
    return True


def _late_record_ignored(ctx: "CaseContext", label: str) -> CheckedDeviation | None:
    """Two KEEP_CONN requests on one connection, a second empty STDIN for the second after its
    END_REQUEST, then a third request: answered on the same connection."""
    what = "a late empty STDIN for a finished id was not ignored"
    conn = ctx.connect(label)
    last = CHECK_ID + 2
    try:
        if not _two_kept_requests(ctx, conn):
            return None  # a kept connection does not carry two requests: another requirement's matter
        conn.send_records([encode_record(RecordType.STDIN, CHECK_ID + 1, b""), *request_records(last, ctx.probe_params())])
        try:
            conn.read_response(last, ctx.answer_wait)
        except FcgiTimeout:
            return _deviation(INACTIVE_FINISHED, what, f"no END_REQUEST id={last} to the next request", label)
        except ConnectionClosed as closed:
            return _deviation(INACTIVE_FINISHED, what, f"the connection was closed ({closed.how}) after it", label)
    except (FcgiTimeout, ConnectionClosed):
        return None  # the requests before it were not answered: another requirement's matter
    finally:
        conn.close()
    return None


def _unknown_role_answered(ctx: "CaseContext", label: str) -> CheckedDeviation | None:
    """A request of an unknown role: END_REQUEST UNKNOWN_ROLE, not a close or silence."""
    records = [begin_record(CHECK_ID, role=UNKNOWN_ROLE, keep_conn=False),
               *stream_records(RecordType.PARAMS, CHECK_ID, encode_params(ctx.probe_params())),
               *stream_records(RecordType.STDIN, CHECK_ID, b"")]
    response = _answer(ctx, label, records)
    if isinstance(response, str):
        return _deviation(UNKNOWN_ROLE_REJECTED, f"an unknown role ({UNKNOWN_ROLE}) got no END_REQUEST UNKNOWN_ROLE: a "
                          "role the target does not play cannot be told from a failure", response, label)
    return None


def _get_values_answered(ctx: "CaseContext", label: str) -> CheckedDeviation | None:
    """GET_VALUES for one standard name on a new connection: a GET_VALUES_RESULT comes (under any id)."""
    conn = ctx.connect(label)

    def ask() -> None:
        conn.get_values([b"FCGI_MPXS_CONNS"])
        conn.read_all_until(lambda r: r.type == RecordType.GET_VALUES_RESULT, ctx.answer_wait)

    found = _no_answer(ctx, conn, ask, "GET_VALUES_RESULT")
    return None if found is None else _deviation(GET_VALUES_ANSWERED, "GET_VALUES for a standard name (FCGI_MPXS_CONNS) got no GET_VALUES_RESULT",
                      found, label)


def _abort_answered(ctx: "CaseContext", label: str) -> CheckedDeviation | None:
    """A request in flight (its STDIN open), then ABORT_REQUEST: END_REQUEST for it comes."""
    body = CANONICAL_BODY
    conn = ctx.connect(label)

    def abort() -> None:
        conn.send_records(request_records(CHECK_ID, ctx.post_params(len(body)), body[:8], keep_conn=False,
                                          terminate_stdin=False))
        conn.abort(CHECK_ID)
        conn.read_response(CHECK_ID, ctx.answer_wait)

    found = _no_answer(ctx, conn, abort, f"END_REQUEST id={CHECK_ID}")
    return None if found is None else _deviation(ABORT_ANSWERED, "ABORT_REQUEST of a request in flight (mid-STDIN) got no END_REQUEST", found, label)


def _type_sent(record_type: int) -> Callable[[Sequence[Sequence[object]]], bool]:
    return lambda traces: any(e.direction == ">" and e.item.type == record_type  # type: ignore[attr-defined]
                              for entries in _sent(traces) for e in entries)


def _other_role_sent(traces: Sequence[Sequence[object]]) -> bool:
    return any(e.direction == ">" and e.item.type == RecordType.BEGIN_REQUEST  # type: ignore[attr-defined]
               and e.item.content[:2] != b"\x00\x01" for entries in _sent(traces) for e in entries)  # type: ignore[attr-defined]


def _padding_check(padding: int) -> Callable[["CaseContext", str], CheckedDeviation | None]:
    def run(ctx: "CaseContext", label: str) -> CheckedDeviation | None:
        """The canonical POST with `padding` bytes of padding on every record, terminators included."""
        params, body = ctx.post_params(len(CANONICAL_BODY)), CANONICAL_BODY
        if not _plain_served(ctx, label, params, body):
            return None
        records = [encode_record(RecordType.BEGIN_REQUEST, CHECK_ID, begin_request_body(Role.RESPONDER, 0),
                                 padding_length=padding)]
        for record_type, content in ((RecordType.PARAMS, encode_params(params)), (RecordType.STDIN, body)):
            records += [encode_record(record_type, CHECK_ID, content, padding_length=padding),
                        encode_record(record_type, CHECK_ID, b"", padding_length=padding)]
        response = _answer(ctx, label, records)
        found = response if isinstance(response, str) else _content_differs(ctx, response, params, body)
        return None if found is None else _deviation(PADDING, f"records padded by {padding} bytes were not read as the "
                                                     "same records unpadded", found, label)
    return run


def _padding_sent(least: int) -> Callable[[Sequence[Sequence[object]]], bool]:
    return lambda traces: any(e.direction == ">" and len(e.item.padding) >= least  # type: ignore[attr-defined]
                              for entries in _sent(traces) for e in entries)


def _cut_inside_a_pair(encoded: bytes) -> list[int]:
    """PARAMS in two records, cut in the middle of the stream (inside a pair's name or value)."""
    return [max(len(encoded) // 2 + 3, 1), len(encoded)]


PARAMS_AWAITED_CHECK = PrerequisiteCheck(PARAMS_AWAITED, "PARAMS left open", _params_awaited, _params_sent)
CHECKS: tuple[PrerequisiteCheck, ...] = (
    PARAMS_AWAITED_CHECK,
    PrerequisiteCheck(PADDING, "records padded by 8", _padding_check(8), _padding_sent(1)),
    # A paddingLength read as a signed byte goes wrong from 128 on.
    PrerequisiteCheck(PADDING, "records padded by 255", _padding_check(255), _padding_sent(128)),
    PrerequisiteCheck(RECORD_SPLITS, "PARAMS cut inside a pair",
                      _stream_check("a PARAMS stream cut inside a pair across two records read differently",
                                    lambda ctx: ctx.probe_params(), b"", _cut_inside_a_pair, None),
                      _split(RecordType.PARAMS)),
    PrerequisiteCheck(RECORD_SPLITS, f"STDIN in {STDIN_RECORD_BYTES}-byte records",
                      _stream_check(f"a body in {STDIN_RECORD_BYTES}-byte STDIN records read differently from one record",
                                    lambda ctx: ctx.post_params(len(CANONICAL_BODY)), CANONICAL_BODY, None,
                                    STDIN_RECORD_BYTES),
                      _split(RecordType.STDIN)),
    PrerequisiteCheck(LONG_LENGTHS, f"a {LONG_VALUE_BYTES}-byte value",
                      _value_check(LONG_LENGTHS, f"a {LONG_VALUE_BYTES}-byte value (a 4-byte length) was not received intact",
                                   [("FCGISPEC_LONG_VALUE", b"v" * LONG_VALUE_BYTES)]), _declared),
    PrerequisiteCheck(LARGE_PARAMS, f"{LARGE_PAIRS} more {LARGE_VALUE_BYTES}-byte values",
                      _value_check(LARGE_PARAMS, f"PARAMS past 8 KiB ({LARGE_PAIRS} more pairs of {LARGE_VALUE_BYTES}-byte "
                                   "values) were not received intact",
                                   [(f"FCGISPEC_LARGE_{i}", b"v" * LARGE_VALUE_BYTES) for i in range(LARGE_PAIRS)]),
                      _large_params),
    PrerequisiteCheck(REQUEST_IDS, f"request id {HIGH_ID}", _request_id_check, _high_id),
    PrerequisiteCheck(ID_REUSE, f"request id {CHECK_ID} reused", _id_reuse_check, _id_reused),
    PrerequisiteCheck(INACTIVE_FINISHED, "a late empty STDIN", _late_record_ignored, _late_record_sent),
    PrerequisiteCheck(UNKNOWN_ROLE_REJECTED, f"role {UNKNOWN_ROLE}", _unknown_role_answered, _other_role_sent),
    PrerequisiteCheck(ABORT_ANSWERED, "ABORT_REQUEST mid-STDIN", _abort_answered, _type_sent(RecordType.ABORT_REQUEST),
                      confirms="no END_REQUEST after ABORT_REQUEST"),
    PrerequisiteCheck(GET_VALUES_ANSWERED, "GET_VALUES for FCGI_MPXS_CONNS", _get_values_answered,
                      _type_sent(RecordType.GET_VALUES),
                      confirms="no GET_VALUES_RESULT"),
)


def _finding(ctx: "CaseContext", check: PrerequisiteCheck) -> CheckedDeviation | None:
    """What the check found on this target, run the first time it is asked for."""
    findings = ctx.target.prerequisite_findings
    if not isinstance(findings, dict):
        findings = {}
        ctx.target.prerequisite_findings = findings
    if check.name not in findings:
        findings[check.name] = check.run(ctx, f"prerequisite check: {check.name}")
    return findings[check.name]


def confirmed(ctx: "CaseContext", seen: Sequence[Deviation]) -> list[Deviation]:
    """The deviations read from the traces, without those a check does not find when asked plainly
    (the case's own variation caused them: a GET_VALUES with an unknown name left unanswered)."""
    kept: list[Deviation] = []
    for deviation in seen:
        check = next((c for c in CHECKS if c.confirms and c.requirement == deviation.requirement
                      and deviation.what.startswith(c.confirms)), None)
        if check is None or owns(ctx, check.requirement) or _finding(ctx, check) is not None:
            kept.append(deviation)
    return kept


def check_prerequisites(ctx: "CaseContext", requirements: Sequence[str], raised: BaseException | None) -> list[Deviation]:
    """The deviations the checks of these requirements find (the case's own left out, those the
    case's traces show it could not have met, and those that cannot explain how it failed: raised),
    each check run once per target."""
    traces = [conn.trace for conn in ctx.connections]
    found: list[Deviation] = []
    for check in CHECKS:
        if check.requirement not in requirements or check.requirement == ctx.case.id:
            continue
        if any(d.requirement == check.requirement for d in found) or not check.met(traces):
            continue
        finding = _finding(ctx, check)
        if finding is not None and finding.unanswered in (None, _unanswered(raised)):
            found.append(finding)
    return found
