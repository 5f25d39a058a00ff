"""Reports: the terminal report (per section, h2spec-like, summary last) and the JSON report."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from harness.suite.case import SECTION_TITLES, Case
from harness.targets.faults import describe_faults
from harness.verdicts import Depth, Outcome, Verdict

MARKS = {
    Verdict.PASS: "✔",
    Verdict.FAIL: "×",
    Verdict.WARN: "!",
    Verdict.INFO: "i",
    Verdict.UNSUPPORTED: "-",
    Verdict.ERROR: "E",
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
    if outcome.note:
        lines.append(f"           Note: {outcome.note}")
    if with_trace and outcome.trace and outcome.verdict in (Verdict.FAIL, Verdict.WARN, Verdict.ERROR):
        lines.append("    Trace:")
        lines.extend(_indent(outcome.trace, "    "))
    if with_trace and outcome.target_log and outcome.verdict in (Verdict.FAIL, Verdict.ERROR):
        lines.append("    Target log (tail):")
        lines.extend(_indent(outcome.target_log, "      | "))
    return lines


def format_case_line(result: CaseResult, colour: bool = False) -> str:
    outcome = result.outcome
    verdict = outcome.verdict
    mark = EXCUSED_MARK if outcome.excused else MARKS[verdict]
    line = f"  {mark} {result.case.id} {result.case.title}"
    if verdict is Verdict.UNSUPPORTED and outcome.note:
        line += f" (unsupported: {outcome.note})"
    if outcome.excused:
        line += f" (excluded, {verdict.value}: {outcome.excluded})"
        return _paint(line, Verdict.UNSUPPORTED, colour)
    if outcome.excluded_but_passed:
        line += f" (excluded but passed: {outcome.excluded}; prune it from the exclude list)"
    if verdict in JUDGED:
        line += f" {DEPTH_TAGS[outcome.depth]}"
    return _paint(line, verdict, colour)


def format_report(results: Sequence[CaseResult], *, colour: bool = False, with_trace: bool = True) -> str:
    """Cases grouped per spec section, in id order, details under non-passing ones."""
    lines: list[str] = []
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


def format_summary(results: Sequence[CaseResult], *, duration: float | None = None) -> str:
    counts = count_verdicts(r.outcome for r in results)
    summary = (
        f"{len(results)} cases: {counts[Verdict.PASS]} passed, {counts[Verdict.FAIL]} failed, "
        f"{counts[Verdict.WARN]} warnings, {counts[Verdict.INFO]} info, "
        f"{counts[Verdict.UNSUPPORTED]} unsupported, {counts[Verdict.ERROR]} errors"
    )
    excused = sum(r.outcome.excused for r in results)
    stale = sum(r.outcome.excluded_but_passed for r in results)
    if excused or stale:
        summary += f", {excused} excluded"
        if stale:
            summary += f" ({stale} excluded but passed)"
    if duration is not None:
        summary = f"Finished in {duration:.2f} seconds\n{summary}"
    return summary


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
