"""Fixtures the project's own tests share."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from harness.targets.base import ReferenceTarget

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def spawn() -> Iterator[Callable[..., ReferenceTarget]]:
    """Starts reference responders with extra arguments (FCGISPEC_RESPONDER picks the build); stops them
    after the test."""
    started: list[ReferenceTarget] = []

    def start(*args: str) -> ReferenceTarget:
        target = ReferenceTarget(ROOT, args)
        target.start()
        started.append(target)
        return target

    yield start
    for target in started:
        target.stop()
