"""The exclude list: known deviations of a target, each with a reason.

File format (--exclude-file): one `CASE-ID  reason` a line, '#' starts a comment.
An id may be a prefix as in --case (FCGI-6.3 excludes the section). Excluded
cases still run: a failure is shown as excluded with its reason and does not
fail the run; a pass is reported as 'excluded but passed' so the list can be pruned.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

from harness.suite.case import _id_matches

# FCGI-3.3-7, FCGI-6.3 (a section), CLI-REUSE-4, REPLAY-nginx-..., REG-php-72185-...
_ID = re.compile(r"^[A-Z]+(?:-[A-Z]+)*-[0-9A-Za-z][0-9A-Za-z.-]*$")


class ExclusionError(ValueError):
    """A malformed exclude file (a typo there would silently exclude nothing)."""


def parse_exclusions(text: str, source: str = "exclude file") -> dict[str, str]:
    """{case id or prefix: reason} from the file's text."""
    table: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        case_id, _, reason = line.partition(" ")
        if "\t" in case_id:
            case_id, _, rest = case_id.partition("\t")
            reason = f"{rest} {reason}"
        if not _ID.match(case_id):
            raise ExclusionError(f"{source}:{number}: {case_id!r} is not a case id like FCGI-3.3-7 or CLI-REUSE-4")
        table[case_id] = reason.strip() or "no reason given"
    return table


def load_exclusions(path: Path | str) -> dict[str, str]:
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ExclusionError(f"cannot read exclude file {path}: {error}") from None
    return parse_exclusions(text, str(path))


def exclusion_for(case_id: str, table: Mapping[str, str]) -> str | None:
    """The reason a case is excluded (the longest matching entry wins), or None."""
    matches = [entry for entry in table if _id_matches(case_id, entry)]
    return table[max(matches, key=len)] if matches else None
