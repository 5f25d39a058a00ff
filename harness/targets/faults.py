"""The reference responder's fault modes: each replays a known real-world bug.

A failing case names the faults it is known to catch (Case.catches); the report
shows their descriptions as 'Looks like: ...' so a maintainer sees which known
bug their server resembles.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from harness.targets.base import reference_binary

ROOT = Path(__file__).resolve().parents[2]


def parse_fault_list(text: str) -> dict[str, str]:
    """{name: description} from `fcgispec-responder --fault list` ('NAME  description' a line)."""
    faults: dict[str, str] = {}
    for line in text.splitlines():
        name, _, description = line.strip().partition(" ")
        if name:
            faults[name] = description.strip()
    return faults


@functools.lru_cache(maxsize=1)
def known_faults(binary: str | None = None) -> dict[str, str]:
    """The fault list of the built reference responder; {} when it is not built (names only then)."""
    path = Path(binary) if binary else reference_binary(ROOT)
    if not path.exists():
        return {}
    try:
        listing = subprocess.run([str(path), "--fault", "list"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {}
    return parse_fault_list(listing.stdout)


def describe_faults(names: tuple[str, ...] | list[str]) -> list[str]:
    """'name: description' (or just the name when unknown) for each fault."""
    table = known_faults()
    return [f"{name}: {table[name]}" if table.get(name) else name for name in names]
