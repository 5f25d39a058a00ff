"""What a seed file holds for each libFuzzer target, and how seed files are named and bounded.

The targets read their input differently (see the comment at the top of each .c file):
  codec          the bytes as they are: a header at offset 0, a name-value walk from offsets 0-7,
                 an 8-byte fixed body, one record's content; so a record stream, a name-value
                 stream and a BEGIN/END body are each a useful seed
  conn           3 bytes (configuration, rhythm, fault choice), then what a web server sends
  http_response  3 bytes (flags: bit 0 HEAD, bit 1 EOF; split step; max_data), then the response
(the HTTP layout is built by http-client/fuzz/http_seeds.py, beside its fuzzer).
A seed file is named by the SHA-1 of its content, as libFuzzer names corpus files, so names are
stable across runs and a seed libFuzzer already keeps in its corpus has the same name there.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

TARGETS = ("codec", "conn", "http_response")
MAX_SEED = 64 * 1024  # bigger inputs slow every execution down and add little coverage
# fuzz_codec looks at the start of its input (one header, one name-value walk, one record's
# content): a long stream adds nothing there, and libFuzzer takes the largest seed as the size
# its mutations may grow to, which would cost the codec half its executions.
SEED_BOUNDS = {"codec": 8 * 1024, "conn": MAX_SEED, "http_response": MAX_SEED}
HEADER_LEN = 8

# fuzz_conn's prefix for extracted streams: configuration 0 (multiplexing, max_reqs 4096, not
# overloaded), rhythm 0x1F (reads of 556 bytes, writes of 3001, 3 ms clock steps: a 64 KiB stream
# is fed in ~120 turns, well inside MAX_TURNS, and an execution stays cheap), no fault, so that
# every framing invariant is checked on the real traffic.
CONN_PREFIX = b"\x00\x1f\x00"

# Seed kinds: which invariant the bytes exercise first (tests/test_fuzz_seeds.py checks them).
STREAM = "stream"      # whole FastCGI records, back to back (conn: after the prefix)
PAIRS = "pairs"        # the content of a name-value stream (PARAMS, GET_VALUES, GET_VALUES_RESULT)
BODY = "body"          # an 8-byte fixed body (BEGIN_REQUEST, END_REQUEST, UNKNOWN_TYPE)
RESPONSE = "response"  # fuzz_http_response's prefix, then HTTP response bytes


class SeedSourceError(Exception):
    """A source that cannot give seeds (corrupt, empty, missing): the run stops, naming it."""


@dataclass(frozen=True)
class Seed:
    target: str  # one of TARGETS
    source: str  # where it came from, for the counts ("captures", "client scenarios", ...)
    kind: str    # STREAM, PAIRS, BODY or RESPONSE
    data: bytes  # the whole file, prefix included


def seed_name(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def whole_records_within(stream: bytes, limit: int) -> bytes:
    """The stream if it fits in limit bytes, else its longest prefix of whole records that does.

    Cutting at a record boundary keeps a truncated seed a well-framed stream (b'' when even the
    first record is longer than limit).
    """
    if len(stream) <= limit:
        return stream
    end = 0
    while end + HEADER_LEN <= len(stream):
        content_length, padding_length = struct.unpack(">HB", stream[end + 4 : end + 7])
        size = HEADER_LEN + content_length + padding_length
        if end + size > limit or end + size > len(stream):
            break
        end += size
    return stream[:end]


def conn_input(ws_stream: bytes) -> bytes:
    """A fuzz_conn input from what a web server sent (b'' when nothing fits the bound)."""
    body = whole_records_within(ws_stream, MAX_SEED - len(CONN_PREFIX))
    return CONN_PREFIX + body if body else b""


def write_seeds(seeds: Iterable[Seed], out_dir: Path) -> dict[str, dict[str, int]]:
    """Write each seed once, as out_dir/TARGET/SHA1; returns {target: {source: files}}.

    A seed given twice (same target, same bytes) counts for the first source that gave it.
    Empty or oversized seeds are a bug in the extractor, not something to skip quietly.
    """
    counts: dict[str, dict[str, int]] = {target: {} for target in TARGETS}
    written: set[tuple[str, str]] = set()
    for seed in seeds:
        if seed.target not in TARGETS:
            raise ValueError(f"unknown fuzz target {seed.target!r}")
        if not seed.data or len(seed.data) > SEED_BOUNDS[seed.target]:
            raise ValueError(f"{seed.source}: a {seed.target} seed of {len(seed.data)} bytes")
        directory = out_dir / seed.target
        directory.mkdir(parents=True, exist_ok=True)
        name = seed_name(seed.data)
        by_source = counts[seed.target]
        by_source.setdefault(seed.source, 0)
        if (seed.target, name) in written:
            continue
        written.add((seed.target, name))
        (directory / name).write_bytes(seed.data)
        by_source[seed.source] += 1
    return counts
