"""Comparison as an oracle: content judged without a probe app.

Most servers the suite is pointed at run someone's application, not a probe app that reports what
it received. Such a target can still be asked the same request twice: when its answers agree (once
what legitimately varies is masked), a case whose requirement is "this encoding changes nothing"
(padding, records split anywhere, 1- or 4-byte lengths, request ids, TCP segmentation) compares the
full answer it got with the answer to the same request sent plainly, and fails on a difference.

Once per target (cached on it, as discovered capabilities are), the canonical GET and a canonical
POST with a small body are each sent twice and their full answers compared: STDOUT, STDERR and
END_REQUEST's appStatus and protocolStatus. What is masked, and recorded in Determinism.masked:

- in STDOUT's CGI header block, the values of Date, Expires, Set-Cookie, ETag, Last-Modified, Age
  and of headers whose name says request id, trace, correlation or nonce (VOLATILE_HEADERS,
  VOLATILE_HEADER_NAME);
- in STDOUT and STDERR, "runs": maximal runs of digits, or of hex digits with a digit among them
  (RUN), that differ between the two answers at the same position, when everything between the
  runs is the same. So a visit counter, a timestamp or a hex nonce is masked, a random body is not.
  The two askings are 1.1 s apart, so that a timestamp in seconds differs too. A masked run is also
  known by the 12 bytes before it ("<p>Visit "), so that it is masked in the answers to every
  other request as well.

A target whose answers differ beyond that is not deterministic: the report says so, and the cases
fall back to their protocol checks and say so in their note. Every other request a case compares
gets its own plain baseline, asked twice (at once) the same way. An apparent difference is checked
against one more plain answer before it fails a case: a run that varies only now and then is then
masked instead.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Sequence

from harness.wire.codec import ProtocolStatus, Role, preview_bytes
from harness.wire.connection import ConnectionClosed, FcgiTimeout, Response, request
from harness.verdicts import Violation

if TYPE_CHECKING:
    from harness.suite.case import CaseContext

Params = Sequence[tuple[bytes | str, bytes | str]]

VOLATILE_HEADERS = frozenset({"date", "expires", "set-cookie", "etag", "last-modified", "age"})
VOLATILE_HEADER_NAME = re.compile(r"request-?id|correlation|trace|nonce", re.IGNORECASE)
MASKED_VALUE = b"<masked>"
# A run: digits, or hex digits with at least one digit among them (so "cafe" in a word is not one).
RUN = re.compile(rb"([0-9A-Fa-f]*[0-9][0-9A-Fa-f]*)")
CANONICAL_BODY = b"fcgispec canonical request body\n" * 4
CONTEXT_BYTES = 40  # shown before and after a difference
RUN_CONTEXT_BYTES = 12  # what precedes a run identifies it across answers to different requests
# Between the two askings of the canonical requests: a timestamp in seconds then differs too.
CANONICAL_GAP_SECONDS = 1.1


@dataclass(frozen=True)
class Answer:
    """A full answer: what a comparison looks at."""

    stdout: bytes
    stderr: bytes
    end: str  # "appStatus=N protocolStatus=N", or how the answer ended without END_REQUEST

    @classmethod
    def of(cls, response: Response) -> "Answer":
        end = (
            f"appStatus={response.end.app_status} protocolStatus={response.end.protocol_status}"
            if response.end is not None else "no well-formed END_REQUEST"
        )
        return cls(response.stdout, response.stderr, end)


@dataclass
class Mask:
    """What is left out of a comparison: header values by name; runs by stream and position, and by
    what precedes them (so that a run seen to vary in the canonical answers is masked in any answer)."""

    headers: set[str] = field(default_factory=set)
    runs: dict[str, set[int]] = field(default_factory=dict)
    contexts: dict[str, set[bytes]] = field(default_factory=dict)

    def copy(self) -> "Mask":
        return Mask(set(self.headers), {k: set(v) for k, v in self.runs.items()}, {k: set(v) for k, v in self.contexts.items()})

    def update(self, other: "Mask") -> None:
        self.headers |= other.headers
        for stream, runs in other.runs.items():
            self.runs.setdefault(stream, set()).update(runs)
        for stream, contexts in other.contexts.items():
            self.contexts.setdefault(stream, set()).update(contexts)


def _mask_headers(stdout: bytes, masked: set[str]) -> bytes:
    """STDOUT with the values of volatile CGI headers replaced (names added to masked)."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = stdout.find(separator)
        if end >= 0:
            break
    else:
        return stdout
    lines = stdout[:end].split(b"\n")
    for index, line in enumerate(lines):
        name, colon, _ = line.partition(b":")
        text = name.decode("latin-1").strip()
        if colon and (text.lower() in VOLATILE_HEADERS or VOLATILE_HEADER_NAME.search(text)):
            masked.add(text)
            lines[index] = name + b": " + MASKED_VALUE + (b"\r" if line.endswith(b"\r") else b"")
    return b"\n".join(lines) + stdout[end:]


def _streams(answer: Answer, mask: Mask) -> dict[str, bytes]:
    return {"STDOUT": _mask_headers(answer.stdout, mask.headers), "STDERR": answer.stderr}


def _split(data: bytes) -> tuple[list[bytes], list[bytes]]:
    """What lies between the runs, and the runs."""
    parts = RUN.split(data)
    return parts[0::2], parts[1::2]


def _context(between: list[bytes], index: int) -> bytes:
    """What precedes run #index: the end of the text before it."""
    return between[index][-RUN_CONTEXT_BYTES:]


def _view(data: bytes, mask: Mask, stream: str) -> bytes:
    """The stream with its masked runs replaced: what is compared."""
    between, runs = _split(data)
    masked_runs, contexts = mask.runs.get(stream, set()), mask.contexts.get(stream, set())
    pieces = [between[0]]
    for index, run in enumerate(runs):
        masked = index in masked_runs or _context(between, index) in contexts
        pieces += [MASKED_VALUE if masked else run, between[index + 1]]
    return b"".join(pieces)


def first_difference(expected: bytes, actual: bytes) -> str:
    """Where two byte strings first differ, with some context of each."""
    at = next((i for i, (a, b) in enumerate(zip(expected, actual)) if a != b), min(len(expected), len(actual)))
    start = max(at - CONTEXT_BYTES // 2, 0)
    return (
        f"at byte {at} ({len(expected)} vs {len(actual)} bytes): expected {preview_bytes(expected[start:at + CONTEXT_BYTES], 60)}, "
        f"got {preview_bytes(actual[start:at + CONTEXT_BYTES], 60)}"
    )


def learn(first: Answer, second: Answer, mask: Mask) -> str | None:
    """Add to mask what differs between two answers to the same request; None, or why they differ beyond it."""
    if first.end != second.end:
        return f"END_REQUEST differs: {first.end} vs {second.end}"
    one, two = _streams(first, mask), _streams(second, mask)
    for stream in one:
        between_one, runs_one = _split(one[stream])
        between_two, runs_two = _split(two[stream])
        if between_one != between_two:
            return f"{stream} differs beyond runs of digits and masked headers " + first_difference(
                _view(one[stream], mask, stream), _view(two[stream], mask, stream)
            )
        differing = {i for i, (a, b) in enumerate(zip(runs_one, runs_two)) if a != b}
        if differing:
            mask.runs.setdefault(stream, set()).update(differing)
            mask.contexts.setdefault(stream, set()).update(_context(between_one, i) for i in differing)
    return None


def difference(baseline: Answer, answer: Answer, mask: Mask) -> str | None:
    """None when the answers agree under the mask, else what differs first."""
    if baseline.end != answer.end:
        return f"END_REQUEST {answer.end} instead of {baseline.end}"
    want, got = _streams(baseline, mask), _streams(answer, mask)
    for stream in want:
        expected, actual = _view(want[stream], mask, stream), _view(got[stream], mask, stream)
        if expected != actual:
            return f"{stream} " + first_difference(expected, actual)
    return None


def describe_mask(mask: Mask, sample: Answer) -> list[str]:
    """The masked parts in words: header names, and the runs by what precedes them, with an example."""
    said = [f"the value of CGI header {name}" for name in sorted(mask.headers)]
    for stream, data in _streams(sample, Mask(headers=set(mask.headers))).items():
        between, runs = _split(data)
        contexts = mask.contexts.get(stream, set())
        for index, run in enumerate(runs):
            if _context(between, index) in contexts:
                said.append(f"{stream}: the run of digits after {_context(between, index).decode('latin-1')!r} "
                            f"(e.g. {run[:20].decode('latin-1')!r})")
    return said


@dataclass
class Baseline:
    """The plain answer to one request and what varies in it; problem: why it cannot be compared."""

    answer: Answer | None
    mask: Mask
    problem: str | None = None


@dataclass(frozen=True)
class Determinism:
    """Whether the target answers the canonical requests the same twice, and what was masked."""

    deterministic: bool
    masked: tuple[str, ...] = ()
    problem: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"deterministic": self.deterministic, "masked": list(self.masked), "problem": self.problem}


def _key(params: Params, stdin: bytes, role: int) -> tuple[object, ...]:
    def as_bytes(value: bytes | str) -> bytes:
        return value if isinstance(value, bytes) else value.encode("latin-1")

    return (role, tuple((as_bytes(n), as_bytes(v)) for n, v in params), stdin)


class ComparisonOracle:
    """A target's plain answers, kept on the target (target.comparison_oracle) once asked."""

    def __init__(self) -> None:
        self.determinism: Determinism | None = None
        self.baselines: dict[tuple[object, ...], Baseline] = {}
        # What varied in the canonical answers: masked in every baseline.
        self.canonical_mask = Mask()

    def plain_answer(self, ctx: CaseContext, params: Params, stdin: bytes, role: int, label: str) -> Answer | str:
        """The answer to the request sent plainly on a new connection, or why there is none."""
        conn = ctx.connect(f"comparison: {label}")
        try:
            response = request(conn, 1, params, stdin, role=role, keep_conn=False, timeout=ctx.answer_wait)
        except FcgiTimeout:
            return "no END_REQUEST in time"
        except ConnectionClosed as closed:
            return f"connection closed ({closed.how}) before END_REQUEST"
        finally:
            conn.close()
        return Answer.of(response)

    def _judge_pair(self, label: str, first: Answer | str, second: Answer | str) -> Baseline:
        mask = self.canonical_mask.copy()
        if isinstance(first, str) or isinstance(second, str):
            return Baseline(None, mask, f"the plain {label} got no answer: {first if isinstance(first, str) else second}")
        if not first.end.endswith(f"protocolStatus={ProtocolStatus.REQUEST_COMPLETE}"):
            # Refused (OVERLOADED, ...): no answer of the application's to compare with.
            return Baseline(None, mask, f"the plain {label} was not completed ({first.end})")
        problem = learn(first, second, mask)
        return Baseline(first, mask, f"two answers to the plain {label} differ: {problem}" if problem else None)

    def baseline(self, ctx: CaseContext, params: Params, stdin: bytes, role: int, label: str) -> Baseline:
        """The plain answer to this request, asked twice the first time (cached)."""
        key = _key(params, stdin, role)
        if key not in self.baselines:
            first = self.plain_answer(ctx, params, stdin, role, f"{label}, plain")
            second = self.plain_answer(ctx, params, stdin, role, f"{label}, plain again")
            self.baselines[key] = self._judge_pair(label, first, second)
        return self.baselines[key]

    def establish(self, ctx: CaseContext) -> Determinism:
        """Whether the target answers the canonical GET and POST deterministically (asked once)."""
        if self.determinism is not None:
            return self.determinism
        requests = canonical_requests(ctx)
        firsts = [self.plain_answer(ctx, params, stdin, Role.RESPONDER, f"{label}, plain") for label, params, stdin in requests]
        time.sleep(CANONICAL_GAP_SECONDS)
        seconds = [self.plain_answer(ctx, params, stdin, Role.RESPONDER, f"{label}, again") for label, params, stdin in requests]
        masked: list[str] = []
        problem = ""
        for (label, params, stdin), first, second in zip(requests, firsts, seconds):
            found = self._judge_pair(label, first, second)
            self.baselines[_key(params, stdin, Role.RESPONDER)] = found
            if found.problem:
                problem = problem or found.problem
                continue
            assert found.answer is not None
            self.canonical_mask.update(Mask(headers=found.mask.headers, contexts=found.mask.contexts))
            said = {m.split(" (e.g. ")[0] for m in masked}
            masked += [m for m in describe_mask(found.mask, found.answer) if m.split(" (e.g. ")[0] not in said]
        for found in self.baselines.values():
            found.mask.update(self.canonical_mask)
        self.determinism = Determinism(not problem, tuple(masked), problem)
        return self.determinism

    def compare(self, ctx: CaseContext, answer: Answer, params: Params, stdin: bytes, role: int) -> str | None:
        """None when the answer is the plain one's, else the difference; raises NotComparable."""
        determinism = self.establish(ctx)
        if not determinism.deterministic:
            # The whole story is in the report header ("Deterministic answers"); the note stays short.
            raise NotComparable("the target's answers to the same canonical request differ")
        found = self.baseline(ctx, params, stdin, role, "request")
        if found.problem or found.answer is None:
            raise NotComparable(found.problem or "no plain answer")
        if difference(found.answer, answer, found.mask) is None:
            return None
        # Before failing, one more plain answer: a run that only sometimes varies is then masked.
        fresh = self.plain_answer(ctx, params, stdin, role, "request, plain once more")
        if isinstance(fresh, str):
            raise NotComparable(f"the plain request got no answer: {fresh}")
        problem = learn(found.answer, fresh, found.mask)
        if problem:
            found.problem = f"two answers to the plain request differ: {problem}"
            raise NotComparable(found.problem)
        return difference(fresh, answer, found.mask)


class NotComparable(Exception):
    """The target's plain answers do not agree: content cannot be compared."""


def canonical_requests(ctx: CaseContext) -> list[tuple[str, list[tuple[bytes | str, bytes | str]], bytes]]:
    """The canonical GET and POST (the probe app's params, which any application can take)."""
    return [
        ("canonical GET", ctx.probe_params(), b""),
        ("canonical POST", ctx.post_params(len(CANONICAL_BODY)), CANONICAL_BODY),
    ]


def oracle_of(ctx: CaseContext) -> ComparisonOracle:
    """The target's oracle, made the first time a case asks."""
    oracle = ctx.target.comparison_oracle
    if not isinstance(oracle, ComparisonOracle):
        oracle = ComparisonOracle()
        ctx.target.comparison_oracle = oracle
    return oracle


def prepare(ctx: CaseContext, params: Iterable[tuple[bytes | str, bytes | str]], stdin: bytes = b"",
            *, role: int = Role.RESPONDER) -> None:
    """Ask for the plain answer now, before a case holds the target busy (ctx.prepare_same_answer)."""
    oracle = oracle_of(ctx)
    if oracle.establish(ctx).deterministic:
        oracle.baseline(ctx, list(params), stdin, role, "request")


def expect_same_answer(
    ctx: CaseContext,
    response: Response,
    variation: str,
    params: Iterable[tuple[bytes | str, bytes | str]],
    stdin: bytes = b"",
    *,
    role: int = Role.RESPONDER,
) -> bool:
    """The answer to a request sent with a variation must be the plain request's (ctx.expect_same_answer).

    True when compared (the context is marked), False when the target's answers cannot be compared
    (the context notes the fallback to protocol checks). Raises Violation naming the variation.
    """
    pairs = list(params)
    try:
        found = oracle_of(ctx).compare(ctx, Answer.of(response), pairs, stdin, role)
    except NotComparable as why:
        ctx.note_once(f"content not compared: {why}; protocol checks only")
        return False
    ctx.checked_by_comparison()
    if found is not None:
        raise Violation(
            [f"the same answer as to the request sent plainly ({variation} changes nothing)"],
            f"{variation} changed {found}",
        )
    return True
