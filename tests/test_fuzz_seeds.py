"""The fuzzers' seed corpora (reference-server/fuzz/extract_seeds.py): every source gives seeds for
each target it feeds, seeds have the layout their target reads, files are named by content and
bounded, and a corrupt capture stops the extraction instead of quietly giving fewer seeds."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.clients.adapters import REFERENCE_CLIENT
from harness.wire.codec import RecordReader, decode_params
from harness.targets.base import reference_binary

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ROOT / "reference-server" / "fuzz"
HTTP_FUZZ = ROOT / "http-client" / "fuzz"

import extract_seeds
from seed_layout import (
    BODY,
    CONN_PREFIX,
    PAIRS,
    RESPONSE,
    SEED_BOUNDS,
    STREAM,
    Seed,
    SeedSourceError,
    seed_name,
    write_seeds,
)
from seeds_from_transcripts import seeds_from_files, transcript_files

PYTHON = "/usr/bin/python3"
# Each source and the targets it must feed.
EXPECTED = {
    "synthetic": {"codec", "conn"},
    "captures": {"codec", "conn"},
    "regression transcripts": {"codec", "conn"},
    "regression cases": {"codec", "conn"},
    "committed": {"http_response"},
    "client scenarios": {"http_response"},
}
CAPTURE = ROOT / "fixtures" / "captures" / "nginx" / "sequential-keepalive.transcript"


@pytest.fixture(scope="module")
def seeds() -> list[Seed]:
    """All sources, the live ones included (the reference responder and client of build/)."""
    for binary in (reference_binary(ROOT), ROOT / REFERENCE_CLIENT):
        if not binary.exists():
            pytest.fail(f"not built: {binary} (cmake --build build)")
    return extract_seeds.collect(ROOT)


def _records_of(data: bytes) -> tuple[int, bytes]:
    reader = RecordReader()
    return len(reader.feed(data)), reader.pending


def test_every_source_feeds_its_targets(seeds: list[Seed]) -> None:
    assert set(EXPECTED) == set(extract_seeds.SOURCES)
    for source, targets in EXPECTED.items():
        for target in ("codec", "conn", "http_response"):
            count = sum(1 for s in seeds if s.source == source and s.target == target)
            if target in targets:
                assert count > 0, f"no {target} seed from {source}"
            else:
                assert count == 0, f"{count} {target} seeds from {source}, which does not feed it"


def test_every_capture_and_regression_transcript_gives_a_conn_seed() -> None:
    for directory in (ROOT / "fixtures" / "captures", ROOT / "cases" / "regressions" / "transcripts"):
        for path in transcript_files(directory):
            assert any(s.target == "conn" for s in seeds_from_files([path], "x")), path


def test_stream_seeds_are_whole_record_streams(seeds: list[Seed]) -> None:
    streams = [s for s in seeds if s.kind == STREAM]
    assert {s.target for s in streams} == {"codec", "conn"}
    for seed in streams:
        data = seed.data
        if seed.target == "conn":
            if seed.source != "synthetic":  # make_seeds.py keeps its own prefix
                assert data[:3] == CONN_PREFIX
            data = data[3:]
        count, pending = _records_of(data)
        assert count > 0 and pending == b"", f"{seed.source} {seed.target} seed {seed_name(seed.data)}: " \
                                             f"{count} records, {len(pending)} bytes left over"


def test_app_side_streams_are_codec_seeds(seeds: list[Seed]) -> None:
    """What the application answered (STDOUT, END_REQUEST...) is a codec seed too."""
    answers = [s for s in seeds if s.source == "captures" and s.target == "codec" and s.kind == STREAM
               and s.data[1] in (6, 7, 3)]  # the first record is STDOUT, STDERR or END_REQUEST
    assert answers


def test_pairs_and_bodies_have_the_codec_layout(seeds: list[Seed]) -> None:
    pairs = [s for s in seeds if s.kind == PAIRS]
    assert pairs and all(s.target == "codec" for s in pairs)
    for seed in pairs:
        if seed.source == "captures":  # real web servers send well-formed pairs (regressions may not)
            assert decode_params(seed.data)
    bodies = [s for s in seeds if s.kind == BODY]
    assert bodies and all(s.target == "codec" and len(s.data) == 8 for s in bodies)


def test_http_seeds_are_prefixed_responses(seeds: list[Seed]) -> None:
    responses = [s for s in seeds if s.target == "http_response"]
    assert all(s.kind == RESPONSE for s in responses)
    for seed in responses:
        flags, step, max_data = seed.data[:3]
        assert flags <= 3 and step % 17 and max_data % 9, seed.data[:40]
        assert seed.data[3:].startswith((b"HTTP/1.0 ", b"HTTP/1.1 ")), seed.data[:40]
    committed = {p.read_bytes() for p in (HTTP_FUZZ / "seeds").iterdir()}
    assert committed <= {s.data[3:] for s in responses if s.source == "committed"}
    # The scenario servers' own bytes: a 204 with a body, a response and junk in one write, 1xx...
    scenario = b"\n".join(s.data[3:] for s in responses if s.source == "client scenarios")
    for sample in (b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello", b"HTTP/1.1 103 Early Hints"):
        assert sample in scenario


def test_seed_files_named_by_content_deduplicated_bounded(seeds: list[Seed], tmp_path: Path) -> None:
    counts = write_seeds(seeds + seeds, tmp_path)
    for target, by_source in counts.items():
        files = list((tmp_path / target).iterdir())
        assert len(files) == sum(by_source.values()) == len({s.data for s in seeds if s.target == target})
        for path in files:
            data = path.read_bytes()
            assert path.name == hashlib.sha1(data).hexdigest()
            assert 0 < len(data) <= SEED_BOUNDS[target]


def test_names_are_stable_from_run_to_run() -> None:
    first = {seed_name(s.data) for s in extract_seeds.collect(ROOT, names=["captures", "synthetic"])}
    again = {seed_name(s.data) for s in extract_seeds.collect(ROOT, names=["captures", "synthetic"])}
    assert first == again


def _corrupt(text: str, how: str) -> str:
    lines = text.split("\n")
    if how == "bad record line":
        index = next(i for i, line in enumerate(lines) if " ws->app PARAMS " in line)
        lines[index] = lines[index].replace("PARAMS", "PARAMZ")
    elif how == "content cut short":
        index = next(i for i, line in enumerate(lines) if line.startswith("    = "))
        del lines[index]
    elif how == "write sizes do not add up":
        index = next(i for i, line in enumerate(lines) if " ws->app write " in line)
        lines[index] += "1"
    elif how == "no traffic":
        lines = lines[: lines.index("")]  # the header only
    return "\n".join(lines)


@pytest.mark.parametrize("how, why", [
    ("bad record line", "unknown record type 'PARAMZ'"),
    ("content cut short", "but the content lines hold"),
    ("write sizes do not add up", "ws->app writes add up to"),
    ("no traffic", "no web-server-to-application traffic"),
    ("binary junk", "not a readable transcript"),
])
def test_a_corrupt_capture_stops_the_extraction(tmp_path: Path, how: str, why: str) -> None:
    captures = tmp_path / "fixtures" / "captures" / "nginx"
    captures.mkdir(parents=True)
    shutil.copy(ROOT / "fixtures" / "captures" / "h2o" / "head.transcript", captures / "good.transcript")
    bad = captures / "zz-bad.transcript"
    if how == "binary junk":
        bad.write_bytes(b"\xff\xfe\x00garbage")
    else:
        bad.write_text(_corrupt(CAPTURE.read_text(), how))
    with pytest.raises(SeedSourceError) as raised:
        extract_seeds.collect(tmp_path, names=["captures"])
    assert "zz-bad.transcript" in str(raised.value) and why in str(raised.value)


def test_no_captures_at_all_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "fixtures" / "captures").mkdir(parents=True)
    with pytest.raises(SeedSourceError, match="no \\*.transcript files"):
        extract_seeds.collect(tmp_path, names=["captures"])


def test_the_command_fails_loudly_on_a_corrupt_capture(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "fixtures" / "captures", tree / "fixtures" / "captures")
    target = tree / "fixtures" / "captures" / "apache2" / "head.transcript"
    target.write_text(_corrupt(target.read_text(), "bad record line"))
    # Run as scripts/fuzz runs it: the harness and the seed tools on PYTHONPATH.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(p) for p in (ROOT, FUZZ, HTTP_FUZZ)))
    done = subprocess.run([PYTHON, str(FUZZ / "extract_seeds.py"), str(tmp_path / "out"), "--root", str(tree)],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 1
    assert "apache2/head.transcript" in done.stderr and "PARAMZ" in done.stderr
    assert not (tmp_path / "out" / "conn").exists()  # nothing half-written


def test_live_sources_are_cached_until_their_inputs_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[int] = []
    script = tmp_path / "scenario.py"
    script.write_text("one")

    def make(root: Path) -> list[Seed]:
        runs.append(1)
        return [Seed("http_response", "live", RESPONSE, b"\0\1\1HTTP/1.1 200 OK\r\n\r\n")]

    monkeypatch.setitem(extract_seeds.SOURCES, "live", (make, lambda root: [script]))
    cache = tmp_path / "cache"
    first = extract_seeds.collect(ROOT, cache, names=["live"])
    assert extract_seeds.collect(ROOT, cache, names=["live"]) == first and len(runs) == 1
    script.write_text("two")
    extract_seeds.collect(ROOT, cache, names=["live"])
    assert len(runs) == 2
