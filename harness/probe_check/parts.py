"""The parts of the probe contract (docs/probe-app.md), each with requests of known inputs and a check.

A check returns what it saw when the part holds, raises Wrong when the app reported something
else, and Missing when the part cannot be checked. `limitation` is the --probe-limitations key
that excuses the part (then it is not exercised: the suite will not rely on it either); `cases`
are the suite's cases whose verdicts rely on the part.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

from harness.probe_check.exchange import Answer, Missing, Prober, Wrong, cgi_of
from harness.targets.liveness import DETECTION_BODY, detect_probe_app
from harness.wire.connection import Response
from harness.wire.codec import (
    ProtocolStatus,
    RecordType,
    Role,
    begin_request_body,
    decode_end_request,
    decode_params,
    encode_params,
    encode_record,
    preview_bytes,
    stream_records,
)
from harness.wire.probe_app import ProbeReport, params_as_judged, pattern_bytes, probe_query, sha256_hex

# Every byte but NUL, in a value; NUL in a value and in a name (a C-string platform loses it).
BINARY_WITHOUT_NUL = bytes(range(1, 256))
ODD_BYTE_PAIRS: tuple[tuple[bytes, bytes], ...] = (
    (b"FCGISPEC_BINARY", BINARY_WITHOUT_NUL),
    (b"FCGISPEC_EMPTY_VALUE", b""),
    (b"", b"value of the empty name"),
    (b"FCGISPEC_HIGH_\xe9\xff_NAME", b"latin-1 \xe9, not UTF-8 \xc3"),
    (b"FCGISPEC_PUNCT.NAME[1] =x", b"a=b&c=d; e"),
    (b"FCGISPEC_NUL_VALUE", bytes(range(256))),
    (b"FCGISPEC_NUL_\x00_NAME", b"\x00value starting with NUL\x00"),
)
# Long enough for 4-byte lengths and several records, short of the 64 KiB of PARAMS some servers
# stop at (uwsgi): how much a server takes is the suite's to judge (FCGI-3.4-1, FCGI-3.4-5).
LARGE_VALUE_LENGTH = 30000
LARGE_NAME_LENGTH = 300
MANY_PAIRS = 100  # uwsgi takes about 120 params at most
PARAMS_RECORD_SIZE = 16384
# (stdin length, STDIN record size): empty, a byte, one record, across records, past 64 KiB, 1 MiB.
STDIN_SIZES: tuple[tuple[int, int | None], ...] = ((0, None), (1, None), (8, None), (8191, 1000), (65537, None),
                                                  (1024 * 1024 + 3, 65528))
STDERR_TEXT = "fcgispec stderr line, 46 bytes long with a LF\n"
STDERR_REPEAT = 1000
OUTPUT_LENGTHS = (0, 1, 100000)
APP_STATUSES = (938, 0)
DELAY_MS = 400
# More than the 64 KiB an app may read at once before it echoes; then the rest after the echo began.
ECHO_FIRST = 70000
# A rest small enough not to wedge a server that is not full-duplex (fcgiwrap), which the suite judges.
ECHO_REST = 30000
AUTHORIZER_TOKEN = "Bearer fcgispec"
AUTHORIZER_OMITS = (b"CONTENT_LENGTH", b"PATH_INFO", b"PATH_TRANSLATED", b"SCRIPT_NAME")
FILTER_DATA_LENGTH = 100003
FILTER_QUIET_SECONDS = 0.25


@dataclass(frozen=True)
class Part:
    name: str
    what: str
    check: Callable[[Prober], str]
    limitation: str | None = None
    cases: tuple[str, ...] = ()


def _bytes(text: bytes | str) -> bytes:
    return text if isinstance(text, bytes) else text.encode("latin-1")


def _shown(data: bytes) -> str:
    return f"{len(data)} bytes {preview_bytes(data, 40)}"


def _sent(params: list[tuple[bytes | str, bytes | str]]) -> list[tuple[bytes, bytes]]:
    return decode_params(encode_params(params))


def _judged_view(prober: Prober, report: ProbeReport, sent: list[tuple[bytes, bytes]], *keys: str) -> tuple[list, list]:
    """The reported and sent params as the suite judges them, excused by those of keys the target declares."""
    declared = [key for key in keys if prober.limitation(key)]
    names = {name for name, _ in sent}
    unreported = prober.target.param_unreported
    return (params_as_judged(report.params, names, declared, unreported),
            params_as_judged(sent, names, declared, unreported))


def _expect_value(report: ProbeReport, name: bytes, value: bytes) -> None:
    values = [v for n, v in report.params if n == name]
    if not values:
        raise Wrong(f"param {preview_bytes(name, 40)} = {_shown(value)}", "no param of that name in the report")
    if values[0] != value:
        raise Wrong(f"param {preview_bytes(name, 40)} = {_shown(value)}", _shown(values[0]))


def _expect_stdin(answer: Answer, report: ProbeReport, body: bytes) -> None:
    expected = (len(body), sha256_hex(body))
    if (report.stdin_length, report.stdin_sha256) != expected:
        raise Wrong(f"stdin_length {expected[0]}, stdin_sha256 {expected[1][:16]}…",
                    f"stdin_length {report.stdin_length}, stdin_sha256 {report.stdin_sha256[:16]}…")
    cgi = answer.cgi()
    headers = (cgi.header("X-Probe-Stdin-Length"), cgi.header("X-Probe-Stdin-Sha256"))
    if headers != (str(expected[0]), expected[1]):
        raise Wrong(f"X-Probe-Stdin-Length: {expected[0]} and X-Probe-Stdin-Sha256: {expected[1][:16]}…",
                    f"{headers[0]!r} and {headers[1]!r}")


# --- the parts' checks ----------------------------------------------------------------------


def check_detection(prober: Prober) -> str:
    detection = detect_probe_app(prober.target, prober.timeout)
    if not detection.found:
        raise Wrong(f"a probe report of the {len(DETECTION_BODY)}-byte body (POST status=200 with CONTENT_LENGTH)",
                    detection.reason)
    return "the suite's detection request (a POST with CONTENT_LENGTH) gets a probe report"


def check_report(prober: Prober) -> str:
    answer = prober.ask(prober.params())
    report = answer.report()
    if report.role != "responder":
        raise Wrong('"role":"responder"', f'"role":{report.role!r}')
    _expect_stdin(answer, report, b"")
    return f"a GET gets Status 200 and a JSON report: role responder, {len(report.params)} params, empty stdin"


def check_params(prober: Prober) -> str:
    extra = [(f"FCGISPEC_PARAM_{index:02d}", f"value {index}") for index in range(12)]
    params = prober.params(probe_query(status=200), extra=extra)
    report = prober.ask(params).report()
    reported, sent = _judged_view(prober, report, _sent(params), "params-all")
    missing = sorted(set(sent) - set(reported))
    added = sorted(set(reported) - set(sent))
    if missing or added:
        def names(pairs: list) -> str:
            return ", ".join(preview_bytes(name, 30) + "=" + preview_bytes(value, 20) for name, value in pairs[:4]) + (
                f" and {len(pairs) - 4} more" if len(pairs) > 4 else "")
        raise Wrong(f"the {len(sent)} params sent, no more, no fewer",
                    "; ".join(filter(None, (missing and f"not reported: {names(missing)}",
                                            added and f"params that were not sent: {names(added)}"))))
    excused = " (params-all: names the platform hides or adds left out)" if prober.limitation("params-all") else ""
    return f"all {len(sent)} params sent are reported, none added{excused}"


def check_params_order(prober: Prober) -> str:
    extra = [("FCGISPEC_ORDER_Z", "1"), ("FCGISPEC_ORDER_A", "2"), ("FCGISPEC_ORDER_M", "3"), ("FCGISPEC_ORDER_B", "4")]
    params = list(reversed(prober.params(probe_query(status=200)))) + extra
    report = prober.ask(params).report()
    reported, sent = _judged_view(prober, report, _sent(params), "params-all")
    # Only the names both sent and reported: which are missing or added is the params-all part's to say.
    sent_set, reported_set = {name for name, _ in sent}, {name for name, _ in reported}
    reported_names = [name for name, _ in reported if name in sent_set]
    sent_names = [name for name, _ in sent if name in reported_set]
    for place, (got, wanted) in enumerate(zip(reported_names, sent_names), start=1):
        if got != wanted:
            raise Wrong(f"params in the order received ({preview_bytes(wanted, 30)} at place {place})",
                        f"{preview_bytes(got, 30)} at place {place}")
    return f"{len(sent_names)} params reported in the order received (not sorted)"


def check_params_duplicates(prober: Prober) -> str:
    extra = [("FCGISPEC_DUPLICATE", "first"), ("FCGISPEC_BETWEEN", "x"), ("FCGISPEC_DUPLICATE", "second")]
    report = prober.ask(prober.params(probe_query(status=200), extra=extra)).report()
    values = [value for name, value in report.params if name == b"FCGISPEC_DUPLICATE"]
    if values != [b"first", b"second"]:
        raise Wrong("FCGISPEC_DUPLICATE reported twice: 'first', then 'second'", f"values {values}")
    return "a name sent twice is reported twice, in order"


def check_params_bytes(prober: Prober) -> str:
    # One request per pair: a server that loses one of them (an empty name...) does not hide the others.
    wrong: list[str] = []
    for name, value in _reportable(prober, ODD_BYTE_PAIRS):
        try:
            _expect_value(prober.ask(prober.params(probe_query(status=200), extra=[(name, value)])).report(), name, value)
        except Wrong as pair_wrong:
            wrong.append(f"for {preview_bytes(name, 30)}: {pair_wrong.reported}")
    if wrong:
        raise Wrong("every name and value as sent (one pair per request: 0x01-0xFF, NUL, an empty name, an empty "
                    "value, '.', '=', '[', ' ' in a name)", "; ".join(wrong))
    return "bytes 0x00-0xFF in names and values, an empty name and an empty value are reported as sent"


def _reportable(prober: Prober, pairs: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The pairs a probe app can report: with params-all declared, not those its platform keeps from it."""
    if not prober.limitation("params-all"):
        return list(pairs)
    return [(name, value) for name, value in pairs if not prober.target.param_unreported(name)]


def check_params_large(prober: Prober) -> str:
    large_name = ("FCGISPEC_LONG_NAME_" + "N" * LARGE_NAME_LENGTH)[:LARGE_NAME_LENGTH].encode()
    extra = [(b"FCGISPEC_LARGE_VALUE", pattern_bytes(LARGE_VALUE_LENGTH)[::-1]), (large_name, b"long name")]
    extra += [(f"FCGISPEC_MANY_{i:03d}".encode(), pattern_bytes(100 + i % 26)[i % 26:]) for i in range(MANY_PAIRS)]
    params = prober.params(probe_query(status=200), extra=extra)
    records = _whole_pair_records(params, PARAMS_RECORD_SIZE)
    report = prober.ask(params, params_records=records, timeout=prober.timeout * 2).report()
    for name, value in _reportable(prober, extra):
        _expect_value(report, name, value)
    size = len(encode_params(params))
    return (f"a {LARGE_VALUE_LENGTH}-byte value, a {LARGE_NAME_LENGTH}-byte name and {MANY_PAIRS} more pairs "
            f"({size} bytes of PARAMS in {len(records)} records) are reported as sent")


def _whole_pair_records(params: list[tuple[bytes | str, bytes | str]], limit: int) -> list[bytes]:
    """PARAMS contents of whole pairs, each at most limit bytes: no pair straddles two records,
    which some servers mishandle (the suite's FCGI-3.3-10 judges that, not the probe app)."""
    contents: list[bytes] = [b""]
    for pair in params:
        encoded = encode_params([pair])
        if contents[-1] and len(contents[-1]) + len(encoded) > limit:
            contents.append(b"")
        contents[-1] += encoded
    return contents


def check_stdin(prober: Prober) -> str:
    for length, record_size in STDIN_SIZES:
        body = pattern_bytes(length + 5)[5:][::-1]
        how = f"a POST of {length} bytes with CONTENT_LENGTH" + (f" in {record_size}-byte records" if record_size else "")
        try:
            answer = prober.ask(prober.params("", "POST", content_length=length), body, stdin_record_size=record_size,
                                timeout=prober.timeout * 2)
            _expect_stdin(answer, answer.report(), body)
        except Wrong as wrong:
            raise Wrong(f"{wrong.expected} for {how}", wrong.reported) from None
    return f"STDIN of {', '.join(str(length) for length, _ in STDIN_SIZES)} bytes is reported with its length and SHA-256"


def check_stdin_content_length(prober: Prober) -> str:
    for body, content_length, how in ((pattern_bytes(100), None, "100 bytes of STDIN without CONTENT_LENGTH"),
                                      (pattern_bytes(300), 100, "300 bytes of STDIN with CONTENT_LENGTH 100")):
        try:
            answer = prober.ask(prober.params("", "POST", content_length=content_length), body)
            _expect_stdin(answer, answer.report(), body)
        except Wrong as wrong:
            raise Wrong(f"{wrong.expected} for {how}", wrong.reported) from None
    return "all of STDIN is reported, without CONTENT_LENGTH and past it"


def check_short_stdin(prober: Prober) -> str:
    answer = prober.ask(prober.params("", "POST", content_length=100), b"x" * 10)
    cgi = answer.cgi()
    if cgi.status != 400 or cgi.header("X-Probe-Error") is None:
        raise Wrong("Status 400 with an X-Probe-Error header (10 bytes of STDIN, CONTENT_LENGTH 100)",
                    f"Status {cgi.status}, X-Probe-Error {cgi.header('X-Probe-Error')!r}")
    return "STDIN shorter than CONTENT_LENGTH is refused with 400 and X-Probe-Error"


def check_status(prober: Prober) -> str:
    query = probe_query(status=404)
    answer = prober.ask(prober.params(query, extra=[("FCGISPEC_TEXT", "no NUL")]))
    cgi = answer.cgi()
    if cgi.header("Status") is None or cgi.status != 404:
        raise Wrong("a Status: 404 header (status=404)", f"Status: {cgi.header('Status')}")
    report = answer.report(404)
    _expect_value(report, b"QUERY_STRING", query.encode())
    return "status=404 gives a Status: 404 header and still the report"


def check_out(prober: Prober) -> str:
    for length in OUTPUT_LENGTHS:
        body = prober.ask(prober.params(probe_query(out=length))).cgi().body
        if body != pattern_bytes(length):
            raise Wrong(f"out={length}: a {length}-byte body, byte i being 'a' + i % 26",
                        f"a body of {_shown(body)}")
    return f"out=N gives N bytes of the a-z pattern for N = {', '.join(map(str, OUTPUT_LENGTHS))}"


def check_err(prober: Prober) -> str:
    answer = prober.ask(prober.params(probe_query(err=STDERR_TEXT)))
    if answer.stderr != STDERR_TEXT.encode():
        raise Wrong(f"FCGI_STDERR {STDERR_TEXT!r} (err=TEXT)", f"FCGI_STDERR of {_shown(answer.stderr)}")
    answer = prober.ask(prober.params(probe_query(err=STDERR_TEXT, err_repeat=STDERR_REPEAT)))
    expected = STDERR_TEXT.encode() * STDERR_REPEAT
    if answer.stderr != expected:
        raise Wrong(f"FCGI_STDERR of {len(expected)} bytes (err=TEXT&err_repeat={STDERR_REPEAT})",
                    f"{len(answer.stderr)} bytes" + (" with other bytes" if len(answer.stderr) == len(expected) else ""))
    return f"err=TEXT arrives on FCGI_STDERR as TEXT, err_repeat={STDERR_REPEAT} repeats it"


def check_app_status(prober: Prober) -> str:
    for status in APP_STATUSES:
        end = prober.ask(prober.params(probe_query(app_status=status))).response.end
        if end is None or end.app_status != status:
            raise Wrong(f"END_REQUEST appStatus {status} (app_status={status})",
                        "a malformed END_REQUEST" if end is None else f"appStatus {end.app_status}")
    return f"app_status=N sets END_REQUEST's appStatus (N = {', '.join(map(str, APP_STATUSES))})"


def check_delay(prober: Prober) -> str:
    answer = prober.ask(prober.params(probe_query(delay=DELAY_MS)), timeout=prober.timeout + DELAY_MS / 1000)
    answer.report()
    if answer.seconds < DELAY_MS / 1000 * 0.95:
        raise Wrong(f"the answer {DELAY_MS} ms after STDIN ended (delay={DELAY_MS})",
                    f"the answer after {answer.seconds * 1000:.0f} ms")
    return f"delay={DELAY_MS} answers after {answer.seconds * 1000:.0f} ms"


def check_echo(prober: Prober) -> str:
    body = pattern_bytes(ECHO_FIRST + ECHO_REST + 3)[3:]
    params = prober.params(probe_query(echo=1), "POST", content_length=len(body))
    conn = prober.target.connect(timeout=prober.timeout, label="probe-check echo")
    try:
        conn.send_records([encode_record(RecordType.BEGIN_REQUEST, 1, begin_request_body(Role.RESPONDER, 0))]
                          + stream_records(RecordType.PARAMS, 1, encode_params(params))
                          + stream_records(RecordType.STDIN, 1, body[:ECHO_FIRST], terminate=False))
        # Read while STDIN is still open: the echo of its first part should begin now.
        early: list = []
        until = time.monotonic() + prober.timeout
        while time.monotonic() < until and conn.closed_how is None:
            early += conn.drain(0.05)
            if any(r.type == RecordType.END_REQUEST for r in early) or _echoed_body(early):
                break
        if any(r.type == RecordType.END_REQUEST for r in early) or conn.closed_how is not None:
            raise Wrong(f"the request answered once STDIN ends ({ECHO_FIRST} of {len(body)} bytes sent)",
                        "END_REQUEST or a close before STDIN ended")
        conn.send_raw(b"".join(stream_records(RecordType.STDIN, 1, body[ECHO_FIRST:], chunk_sizes=16384)),
                      timeout=prober.timeout)
        response = conn.read_response(1, prober.timeout)
    finally:
        conn.close()
    cgi = cgi_of(_stdout_of(early) + response.stdout)
    if cgi.body != body:
        raise Wrong(f"the {len(body)} bytes of STDIN echoed as the body", f"a body of {_shown(cgi.body)}")
    if not _echoed_body(early):
        raise Wrong(f"the echo to begin before STDIN ended (echo=1 echoes STDIN as it arrives; {ECHO_FIRST} bytes sent)",
                    f"{len(_stdout_of(early))} bytes of STDOUT within {prober.timeout:g}s, none of them echoed STDIN")
    return f"echo=1 echoes STDIN as it arrives ({len(body)} bytes, intact)"


def _stdout_of(records: list) -> bytes:
    return b"".join(r.content for r in records if r.type == RecordType.STDOUT and r.request_id == 1)


def _echoed_body(records: list) -> bytes:
    """What of the body (after the CGI headers) these STDOUT records carry."""
    stdout = _stdout_of(records)
    for separator in (b"\r\n\r\n", b"\n\n"):
        if separator in stdout:
            return stdout.split(separator, 1)[1]
    return b""


def _role_refused(answer: Answer, role: str) -> None:
    end = answer.response.end
    if end is not None and end.protocol_status == ProtocolStatus.UNKNOWN_ROLE:
        raise Missing(f"the target does not play the {role} role (END_REQUEST UNKNOWN_ROLE): the suite reports "
                      "its case unsupported")


def check_authorizer(prober: Prober) -> str:
    base = [(n, v) for n, v in prober.params() if _bytes(n) not in AUTHORIZER_OMITS]
    allowed = prober.ask(base + [("HTTP_AUTHORIZATION", AUTHORIZER_TOKEN)], role=Role.AUTHORIZER)
    _role_refused(allowed, "Authorizer")
    cgi = allowed.cgi()
    variables = [(n, v) for n, v in cgi.headers if n.lower().startswith("variable-")]
    if cgi.status != 200 or ("Variable-FCGISPEC_USER", "probe") not in variables:
        raise Wrong(f"Status 200 with Variable-FCGISPEC_USER: probe for {AUTHORIZER_TOKEN!r}",
                    f"Status {cgi.status} with {variables or 'no Variable- headers'}")
    denied = prober.ask(base, role=Role.AUTHORIZER).cgi()
    if denied.status == 200:
        raise Wrong("a status other than 200 without HTTP_AUTHORIZATION (403)", "Status 200")
    return f"Authorizer: 200 with Variable-FCGISPEC_USER: probe for the token, {denied.status} without"


def check_filter(prober: Prober) -> str:
    data = pattern_bytes(FILTER_DATA_LENGTH)
    form = b"form=fcgispec"
    params = prober.params("", "POST", [("FCGI_DATA_LAST_MOD", "1700000000"), ("FCGI_DATA_LENGTH", str(len(data)))],
                           content_length=len(form))
    conn = prober.target.connect(timeout=prober.timeout, label="probe-check filter")
    try:
        conn.send_records([encode_record(RecordType.BEGIN_REQUEST, 1, begin_request_body(Role.FILTER, 0))]
                          + stream_records(RecordType.PARAMS, 1, encode_params(params))
                          + stream_records(RecordType.STDIN, 1, form[:4], terminate=False))
        # A Filter writes nothing before its STDIN has ended (FCGI-6.4-1 holds the server to that).
        early = conn.drain(FILTER_QUIET_SECONDS)
        refused = Answer(Response(1, early), 0.0)
        if early and early[-1].type == RecordType.END_REQUEST and len(early[-1].content) == 8:
            refused.response.end = decode_end_request(early[-1].content)
            _role_refused(refused, "Filter")
        if early or conn.closed_how is not None:
            raise Wrong(f"nothing while the Filter's STDIN is open ({FILTER_QUIET_SECONDS:g}s)",
                        ", ".join(record.describe() for record in early) or f"a close ({conn.closed_how})")
        conn.send_raw(b"".join(stream_records(RecordType.STDIN, 1, form[4:])
                               + stream_records(RecordType.DATA, 1, data, chunk_sizes=32768)), timeout=prober.timeout)
        answer = Answer(conn.read_response(1, prober.timeout), 0.0)
    finally:
        conn.close()
    cgi = answer.cgi()
    if cgi.body != data:
        raise Wrong(f"the {len(data)} bytes of FCGI_DATA as the body", f"a body of {_shown(cgi.body)}")
    if cgi.header("X-Filter-Stdin-Length") != str(len(form)):
        raise Wrong(f"X-Filter-Stdin-Length: {len(form)}", f"X-Filter-Stdin-Length: {cgi.header('X-Filter-Stdin-Length')}")
    return f"Filter: the {len(data)} bytes of FCGI_DATA come back as the body, X-Filter-Stdin-Length {len(form)}"


REPORT_READERS = ("FCGI-3.3-3", "FCGI-3.3-4", "FCGI-3.3-7", "FCGI-3.3-8", "FCGI-3.3-9", "FCGI-3.3-10", "FCGI-3.3-11",
                  "FCGI-3.4-1", "FCGI-3.4-2", "FCGI-3.4-3", "FCGI-3.4-5", "FCGI-3.4-6", "FCGI-5.1-1", "FCGI-5.2-2",
                  "FCGI-5.3-2", "FCGI-5.5-5", "FCGI-6.1-1", "REG-hhvm-2933-truncated-post")

# Each part's name is its --probe-limitations key where it has one.
PARTS: tuple[Part, ...] = (
    Part("detection", "the suite's detection request gets a probe report", check_detection,
         cases=("every [probe] verdict of a cmd:, tcp: or unix: target",)),
    Part("report", "a GET gets Status 200 and the JSON report", check_report, cases=REPORT_READERS),
    Part("params-all", "every param sent is reported, none added", check_params, "params-all",
         ("FCGI-3.3-10", "FCGI-3.3-11", "FCGI-3.4-5", "FCGI-5.2-2")),
    Part("params-order", "params are reported in the order received", check_params_order, "params-order",
         ("FCGI-3.3-10", "FCGI-3.3-11", "FCGI-3.4-5")),
    Part("params-duplicates", "a repeated name is reported each time", check_params_duplicates, "params-duplicates",
         ("FCGI-3.4-6",)),
    Part("params-bytes", "names and values byte for byte", check_params_bytes, "params-bytes",
         ("FCGI-3.4-6", "FCGI-6.1-1")),
    Part("params-large", "long names and values, many pairs", check_params_large,
         cases=("FCGI-3.4-1", "FCGI-3.4-2", "FCGI-3.4-3", "FCGI-3.4-5")),
    Part("stdin", "STDIN's length and SHA-256, empty to 1 MiB", check_stdin,
         cases=("FCGI-3.3-3", "FCGI-3.3-4", "FCGI-3.3-7", "FCGI-3.3-8", "FCGI-3.3-9", "FCGI-3.3-10", "FCGI-3.3-11",
                "FCGI-5.1-1", "FCGI-5.3-2", "FCGI-5.5-5", "REG-hhvm-2933-truncated-post")),
    Part("stdin-content-length", "all of STDIN, whatever CONTENT_LENGTH says", check_stdin_content_length,
         "stdin-content-length"),
    Part("short-stdin", "STDIN shorter than CONTENT_LENGTH: 400", check_short_stdin, "short-stdin", ("FCGI-5.3-3",)),
    Part("status", "status=NNN sets the Status header", check_status, cases=("FCGI-6.1-1",)),
    Part("out", "out=N: N bytes of the a-z pattern", check_out,
         cases=("FCGI-3.3-1", "FCGI-3.3-5", "FCGI-3.3-12", "FCGI-3.5-4", "FCGI-5.3-5", "FCGI-5.3-6", "FCGI-5.4-1",
                "FCGI-5.5-4", "FCGI-A-1")),
    Part("err", "err=TEXT on FCGI_STDERR, err_repeat=N", check_err, "err", ("FCGI-5.3-4", "FCGI-5.3-5")),
    Part("app_status", "app_status=N sets END_REQUEST appStatus", check_app_status, "app_status", ("FCGI-6.2-2",)),
    Part("delay", "delay=MS holds the answer", check_delay,
         cases=("FCGI-4.1-7", "FCGI-5.4-1", "FCGI-5.4-3", "REG-hhvm-4077-abort-ignored")),
    Part("authorizer", "the Authorizer role: allow the token, deny the rest", check_authorizer, "authorizer",
         ("FCGI-6.3-1",)),
    Part("filter", "the Filter role: FCGI_DATA echoed", check_filter, "filter", ("FCGI-6.4-1",)),
    # Last: a server that is not full-duplex may stay wedged after it (fcgiwrap, FCGI-6.2-1).
    Part("echo", "echo=1 echoes STDIN as it arrives", check_echo, "echo", ("FCGI-5.2-1", "FCGI-5.3-1", "FCGI-6.2-1")),
)
