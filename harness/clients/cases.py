"""Client cases: one HTTP client connection-reuse check (CLI-REUSE-N), its context, and its verdict.

A case is a short function over a ClientContext: it starts scenario servers (the misbehaving
HTTP servers, harness/clients/scenario_server.py), drives the client adapter (harness/clients/adapters.py) with
request lines, and judges with the servers' ledgers first and the adapter's JSON lines second,
raising the verdict exceptions of harness/verdicts.py. The verdict is the judge's
(harness/suite/judge.py), as in the server suite: there a client that hangs (no result line
within its own --timeout and some slack), crashes, or prints a sanitizer report fails whatever
the case's level.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

from harness.clients.adapters import ClientProcess, ClientResult, ClientSpec
from harness.suite.judge import AdapterEnd, Adapters, Facts, judge
from harness.clients.scenario_server import Handler, ScenarioServer, Step, steps_handler
from harness.verdicts import Level, Outcome, RecommendationMissed, Unsupported, Verdict, Violation

_ID = re.compile(r"^CLI-REUSE-(?P<number>[0-9]+)(?P<variant>[a-z]?)$")
CLIENT_TIMEOUT = 3.0

# The classic mistakes of HTTP clients, by the name tests/clients/buggy_client.py's --bug gives them.
MISTAKES = {
    "reuse-after-eof": "reuses a pooled connection whose read side already saw the server's FIN",
    "reuse-after-close-notify": "reuses a TLS connection after the server's close_notify",
    "ignore-connection-close": "keeps a connection whose response said Connection: close",
    "reuse-http10": "keeps an HTTP/1.0 connection without keep-alive",
    "no-release-on-content-length-end": "does not return the connection to the pool when the body is complete",
    "leak-excess-idle": "keeps (or leaks) connections beyond the idle limit",
    "retry-post": "automatically resends a POST after a connection failure",
    "no-retry": "does not retry an idempotent request that failed on a reused connection",
    "reuse-after-truncated-body": "accepts a body cut short by the close as complete",
    "reuse-after-abandoned-body": "pools a connection whose response body was not read to its end",
    "parse-body-on-head": "reads a body after a response to HEAD",
    "parse-body-on-204": "reads a body after a 204 response",
    "parse-body-on-304": "reads a body after a 304 response",
    "deliver-unsolicited-408": "delivers bytes that arrived on an idle connection as the next response",
}


@dataclass(frozen=True)
class ClientCase:
    id: str
    title: str
    requirement: str
    level: Level
    run: Callable[["ClientContext"], "str | None"]
    timeout: float = 15.0
    # Mistakes (MISTAKES keys) this case must catch: tests/test_client_suite.py proves it with
    # tests/clients/buggy_client.py, and a failure report names them as look-alikes.
    mistakes: tuple[str, ...] = ()
    # The scenario family (the case file's FAMILY): the report's heading.
    section: str = ""
    family_order: int = 0
    needs_tls: bool = False

    @property
    def prerequisites(self) -> tuple[str, ...]:
        """What the case relies on, as server cases declare it: a client scenario declares nothing."""
        return ()

    @property
    def catches(self) -> tuple[str, ...]:
        """'name: description' for the report's 'Looks like' lines (harness/reports/results.py)."""
        return tuple(f"{m}: {MISTAKES.get(m, '')}".rstrip(": ") for m in self.mistakes)

    @property
    def sort_key(self) -> tuple[int, int, str]:
        return (self.family_order,) + client_id_key(self.id)


def client_id_key(case_id: str) -> tuple[int, str]:
    match = _ID.match(case_id)
    return (int(match["number"]), match["variant"]) if match else (10**6, case_id)


def client_case(
    id: str,
    *,
    title: str,
    requirement: str,
    level: Level,
    timeout: float = 15.0,
    mistakes: Sequence[str] = (),
) -> Callable[[Callable[["ClientContext"], "str | None"]], ClientCase]:
    """Decorator turning `def run(ctx) -> None | str` into a ClientCase."""
    if not _ID.match(id):
        raise ValueError(f"client case id {id!r} is not of the form CLI-REUSE-<n>[variant]")
    unknown = [m for m in mistakes if m not in MISTAKES]
    if unknown:
        raise ValueError(f"unknown mistakes {unknown}")

    def wrap(run: Callable[["ClientContext"], "str | None"]) -> ClientCase:
        return ClientCase(id, title, requirement, level, run, timeout, tuple(mistakes))

    return wrap


def cases_in_client_module(module: object) -> list[ClientCase]:
    """The module's ClientCases, stamped with its FAMILY heading and FAMILY_ORDER."""
    family = getattr(module, "FAMILY", "")
    order = int(getattr(module, "FAMILY_ORDER", 0))
    return [
        ClientCase(**{**c.__dict__, "section": family, "family_order": order})
        for c in vars(module).values() if isinstance(c, ClientCase)
    ]


class ClientContext:
    """What a running client case sees: its servers, its client adapter(s), its deadline."""

    def __init__(self, case: ClientCase, spec: ClientSpec, *, client_timeout: float = CLIENT_TIMEOUT,
                 scale: float = 1.0) -> None:
        self.case = case
        self.spec = spec
        self.client_timeout = client_timeout
        self.scale = scale
        self.started = time.monotonic()
        self.deadline = self.started + case.timeout * scale
        self.servers: list[ScenarioServer] = []
        self.clients: list[ClientProcess] = []
        self._default: ClientProcess | None = None

    def time_left(self) -> float:
        return max(self.deadline - time.monotonic(), 0.0)

    def sleep(self, seconds: float) -> None:
        time.sleep(min(seconds, self.time_left()))

    # ---- servers -----------------------------------------------------------------------------
    def server(self, script: Handler | Mapping[int | str, Sequence[Step]], *, tls: bool = False,
               name: str = "", rcvbuf: int | None = None) -> ScenarioServer:
        handler = steps_handler(script) if isinstance(script, Mapping) else script
        server = ScenarioServer(handler, tls=tls, name=name or f"server {len(self.servers) + 1}", rcvbuf=rcvbuf)
        self.servers.append(server)
        return server

    # ---- clients -----------------------------------------------------------------------------
    def client(self, *, max_idle_per_host: int | None = None, timeout: float | None = None) -> ClientProcess:
        """A new adapter process (its own pool), trusting the test CA."""
        from harness.clients.test_ca import test_pki

        process = ClientProcess(self.spec, cacert=test_pki().ca_cert, timeout=timeout or self.client_timeout,
                                max_idle_per_host=max_idle_per_host)
        self.clients.append(process)
        process.start()
        if max_idle_per_host is not None:
            # An adapter that refuses an option exits at once: the case is unsupported, not failed.
            time.sleep(0.05)
            if process.exit_status() not in (None, 0):
                tail = process.stderr_text().strip().splitlines()[-1:] or [process.exit_text()]
                raise Unsupported(f"the adapter does not take --max-idle-per-host ({tail[0]})")
        return process

    @property
    def default_client(self) -> ClientProcess:
        if self._default is None:
            self._default = self.client()
        return self._default

    def request(self, line: str, *, client: ClientProcess | None = None) -> ClientResult:
        process = client or self.default_client
        return process.request(line, min(process.timeout + 3.0, max(self.time_left(), 0.5)))

    def concurrent(self, lines: Sequence[str], *, client: ClientProcess | None = None) -> list[ClientResult]:
        process = client or self.default_client
        return process.concurrent(lines, min(process.timeout * 2 + 3.0, max(self.time_left(), 0.5)))

    def get(self, server: ScenarioServer, path: str, *headers: str, method: str = "GET",
            client: ClientProcess | None = None, host: str = "127.0.0.1") -> ClientResult:
        tokens = [method, server.url(path, host), *headers]
        return self.request(" ".join(tokens), client=client)

    def post(self, server: ScenarioServer, path: str, length: int, *headers: str,
             client: ClientProcess | None = None) -> ClientResult:
        return self.request(" ".join(["POST", server.url(path), str(length), *headers]), client=client)

    def close_all(self) -> None:
        for process in self.clients:
            process.stop()
        for server in self.servers:
            server.stop()

    def trace(self) -> str:
        parts = [server.describe() for server in self.servers]
        for index, process in enumerate(self.clients):
            parts.append(f"client {index + 1}: {' '.join(process.command)}")
            parts += ["  " + line for line in process.transcript[-80:]]
        return "\n".join(parts)

    def client_log(self) -> str:
        return "\n".join(p.stderr_text()[-4000:] for p in self.clients if p.stderr_text())

    # ---- facts for the judge -----------------------------------------------------------------
    def adapters(self) -> Adapters:
        """The adapter processes now: whether any answered, their exit statuses, their last stderr line."""
        return Adapters(
            answered=any(p.results for p in self.clients),
            exit_statuses=tuple(p.exit_status() for p in self.clients),
            log_tail=(self.client_log().strip().splitlines() or [""])[-1],
        )

    def adapter_ends(self) -> tuple[AdapterEnd, ...]:
        """How each adapter process ended (after close_all)."""
        return tuple(AdapterEnd(p.exit_status(), p.exit_text(), bool(p.sanitizer_report())) for p in self.clients)

    def scenario_errors(self) -> tuple[str, ...]:
        """The scenario servers' script errors (the harness's problems, not the client's)."""
        return tuple(e for s in self.servers for e in s.errors)


def run_client_case(case: ClientCase, spec: ClientSpec, *, client_timeout: float = CLIENT_TIMEOUT,
                    scale: float = 1.0) -> Outcome:
    """Run one client case against a fresh adapter process; the judge (harness/suite/judge.py) gives the verdict."""
    ctx = ClientContext(case, spec, client_timeout=client_timeout, scale=scale)
    returned: str | None = None
    raised: Exception | None = None
    adapters: Adapters | None = None
    try:
        returned = case.run(ctx)
    except Exception as error:  # whatever it is, the judge weighs it (a bug in the case too)
        raised = error
        adapters = ctx.adapters()  # before they are stopped: an adapter that never worked is unusable
    finally:
        ctx.close_all()
    duration = time.monotonic() - ctx.started
    outcome = judge(Facts(
        level=case.level, returned=returned, raised=raised, adapters=adapters,
        adapter_ends=ctx.adapter_ends(), scenario_errors=ctx.scenario_errors(),
    ))
    outcome.duration = duration
    if outcome.verdict not in (Verdict.PASS, Verdict.UNSUPPORTED):
        outcome.trace = ctx.trace()
        outcome.target_log = ctx.client_log()
    return outcome


# ---- shared verifiers -------------------------------------------------------------------------
def sha256_hex(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def expect_response(result: ClientResult, what: str, status: int = 200, body: bytes | None = b"foo") -> None:
    """The request succeeded with this status (and body, unless None)."""
    want = f"{what}: {status}" + ("" if body is None else f" with body {body!r}")
    if not result.ok:
        raise Violation(want, f"{what}: {result}")
    if result.status != status:
        raise Violation(want, f"{what}: status {result.status}, {result.body_length} body bytes")
    if body is not None and (result.body_length != len(body) or result.body_sha256 != sha256_hex(body)):
        raise Violation(want, f"{what}: status {result.status}, {result.body_length} body bytes "
                              f"(sha256 {result.body_sha256})")


def expect_error(result: ClientResult, what: str, why: str) -> None:
    if result.ok:
        raise Violation(f"{what}: an error ({why})", f"{what}: {result}")


def connection_ids(server: ScenarioServer, *paths: str) -> list[int]:
    """For each path (first request of it), the connection it arrived on (-1: never arrived)."""
    seen = server.requests()
    found = []
    for path in paths:
        ids = [cid for cid, req in seen if req.path == path]
        found.append(ids[0] if ids else -1)
    return found


def expect_connection_count(server: ScenarioServer, count: int, why: str, *, recommended: bool = False) -> None:
    opened = len(server.snapshot())
    if opened != count:
        error = RecommendationMissed if recommended else Violation
        raise error(f"{count} connection{'s' if count != 1 else ''} ({why})", f"{opened} connections")


def late_requests(server: ScenarioServer) -> list[str]:
    """Requests (and bytes) the client sent on a connection after the server had closed it."""
    found = []
    for conn in server.snapshot():
        late = [str(r) for r in conn.requests if r.after_server_close]
        if late or conn.bytes_after_server_close:
            found.append(f"c{conn.id} after the server's {conn.server_close}: "
                         f"{', '.join(late) or repr(conn.first_bytes_after_close[:40])}")
    return found


def settle(seconds: float = 0.05) -> None:
    """Lets the server threads record what just happened on the wire."""
    time.sleep(seconds)


def root_dir() -> Path:
    return Path(__file__).resolve().parents[2]
