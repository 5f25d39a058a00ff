"""One request to a target's probe app with known inputs, and what a part's check concludes.

A check raises Wrong (the app reported something other than the contract says) or Missing (the
part cannot be checked: a declared limitation, a role not played); TargetUnreachable from here
means the run cannot go on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterable, Sequence

from harness.targets.base import Target
from harness.wire.codec import RecordType, Role, begin_request_body, encode_params, encode_record, preview_bytes, stream_records
from harness.wire.connection import Response
from harness.wire.probe_app import CgiResponse, ProbeError, ProbeReport, parse_cgi, parse_probe_report, probe_params

REQUEST_ID = 1


class Wrong(Exception):
    """The probe app did not do what the contract says."""

    def __init__(self, expected: str, reported: str) -> None:
        super().__init__(f"expected {expected}; got {reported}")
        self.expected = expected
        self.reported = reported


class Missing(Exception):
    """The part cannot be checked on this target (a declared limitation, a role not played)."""


@dataclass(frozen=True)
class Answer:
    """What came back for one request, and how long after the request was sent it ended."""

    response: Response
    seconds: float

    @property
    def stdout(self) -> bytes:
        return self.response.stdout

    @property
    def stderr(self) -> bytes:
        return self.response.stderr

    def cgi(self) -> CgiResponse:
        """The STDOUT as a CGI response (Wrong if it is not one, or has an HTTP status line)."""
        return cgi_of(self.response.stdout)

    def report(self, status: int = 200) -> ProbeReport:
        """The probe report in the body of a CGI response with this status."""
        cgi = self.cgi()
        if cgi.status != status:
            raise Wrong(f"Status {status}", f"Status {cgi.status} with body {preview_bytes(cgi.body, 60)}")
        try:
            return parse_probe_report(cgi.body)
        except ProbeError as error:
            raise Wrong("a JSON probe report as the body", str(error)) from None


def cgi_of(stdout: bytes) -> CgiResponse:
    """STDOUT as a CGI response; Wrong if it is not one, or starts with an HTTP status line."""
    try:
        cgi = parse_cgi(stdout)
    except ProbeError as error:
        raise Wrong("a CGI response on STDOUT (headers, a blank line, the body)", str(error)) from None
    if cgi.nph_status_line is not None:
        raise Wrong("a Status: header (CGI)", f"an HTTP status line {cgi.nph_status_line!r} (non-parsed headers)")
    return cgi


class Prober:
    """Sends requests to one started target's probe app, each on a connection of its own."""

    def __init__(self, target: Target, timeout: float) -> None:
        self.target = target
        self.timeout = timeout

    def limitation(self, key: str) -> str | None:
        """Why the target's probe app cannot do this part (None: it says it can)."""
        return self.target.probe_limitations.get(key)

    def params(
        self,
        query: str = "",
        method: str = "GET",
        extra: Iterable[tuple[bytes | str, bytes | str]] = (),
        *,
        content_length: int | None = None,
    ) -> list[tuple[bytes | str, bytes | str]]:
        """The params the suite sends its probe app, with the target's SCRIPT_FILENAME."""
        return probe_params(query, method, extra, content_length=content_length, script_filename=self.target.script_filename)

    def ask(
        self,
        params: Sequence[tuple[bytes | str, bytes | str]],
        stdin: bytes = b"",
        *,
        role: int = Role.RESPONDER,
        params_records: Sequence[bytes] | None = None,
        stdin_record_size: int | None = None,
        timeout: float | None = None,
    ) -> Answer:
        """One request on a new connection (FCGI_KEEP_CONN clear): BEGIN, PARAMS, STDIN, then the answer.

        FcgiTimeout and ConnectionClosed reach the caller (the part is then WRONG), TargetUnreachable
        too (the run stops).
        """
        wait = timeout or self.timeout
        conn = self.target.connect(timeout=wait, label="probe-check")
        try:
            records = [encode_record(RecordType.BEGIN_REQUEST, REQUEST_ID, begin_request_body(role, 0))]
            if params_records is None:
                records += stream_records(RecordType.PARAMS, REQUEST_ID, encode_params(params))
            else:  # the caller's own cut of the PARAMS stream, then its end
                records += [encode_record(RecordType.PARAMS, REQUEST_ID, content) for content in params_records]
                records.append(encode_record(RecordType.PARAMS, REQUEST_ID, b""))
            records += stream_records(RecordType.STDIN, REQUEST_ID, stdin, chunk_sizes=stdin_record_size)
            started = time.monotonic()
            conn.send_raw(b"".join(records), timeout=wait)
            response = conn.read_response(REQUEST_ID, wait)
            return Answer(response, time.monotonic() - started)
        finally:
            conn.close()
