"""Gateway cases: one requirement a web server meets as a FastCGI client, its context, and its verdict.

A case is a short function over a GatewayContext. It starts the application with a script
(harness/gateways/application.py) and the gateway in front of it (ctx.start), sends HTTP requests
through the gateway (raw: ctx.http() and ctx.request(), harness/gateways/http_side.py; or the
reference HTTP client: ctx.fetch()), and judges both sides: the ledger of what the gateway sent the application, and
what the HTTP client got back. It raises the verdict exceptions of harness/verdicts.py; the
verdict is the judge's (harness/suite/judge.py), as in the other suites. The deviations every
exchange relies on (harness/gateways/observations.py) are read from the ledgers after the case:
in their own case they fail it, elsewhere they are "also seen" and block a case that failed.

Ids name the text and section a case checks: GW-FCGI-<section>-<n> for the FastCGI
specification, GW-RFC3875-<section>-<n> for CGI/1.1, GW-RFC9110-<section>-<n> and
GW-RFC9112-<section>-<n> for HTTP semantics and HTTP/1.1, and
GW-REG-<project>-<bug> for a regression of a known gateway bug.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from harness.clients.adapters import ClientProcess, ClientResult
from harness.gateways.application import AppRequest, ScriptedApp, Script, serve
from harness.gateways.gateway import Gateway, GatewayStartError
from harness.gateways.http_side import HttpAnswer, HttpConnection, HttpSideError
from harness.gateways.observations import COMMON_PREREQUISITES, ledger_deviations
from harness.gateways.reference_app import ReferenceApplication
from harness.suite.judge import Facts, judge
from harness.verdicts import Deviation, HarnessError, Level, Outcome, Unsupported, Verdict, Violation

_ID = re.compile(r"^GW-(FCGI|RFC3875|RFC9110|RFC9112)-[0-9]+(\.[0-9]+)*-[0-9]+[a-z]?$|^GW-REG-[a-z0-9]+-[0-9a-z-]+$")
CASE_TIMEOUT = 30.0

# The gateway bugs tests/gateways/buggy_gateway.py plays, by its --bug names: a case names those it
# must catch, tests/test_gateway_suite.py proves it, and a failure report offers them as look-alikes.
BUGS = {
    "reuse-active-id": "begins a request with an id that is still active on the connection",
    "no-retry": "answers 502 when a kept connection turns out closed, instead of sending a GET on a new one",
    "retry-post": "resends a POST on a new connection after a kept one died",
    "truncated-as-complete": "delivers a response the application cut short as a complete one",
    "stderr-as-error": "turns output on FCGI_STDERR into an error response",
    "no-empty-stdin": "sends no FCGI_STDIN record for a request without a body",
    "wrong-4-byte-length": "writes 4-byte name-value lengths wrongly",
    "keepconn-but-close": "sets FCGI_KEEP_CONN but closes every connection after END_REQUEST",
    "no-keepconn-but-reuse": "sends further requests on a connection without FCGI_KEEP_CONN",
    "no-params-terminator": "never ends PARAMS with an empty record",
    "no-stdin-terminator": "never ends STDIN with an empty record",
    "zero-request-id": "uses request id 0 for application records",
    "short-body": "passes on only the first 64 KiB of a request body",
    "misframed-as-complete": "ends the response as complete when the application's records stop parsing",
    "chunked-400": "answers 400 Bad Request to a valid chunked upload",
    "chunked-upload-cut": "passes on only the first chunk of a chunked upload",
    "ignore-protocol-status": "answers 200 when END_REQUEST says the request was not served",
    "pass-status-header": "passes the CGI Status header through and answers 200",
    "no-cgi-vars": "omits the CGI/1.1 meta-variables REQUEST_METHOD, SERVER_PROTOCOL and GATEWAY_INTERFACE",
    "omit-var": "leaves one CGI/1.1 meta-variable out of PARAMS (omit-var:NAME)",
    "garbage-after-end": "takes output after END_REQUEST into the next response",
    "padding-misread": "ignores paddingLength when it reads the application's records",
    "header-split-misread": "fails when the CGI header block spans two STDOUT records",
    "multiplex": "sends concurrent requests, with different ids, over one connection whatever FCGI_MPXS_CONNS says",
    "ids-increasing": "gives every request on a kept connection a new, higher id",
    "drop-when-client-slow": "drops the response when the HTTP client reads slower than the application writes",
    "pool-while-active": "after the HTTP client left, pools the connection before the request's END_REQUEST",
    "truncate-at-size": "cuts a response body at 65535 bytes and ends it as complete",
    "crash-on-empty-body": "crashes on a request whose body is empty",
    "params-truncated": "cuts a name-value pair too long for one PARAMS record to fit in one",
    "first-body-record-only": "takes only the first STDOUT record after the header block into the body",
    "no-abort": "neither aborts nor closes when the HTTP client goes away",
    "version-0": "writes records with version 0",
    "no-read-timeout": "waits for a silent application for ever",
    "lenient-headers": "passes a response without a header block, or with an invalid header line, on as a success",
    "needs-stdout-terminator": "waits for the empty STDOUT record and ignores an END_REQUEST without it",
    "other-id-output": "takes STDOUT records of another request id into the response",
}


@dataclass(frozen=True)
class GatewayCase:
    id: str
    title: str
    requirement: str
    level: Level
    run: Callable[["GatewayContext"], "str | None"]
    timeout: float = CASE_TIMEOUT
    # Bugs (BUGS keys) this case must catch (tests/test_gateway_suite.py proves it).
    bugs: tuple[str, ...] = ()
    # What else it relies on beyond COMMON_PREREQUISITES (ids of the cases that own them).
    relies_on: tuple[str, ...] = ()
    # Every outcome the texts allow (the report's "expected" lines say them too).
    allowed: tuple[str, ...] = ()
    # A regression whose bug breaks a requirement another case owns names it here: that requirement's
    # deviation is then this case's own verdict too, not a block.
    same_requirement_as: tuple[str, ...] = ()
    section: str = ""
    family_order: int = 0

    @property
    def prerequisites(self) -> tuple[str, ...]:
        own = (self.id, *self.same_requirement_as)
        return tuple(p for p in (*COMMON_PREREQUISITES, *self.relies_on) if p not in own)

    @property
    def catches(self) -> tuple[str, ...]:
        return tuple(f"{b}: {BUGS.get(b.split(':')[0], '')}".rstrip(": ") for b in self.bugs)

    @property
    def sort_key(self) -> tuple[int, tuple[object, ...]]:
        return (self.family_order, gateway_id_key(self.id))


def gateway_id_key(case_id: str) -> tuple[object, ...]:
    """GW-FCGI-3.3-2 before GW-FCGI-3.3-10; documents in the order FCGI, RFC3875, RFC9112, REG."""
    parts = case_id.split("-")
    order = {"FCGI": 0, "RFC3875": 1, "RFC9110": 2, "RFC9112": 3, "REG": 4}.get(parts[1] if len(parts) > 1 else "", 5)
    numbers = tuple(int(n) if n.isdigit() else 0 for p in parts[2:] for n in re.split(r"[.]", re.sub(r"[a-z]$", "", p)))
    return (order, numbers, case_id)


def gateway_case(
    id: str,
    *,
    title: str,
    requirement: str,
    level: Level,
    bugs: Sequence[str] = (),
    relies_on: Sequence[str] = (),
    allowed: Sequence[str] = (),
    timeout: float = CASE_TIMEOUT,
    same_requirement_as: Sequence[str] = (),
) -> Callable[[Callable[["GatewayContext"], "str | None"]], GatewayCase]:
    """Decorator turning `def run(ctx) -> None | str` into a GatewayCase."""
    if not _ID.match(id):
        raise ValueError(f"gateway case id {id!r} is not of the form GW-FCGI-<section>-<n>, GW-RFC3875-..., "
                         "GW-RFC9112-... or GW-REG-<project>-<bug>")
    unknown = [b for b in bugs if b.split(":")[0] not in BUGS]
    if unknown:
        raise ValueError(f"unknown bugs {unknown}")

    def wrap(run: Callable[["GatewayContext"], "str | None"]) -> GatewayCase:
        return GatewayCase(id, title, requirement, level, run, timeout, tuple(bugs), tuple(relies_on), tuple(allowed),
                           tuple(same_requirement_as))

    return wrap


def cases_in_gateway_module(module: object) -> list[GatewayCase]:
    """The module's GatewayCases, stamped with its FAMILY heading and FAMILY_ORDER."""
    family = getattr(module, "FAMILY", "")
    order = int(getattr(module, "FAMILY_ORDER", 0))
    return [GatewayCase(**{**c.__dict__, "section": family, "family_order": order})
            for c in vars(module).values() if isinstance(c, GatewayCase)]


class GatewayContext:
    """What a running gateway case sees: its application, its gateway, its HTTP connections, its deadline."""

    def __init__(self, case: GatewayCase, make_gateway: Callable[[], Gateway], *, scale: float = 1.0) -> None:
        self.case = case
        self.make_gateway = make_gateway
        self.scale = scale
        self.started = time.monotonic()
        self.deadline = self.started + case.timeout * scale
        self.app: ScriptedApp | None = None
        self.reference: ReferenceApplication | None = None
        self.gateway: Gateway | None = None
        self.connections: list[HttpConnection] = []
        self.http_log: list[str] = []
        self.clients: list[ClientProcess] = []
        self.gateway_exit: int | None = None

    def time_left(self) -> float:
        return max(self.deadline - time.monotonic(), 0.0)

    def sleep(self, seconds: float) -> None:
        time.sleep(min(seconds, self.time_left()))

    # ---- the application and the gateway ------------------------------------------------------
    def start(self, script: Script = serve, *, values: dict[str, str] | None = None) -> ScriptedApp:
        """The application with this script, and the gateway in front of it."""
        if self.app is not None:
            raise HarnessError("a gateway case starts its application once")
        self.app = ScriptedApp(script, values=values)
        self.gateway = self.make_gateway()
        try:
            self.gateway.start(self.app.host, self.app.port)
        except GatewayStartError as error:
            raise HarnessError(f"the gateway could not be started: {error}") from None
        return self.app

    def start_reference(self, *faults: str) -> ScriptedApp:
        """The reference responder replaying these fault modes as the application (reference_app.py), its
        connections passed through the scripted application's ledger, and the gateway in front of it."""
        if self.app is not None:
            raise HarnessError("a gateway case starts its application once")
        self.reference = ReferenceApplication(faults)
        return self.start(self.reference.script())

    @property
    def read_timeout(self) -> float:
        """Seconds the gateway is configured to wait for the application's output."""
        return float(self.gateway.read_timeout if self.gateway is not None else 4)

    @property
    def keeps_connections(self) -> bool | None:
        return None if self.gateway is None else self.gateway.keeps_backend_connections

    def need_kept_connections(self, request: AppRequest | None) -> None:
        """Unsupported unless the gateway set KEEP_CONN (the case is about what it does with a kept connection)."""
        if request is None or not request.keep_conn:
            raise Unsupported(f"{self.gateway_name()} does not keep FastCGI connections (no FCGI_KEEP_CONN)"
                              + ("" if request is not None else ": no request reached the application"))

    def gateway_name(self) -> str:
        return self.gateway.name if self.gateway is not None else "the gateway"

    # ---- HTTP ---------------------------------------------------------------------------------
    def http(self, *, rcvbuf: int | None = None, timeout: float | None = None) -> HttpConnection:
        """A new raw HTTP connection to the gateway."""
        assert self.gateway is not None, "ctx.start() first"
        try:
            conn = HttpConnection(self.gateway.http_port, timeout=timeout or max(self.read_timeout * 2 + 4, 10.0),
                                  rcvbuf=rcvbuf)
        except HttpSideError as error:
            self._check_gateway_alive()
            raise Violation("the gateway accepts HTTP connections", str(error)) from None
        self.connections.append(conn)
        return conn

    def request(self, method: str, target: str, *, conn: HttpConnection | None = None, timeout: float | None = None,
                **options: object) -> HttpAnswer:
        """One request on `conn` (a new connection when None); logged for the trace."""
        conn = conn or self.http()
        try:
            if conn.sent_requests and conn.ensure_open():
                self.http_log.append(f"{time.monotonic() - self.started:7.3f}s (the gateway had closed the HTTP "
                                     "connection: a new one)")
        except HttpSideError as error:
            self._check_gateway_alive()
            raise Violation("the gateway accepts HTTP connections", str(error)) from None
        try:
            conn.send_request(method, target, **options)  # type: ignore[arg-type]
        except OSError as error:
            answer = HttpAnswer(ended=f"the request could not be written: {error.strerror or error}")
        else:
            answer = conn.read_response(method, timeout=min(timeout or conn.timeout, max(self.time_left(), 1.0)))
        self.log_http(f"{method} {target}", answer)
        return answer

    def concurrent_gets(self, paths: Sequence[str], *, stagger: float = 0.15) -> list[HttpAnswer | None]:
        """GETs on connections of their own, each begun `stagger` s after the one before (so that, in front
        of a slow application, each begins while the one before is active); None: no answer in time."""
        import threading

        answers: list[HttpAnswer | None] = [None] * len(paths)

        def fetch(index: int) -> None:
            answers[index] = self.request("GET", paths[index])

        threads = [threading.Thread(target=fetch, args=(i,), daemon=True) for i in range(len(paths))]
        for thread in threads:
            thread.start()
            self.sleep(stagger)
        for thread in threads:
            thread.join(self.time_left())
        return answers

    def log_http(self, what: str, answer: HttpAnswer) -> None:
        self.http_log.append(f"{time.monotonic() - self.started:7.3f}s {what} -> {answer.describe()}")

    def fetch(self, method: str, path: str, *, body_length: int | None = None) -> "ClientResult":
        """One request through the reference HTTP client (http-client/: one process per case, so its pool
        reuses HTTP connections as a real client's would); status, body length and sha256, or its error."""
        if not self.clients:
            from harness.clients.adapters import ClientProcess, parse_client
            from harness.installation.paths import PROJECT_ROOT

            process = ClientProcess(parse_client("reference", PROJECT_ROOT), timeout=max(self.read_timeout * 2 + 4, 10.0))
            self.clients.append(process)
            process.start()
        process = self.clients[0]
        line = f"{method} {self.url(path)}" + ("" if body_length is None else f" {body_length}")
        result = process.request(line, min(process.timeout + 3.0, max(self.time_left(), 1.0)))
        self.http_log.append(f"{time.monotonic() - self.started:7.3f}s {method} {path} (reference client) -> {result}")
        return result

    def url(self, path: str) -> str:
        assert self.gateway is not None
        return f"http://127.0.0.1:{self.gateway.http_port}{path}"

    # ---- the end ------------------------------------------------------------------------------
    def _check_gateway_alive(self) -> None:
        if self.gateway is not None and self.gateway_exit is None:
            self.gateway_exit = self.gateway.exit_status()

    def settle(self, seconds: float = 0.3) -> None:
        """Lets the application record what the gateway still sends (terminators, a close)."""
        time.sleep(min(seconds, max(self.time_left(), 0.05)))

    def close_all(self) -> None:
        self._check_gateway_alive()
        for conn in self.connections:
            conn.close()
        for process in self.clients:
            process.stop()
        if self.gateway is not None:
            self.gateway.stop()
        if self.app is not None:
            self.app.stop()
        if self.reference is not None:
            self.reference.stop()

    def deviations(self) -> list[Deviation]:
        return [] if self.app is None else ledger_deviations(self.app.connections())

    def trace(self) -> str:
        parts = []
        if self.gateway is not None:
            parts.append(f"gateway: {self.gateway.description}")
        if self.reference is not None:
            parts.append(f"application: {self.reference.description}, passed through")
        if self.http_log:
            parts.append("HTTP:")
            parts += ["  " + line for line in self.http_log]
        if self.app is not None:
            parts.append(self.app.describe())
        return "\n".join(parts)


def run_gateway_case(case: GatewayCase, make_gateway: Callable[[], Gateway], *, scale: float = 1.0,
                     excluded: str | None = None) -> Outcome:
    """Run one case against a fresh gateway and application; the judge (harness/suite/judge.py) gives the verdict."""
    ctx = GatewayContext(case, make_gateway, scale=scale)
    returned: str | None = None
    raised: Exception | None = None
    try:
        returned = case.run(ctx)
        ctx.settle(0.1)
    except Exception as error:  # whatever it is, the judge weighs it (a bug in the case too)
        raised = error
    finally:
        deviations = ctx.deviations()
        log = ctx.gateway.log_tail() if ctx.gateway is not None else ""
        ctx.close_all()
    own = next((d for d in deviations if d.requirement in (case.id, *case.same_requirement_as)), None)
    if own is not None and raised is None:
        raised = Violation(case.title, f"{own.what} ({own.evidence})")
    outcome = judge(Facts(
        level=case.level, returned=returned, raised=raised,
        scenario_errors=tuple(ctx.app.errors) if ctx.app is not None else (),
        also_seen=tuple(d for d in deviations if d is not own),
        prerequisites=case.prerequisites, own_deviation=own,
        gateway_exit=ctx.gateway_exit, excluded=excluded,
    ))
    outcome.duration = time.monotonic() - ctx.started
    if outcome.verdict not in (Verdict.PASS, Verdict.UNSUPPORTED):
        outcome.trace = ctx.trace()
        outcome.target_log = log
    return outcome
