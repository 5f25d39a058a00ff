"""Regressions as data: a transcript whose header holds the case's fields is a regression case.

Each cases/regressions/transcripts/NAME.transcript is the case REG-NAME: its run replays the
transcript against the target and judges the answers (harness/replay/cases.py check_replay_file),
and its header says the rest (docs/transcript-format.md, "Regression fields"):

    id: REG-NAME                       the case id; NAME is the file's name
    title: ... / requirement: ...      one line each, or repeated lines joined with a space
    level: required                    required, recommended or unspecified
    catches: FAULT, FAULT              the reference fault modes that reproduce the bug
    prerequisites: FCGI-x.y-z, ...     the requirements it relies on (a deviation of one blocks it)
    same-requirement-as: FCGI-x.y-z    the spec requirement the bug breaks: its deviation fails this case
    timeout: / needs-probe-app: / reference-args: / protocol-error:   the other Case fields (optional)
    bug-report: URL [what it is]       one per line, the first is the bug's own report
    bug-table-row: N, N                its rows in the table of real-world bugs (docs/bug-to-regression.md)
    symptom: / wire-pattern: / reproduced-by:   what the bug did, what the transcript holds, what fails

cases/regressions/transcript_regressions.py makes the Case objects with case_globals(); `fcgispec
new-regression` writes such a file (harness/replay/regression_skeleton.py).

Regressions stay code (a .py file in cases/regressions/) when no transcript replay can show the bug:
  REG-go-getvalues-stream, REG-php-66479-get-values-unknown-name: the GET_VALUES_RESULT is judged by
    the names it holds, and a second record must not follow within the quiet wait; a replay judges
    answers by their protocolStatus and framing, never by the names in a management answer;
  REG-hhvm-1690-connection-leak: the leak is the target's open descriptors, not anything on the wire;
  REG-hhvm-2933-truncated-post: what the application received is seen only in the probe app's report;
  REG-hhvm-4077-abort-ignored: END_REQUEST must come soon after FCGI_ABORT_REQUEST, a time bound a
    replay does not judge;
  REG-php-68571-crash-on-peer-close: the reset has to land while the application still writes.
The HTTP client regressions (client_regression()), which run a client suite scenario, are in
cases/client/regressions/ and run with the client suite.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from harness.suite.case import Case, case
from harness.capture.transcript import Transcript, TranscriptError, read_transcript
from harness.verdicts import Level
from harness.replay.cases import check_replay_file

SUFFIX = ".transcript"
ID_PREFIX = "REG-"
# The header keys of a regression, in the order they are written (before the capture's own metadata).
CASE_KEYS = ("id", "title", "level", "requirement", "catches", "same-requirement-as", "prerequisites", "timeout",
             "needs-probe-app", "reference-args", "protocol-error")
ABOUT_KEYS = ("bug-report", "bug-table-row", "symptom", "wire-pattern", "reproduced-by")
REGRESSION_KEYS = CASE_KEYS + ABOUT_KEYS
# Keys that hold one item per line (the others are text: repeated lines are joined with a space).
LIST_KEYS = ("bug-report",)
REQUIRED_KEYS = ("id", "title", "level", "requirement")
# Header lines longer than this are cut at spaces onto repeated keys.
WIDTH = 110
_YES = ("yes", "true", "1")
_NO = ("no", "false", "0", "")


class RegressionError(ValueError):
    """A regression transcript that cannot be a case; the message names the file."""


@dataclass(frozen=True)
class Regression:
    """One regression transcript: the case it is, and what its header says about the bug."""

    path: Path
    case: Case
    bug_reports: tuple[str, ...] = ()
    bug_table_rows: tuple[str, ...] = ()
    symptom: str = ""
    wire_pattern: str = ""
    reproduced_by: str = ""

    @property
    def source(self) -> str:
        """The link to the bug's own report (the first bug-report line, without what follows the link)."""
        return self.bug_reports[0].split(" ", 1)[0] if self.bug_reports else ""


def regression_id(name: str) -> str:
    """The case id of the regression file NAME.transcript."""
    return ID_PREFIX + name


def text_field(transcript: Transcript, key: str) -> str:
    """A text field of the header: its lines joined with a space ('' when it is not there)."""
    return " ".join(transcript.meta_values(key))


def _flag(transcript: Transcript, key: str, path: Path) -> bool:
    value = text_field(transcript, key).strip().lower()
    if value in _YES:
        return True
    if value in _NO:
        return False
    raise RegressionError(f"{path}: {key}: {value!r} is not yes or no")


def _items(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def read_regression(path: str | Path) -> Regression:
    """The regression of one transcript file: its Case (which replays the file) and its bug's description."""
    path = Path(path).resolve()
    try:
        transcript = read_transcript(path)
    except (OSError, TranscriptError) as error:
        raise RegressionError(f"{path}: {error}") from None
    missing = [key for key in REQUIRED_KEYS if not text_field(transcript, key).strip()]
    if missing:
        raise RegressionError(f"{path}: a regression transcript needs the header field(s) "
                              f"{', '.join(k + ':' for k in missing)} (docs/transcript-format.md)")
    case_id = text_field(transcript, "id").strip()
    expected_id = regression_id(path.name[: -len(SUFFIX)] if path.name.endswith(SUFFIX) else path.stem)
    if case_id != expected_id:
        raise RegressionError(f"{path}: id: {case_id} does not match the file name (it must be {expected_id})")
    level_text = text_field(transcript, "level").strip().lower()
    try:
        level = Level(level_text)
    except ValueError:
        raise RegressionError(f"{path}: level: {level_text!r} is not one of "
                              f"{', '.join(level.value for level in Level)}") from None
    timeout_text = text_field(transcript, "timeout").strip()
    try:
        timeout = float(timeout_text) if timeout_text else 10.0
    except ValueError:
        raise RegressionError(f"{path}: timeout: {timeout_text!r} is not a number of seconds") from None
    try:
        made = case(
            case_id,
            title=text_field(transcript, "title"),
            requirement=text_field(transcript, "requirement"),
            level=level,
            timeout=timeout,
            needs_probe_app=_flag(transcript, "needs-probe-app", path),
            catches=_items(text_field(transcript, "catches")),
            prerequisites=_items(text_field(transcript, "prerequisites")),
            same_requirement_as=_items(text_field(transcript, "same-requirement-as")),
            reference_args=tuple(shlex.split(text_field(transcript, "reference-args"))),
            protocol_error=_flag(transcript, "protocol-error", path),
        )(_replay_of(path))
    except ValueError as error:
        raise RegressionError(f"{path}: {error}") from None
    return Regression(
        path=path,
        case=made,
        bug_reports=tuple(transcript.meta_values("bug-report")),
        bug_table_rows=_items(text_field(transcript, "bug-table-row")),
        symptom=text_field(transcript, "symptom"),
        wire_pattern=text_field(transcript, "wire-pattern"),
        reproduced_by=text_field(transcript, "reproduced-by"),
    )


def _replay_of(path: Path):  # type: ignore[no-untyped-def]
    def run(ctx):  # type: ignore[no-untyped-def]
        # The file is read again at run time: a transcript edited since collection is replayed as it is now.
        return check_replay_file(ctx, path)

    run.__name__ = run.__qualname__ = re.sub(r"\W", "_", path.name[: -len(SUFFIX)])
    return run


def regression_files(directory: str | Path) -> list[Path]:
    """The regression transcripts of a directory (every NAME.transcript), in name order."""
    return sorted(Path(directory).glob("*" + SUFFIX))


def load_regressions(directory: str | Path) -> list[Regression]:
    """Every regression transcript of a directory, as regressions."""
    return [read_regression(path) for path in regression_files(directory)]


def case_globals(directory: str | Path) -> dict[str, Case]:
    """Module-level names for the cases of a directory's regression transcripts (a case file's globals())."""
    return {"case_" + re.sub(r"\W", "_", r.case.id): r.case for r in load_regressions(directory)}


# -- writing the header --------------------------------------------------------------------------------


def _lines_of(key: str, text: str, width: int = WIDTH) -> list[str]:
    """A text value cut at spaces into header lines that join back (with a space) into exactly the text."""
    text = text.strip()
    pieces: list[str] = []
    for word in text.split(" "):
        if pieces and len(key) + 2 + len(pieces[-1]) + 1 + len(word) <= width:
            pieces[-1] += " " + word
        else:
            pieces.append(word)
    if " ".join(pieces) != text or any(not piece or piece != piece.strip() for piece in pieces):
        return [text]  # a double space where it would be cut: one long line keeps it
    return pieces


def regression_meta(fields: Iterable[tuple[str, str | Sequence[str]]]) -> list[tuple[str, str]]:
    """Header lines for regression fields: (key, text) cut into lines, (key, [items]) one item a line."""
    meta: list[tuple[str, str]] = []
    for key, value in fields:
        if key not in REGRESSION_KEYS:
            raise ValueError(f"{key!r} is not a regression field ({', '.join(REGRESSION_KEYS)})")
        if isinstance(value, str):
            meta.extend((key, line) for line in _lines_of(key, value))
        else:
            meta.extend((key, " ".join(str(item).split())) for item in value)
    return meta


def regression_header(transcript: Transcript) -> list[tuple[str, str]]:
    """The regression fields of a transcript's header, as they are (the capture's own metadata left out)."""
    return [(key, value) for key, value in transcript.meta if key in REGRESSION_KEYS]


def with_header(transcript: Transcript, header: Sequence[tuple[str, str]]) -> Transcript:
    """The transcript with these regression fields first in its header, in place of any it had."""
    rest = [(key, value) for key, value in transcript.meta if key not in REGRESSION_KEYS]
    return Transcript(meta=[*header, *rest], connections=transcript.connections)
