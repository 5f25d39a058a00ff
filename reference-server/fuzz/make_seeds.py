"""Writes seed inputs for the fuzz targets: well-formed streams a web server sends,
which the fuzzer then mutates. Run: /usr/bin/python3 reference-server/fuzz/make_seeds.py DIR
(scripts/fuzz takes them through extract_seeds.py, with the seeds from captures and cases)."""
from __future__ import annotations

import sys
from pathlib import Path


from harness.wire.codec import (
    KEEP_CONN,
    RecordType,
    Role,
    begin_request_body,
    encode_params,
    encode_record,
    stream_records,
)

# fuzz_conn reads a configuration byte, a pacing byte and a fault byte before the stream.
CONN_PREFIX = b"\x00\x10\x00"


def request(request_id: int, query: str, stdin: bytes = b"", role: int = Role.RESPONDER, data: bytes | None = None) -> bytes:
    params = encode_params([("QUERY_STRING", query), ("REQUEST_METHOD", "POST"), ("FCGI_DATA_LENGTH", str(len(data or b"")))])
    out = encode_record(RecordType.BEGIN_REQUEST, request_id, begin_request_body(role, KEEP_CONN))
    out += b"".join(stream_records(RecordType.PARAMS, request_id, params, chunk_sizes=7))
    out += b"".join(stream_records(RecordType.STDIN, request_id, stdin, chunk_sizes=5))
    if data is not None:
        out += b"".join(stream_records(RecordType.DATA, request_id, data))
    return out


def seeds() -> dict[str, bytes]:
    get_values = encode_record(
        RecordType.GET_VALUES, 0, encode_params([("FCGI_MAX_CONNS", ""), ("FCGI_MAX_REQS", ""), ("FCGI_MPXS_CONNS", "")])
    )
    return {
        "responder": request(1, "", b"hello"),
        "out": request(1, "out=100000&err=x&status=404"),
        "delay": request(1, "delay=20&app_status=3"),
        "echo": request(1, "echo=1", b"echo me" * 100),
        "authorizer": request(2, "", role=Role.AUTHORIZER),
        "filter": request(3, "", b"in", role=Role.FILTER, data=b"file data" * 50),
        "get_values": get_values + encode_record(200, 0, b""),
        "mpx": request(1, "delay=5") + request(2, "out=10") + encode_record(RecordType.ABORT_REQUEST, 1, b""),
        "reuse": request(1, "") * 4,
        "padded": encode_record(RecordType.GET_VALUES, 0, b"", padding_length=255, padding_byte=0xA5),
    }


def main() -> None:
    out_dir = Path(sys.argv[1])
    (out_dir / "conn").mkdir(parents=True, exist_ok=True)
    (out_dir / "codec").mkdir(parents=True, exist_ok=True)
    for name, stream in seeds().items():
        (out_dir / "conn" / name).write_bytes(CONN_PREFIX + stream)
        (out_dir / "codec" / name).write_bytes(stream)


if __name__ == "__main__":
    main()
