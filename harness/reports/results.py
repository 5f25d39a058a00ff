"""Reports: the terminal report (per section, h2spec-like, summary last) and the JSON report."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from harness.suite.case import SECTION_TITLES, Case, case_id_sort_key
from harness.targets.faults import describe_faults
from harness.verdicts import Depth, Outcome, Verdict

MARKS = {
    Verdict.PASS: "✔",
    Verdict.FAIL: "×",
    Verdict.WARN: "!",
    Verdict.INFO: "i",
    Verdict.UNSUPPORTED: "-",
    Verdict.ERROR: "E",
    Verdict.BLOCKED: "⊘",
}
EXCUSED_MARK = "~"  # an excluded (known) deviation
# How deep a verdict looked, as shown after a judged case's title.
DEPTH_TAGS = {Depth.PROBE: "[probe]", Depth.COMPARISON: "[compared]", Depth.PROTOCOL: "[protocol only]"}
# The verdicts a depth is shown for: those that rest on what the case looked at.
JUDGED = (Verdict.PASS, Verdict.INFO, Verdict.WARN, Verdict.FAIL)
_COLOURS = {
    Verdict.PASS: "32",
    Verdict.FAIL: "31",
    Verdict.WARN: "33",
    Verdict.INFO: "36",
    Verdict.UNSUPPORTED: "36",
    Verdict.ERROR: "35",
    Verdict.BLOCKED: "36",
}


@dataclass(frozen=True)
class CaseResult:
    case: Case
    outcome: Outcome


def _paint(text: str, verdict: Verdict, colour: bool) -> str:
    return f"\x1b[{_COLOURS[verdict]}m{text}\x1b[0m" if colour else text


def _indent(text: str, prefix: str) -> list[str]:
    return [prefix + line for line in text.rstrip("\n").splitlines()]


def format_details(result: CaseResult, *, with_trace: bool = True) -> list[str]:
    """The lines under a non-passing case: requirement, expected, actual, note, trace, log."""
    case, outcome = result.case, result.outcome
    lines: list[str] = []
    if outcome.verdict in (Verdict.FAIL, Verdict.WARN, Verdict.ERROR):
        lines.append(f"    -> {case.requirement}")
        for index, expected in enumerate(outcome.expected):
            lines.append(("       Expected: " if index == 0 else "                 ") + expected)
        if outcome.actual:
            actual_lines = outcome.actual.rstrip("\n").splitlines() or [""]
            lines.append("         Actual: " + actual_lines[0])
            lines.extend("                 " + line for line in actual_lines[1:])
    if outcome.verdict in (Verdict.FAIL, Verdict.WARN) and case.catches and not outcome.exited_cleanly:
        # Known bugs this case catches: a maintainer's first guess at the cause.
        for index, known in enumerate(describe_faults(case.catches)):
            lines.append(("     Looks like: " if index == 0 else "                 ") + known)
    if outcome.note and outcome.verdict is not Verdict.BLOCKED:  # a blocked case's note is on its line
        lines.append(f"           Note: {outcome.note}")
    for index, seen in enumerate(outcome.also_seen):
        # Other requirements' deviations: each fails its own case, not this one.
        lines.append(("      Also seen: " if index == 0 else "                 ") + seen.describe())
    if with_trace and outcome.trace and outcome.verdict in (Verdict.FAIL, Verdict.WARN, Verdict.ERROR):
        lines.append("    Trace:")
        lines.extend(_indent(outcome.trace, "    "))
    if with_trace and outcome.target_log and outcome.verdict in (Verdict.FAIL, Verdict.ERROR):
        lines.append("    Target log (tail):")
        lines.extend(_indent(outcome.target_log, "      | "))
    return lines


def format_case_line(result: CaseResult, colour: bool = False, *, with_depth: bool = True) -> str:
    outcome = result.outcome
    verdict = outcome.verdict
    mark = EXCUSED_MARK if outcome.excused else MARKS[verdict]
    line = f"  {mark} {result.case.id} {result.case.title}"
    if verdict is Verdict.UNSUPPORTED and outcome.note:
        line += f" (unsupported: {outcome.note})"
    if verdict is Verdict.BLOCKED:
        line += f" ({outcome.note})"
    if outcome.excused:
        line += f" (excluded, {verdict.value}: {outcome.excluded})"
        return _paint(line, Verdict.UNSUPPORTED, colour)
    if outcome.excluded_but_passed:
        line += f" (excluded but passed: {outcome.excluded}; prune it from the exclude list)"
    if with_depth and verdict in JUDGED:
        line += f" {DEPTH_TAGS[outcome.depth]}"
    return _paint(line, verdict, colour)


@dataclass
class DeviationSummary:
    """One requirement the target broke: its own case, and the cases that saw it or were blocked by it."""

    requirement: str
    title: str = ""
    verdict: Verdict | None = None  # its own case's verdict (None: not run here)
    seen_by: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class VerdictRow:
    """What the deviations summary needs of one case's result (from a CaseResult or a matrix run)."""

    id: str
    title: str
    verdict: Verdict
    also_seen: tuple[str, ...] = ()  # requirement ids seen deviating
    blocked_by: str | None = None
    excused: bool = False


def deviations(results: Sequence[CaseResult]) -> list[DeviationSummary]:
    """The root causes of a run (summarize_deviations over its case results)."""
    return summarize_deviations([
        VerdictRow(r.case.id, r.case.title, r.outcome.verdict, tuple(d.requirement for d in r.outcome.also_seen),
                   r.outcome.blocked_by, r.outcome.excused)
        for r in results
    ])


def summarize_deviations(rows: Sequence[VerdictRow]) -> list[DeviationSummary]:
    """The root causes: every requirement that failed (or warned) in its own case, or that another
    case saw deviate, with the cases that saw it and those it blocked; in spec order."""
    by_id = {row.id: row for row in rows}
    found: dict[str, DeviationSummary] = {}

    def entry(requirement: str) -> DeviationSummary:
        if requirement not in found:
            own = by_id.get(requirement)
            found[requirement] = DeviationSummary(requirement, own.title if own else "")
        return found[requirement]

    for row in rows:
        if row.verdict in (Verdict.FAIL, Verdict.WARN) and not row.excused:
            entry(row.id).verdict = row.verdict
        for requirement in row.also_seen:
            if requirement == row.blocked_by:
                continue  # listed as blocked by it
            listed = entry(requirement).seen_by
            if row.id not in listed:
                listed.append(row.id)
        if row.blocked_by:
            entry(row.blocked_by).blocked.append(row.id)
    for summary in found.values():
        own = by_id.get(summary.requirement)
        if summary.verdict is None and own is not None and own.verdict in (Verdict.FAIL, Verdict.WARN):
            summary.verdict = own.verdict
    return sorted(found.values(), key=lambda d: case_id_sort_key(d.requirement))


def format_deviations(results: Sequence[CaseResult], colour: bool = False) -> list[str]:
    """The report's lead: "N deviations (as failing cases: ...)", each with who else met it."""
    return format_deviation_lines(deviations(results), colour)


def format_deviation_lines(found: Sequence[DeviationSummary], colour: bool = False) -> list[str]:
    """"N deviations (as failing cases: ...)", then each with the cases that saw it or were blocked by it."""
    if not found:
        return []
    failing = [d.requirement for d in found if d.verdict is not None]
    lines = [f"{len(found)} deviation{'s' if len(found) != 1 else ''} (as failing cases: {', '.join(failing) or 'none'})"]
    for summary in found:
        verdict = summary.verdict or Verdict.INFO
        mark = MARKS[verdict] if summary.verdict else "?"
        head = f"  {mark} {summary.requirement} {summary.title}".rstrip()
        if summary.verdict is None:
            head += " (its own case did not fail here: seen by other cases only)"
        lines.append(_paint(head, verdict, colour))
        if summary.seen_by:
            lines.append(f"      also seen by: {', '.join(sorted(summary.seen_by, key=case_id_sort_key))}")
        if summary.blocked:
            lines.append(f"      blocked: {', '.join(sorted(summary.blocked, key=case_id_sort_key))}")
    return lines


def format_report(results: Sequence[CaseResult], *, colour: bool = False, with_trace: bool = True) -> str:
    """The deviations first (root causes), then cases grouped per spec section, in id order,
    details under non-passing ones."""
    lines: list[str] = format_deviations(results, colour)
    current_section: str | None = None
    for result in sorted(results, key=lambda r: r.case.sort_key):
        if result.case.section != current_section:
            current_section = result.case.section
            if lines:
                lines.append("")
            title = SECTION_TITLES.get(current_section, "")
            lines.append(f"{current_section}. {title}".rstrip())
        lines.append(format_case_line(result, colour))
        if result.outcome.verdict is not Verdict.UNSUPPORTED:
            lines.extend(format_details(result, with_trace=with_trace))
    return "\n".join(lines)


def count_verdicts(outcomes: Iterable[Outcome]) -> dict[Verdict, int]:
    """Verdict counts; excused (excluded, non-passing) outcomes are counted apart, not here."""
    counts = {verdict: 0 for verdict in Verdict}
    for outcome in outcomes:
        if not outcome.excused:
            counts[outcome.verdict] += 1
    return counts


def count_depths(outcomes: Iterable[Outcome]) -> dict[Depth, int]:
    """How deep the passes looked, excused ones left out."""
    counts = {depth: 0 for depth in Depth}
    for outcome in outcomes:
        if not outcome.excused and outcome.verdict is Verdict.PASS:
            counts[outcome.depth] += 1
    return counts


def format_depth_summary(results: Sequence[CaseResult]) -> str:
    """E.g. "54 passed: 20 probe, 12 comparison, 22 protocol only": what the passes rest on."""
    counts = count_depths(r.outcome for r in results)
    return (
        f"{sum(counts.values())} passed: {counts[Depth.PROBE]} probe, {counts[Depth.COMPARISON]} comparison, "
        f"{counts[Depth.PROTOCOL]} protocol only"
    )


def _count(number: int, noun: str) -> str:
    """'1 case', '2 cases', '0 cases'."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def format_summary(
    results: Sequence[CaseResult], *, duration: float | None = None, interrupted: bool = False,
    planned: int | None = None,
) -> str:
    """The one-line summary; an interrupted run says so, and of how many cases (planned) it ran how many."""
    counts = count_verdicts(r.outcome for r in results)
    if interrupted:
        ran = (f"run interrupted after {len(results)} of {_count(planned, 'case')}" if planned is not None
               else f"run interrupted after {_count(len(results), 'case')}")
    else:
        ran = _count(len(results), "case")
    summary = (
        f"{ran}: {counts[Verdict.PASS]} passed, {counts[Verdict.FAIL]} failed, "
        f"{_count(counts[Verdict.WARN], 'warning')}, {counts[Verdict.INFO]} info, "
        f"{counts[Verdict.UNSUPPORTED]} unsupported, {_count(counts[Verdict.ERROR], 'error')}"
    )
    if counts[Verdict.BLOCKED]:
        summary += f", {counts[Verdict.BLOCKED]} blocked"
    excused = sum(r.outcome.excused for r in results)
    stale = sum(r.outcome.excluded_but_passed for r in results)
    if excused or stale:
        summary += f", {excused} excluded"
        if stale:
            summary += f" ({stale} excluded but passed)"
    if duration is not None:
        summary = f"Finished in {duration:.2f} seconds\n{summary}"
    return summary


def format_by_family(results: list[CaseResult], *, colour: bool = False) -> str:
    """Cases grouped by family (their section), in catalogue order, details under non-passing ones: the
    report of the client and gateway suites, whose verdicts rest on ledgers, not on FastCGI depth."""
    lines: list[str] = []
    family: str | None = None
    for result in sorted(results, key=lambda r: r.case.sort_key):
        if result.case.section != family:
            family = result.case.section
            if lines:
                lines.append("")
            lines.append(family or "Other")
        lines.append(format_case_line(result, colour, with_depth=False))
        if result.outcome.verdict is not Verdict.UNSUPPORTED:
            lines.extend(format_details(result))
    return "\n".join(lines)


def json_report(
    results: Sequence[CaseResult],
    *,
    target: str = "",
    strict: bool = False,
    meta: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """The per-run JSON document; meta carries run metadata (capabilities, start time, wall time)."""
    counts = count_verdicts(r.outcome for r in results)
    entries = []
    for result in sorted(results, key=lambda r: r.case.sort_key):
        case, outcome = result.case, result.outcome
        entry: dict[str, object] = {
            "id": case.id,
            "section": case.section,
            "title": case.title,
            "requirement": case.requirement,
            "level": case.level.value,
            "verdict": outcome.verdict.value,
            "depth": outcome.depth.value,
            "duration": round(outcome.duration, 4),
        }
        if outcome.verdict is not Verdict.PASS:
            entry.update(
                expected=outcome.expected,
                actual=outcome.actual,
                note=outcome.note,
                trace=outcome.trace,
                target_log=outcome.target_log,
            )
        elif outcome.note:
            entry["note"] = outcome.note
        if outcome.verdict in (Verdict.FAIL, Verdict.WARN) and case.catches and not outcome.exited_cleanly:
            entry["looks_like"] = list(case.catches)
        if case.prerequisites:
            entry["prerequisites"] = list(case.prerequisites)
        if outcome.blocked_by:
            entry["blocked_by"] = outcome.blocked_by
        if outcome.also_seen:
            entry["also_seen"] = [
                {"requirement": d.requirement, "what": d.what, "evidence": d.evidence} for d in outcome.also_seen
            ]
        if outcome.excluded is not None:
            entry["excluded"] = outcome.excluded
            entry["excluded_but_passed"] = outcome.excluded_but_passed
        entries.append(entry)
    summary: dict[str, object] = {verdict.value: counts[verdict] for verdict in Verdict}
    summary.update(
        depth={depth.value: count for depth, count in count_depths(r.outcome for r in results).items()},
        total=len(results),
        excluded=sum(r.outcome.excused for r in results),
        excluded_but_passed=sum(r.outcome.excluded_but_passed for r in results),
    )
    return {
        "tool": "fcgispec",
        "target": target,
        "strict": strict,
        **dict(meta or {}),
        "summary": summary,
        "deviations": [
            {"requirement": d.requirement, "verdict": d.verdict.value if d.verdict else None,
             "seen_by": d.seen_by, "blocked": d.blocked}
            for d in deviations(results)
        ],
        "cases": entries,
    }


def write_json_report(
    path: Path | str,
    results: Sequence[CaseResult],
    *,
    target: str = "",
    strict: bool = False,
    meta: Mapping[str, object] | None = None,
) -> None:
    document = json_report(results, target=target, strict=strict, meta=meta)
    Path(path).write_text(json.dumps(document, indent=2) + "\n")
