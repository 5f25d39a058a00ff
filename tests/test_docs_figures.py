"""The figures the docs give agree with the expected verdicts the project's tests hold.

docs/compatibility.md's targets table (written by `fcgispec matrix`) counts each target's
verdicts; fixtures/expected/<target>.json says what each case's verdict must be (one verdict, or
a list where it may differ from run to run). A count outside what the expected verdicts allow
means one of the two is stale. The README gives no figures of its own, only that pointer.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.reports.compat_matrix import accepted_verdicts, load_expected

ROOT = Path(__file__).resolve().parent.parent
COUNTED = ("pass", "fail", "warn", "info", "unsupported", "error", "blocked")


def _targets_table() -> dict[str, dict[str, int]]:
    """target -> verdict -> count, from the '## Targets' table of docs/compatibility.md."""
    text = (ROOT / "docs" / "compatibility.md").read_text()
    section = text.split("## Targets", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    table = {}
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        row = dict(zip(header, cells))
        table[row["target"]] = {verdict: int(row[verdict]) for verdict in COUNTED if verdict in row}
    return table


TABLE = _targets_table()


@pytest.mark.parametrize("target", sorted(TABLE))
def test_compatibility_counts_are_what_the_expected_verdicts_allow(target: str) -> None:
    expected = load_expected(target)
    for verdict, count in TABLE[target].items():
        fixed = sum(1 for entry in expected.values() if accepted_verdicts(entry) == [verdict])
        possible = sum(1 for entry in expected.values() if verdict in accepted_verdicts(entry))
        assert fixed <= count <= possible, (
            f"docs/compatibility.md says {target} has {count} {verdict}; fixtures/expected/{target}.json allows "
            f"{fixed}..{possible}: re-run `fcgispec matrix --update-docs` or fix the expected file"
        )


def test_the_readme_gives_no_figures_of_its_own() -> None:
    readme = (ROOT / "README.md").read_text()
    assert not re.search(r"^\| *target *\| *pass *\|", readme, re.MULTILINE), "the README repeats the matrix's figures"
