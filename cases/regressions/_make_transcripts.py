"""Re-make the scripted transcripts of cases/regressions/transcripts/ (the wire pattern of each bug).

    /usr/bin/python3 cases/regressions/_make_transcripts.py [NAME...]

Each SCRIPT below is what the web server sends in the bug report, connection by connection (see
harness/replay/regression_skeleton.py record_script); it is sent through the recording proxy to the clean
reference responder, whose answers become the capture's application side. The regression's fields in the
header of the file it replaces (id, title, requirement, catches, ...) are kept. Not a case file (the
leading underscore keeps the collector away).
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent

from harness.suite.case_requests import begin_record
from harness.wire.codec import MANAGEMENT_REQUEST_ID, RecordType, Role, encode_params, encode_record, stream_records
from harness.wire.probe_app import probe_params, probe_query
from harness.replay.regression_skeleton import record_script
from harness.targets.base import ReferenceTarget
from harness.capture.transcript import read_transcript, write_transcript
from harness.replay.regressions import regression_header, with_header

OUT = Path(__file__).resolve().parent / "transcripts"


def begin(request_id: int = 1, keep: bool = True, role: int = Role.RESPONDER) -> bytes:
    return begin_record(request_id, role, keep)


def params(pairs, request_id: int = 1, *, padding: int = 0) -> bytes:
    """A PARAMS stream in one record (padded to a multiple of 8 as nginx does) and its terminator."""
    data = encode_params(pairs)
    pad = (-len(data)) % 8 if padding else 0
    return encode_record(RecordType.PARAMS, request_id, data, padding_length=pad) + encode_record(
        RecordType.PARAMS, request_id, b"")


def stdin(body: bytes = b"", request_id: int = 1, chunk: int = 8192, terminate: bool = True) -> bytes:
    return b"".join(stream_records(RecordType.STDIN, request_id, body, chunk_sizes=chunk, terminate=terminate))


def get(query: str = "", request_id: int = 1, keep: bool = True) -> bytes:
    """A whole GET, as nginx sends it: BEGIN, padded PARAMS, empty PARAMS, empty STDIN in one write."""
    return begin(request_id, keep) + params(probe_params(query), request_id, padding=1) + stdin(b"", request_id)


def get_values(*names: str) -> bytes:
    return encode_record(RecordType.GET_VALUES, MANAGEMENT_REQUEST_ID, encode_params((n, "") for n in names))


def malformed_params(pair: bytes, request_id: int = 1) -> bytes:
    return begin(request_id) + encode_record(RecordType.PARAMS, request_id, pair) + encode_record(
        RecordType.PARAMS, request_id, b"") + stdin(b"", request_id)


SCRIPTS = {
    # Seed: nginx with fastcgi_keep_conn reuses id 1 for every request on a kept connection.
    "go-a387f915-request-id-reuse": [[get(probe_query(n=1)), get(probe_query(n=2)), get(probe_query(n=3)), "FIN"]],
    "php-72185-empty-stdout-midstream": [[get(probe_query(out=20000), keep=False)]],
    "php-67583-two-end-requests": [[get(probe_query(n=1)), get(probe_query(n=2)), "FIN"]],
    "php-76922-close-after-get-values": [[get_values("FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"),
                                          get(probe_query(n=1)), "FIN"]],
    "php-1333-rst-after-last-response": [[get(probe_query(out=3000), keep=False)]],
    "hhvm-4951-get-values-hang": [[get_values("FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"), "FIN"]],
    "hhvm-2522-keep-conn-ignored": [[get(probe_query(n=1)), get(probe_query(n=2)), "FIN"]],
    # Yaws sent the empty STDIN twice; HHVM closed the connection.
    "yaws-283-second-empty-stdin": [[begin() + params(probe_params(probe_query(n=1))) + stdin() + stdin(),
                                     get(probe_query(n=2)), "FIN"]],
    "urweb-57-response-id-zero": [[get(probe_query(n=1)), "FIN"]],
    "protocol-fcgi-6-unterminated-stdout": [[get(probe_query(n=1)), "FIN"]],
    "hyperfastcgi-55-misframed-on-reuse": [[get(probe_query(out=3000)), get(probe_query(out=3000)), "FIN"]],
    # nginx before PR #1648 cut 128-byte parameter names to one length byte.
    "nginx-1648-128-byte-param-name": [[begin() + params(probe_params(probe_query(n=1), extra=[
        ("HTTP_X_" + "N" * 293, "300-byte name"), ("HTTP_X_SHORT", "v" * 127), ("HTTP_X_LONG", "w" * 128)]),
        padding=1) + stdin(), "FIN"]],
    "fastcgi-nim-1-post-over-40k": [[begin() + params(probe_params(probe_query(n=1), "POST",
                                                                   content_length=60000)) + stdin(b"p" * 60000),
                                     "FIN"]],
    "fcgi2-13-params-over-8k": [[begin() + params(probe_params(probe_query(n=1), extra=[
        ("HTTP_COOKIE", "c" * 10000)])) + stdin(), "FIN"]],
    "php-fpm-unknown-management-type": [[encode_record(100, MANAGEMENT_REQUEST_ID, b"\0" * 8),
                                          get(probe_query(n=1)), "FIN"]],
    "libfcgi-unknown-role": [[begin(role=9) + params(probe_params()) + stdin(), get(probe_query(n=2)), "FIN"]],
    # HHVM crashed on FCGI_ABORT_REQUEST: abort a request whose body is still coming, then reuse the connection.
    "hhvm-2240-abort-crash": [[begin() + params(probe_params(probe_query(n=1), "POST", content_length=100))
                               + stdin(b"x" * 10, terminate=False),
                               encode_record(RecordType.ABORT_REQUEST, 1),
                               get(probe_query(n=2)), "FIN"]],
    # Go net/http/fcgi before golang/go#11824 was fixed: a name length past the end of PARAMS panicked the server.
    "go-11824-malformed-params": [[malformed_params(b"\x7f\x01AB")]],
    # CVE-2025-23016: 4-byte lengths near 2^31 overflow nameLen + valueLen + 2 in libfcgi's ReadParams.
    "libfcgi-cve-2025-23016-params-length-overflow": [[malformed_params(
        struct.pack(">II", 0xFFFFFFFF, 0xFFFFFFFF) + b"A" * 16)]],
}


def main(names: list[str]) -> int:
    target = ReferenceTarget(ROOT, ["--quiet"])
    target.start()
    try:
        for name in names or list(SCRIPTS):
            path = OUT / f"{name}.transcript"
            header = regression_header(read_transcript(path)) if path.exists() else []
            if not header:
                print(f"{name}: no regression fields to keep: fill in the header (docs/transcript-format.md)",
                      file=sys.stderr)
            meta = [("source", "fcgispec scripted web server (cases/regressions/_make_transcripts.py)"),
                    ("app", f"reference ({target.binary.relative_to(ROOT)})")]
            transcript = with_header(record_script(("127.0.0.1", target.port), SCRIPTS[name], meta), header)
            OUT.mkdir(exist_ok=True)
            write_transcript(transcript, path)
            print(f"{name}: {sum(len(c.items) for c in transcript.connections)} items", file=sys.stderr)
    finally:
        target.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
