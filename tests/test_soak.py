"""A short soak of the reference responder (bench/soak does the full million): kept connections, id 1
reused on every request; the responder's fd count stays constant and its RSS grows by less than 1 MiB."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_soak():
    loader = importlib.machinery.SourceFileLoader("bench_soak", str(ROOT / "bench" / "soak"))
    spec = importlib.util.spec_from_loader("bench_soak", loader)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["bench_soak"] = module
    loader.exec_module(module)
    return module


bench_soak = _load_soak()


@pytest.fixture(scope="module", autouse=True)
def built() -> None:
    for path in (bench_soak.LOAD, bench_soak.RESPONDER):
        if not path.exists():
            pytest.skip(f"{path} not built (cmake --build build)")


@pytest.mark.parametrize(
    "query, stdin",
    [("out=4096", 0), ("", 16384)],
    ids=["get-4k-body", "post-16k-stdin-json-report"],
)
def test_soak_fd_constant_rss_flat(query: str, stdin: int) -> None:
    result = bench_soak.soak(requests=100_000, connections=4, query=query, stdin=stdin, warmup=10_000)
    detail = f"{result.summary()}\n{result.curve()}\n{result.load_line}"
    assert result.errors == 0, detail
    assert result.final is not None and result.final.answered >= 100_000, detail
    assert len(result.fd_counts) == 1, detail
    assert result.rss_growth_kib < bench_soak.RSS_LIMIT_KIB, detail
    assert result.after is not None and result.before is not None and result.after.fds == result.before.fds, detail
