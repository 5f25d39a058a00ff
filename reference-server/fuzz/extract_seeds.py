"""Writes the seed corpora of the three fuzz targets from everything the project knows of real traffic.

    /usr/bin/python3 reference-server/fuzz/extract_seeds.py OUT_DIR [--cache DIR] [--root DIR]

OUT_DIR/codec, OUT_DIR/conn and OUT_DIR/http_response are emptied and filled with files named by
the SHA-1 of their content (seed_layout.py), then one line per target says how many seeds each
source gave. Sources:
  synthetic               make_seeds.py's hand-made streams (codec, conn)
  captures                fixtures/captures/**/*.transcript, real web servers (codec, conn)
  regression transcripts  cases/regressions/transcripts/*.transcript (codec, conn)
  regression cases        the regression cases written as code, run against the reference responder
  committed               http-client/fuzz/seeds/ (http_response)
  client scenarios        what cases/client/'s servers send, run against the reference client
The two live sources (they start the reference responder and client; the client scenarios take
seconds) are kept in --cache, keyed by a digest of the code and binaries they depend on, so a rerun
with nothing changed costs nothing. Any source that fails or gives no seed stops the run (exit 1).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Callable

FUZZ_DIR = Path(__file__).resolve().parent
ROOT = FUZZ_DIR.parents[1]
HTTP_FUZZ_DIR = ROOT / "http-client" / "fuzz"

import make_seeds
from harness.clients.adapters import REFERENCE_CLIENT
from harness.targets.base import TargetError, reference_binary
from harness.verdicts import HarnessError
from http_seeds import committed_inputs, scenario_inputs
from seed_layout import MAX_SEED, RESPONSE, STREAM, TARGETS, Seed, SeedSourceError, write_seeds
from seeds_from_regressions import regression_case_seeds
from seeds_from_transcripts import seeds_from_files, transcript_files

CACHE_VERSION = 1


def synthetic_seeds(root: Path) -> list[Seed]:
    streams = make_seeds.seeds().values()
    return [Seed("conn", "synthetic", STREAM, make_seeds.CONN_PREFIX + s) for s in streams] + [
        Seed("codec", "synthetic", STREAM, s) for s in streams
    ]


def capture_seeds(root: Path) -> list[Seed]:
    return seeds_from_files(transcript_files(root / "fixtures" / "captures"), "captures")


def regression_transcript_seeds(root: Path) -> list[Seed]:
    return seeds_from_files(transcript_files(root / "cases" / "regressions" / "transcripts"), "regression transcripts")


def client_scenario_seeds(root: Path) -> list[Seed]:
    inputs = scenario_inputs(MAX_SEED, root)
    return [Seed("http_response", "client scenarios", RESPONSE, data) for found in inputs.values() for data in found]


def committed_seeds(root: Path) -> list[Seed]:
    directory = root / HTTP_FUZZ_DIR.relative_to(ROOT) / "seeds"
    return [Seed("http_response", "committed", RESPONSE, data) for data in committed_inputs(MAX_SEED, directory)]


# name -> (the seeds, the files a live source's output depends on: None for a source cheap enough to redo)
SOURCES: dict[str, tuple[Callable[[Path], list[Seed]], Callable[[Path], list[Path]] | None]] = {
    "synthetic": (synthetic_seeds, None),
    "captures": (capture_seeds, None),
    "regression transcripts": (regression_transcript_seeds, None),
    "regression cases": (regression_case_seeds, lambda root: [
        *sorted((root / "cases" / "regressions").glob("*.py")), reference_binary(root)]),
    "committed": (committed_seeds, None),
    "client scenarios": (client_scenario_seeds, lambda root: [
        *sorted((root / "cases" / "client").glob("*.py")),
        Path(os.environ.get("FCGISPEC_HTTP_CLIENT") or root / REFERENCE_CLIENT)]),
}


def _digest(root: Path, name: str, inputs: list[Path]) -> str:
    """What a live source's seeds depend on: its own inputs, the harness, and this extractor."""
    digest = hashlib.sha256(f"{CACHE_VERSION} {name}".encode())
    code = [*sorted((root / "harness").rglob("*.py")), *sorted(FUZZ_DIR.glob("*.py")),
            *sorted(HTTP_FUZZ_DIR.glob("*.py"))]
    for path in [*inputs, *code]:
        digest.update(path.name.encode() + b"\0")  # content and name: the same build elsewhere is a hit
        digest.update(hashlib.sha256(path.read_bytes()).digest() if path.exists() else b"missing")
    return digest.hexdigest()


def _cached(cache: Path, name: str, key: str) -> list[Seed] | None:
    path = cache / (name.replace(" ", "-") + ".json")
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if saved.get("key") != key:
        return None
    return [Seed(target, name, kind, bytes.fromhex(data)) for target, kind, data in saved["seeds"]]


def _save(cache: Path, name: str, key: str, seeds: list[Seed]) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / (name.replace(" ", "-") + ".json")
    unique = sorted({(s.target, s.kind, s.data.hex()) for s in seeds})
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"key": key, "seeds": unique}))
    temporary.replace(path)


def collect(root: Path = ROOT, cache: Path | None = None, names: list[str] | None = None) -> list[Seed]:
    """Every seed of the named sources (all by default); SeedSourceError when one gives none."""
    seeds: list[Seed] = []
    for name in names or list(SOURCES):
        make, inputs = SOURCES[name]
        key = _digest(root, name, inputs(root)) if cache is not None and inputs is not None else None
        found = _cached(cache, name, key) if cache is not None and key is not None else None
        if found is None:
            try:
                found = make(root)
            except (HarnessError, TargetError, OSError) as error:
                raise SeedSourceError(f"{name}: {error}") from None
            if cache is not None and key is not None:
                _save(cache, name, key, found)
        if not found:
            raise SeedSourceError(f"{name}: no seeds")
        seeds += found
    return seeds


def extract(out_dir: Path, root: Path = ROOT, cache: Path | None = None) -> dict[str, dict[str, int]]:
    seeds = collect(root, cache)
    for target in TARGETS:  # generated content only: seeds of sources that changed must go
        shutil.rmtree(out_dir / target, ignore_errors=True)
    return write_seeds(seeds, out_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--cache", type=Path, help="keep the live sources' seeds here between runs")
    parser.add_argument("--root", type=Path, default=ROOT, help="the project tree to take the sources from")
    args = parser.parse_args(argv)
    try:
        counts = extract(args.out_dir, args.root, args.cache)
    except SeedSourceError as error:
        print(f"extract_seeds: {error}", file=sys.stderr)
        return 1
    for target, by_source in counts.items():
        parts = ", ".join(f"{source} {count}" for source, count in by_source.items())
        print(f"seeds for fuzz_{target}: {sum(by_source.values())} ({parts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
