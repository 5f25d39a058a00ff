"""FastCGI seeds from transcripts: the golden captures and the regression transcripts.

Per connection: what the web server sent (fuzz_conn, and fuzz_codec as a record stream), what the
application answered (fuzz_codec: a valid stream of the types a server sends), and, for
fuzz_codec's other entry points, each name-value stream's content and each 8-byte fixed body.
Transcripts are read with harness/capture/transcript.py; one that does not parse, whose write sizes do not
add up, or that holds no traffic raises SeedSourceError naming the file: a broken capture must stop
the run, not quietly shrink the corpus.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

from harness.wire.codec import Record, RecordType
from harness.capture.transcript import (
    APP_TO_WS,
    WS_TO_APP,
    Connection,
    Transcript,
    TranscriptError,
    check_writes,
    read_transcript,
)
from seed_layout import (
    BODY,
    PAIRS,
    SEED_BOUNDS,
    STREAM,
    Seed,
    SeedSourceError,
    conn_input,
    whole_records_within,
)

_FIXED_BODIES = (RecordType.BEGIN_REQUEST, RecordType.END_REQUEST, RecordType.UNKNOWN_TYPE)
_DISCRETE_PAIRS = (RecordType.GET_VALUES, RecordType.GET_VALUES_RESULT)


def pair_streams(records: list[Record]) -> list[bytes]:
    """The contents of the name-value streams among the records: each request's PARAMS joined up
    to its empty record, and each GET_VALUES(_RESULT) record (a discrete record, not a stream)."""
    found: list[bytes] = []
    open_params: dict[int, bytearray] = {}
    for record in records:
        if record.type == RecordType.PARAMS:
            if record.content:
                open_params.setdefault(record.request_id, bytearray()).extend(record.content)
            elif record.request_id in open_params:
                found.append(bytes(open_params.pop(record.request_id)))
        elif record.type in _DISCRETE_PAIRS and record.content:
            found.append(record.content)
    found.extend(bytes(content) for content in open_params.values())  # a stream the capture cut short
    return found


def connection_seeds(connection: Connection, source: str) -> list[Seed]:
    seeds: list[Seed] = []
    ws_stream = connection.stream(WS_TO_APP)
    if ws_stream:
        conn = conn_input(ws_stream)
        if conn:
            seeds.append(Seed("conn", source, STREAM, conn))
    for direction in (WS_TO_APP, APP_TO_WS):
        stream = whole_records_within(connection.stream(direction), SEED_BOUNDS["codec"])
        if stream:
            seeds.append(Seed("codec", source, STREAM, stream))
        records = connection.records(direction)
        seeds += [Seed("codec", source, PAIRS, content) for content in pair_streams(records)
                  if len(content) <= SEED_BOUNDS["codec"]]
        seeds += [Seed("codec", source, BODY, r.content) for r in records
                  if r.type in _FIXED_BODIES and len(r.content) == 8]
    return seeds


def transcript_seeds(transcript: Transcript, source: str) -> list[Seed]:
    return [seed for connection in transcript.connections for seed in connection_seeds(connection, source)]


def transcript_files(directory: Path) -> list[Path]:
    files = sorted(directory.rglob("*.transcript"))
    if not files:
        raise SeedSourceError(f"{directory}: no *.transcript files")
    return files


def seeds_from_files(paths: list[Path], source: str) -> list[Seed]:
    """Seeds from each transcript file; SeedSourceError on the first that is corrupt or empty."""
    seeds: list[Seed] = []
    for path in paths:
        try:
            transcript = read_transcript(path)
        except (TranscriptError, UnicodeDecodeError) as error:
            raise SeedSourceError(f"{path}: not a readable transcript: {error}") from None
        problems = [problem for connection in transcript.connections for problem in check_writes(connection)]
        if problems:
            raise SeedSourceError(f"{path}: inconsistent capture: {problems[0]}")
        found = transcript_seeds(transcript, source)
        if not any(seed.target == "conn" for seed in found):
            raise SeedSourceError(f"{path}: no web-server-to-application traffic to make seeds of")
        seeds += found
    return seeds
