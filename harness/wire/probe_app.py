"""The probe-app contract: how to ask a probe responder something, how to read its answer.

A probe app (the reference responder's RESPONDER role, or a target's own
probe) is steered by QUERY_STRING (k=v&k=v, percent-encoded values):
status=NNN, out=N (N bytes of a-z pattern instead of the report), err=TEXT
(on STDERR), delay=MS, app_status=N, echo=1 (echo STDIN to STDOUT as it
arrives). Its default body is a JSON report of what it received.

Some probe apps live at a path of their own (php-fpm runs the PHP file named by
SCRIPT_FILENAME, fcgiwrap the CGI): such a target says which in
`target.script_filename`, and whoever builds probe params passes it on as probe_params'
script_filename (a case calls ctx.probe_params, which does so; None: the default path).
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from dataclasses import dataclass
from typing import Callable, Collection, Iterable, Mapping, Sequence

from harness.wire.codec import CodecError

PROBE_SCRIPT_NAME = "/probe"
PROBE_SCRIPT_FILENAME = "/fcgispec/probe"


class ProbeError(CodecError):
    """A response that does not follow the CGI or probe-report format."""


def probe_query(**controls: object) -> str:
    """A QUERY_STRING from keyword controls, e.g. probe_query(delay=5000)."""
    return urllib.parse.urlencode({key: str(value) for key, value in controls.items()})


def probe_params(
    query: str = "",
    method: str = "GET",
    extra: Iterable[tuple[bytes | str, bytes | str]] = (),
    *,
    content_length: int | None = None,
    script_filename: str | None = None,
) -> list[tuple[bytes | str, bytes | str]]:
    """The CGI params a web server would send for a request to the probe app.

    CONTENT_LENGTH is included when there is a body (content_length given);
    extra pairs are appended after the standard ones, in order. SCRIPT_FILENAME is
    script_filename (the target's, see target.script_filename), else /fcgispec/probe.
    """
    params: list[tuple[bytes | str, bytes | str]] = [
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_SOFTWARE", "fcgispec"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PORT", "80"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REMOTE_PORT", "40000"),
        ("REQUEST_METHOD", method),
        ("REQUEST_URI", PROBE_SCRIPT_NAME + (f"?{query}" if query else "")),
        ("SCRIPT_NAME", PROBE_SCRIPT_NAME),
        ("SCRIPT_FILENAME", script_filename or PROBE_SCRIPT_FILENAME),
        ("DOCUMENT_ROOT", "/fcgispec"),
        ("QUERY_STRING", query),
    ]
    if content_length is not None:
        params.append(("CONTENT_LENGTH", str(content_length)))
        params.append(("CONTENT_TYPE", "application/octet-stream"))
    params.extend(extra)
    return params


@dataclass(frozen=True)
class CgiResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    # The output began with an HTTP status line (non-parsed headers), read as its Status.
    nph_status_line: str | None = None

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None


def parse_cgi(stdout: bytes) -> CgiResponse:
    """Split CGI output into status, headers and body (Status: defaults to 200)."""
    separator = b"\r\n\r\n"
    head_end = stdout.find(separator)
    if head_end < 0:
        separator = b"\n\n"
        head_end = stdout.find(separator)
    if head_end < 0:
        raise ProbeError(f"no end of CGI headers in {len(stdout)} bytes of STDOUT")
    head = stdout[:head_end].decode("latin-1")
    body = stdout[head_end + len(separator) :]
    headers: list[tuple[str, str]] = []
    lines = head.replace("\r\n", "\n").split("\n")
    nph = lines[0] if lines[0].startswith("HTTP/") else None
    if nph is not None:
        # Not CGI (FCGI-6.1-1 judges that); its code still says what the app answered.
        lines[0] = "Status: " + nph.partition(" ")[2]
    for line in lines:
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise ProbeError(f"malformed CGI header line {line!r}")
        headers.append((name.strip(), value.strip()))
    status = 200
    for name, value in headers:
        if name.lower() == "status":
            try:
                status = int(value.split()[0])
            except (ValueError, IndexError):
                raise ProbeError(f"malformed Status header {value!r}") from None
    return CgiResponse(status, headers, body, nph)


@dataclass(frozen=True)
class ProbeReport:
    """What the probe app says it received."""

    role: str
    params: list[tuple[bytes, bytes]]
    stdin_length: int
    stdin_sha256: str

    def param(self, name: bytes | str) -> bytes | None:
        """The first value of a param (duplicates are kept in .params)."""
        wanted = name if isinstance(name, bytes) else name.encode("latin-1")
        for key, value in self.params:
            if key == wanted:
                return value
        return None

    def params_dict(self) -> Mapping[bytes, bytes]:
        return dict(self.params)


def params_as_judged(
    params: Sequence[tuple[bytes, bytes]],
    sent_names: Collection[bytes],
    limitations: Collection[str],
    unreported: Callable[[bytes], bool],
) -> list[tuple[bytes, bytes]]:
    """Params (sent or reported) as far as a platform with these probe limitations can tell them.

    "params-all" keeps only the names that were sent and that the platform does not keep from the
    app (unreported(name)); "params-duplicates" keeps a repeated name once, at its first place,
    with its last value; "params-order" sorts. Bytes are never changed.
    """
    pairs = list(params)
    if "params-all" in limitations:
        pairs = [(name, value) for name, value in pairs if name in sent_names and not unreported(name)]
    if "params-duplicates" in limitations:
        pairs = list(dict(pairs).items())
    return sorted(pairs) if "params-order" in limitations else pairs


def params_match(
    reported: Sequence[tuple[bytes, bytes]],
    sent: Sequence[tuple[bytes, bytes]],
    limitations: Collection[str],
    unreported: Callable[[bytes], bool],
) -> bool:
    """Whether a probe report's params are the params sent, as far as the platform can tell
    (params_as_judged on both sides): exact names, values, order and duplicates without limitations."""
    sent_names = {name for name, _ in sent}
    judged = [params_as_judged(side, sent_names, limitations, unreported) for side in (reported, sent)]
    return judged[0] == judged[1]


# Probe reports parsed in this process: a case that read one checked content by the probe app
# (harness/suite/case.py run_case marks its depth from this count, so no case can forget to).
_reports_parsed = 0


def probe_reports_parsed() -> int:
    """How many probe reports this process has parsed so far."""
    return _reports_parsed


def parse_probe_report(body: bytes) -> ProbeReport:
    """Parse the JSON report; each U+0000..U+00FF char stands for one byte."""
    global _reports_parsed
    try:
        document = json.loads(body.decode("utf-8"))
        params = [
            (name.encode("latin-1"), value.encode("latin-1")) for name, value in document["params"]
        ]
        report = ProbeReport(
            role=str(document["role"]),
            params=params,
            stdin_length=int(document["stdin_length"]),
            stdin_sha256=str(document["stdin_sha256"]),
        )
    except (ValueError, KeyError, TypeError, UnicodeError) as error:
        raise ProbeError(f"not a probe report ({error}): {body[:120]!r}") from None
    _reports_parsed += 1
    return report


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pattern_bytes(length: int) -> bytes:
    """The body that out=N asks for: byte i is ord('a') + i % 26."""
    alphabet = bytes(range(ord("a"), ord("a") + 26))
    whole, rest = divmod(length, 26)
    return alphabet * whole + alphabet[:rest]
