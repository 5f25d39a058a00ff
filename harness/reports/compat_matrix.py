"""The compatibility matrix: the whole server suite against every named target (and the reference).

    ./fcgispec matrix [--targets reference,php-fpm,... | --gateways [nginx,...]] [--out DIR] [--jobs N]
                      [--case PREFIX] [--update-docs | --docs PATH | --no-docs] [--fcgi-timeout SECONDS]
                      [--update-expected] [--check]
    (= /usr/bin/python3 -m harness.reports.compat_matrix ...)

--gateways makes the same matrix of the gateway suite against the named gateways (web servers as
FastCGI clients): MatrixKind below is what a matrix is of, harness/reports/gateway_matrix.py what
differs for gateways (its pages, expected verdicts and the child that runs each gateway).

Each target runs in a process of its own (up to --jobs at once), every case in turn, as
`./fcgispec --target NAME` runs them (the same run_case, capability discovery first, a
restart after a case that left the target dead), keeping the records exchanged of every
case. It writes:

- DIR/runs/NAME.json: per case the verdict, what was expected and seen, and the trace;
- DIR/index.html: the matrix a person browses (self-contained: sortable columns, every
  cell expandable to the records exchanged, failing ones marked);
- DIR/compatibility.md: the matrix in Markdown, each cell that is not a pass linking to its
  evidence in DIR/compat/NAME.md (the records exchanged). DIR is build/compat by default:
  without an option nothing tracked is touched. --update-docs writes the committed
  docs/compatibility.md and docs/compat/ instead (every target must run), --docs PATH
  another file, --no-docs no Markdown.

fixtures/expected/NAME.json holds each target's expected verdicts with a one-line
explanation for every one that is not a pass; tests/test_compat_matrix.py compares a
fresh run with it (compare_with_expected) so that a change in a server's behaviour, or
in the suite's judgement of it, is noticed. --update-expected rewrites those files from
this run, keeping the explanations of verdicts that did not change.
"""

from __future__ import annotations

import argparse
import datetime
import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from harness.wire.capabilities import DISCOVERY_TIMEOUT, discover
from harness.suite.case import Case, _id_matches, case_id_sort_key, load_cases, run_case, scale_for, select_cases
from harness.targets.named import NAMED_TARGETS
from harness.targets.base import Target, TargetError, TargetUnsupported
from harness.targets.selection import parse_target
from harness.suite.judge import Facts, judge
from harness.reports.results import DeviationSummary, VerdictRow, format_deviation_lines, summarize_deviations
from harness.verdicts import Depth, Outcome, Verdict
from harness.installation.paths import is_installed
from harness.replay.command_line import (
    EXIT_USAGE,
    CommandParser,
    UsageError,
    check_writable_directory,
    positive_count,
    seconds,
)

ROOT = Path(__file__).resolve().parents[2]
CASES_DIR = ROOT / "cases" / "server"
# A checkout keeps the matrix in build/; the installed package's tree is never written: there, the
# directory the command runs in.
DEFAULT_OUT = Path("fcgispec-compat").absolute() if is_installed(ROOT) else ROOT / "build" / "compat"
EXPECTED_DIR = Path("fixtures") / "expected"
DOCS_FILE = Path("docs") / "compatibility.md"
EVIDENCE_DIR = Path("docs") / "compat"
ALL_TARGETS = ("reference", *NAMED_TARGETS)
BASE_WAIT = 5.0  # --fcgi-timeout's default: the matrix judges as a user's run does
# One target's run is bounded: a server that hangs every case still ends.
TARGET_RUN_TIMEOUT = 1800.0
# Seconds a target's run has, once the matrix is interrupted, to stop its target; then it is killed.
CHILD_STOP_GRACE = 8.0
INTERRUPT_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
EXIT_INTERRUPTED = 2
# Records kept per connection in the committed Markdown evidence (the HTML has all).
EVIDENCE_RECORDS = 80
# Rough seconds per run (fcgiwrap forks a Perl CGI per request; uwsgi closes every connection).
SLOW_TARGETS = {"fcgiwrap": 120, "uwsgi": 90, "perl-fcgi": 30, "libfcgi": 30, "net-async-fastcgi": 30, "mojo-fastcgi": 30}
MARKS = {"pass": "✔", "fail": "×", "warn": "!", "info": "i", "unsupported": "-", "error": "E", "missing": "?",
         "blocked": "⊘"}
VERDICT_ORDER = ("pass", "fail", "warn", "info", "unsupported", "error", "blocked")


# --- running ----------------------------------------------------------------------------------


@dataclass
class CaseRun:
    """One case against one target: the verdict and its evidence."""

    id: str
    section: str
    title: str
    level: str
    requirement: str
    verdict: str
    expected: list[str] = field(default_factory=list)
    actual: str = ""
    note: str = ""
    duration: float = 0.0
    trace: str = ""
    target_log: str = ""
    # Deviations of other requirements seen on the way ("FCGI-x.y-z what"), and what blocked the case.
    also_seen: list[str] = field(default_factory=list)
    blocked_by: str = ""
    # How deep the case looked (harness/verdicts.py Depth): probe, comparison or protocol.
    depth: str = ""

    @classmethod
    def of(cls, case: Case, outcome: Outcome) -> "CaseRun":
        return cls(
            id=case.id,
            section=case.section,
            title=case.title,
            level=case.level.value,
            requirement=case.requirement,
            verdict=outcome.verdict.value,
            expected=list(outcome.expected),
            actual=outcome.actual,
            note=outcome.note,
            duration=round(outcome.duration, 3),
            trace=outcome.trace,
            target_log=outcome.target_log[-2000:],
            also_seen=[seen.describe() for seen in outcome.also_seen],
            blocked_by=outcome.blocked_by or "",
            depth=outcome.depth.value,
        )

    def summary(self) -> str:
        """One line: what was seen (for tests and explanations)."""
        text = self.actual if self.verdict in ("fail", "warn", "error") else self.note
        return " ".join(text.split())[:200]


@dataclass
class TargetRun:
    """The whole suite against one target."""

    target: str
    description: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    capabilities: str = ""
    started: str = ""
    wall_time: float = 0.0
    start_error: str = ""
    cases: list[CaseRun] = field(default_factory=list)

    def verdicts(self) -> dict[str, str]:
        return {run.id: run.verdict for run in self.cases}

    def counts(self) -> dict[str, int]:
        counts = {verdict: 0 for verdict in VERDICT_ORDER}
        for run in self.cases:
            counts[run.verdict] = counts.get(run.verdict, 0) + 1
        return counts

    def pass_depths(self) -> str:
        """What the passes rest on, e.g. "20 probe, 12 comparison, 22 protocol only" (runs recorded
        before depths were kept count as protocol only)."""
        passes = [run.depth or Depth.PROTOCOL.value for run in self.cases if run.verdict == "pass"]
        return (f"{passes.count(Depth.PROBE.value)} probe, {passes.count(Depth.COMPARISON.value)} comparison, "
                f"{passes.count(Depth.PROTOCOL.value)} protocol only")

    def deviations(self) -> list[DeviationSummary]:
        """The root causes of this target's verdicts (harness/reports/results.py summarize_deviations)."""
        return summarize_deviations([
            VerdictRow(case.id, case.title, Verdict(case.verdict), tuple(seen.split(" ", 1)[0] for seen in case.also_seen),
                       case.blocked_by or None)
            for case in self.cases if case.verdict in {v.value for v in Verdict}
        ])

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["cases"] = [run.__dict__ for run in self.cases]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TargetRun":
        fields = dict(data)
        fields["cases"] = [CaseRun(**case) for case in data.get("cases", [])]
        return cls(**fields)


def package_versions(name: str) -> dict[str, str]:
    """Debian package versions of a named target (what the matrix was seen on)."""
    if name not in NAMED_TARGETS:
        return {}
    named = NAMED_TARGETS[name]
    # The packages that own its programs (php8.2-fpm behind the php-fpm of the list), then the list's own.
    owners = []
    for path in named.factory.find_executables():  # type: ignore[attr-defined]
        found = subprocess.run(["dpkg-query", "-S", os.path.realpath(path)], capture_output=True, text=True, check=False)
        if found.returncode == 0:
            owners.append(found.stdout.split(":", 1)[0].strip())
    packages = list(dict.fromkeys([*owners, *named.packages]))
    versions: dict[str, str] = {}
    for package in packages:
        done = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=False
        )
        if done.returncode == 0 and done.stdout.strip():
            versions[package] = done.stdout.strip()
    return versions or {package: "not installed" for package in named.packages}


def _describe_capabilities(target: Target) -> str:
    found = target.discovered_capabilities
    if found is None:
        return "not discovered"
    if not getattr(found, "answered", False):
        return f"no GET_VALUES_RESULT ({getattr(found, 'problem', '')})"
    pairs = getattr(found, "pairs", ())
    return ", ".join(f"{n.decode('latin-1')}={v.decode('latin-1')}" for n, v in pairs) or "an empty GET_VALUES_RESULT"


def run_target(
    name: str,
    root: Path = ROOT,
    *,
    cases: Sequence[Case] | None = None,
    base_wait: float = BASE_WAIT,
    progress: Callable[[str], None] | None = None,
) -> TargetRun:
    """Every case against one target, in id order, as the pytest plugin runs them."""
    selected = sorted(cases if cases is not None else load_cases([root / "cases" / "server"]), key=lambda c: c.sort_key)
    scale = scale_for(base_wait)
    run = TargetRun(
        target=name,
        versions=package_versions(name),
        started=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )
    began = time.monotonic()
    target: Target | None = None
    notice = ""
    try:  # interrupted too, the target is stopped (finally)
        try:
            target = parse_target(name, root)
            target.start()
            run.description = target.description
            target.discovered_capabilities = discover(target, DISCOVERY_TIMEOUT * scale)
            run.capabilities = _describe_capabilities(target)
        except TargetUnsupported as error:
            # Its packages cannot be had on this machine: every case is unsupported here, with why.
            run.start_error = str(error)
            run.cases = [CaseRun.of(case, Outcome(Verdict.UNSUPPORTED, note=str(error))) for case in selected]
            selected = []
        except TargetError as error:
            run.start_error = str(error)
        for case in selected:
            if run.start_error or target is None:
                not_run = judge(Facts(case.level, not_run=f"target could not be started: {run.start_error}"))
                run.cases.append(CaseRun.of(case, not_run))
                continue
            outcome = run_case(case, target, scale=scale, keep_trace=True, notice=notice)
            notice = ""
            run.cases.append(CaseRun.of(case, outcome))
            if progress:
                progress(f"{name} {case.id} {outcome.verdict.value}")
            if target.spawned and (not outcome.target_alive or target.exit_status() is not None):
                why = target.exit_text() if target.exit_status() is not None else "it stopped answering"  # type: ignore[attr-defined]
                try:
                    target.restart()
                    notice = f"target restarted before this case: after the previous one {why}"
                except TargetError as error:
                    run.start_error = f"target could not be restarted: {error}"
    finally:
        if target is not None:
            target.stop()
    run.wall_time = round(time.monotonic() - began, 2)
    return run


class MatrixKind:
    """What a matrix is of: a suite, the named subjects it runs against, and where its pages and
    expected verdicts go. This one is the server suite against the named targets; the gateway
    suite's matrix (harness/reports/gateway_matrix.py) overrides what differs."""

    noun = "target"
    plural = "targets"
    option = "--targets"
    title = "Compatibility matrix"
    docs_file = DOCS_FILE
    # Beside the Markdown matrix: one evidence file per subject.
    evidence_dir_name = "compat"
    markdown_name = "compatibility.md"
    html_name = "index.html"
    runs_dir_name = "runs"
    expected_dir = EXPECTED_DIR
    slow: Mapping[str, int] = SLOW_TARGETS
    # The terminal summary lists every fail, warn and error (a gateway has few; a server many).
    lists_deviating_cases = False
    # Whether passes say what they rest on (Depth): a gateway's passes are all protocol ones.
    shows_pass_depths = True
    # A connection's block in a trace starts with a line matching this (_trim_trace).
    trace_block_start = re.compile(r"  \[")
    trace_legend = "`>` sent by the suite, `<` by the target"
    setup_heading = "capabilities"
    legend = ("Legend: ✔ pass, × fail (a required behaviour broken), ! warn (a recommendation missed), i info (the "
              "spec leaves it open; what the target did is recorded), - unsupported (a feature the target does not "
              "offer, or a check its probe app cannot make on its platform), E error (the harness could not run the "
              "case), ⊘ blocked (another requirement's deviation kept the case from its own).")
    # How to name every subject on the command line (for --update-docs' usage error).
    every_one_hint = "run it without --targets"
    # What the tail of the subject's own log is called in the evidence.
    log_label = "Target log"
    expected_note = ("Expected verdicts of the server suite against this target (tests/test_compat_matrix.py); "
                     "'why' explains every verdict that is not a pass.")

    @property
    def names(self) -> tuple[str, ...]:
        return ALL_TARGETS

    def default_jobs(self) -> int:
        return min(4, os.cpu_count() or 2)

    def case_sort_key(self, case_id: str) -> Any:
        return case_id_sort_key(case_id)

    def case_ids(self, root: Path = ROOT) -> list[str]:
        """The catalogue as it is now (--case is checked against it)."""
        return [case.id for case in load_cases([root / "cases" / "server"])]

    def describe(self, name: str) -> str:
        """The subject in a few words, the same every run (the committed pages do not change with ports)."""
        return NAMED_TARGETS[name].description if name in NAMED_TARGETS else "the reference responder"

    def setup_line(self, run: TargetRun) -> str:
        """The evidence file's line on how the subject was set up."""
        return f"Capabilities (GET_VALUES): {run.capabilities or 'not discovered'}"

    def markdown_intro(self) -> str:
        return ("The server suite (`cases/server/`) against every named target and the reference responder, generated by "
                "`./fcgispec matrix --update-docs` (`/usr/bin/python3 -m harness.reports.compat_matrix`). A cell that is "
                "not a pass links to its evidence: the records exchanged, what the case expected and what it saw. "
                "`fixtures/expected/NAME.json` explains every such cell in one line; the deviations of the real servers "
                "are written up in [findings.md](findings.md).")

    def markdown_subject_table(self, runs: Sequence[TargetRun]) -> list[str]:
        lines = [
            "| target | what runs | Debian packages | " + " | ".join(VERDICT_ORDER) + " | passes checked by | run time |",
            "|---|---|---|" + "---|" * len(VERDICT_ORDER) + "---|---|",
        ]
        for run in runs:
            counts = run.counts()
            versions = ", ".join(f"{p} {v}" for p, v in run.versions.items()) or "(built here)"
            lines.append(
                f"| {run.target} | {_md_escape(self.describe(run.target))} | {_md_escape(versions)} | "
                + " | ".join(str(counts[v]) for v in VERDICT_ORDER)
                + f" | {run.pass_depths()} | {run.wall_time:.0f} s |"
            )
        return lines

    def html_intro(self) -> str:
        return ("<p>The server suite against each target. Click a column heading to sort (by verdict in a target's "
                "column: failures first). Click a cell to see what was expected, what was seen and the records "
                "exchanged (<code>&gt;</code> sent by the suite, <code>&lt;</code> by the target).</p>")

    def child(self, name: str, json_path: Path, *, base_wait: float, cases: Sequence[str],
              root: Path = ROOT) -> list[str]:
        """The command that runs the suite against one subject and writes its run to json_path."""
        return [sys.executable, "-m", "harness.reports.compat_matrix", "--run-one", name,
                "--json", str(json_path), "--fcgi-timeout", str(base_wait),
                *[word for case in cases for word in ("--case", case)]]

    # The target runs write their own progress and problems to the terminal.
    child_log = False

    def read_child(self, name: str, json_path: Path, log_path: Path | None, returncode: int | None,
                   wall_time: float, cases: Sequence[str] = ()) -> TargetRun:
        """The finished run of one child; one whose run was not written is a start error."""
        if json_path.exists():
            return TargetRun.from_dict(json.loads(json_path.read_text()))
        return TargetRun(target=name, start_error=f"the run exited with status {returncode}")


TARGETS = MatrixKind()


def run_in_subprocesses(
    names: Sequence[str], out: Path, *, jobs: int, base_wait: float, root: Path = ROOT, quiet: bool = False,
    kind: MatrixKind = TARGETS, cases: Sequence[str] = (),
) -> list[TargetRun]:
    """One child process per subject (kind.child), at most `jobs` at once.

    A subject's run is written to OUT/runs/NAME.json (kind.runs_dir_name) only once it is complete.
    Interrupted (KeyboardInterrupt), the runs still going are asked to stop (SIGTERM: each stops its
    target or web server), killed after CHILD_STOP_GRACE, and MatrixInterrupted says which had finished.
    """
    runs_dir = out / kind.runs_dir_name
    runs_dir.mkdir(parents=True, exist_ok=True)
    # The slowest first: the whole matrix then takes about as long as the slowest one.
    pending = sorted(names, key=lambda name: -kind.slow.get(name, 0))
    running: dict[str, tuple[subprocess.Popen[bytes], float]] = {}
    finished: dict[str, TargetRun] = {}
    # Each child writes here; a complete run is then moved into runs/ (an interrupted one never is).
    scratch = Path(tempfile.mkdtemp(prefix="fcgispec-matrix-"))
    try:
        while pending or running:
            while pending and len(running) < max(jobs, 1):
                name = pending.pop(0)
                argv = kind.child(name, scratch / f"{name}.json", base_wait=base_wait, cases=cases, root=root)
                output: Any = None
                if kind.child_log:
                    output = (scratch / f"{name}.log").open("wb")
                # In a group of its own: a Ctrl-C on the terminal reaches the matrix, which stops its runs.
                try:
                    running[name] = (subprocess.Popen(argv, cwd=root, process_group=0, stdin=subprocess.DEVNULL,
                                                      stdout=output, stderr=output), time.monotonic())
                finally:
                    if output is not None:
                        output.close()  # the child has its own copy
                if not quiet:
                    print(f"compat matrix: {name} started", file=sys.stderr)
            time.sleep(0.1)
            for name, (process, began) in list(running.items()):
                if process.poll() is None and time.monotonic() - began < TARGET_RUN_TIMEOUT:
                    continue
                if process.poll() is None:
                    process.kill()
                    process.wait()
                del running[name]
                log = scratch / f"{name}.log"
                finished[name] = kind.read_child(name, scratch / f"{name}.json", log if kind.child_log else None,
                                                 process.returncode, time.monotonic() - began, cases)
                # The run in the matrix's own form: --from-runs reads it back whatever the child wrote.
                (runs_dir / f"{name}.json").write_text(json.dumps(finished[name].to_dict(), indent=1) + "\n")
                if not quiet:
                    counts = finished[name].counts()
                    print(f"compat matrix: {name} done in {time.monotonic() - began:.0f} s: "
                          + ", ".join(f"{v} {counts[v]}" for v in VERDICT_ORDER)
                          + (f" [{finished[name].start_error}]" if finished[name].start_error else ""), file=sys.stderr)
    except KeyboardInterrupt:
        _stop_runs([process for process, _ in running.values()])
        raise MatrixInterrupted(sorted(finished), sorted(running), pending) from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return [finished[name] for name in names]


class MatrixInterrupted(Exception):
    """The matrix was interrupted: the targets whose runs had finished, were stopped, had not started."""

    def __init__(self, finished: list[str], stopped: list[str], not_started: list[str]) -> None:
        super().__init__("interrupted")
        self.finished = finished
        self.stopped = stopped
        self.not_started = not_started


def _stop_runs(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    """Ask each run to stop (it stops its target), wait up to CHILD_STOP_GRACE, kill what is left."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    end_time = time.monotonic() + CHILD_STOP_GRACE
    for process in processes:
        try:
            process.wait(max(end_time - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _interrupt_once(signum: int, frame: object) -> None:
    """SIGINT, SIGTERM, SIGHUP: KeyboardInterrupt once; later ones are ignored while the run stops."""
    for sig in INTERRUPT_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt(signal.Signals(signum).name)


# --- expected results ---------------------------------------------------------------------------


def expected_path(name: str, root: Path = ROOT, kind: MatrixKind = TARGETS) -> Path:
    return root / kind.expected_dir / f"{name}.json"


def load_expected(name: str, root: Path = ROOT, kind: MatrixKind = TARGETS) -> dict[str, dict[str, Any]]:
    """case id -> {"verdict": V or [V, ...], "why": one line} from fixtures/expected/NAME.json."""
    document = json.loads(expected_path(name, root, kind).read_text())
    return dict(document["cases"])


def accepted_verdicts(entry: Mapping[str, Any]) -> list[str]:
    verdict = entry["verdict"]
    return [verdict] if isinstance(verdict, str) else list(verdict)


def compare_with_expected(run: TargetRun, expected: Mapping[str, Mapping[str, Any]],
                          kind: MatrixKind = TARGETS) -> list[str]:
    """One line per case whose verdict is not the expected one (also new and vanished cases)."""
    problems: list[str] = []
    seen = run.verdicts()
    by_id = {case.id: case for case in run.cases}
    for case_id in sorted(set(seen) | set(expected), key=kind.case_sort_key):
        entry = expected.get(case_id)
        if entry is None:
            problems.append(f"{case_id}: {seen[case_id]} (not in the expected results: add it, with why if not a pass)")
            continue
        if case_id not in seen:
            problems.append(f"{case_id}: expected {entry['verdict']} but the case did not run (removed or renamed?)")
            continue
        if seen[case_id] not in accepted_verdicts(entry):
            why = entry.get("why", "")
            problems.append(
                f"{case_id}: expected {'/'.join(accepted_verdicts(entry))}, now {seen[case_id]} "
                f"({by_id[case_id].summary() or 'no details'})" + (f"; expected because: {why}" if why else "")
            )
    return problems


def write_expected(run: TargetRun, root: Path = ROOT, kind: MatrixKind = TARGETS) -> Path:
    """fixtures/expected/NAME.json from this run; explanations of unchanged verdicts are kept."""
    path = expected_path(run.target, root, kind)
    old: dict[str, dict[str, Any]] = {}
    if path.exists():
        old = load_expected(run.target, root, kind)
    cases: dict[str, dict[str, Any]] = {}
    for case in sorted(run.cases, key=lambda c: kind.case_sort_key(c.id)):
        previous = old.get(case.id)
        if previous and case.verdict in accepted_verdicts(previous):
            cases[case.id] = previous
            continue
        entry: dict[str, Any] = {"verdict": case.verdict}
        if case.verdict == "blocked":
            entry["why"] = " ".join(case.note.split())  # "blocked by FCGI-x.y-z: what it met": its own explanation
        elif case.verdict != "pass":
            entry["why"] = "TODO: " + (case.summary() or case.title)
        cases[case.id] = entry
    document = {
        kind.noun: run.target,
        "seen_with": run.versions,
        "note": kind.expected_note,
        "cases": cases,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    return path


# --- Markdown ---------------------------------------------------------------------------------------


def _anchor(case_id: str) -> str:
    return case_id.lower().replace(".", "-")


def _in_checkout(text: str) -> str:
    """Paths in the checkout written relative to it: the pages read the same from any clone."""
    return text.replace(f"{ROOT}/", "")


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _why(expected: Mapping[str, Mapping[str, Any]] | None, case_id: str) -> str:
    entry = (expected or {}).get(case_id) or {}
    return str(entry.get("why", ""))


def format_markdown(
    runs: Sequence[TargetRun], *, expected: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
    evidence_dir: str | None = None, kind: MatrixKind = TARGETS,
) -> str:
    """The matrix for docs/compatibility.md: cells link to docs/compat/NAME.md#case."""
    evidence_dir = evidence_dir or kind.evidence_dir_name
    cases = _case_rows(runs, kind)
    lines = [
        f"# {kind.title}",
        "",
        kind.markdown_intro(),
        "",
        kind.legend,
        "",
        f"## Deviations per {kind.noun}",
        "",
        f"Each requirement a {kind.noun} broke fails its own case once; the other cases that met it list it as also "
        "seen or are blocked by it.",
        "",
        *[line for run in runs for line in _markdown_deviations(run)],
        f"## {kind.plural.capitalize()}",
        "",
        *kind.markdown_subject_table(runs),
    ]
    lines += ["", "## Verdicts per case", ""]
    lines.append("| case | level | " + " | ".join(run.target for run in runs) + " |")
    lines.append("|---|---|" + "---|" * len(runs))
    for case_id, title, level in cases:
        cells = []
        for run in runs:
            found = next((c for c in run.cases if c.id == case_id), None)
            verdict = found.verdict if found else "missing"
            mark = MARKS.get(verdict, "?")
            if verdict in ("pass", "missing"):
                cells.append(mark)
                continue
            cells.append(f"[{mark} {verdict}]({evidence_dir}/{run.target}.md#{_anchor(case_id)})")
        lines.append(f"| {case_id} {_md_escape(title)} | {level} | " + " | ".join(cells) + " |")
    started = min((run.started for run in runs if run.started), default="")
    lines += ["", f"Generated {started[:10]}; {sum(len(run.cases) for run in runs)} case runs."]
    return "\n".join(lines) + "\n"


def _markdown_deviations(run: TargetRun) -> list[str]:
    """One target's root causes as a Markdown list item with its sub-items."""
    lines = format_deviation_lines(run.deviations())
    if not lines:
        return [f"- **{run.target}**: no deviations", ""]
    head, rest = lines[0], lines[1:]
    # A deviation's line, then its "also seen by" and "blocked" lines (indented deeper) under it.
    items = [("    - " if line.startswith("      ") else "  - ") + _md_escape(line.strip()) for line in rest]
    return [f"- **{run.target}**: {_md_escape(head)}", *items, ""]


def _case_rows(runs: Sequence[TargetRun], kind: MatrixKind = TARGETS) -> list[tuple[str, str, str]]:
    """The cases of the runs (not a fixed catalogue: a case added since shows as missing elsewhere)."""
    rows: dict[str, tuple[str, str, str]] = {}
    for run in runs:
        for case in run.cases:
            rows.setdefault(case.id, (case.id, case.title, case.level))
    return [rows[key] for key in sorted(rows, key=kind.case_sort_key)]


def _trim_trace(trace: str, per_connection: int = EVIDENCE_RECORDS, block_start: re.Pattern[str] | None = None) -> str:
    """Keep the head and tail of each connection's trace (a case may exchange thousands of records)."""
    out: list[str] = []
    block: list[str] = []

    def flush() -> None:
        if len(block) <= per_connection + 1:
            out.extend(block)
        else:
            head = per_connection // 2
            out.extend(block[: head + 1])
            out.append(f"    ... {len(block) - per_connection - 1} lines omitted ...")
            out.extend(block[-(per_connection - head):])
        block.clear()

    block_start = block_start or TARGETS.trace_block_start
    for line in trace.splitlines():
        if block_start.match(line) and block:
            flush()
        block.append(line)
    flush()
    return "\n".join(out)


def format_evidence_markdown(run: TargetRun, expected: Mapping[str, Mapping[str, Any]] | None = None,
                             kind: MatrixKind = TARGETS, matrix_name: str | None = None) -> str:
    """docs/compat/NAME.md: for each case that is not a pass, what was expected, seen, and exchanged."""
    # The named description, not the run's (its port changes every run; the committed file should not).
    lines = [f"# Evidence: {run.target}", "", f"{kind.noun.capitalize()}: {run.target} ({kind.describe(run.target)})", ""]
    if run.versions:
        lines.append("Packages: " + ", ".join(f"{p} {v}" for p, v in run.versions.items()))
        lines.append("")
    lines.append(kind.setup_line(run))
    lines.append("")
    lines.append(f"Every case that is not a pass, with the records exchanged ({kind.trace_legend}; "
                 f"long exchanges keep their head and tail). Back to the [matrix](../{matrix_name or kind.markdown_name}).")
    for case in sorted(run.cases, key=lambda c: kind.case_sort_key(c.id)):
        if case.verdict == "pass":
            continue
        lines += ["", f'<a id="{_anchor(case.id)}"></a>', "", f"## {case.id} {case.verdict}: {case.title}", ""]
        lines.append(f"Spec ({case.level}): {case.requirement}")
        lines.append("")
        why = _why(expected, case.id)
        if why:
            lines += [f"Why: {why}", ""]
        for index, item in enumerate(case.expected):
            lines.append(("- Expected: " if index == 0 else "  or: ") + item)
        if case.actual:
            lines.append("- Actual: " + " ".join(case.actual.split())[:600])
        if case.note:
            lines.append("- Note: " + " ".join(case.note.split())[:600])
        if case.trace:
            lines += ["", "```", _trim_trace(case.trace, block_start=kind.trace_block_start), "```"]
        if case.target_log.strip() and case.verdict in ("fail", "error"):
            lines += ["", f"{kind.log_label} (tail):", "", "```", _in_checkout(case.target_log.strip()[-800:]), "```"]
    return "\n".join(lines) + "\n"


# --- HTML -----------------------------------------------------------------------------------------------

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 6px;vertical-align:top}
th{background:#eee;cursor:pointer;position:sticky;top:0}
th.sorted-asc::after{content:" \\25B2"}th.sorted-desc::after{content:" \\25BC"}
td.pass{background:#e6f4e6}td.fail{background:#f8d7d7}td.warn{background:#fff0c2}
td.info{background:#e3eef9}td.unsupported{background:#f1f1f1;color:#666}td.error{background:#ead7f3}
details>summary{cursor:pointer}
pre{font-size:11px;max-width:70em;max-height:30em;overflow:auto;background:#fafafa;border:1px solid #ddd;padding:4px;
white-space:pre-wrap}
.counts td{text-align:right}
"""

_SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, column) {
    th.addEventListener('click', function () {
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var asc = !th.classList.contains('sorted-asc');
      table.querySelectorAll('th').forEach(function (h) { h.classList.remove('sorted-asc', 'sorted-desc'); });
      th.classList.add(asc ? 'sorted-asc' : 'sorted-desc');
      rows.sort(function (a, b) {
        var x = a.cells[column].getAttribute('data-key') || a.cells[column].textContent;
        var y = b.cells[column].getAttribute('data-key') || b.cells[column].textContent;
        return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""

_VERDICT_RANK = {"fail": "0", "error": "1", "warn": "2", "info": "3", "unsupported": "4", "pass": "5", "missing": "6"}


def _html_deviations(run: TargetRun) -> str:
    """One target's root causes: a line, then one item per broken requirement."""
    lines = format_deviation_lines(run.deviations())
    if not lines:
        return f"<p><b>{html.escape(run.target)}</b>: no deviations</p>"
    items = "".join(f"<li>{html.escape(line.strip())}</li>" for line in lines[1:])
    return f"<p><b>{html.escape(run.target)}</b>: {html.escape(lines[0])}</p><ul>{items}</ul>"


def _case_sort_key_text(case_id: str) -> str:
    return re.sub(r"\d+", lambda m: m.group(0).zfill(5), case_id)


def format_html(runs: Sequence[TargetRun], *, expected: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
                kind: MatrixKind = TARGETS) -> str:
    """A self-contained page: sortable columns, every cell expandable to its records exchanged."""
    e = html.escape
    title = f"fcgispec {kind.title[0].lower()}{kind.title[1:]}"
    out = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{e(title)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        kind.html_intro(),
        f"<h2>Deviations per {kind.noun}</h2>",
        *[_html_deviations(run) for run in runs],
        f"<table class='sortable counts'><thead><tr><th>{kind.noun}</th><th>description</th><th>packages</th>"
        + "".join(f"<th>{v}</th>" for v in VERDICT_ORDER)
        + f"<th>run time (s)</th><th>{kind.setup_heading}</th></tr></thead><tbody>",
    ]
    for run in runs:
        counts = run.counts()
        versions = ", ".join(f"{p} {v}" for p, v in run.versions.items())
        out.append(
            f"<tr><td>{e(run.target)}</td><td>{e(run.description or run.start_error)}</td><td>{e(versions)}</td>"
            + "".join(f"<td data-key='{counts[v]:05d}'>{counts[v]}</td>" for v in VERDICT_ORDER)
            + f"<td data-key='{run.wall_time:09.2f}'>{run.wall_time:.1f}</td><td>{e(run.capabilities)}</td></tr>"
        )
    out.append("</tbody></table><h2>Verdicts per case</h2>")
    out.append("<table class='sortable'><thead><tr><th>case</th><th>level</th>"
               + "".join(f"<th>{e(run.target)}</th>" for run in runs) + "</tr></thead><tbody>")
    for case_id, title, level in _case_rows(runs, kind):
        cells = [
            f"<td data-key='{e(_case_sort_key_text(case_id))}' id='{_anchor(case_id)}'><b>{e(case_id)}</b> {e(title)}</td>",
            f"<td>{e(level)}</td>",
        ]
        for run in runs:
            found = next((c for c in run.cases if c.id == case_id), None)
            verdict = found.verdict if found else "missing"
            key = _VERDICT_RANK.get(verdict, "9") + _case_sort_key_text(case_id)
            if found is None:
                cells.append(f"<td data-key='{key}'>?</td>")
                continue
            detail = [f"<b>{e(found.requirement)}</b>"]
            why = _why((expected or {}).get(run.target), case_id)
            if why:
                detail.append(f"<br><i>Why:</i> {e(why)}")
            for item in found.expected:
                detail.append(f"<br><i>Expected:</i> {e(item)}")
            if found.actual:
                detail.append(f"<br><i>Actual:</i> {e(found.actual)}")
            if found.note:
                detail.append(f"<br><i>Note:</i> {e(found.note)}")
            detail.append(f"<br><i>Duration:</i> {found.duration:.2f} s")
            if found.trace:
                detail.append(f"<pre>{e(found.trace)}</pre>")
            if found.target_log.strip() and verdict in ("fail", "error"):
                detail.append(f"<i>{e(kind.log_label)}:</i><pre>{e(found.target_log.strip())}</pre>")
            opened = " open" if verdict in ("fail", "error") and False else ""
            cells.append(
                f"<td class='{verdict}' data-key='{key}'><details{opened}><summary>{MARKS.get(verdict, '?')} {verdict}"
                f"</summary>{''.join(detail)}</details></td>"
            )
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    out.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(out) + "\n"


# --- command line ---------------------------------------------------------------------------------------


def format_summary(runs: Sequence[TargetRun], kind: MatrixKind = TARGETS) -> str:
    """The terminal's matrix: root causes, then a row of verdict counts per subject (and, for a kind
    whose subjects deviate in few cases, every fail, warn and error with what was seen)."""
    width = max(len(run.target) for run in runs)
    lines = []
    for run in runs:
        counts = run.counts()
        text = ", ".join(f"{counts[v]} {v}" for v in VERDICT_ORDER)
        depths = f"; passes: {run.pass_depths()}" if kind.shows_pass_depths else ""
        lines.append(f"  {run.target:<{width}}  {text}{depths}  ({run.wall_time:.0f} s)"
                     + (f"  [{run.start_error}]" if run.start_error else ""))
    # The root causes first, per subject: one line per broken requirement.
    deviations = [f"  {run.target}: {line.strip()}" for run in runs for line in format_deviation_lines(run.deviations())[:1]]
    listed: list[str] = []
    if kind.lists_deviating_cases:
        for run in runs:
            deviating = sorted((case for case in run.cases if case.verdict in ("fail", "warn", "error")),
                               key=lambda case: kind.case_sort_key(case.id))
            if deviating:
                listed.append(f"  {run.target}:")
                listed += [f"    {case.verdict:<5} {case.id}: {case.summary() or case.title}" for case in deviating]
        listed = ["Fails, warnings and errors:", *listed] if listed else []
    return "\n".join(deviations + lines + listed)


def build_parser() -> argparse.ArgumentParser:
    """The matrix's command line (usage errors: one line, exit 4)."""
    parser = CommandParser(
        prog="fcgispec matrix", description="Run the server suite against every named target (or, with --gateways, "
                                            "the gateway suite against every named gateway) and write the matrix.",
        epilog="exit status: 0 done, 1 with --check: a verdict differs from fixtures/expected, 2 interrupted, "
               "3 could not run, 4 usage error",
    )
    subjects = parser.add_mutually_exclusive_group()
    subjects.add_argument("--targets", default=None,
                          help=f"comma-separated targets (default: {','.join(ALL_TARGETS)})")
    subjects.add_argument("--gateways", nargs="?", const="all", default=None, metavar="NAME,...",
                          help="the gateway suite's matrix instead: comma-separated named gateways (alone, or 'all': "
                               "every one); its pages are gateways.html and gateways.md, its expected verdicts "
                               "fixtures/expected/gateways/, its committed Markdown docs/gateway-compatibility.md")
    parser.add_argument("--out", default=str(DEFAULT_OUT), metavar="DIR",
                        help=f"where runs/, index.html and compatibility.md go (gateways: gateway-runs/, "
                             f"gateways.html, gateways.md) (default {DEFAULT_OUT})")
    parser.add_argument("--jobs", type=positive_count, default=None,
                        help="subjects run at once (default: targets 4 or the number of cores if fewer; gateways 1, "
                             "since their cases have timing)")
    parser.add_argument("--case", action="append", default=[], metavar="PREFIX",
                        help="only the cases whose id is or starts with PREFIX (repeatable); a partial matrix, so "
                             "not with --update-docs or --update-expected")
    docs = parser.add_mutually_exclusive_group()
    docs.add_argument("--update-docs", action="store_true",
                      help=f"rewrite the committed {DOCS_FILE} and its evidence {EVIDENCE_DIR}/ (gateways: "
                           "docs/gateway-compatibility.md and docs/gateway-compat/; every one must run)")
    docs.add_argument("--docs", default=None, metavar="PATH",
                      help="write the Markdown matrix to PATH and its evidence in compat/ (gateways: "
                           "gateway-compat/) beside it (default: DIR/compatibility.md, gateways DIR/gateways.md)")
    docs.add_argument("--no-docs", action="store_true", help="write no Markdown, only the HTML and the runs")
    parser.add_argument("--fcgi-timeout", type=seconds, default=BASE_WAIT, metavar="SECONDS",
                        help="base wait, as for ./fcgispec (the server suite's; gateways wait as configured)")
    parser.add_argument("--update-expected", action="store_true",
                        help="rewrite fixtures/expected/NAME.json from this run (explanations of unchanged verdicts kept)")
    parser.add_argument("--check", action="store_true",
                        help="exit non-zero when a verdict differs from fixtures/expected/NAME.json")
    parser.add_argument("--run-one", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--from-runs", action="store_true",
                        help="do not run: rebuild the pages from the runs already in DIR/runs")
    return parser


def _read_runs(names: Sequence[str], out: Path, kind: MatrixKind = TARGETS) -> list[TargetRun]:
    """--from-runs: the runs already in OUT/runs, or UsageError naming what is missing or unreadable."""
    runs = []
    for name in names:
        path = out / kind.runs_dir_name / f"{name}.json"
        try:
            runs.append(TargetRun.from_dict(json.loads(path.read_text())))
        except OSError as error:
            raise UsageError(f"--from-runs: cannot read {path}: {error.strerror or error} "
                             "(run the matrix once without --from-runs)") from None
        except (ValueError, KeyError, TypeError) as error:
            raise UsageError(f"--from-runs: {path} is not a run of the matrix: {error}") from None
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: runs (or reads) the targets' runs, writes the matrix and evidence, checks expectations."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a usage error (4), already printed
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    try:
        return _run(args)
    except UsageError as error:
        print(f"{parser.prog}: {error}", file=sys.stderr)
        return EXIT_USAGE


def _kind(args: argparse.Namespace) -> tuple[MatrixKind, list[str]]:
    """Which matrix (targets or gateways) and which of its subjects; UsageError for an unknown one."""
    if args.gateways is not None:
        from harness.reports.gateway_matrix import GATEWAYS

        kind: MatrixKind = GATEWAYS
        given = args.gateways
        all_given = given.strip() == "all"
    else:
        kind = TARGETS
        given = args.targets if args.targets is not None else ",".join(ALL_TARGETS)
        all_given = False
    names = list(kind.names) if all_given else [name.strip() for name in given.split(",") if name.strip()]
    unknown = [name for name in names if name not in kind.names]
    if unknown or not names:
        raise UsageError(f"{kind.option}: unknown {', '.join(map(repr, unknown)) or 'empty list'}; "
                         f"one or more of {', '.join(kind.names)}")
    return kind, list(dict.fromkeys(names))


def _check_case_prefixes(prefixes: Sequence[str], kind: MatrixKind) -> None:
    """Every --case selects a case of the catalogue as it is now (a typo would run nothing)."""
    if not prefixes:
        return
    ids = kind.case_ids(ROOT)
    for prefix in prefixes:
        if not prefix.strip() or not select_case_ids(ids, [prefix]):
            raise UsageError(f"--case {prefix!r}: no {kind.noun} case's id is or starts with it")


def select_case_ids(case_ids: Sequence[str], prefixes: Sequence[str]) -> list[str]:
    """The ids --case PREFIX selects, as the suites' own --case does (harness/suite/case.py select_cases)."""
    if not prefixes:
        return list(case_ids)
    return [case_id for case_id in case_ids if any(_id_matches(case_id, prefix) for prefix in prefixes)]


def _run(args: argparse.Namespace) -> int:
    if args.run_one:
        if args.run_one not in ALL_TARGETS or not args.json:
            raise UsageError("--run-one NAME needs a known target and --json PATH")
        cases = None
        if args.case:
            cases = select_cases(load_cases([ROOT / "cases" / "server"]), args.case)
        try:
            run = run_target(args.run_one, ROOT, cases=cases, base_wait=args.fcgi_timeout)
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED  # the target was stopped; the matrix tells what happened
        path = Path(args.json)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(run.to_dict(), indent=1) + "\n")
        temporary.replace(path)
        return 0

    kind, names = _kind(args)
    docs_file = kind.docs_file
    if args.update_docs and is_installed(ROOT):
        raise UsageError(f"--update-docs rewrites the checkout's {docs_file}: this is the installed package "
                         "(write the matrix elsewhere with --docs PATH)")
    if args.update_docs and sorted(names) != sorted(kind.names):
        raise UsageError(f"--update-docs rewrites {docs_file}, the matrix of every {kind.noun}: {kind.every_one_hint} "
                         "(or write this matrix elsewhere with --docs PATH)")
    if args.case and (args.update_docs or args.update_expected):
        raise UsageError("--case runs part of the suite: not with --update-docs or --update-expected, which record "
                         "the whole of it")
    _check_case_prefixes(args.case, kind)
    # The child processes run in the checkout: the user's relative paths are made absolute here, from where
    # the command was given.
    out = check_writable_directory(Path(args.out).absolute())
    docs: Path | None
    if args.no_docs:
        docs = None
    elif args.update_docs:
        docs = ROOT / docs_file
    elif args.docs:
        docs = Path(args.docs).absolute()
        if docs.is_dir():
            raise UsageError(f"--docs {args.docs} is a directory: give the Markdown file's name")
        check_writable_directory(docs.parent)
    else:
        docs = out / kind.markdown_name
    jobs = args.jobs or kind.default_jobs()
    began = time.monotonic()
    if args.from_runs:
        runs = _read_runs(names, out, kind)
    else:
        try:
            runs = run_in_subprocesses(names, out, jobs=jobs, base_wait=args.fcgi_timeout, kind=kind, cases=args.case)
        except MatrixInterrupted as interrupted:
            done = ", ".join(interrupted.finished) or "none"
            print(f"matrix interrupted: runs of {len(interrupted.finished)} of {len(names)} {kind.plural} finished "
                  f"({done}; in {out / kind.runs_dir_name}), {len(interrupted.stopped)} stopped; the matrix and docs "
                  "were not rewritten", file=sys.stderr)
            return EXIT_INTERRUPTED
    elapsed = time.monotonic() - began

    if args.update_expected:
        for run in runs:
            if not run.start_error:
                print(f"written {write_expected(run, ROOT, kind)}", file=sys.stderr)
    expected = {run.target: load_expected(run.target, ROOT, kind) for run in runs
                if expected_path(run.target, ROOT, kind).exists()}

    out.mkdir(parents=True, exist_ok=True)
    html_path = out / kind.html_name
    html_path.write_text(format_html(runs, expected=expected, kind=kind))
    if docs is not None:
        evidence = docs.parent / kind.evidence_dir_name
        evidence.mkdir(parents=True, exist_ok=True)
        docs.write_text(format_markdown(runs, expected=expected, evidence_dir=kind.evidence_dir_name, kind=kind))
        for run in runs:
            (evidence / f"{run.target}.md").write_text(
                format_evidence_markdown(run, expected.get(run.target), kind, matrix_name=docs.name))
        print(f"written {docs} and {evidence}/", file=sys.stderr)

    print(f"{kind.title} ({elapsed:.0f} s):")
    print(format_summary(runs, kind))
    print(f"HTML: {html_path}")
    status = 0
    for run in runs:
        if run.target not in expected:
            continue
        problems = compare_with_expected(run, expected[run.target], kind)
        if problems and args.case:
            # A partial run: the cases it did not run are not missing.
            problems = [line for line in problems if "the case did not run" not in line]
        if problems:
            print(f"{run.target}: {len(problems)} verdicts differ from {expected_path(run.target, Path('.'), kind)}:")
            for line in problems:
                print(f"  {line}")
            status = 1 if args.check else status
    return status

if __name__ == "__main__":
    # The imported module's code runs, not this __main__ copy's: harness.reports.gateway_matrix imports
    # that module, and its classes and MatrixInterrupted must be the ones the matrix uses.
    from harness.reports import compat_matrix as _matrix

    for interrupt_signal in INTERRUPT_SIGNALS:
        signal.signal(interrupt_signal, _matrix._interrupt_once)
    try:
        sys.exit(_matrix.main())
    except KeyboardInterrupt:  # outside the runs (which say more): while reading or writing files
        print("matrix interrupted: no run was going; files being written may be incomplete", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
