"""The exclude list: known deviations of a target, each with a reason.

File format (--exclude-file): one `CASE-ID  reason` a line, '#' starts a comment.
An id may be a prefix as in --case (FCGI-6.3 excludes the section). Excluded
cases still run: a failure is shown as excluded with its reason and does not
fail the run; a pass is reported as 'excluded but passed' so the list can be pruned.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Mapping

from harness.suite.case import _id_matches

# Every form --case takes: FCGI-3.3-7, FCGI-6.3 (a section), FCGI, CLI-REUSE-4, REPLAY, REPLAY-nginx-...,
# REG, REG-php-72185-... (an id or a prefix of ids: capitals, then anything after a hyphen).
_ID = re.compile(r"^[A-Z]+(?:-[0-9A-Za-z][0-9A-Za-z._-]*)?$")


class ExclusionError(ValueError):
    """A malformed exclude file (a typo there would silently exclude nothing)."""


class ExclusionTable(dict):  # type: ignore[type-arg]
    """{case id or prefix: reason}, remembering the file and line of each entry for warnings."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source
        self.lines: dict[str, int] = {}


def parse_exclusions(text: str, source: str = "exclude file") -> ExclusionTable:
    """{case id or prefix: reason} from the file's text."""
    table = ExclusionTable(source)
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        case_id, _, reason = line.partition(" ")
        if "\t" in case_id:
            case_id, _, rest = case_id.partition("\t")
            reason = f"{rest} {reason}"
        if not _ID.match(case_id):
            raise ExclusionError(
                f"{source}:{number}: {case_id!r} is not a case id like FCGI-3.3-7, FCGI-6.3, REPLAY-nginx-head or REG-php"
            )
        table[case_id] = reason.strip() or "no reason given"
        table.lines[case_id] = number
    return table


def load_exclusions(path: Path | str) -> ExclusionTable:
    if not str(path):
        raise ExclusionError("--exclude-file: the path is empty")
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ExclusionError(f"cannot read exclude file {path}: {error.strerror or error}") from None
    lines = data.split(b"\n")
    for number, line in enumerate(lines, 1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ExclusionError(
                f"{path}:{number}: not UTF-8 text (byte 0x{line[error.start]:02x} at column {error.start + 1})"
            ) from None
    return parse_exclusions(data.decode("utf-8"), str(path))


def exclusion_for(case_id: str, table: Mapping[str, str]) -> str | None:
    """The reason a case is excluded (the longest matching entry wins), or None."""
    matches = [entry for entry in table if _id_matches(case_id, entry)]
    return table[max(matches, key=len)] if matches else None


def unmatched_entries(table: Mapping[str, str], case_ids: Iterable[str]) -> list[str]:
    """One warning line per entry that excludes no case of the catalogue (a typo, or a case since renamed)."""
    ids = list(case_ids)
    source = getattr(table, "source", "exclude file")
    lines = getattr(table, "lines", {})
    return [
        f"{source}:{lines[entry]}: {entry!r} matches no case" if entry in lines else f"{source}: {entry!r} matches no case"
        for entry in table
        if not any(_id_matches(case_id, entry) for case_id in ids)
    ]
