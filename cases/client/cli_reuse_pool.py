"""The idle pool: its size limit and leaks (CLI-REUSE-24, 27).

Descriptors are counted in /proc for the adapter process and its children, against a baseline
taken after a warm-up that runs the same kind of requests on another server and CLOSE_IDLE, so that
a client's lazily created threads and descriptors are already there. Not here: 24b (a global idle
limit over 5 hosts, Go TestTransportMaxIdleConns): the adapter protocol has only --max-idle-per-host.
"""

from __future__ import annotations

import time
from typing import Callable

from harness.clients.cases import client_case, expect_response
from harness.clients.adapters import ClientProcess
from harness.clients.scenario_server import ANY, ScenarioServer, ServerConn, Step, response
from harness.verdicts import Level, Unsupported, Violation

FAMILY = "The idle pool: size limit and leaks"
FAMILY_ORDER = 7

POOL_LIMIT = (
    "After N concurrent requests and a return to idle, the client holds at most max-idle-per-host connections: "
    "every excess one is closed, none leaked (Go TestTransportMaxPerHostIdleConns, TestTransportPersistConnLeak)."
)


def _held_until_three(conn: ServerConn) -> None:
    """Answers each connection's first request only when three are in flight (three connections)."""
    while conn.read_request() is not None:
        conn.server.wait_requests(3, 2.0)
        conn.send(response())


def _settled(read: Callable[[], int], want: Callable[[int], bool], timeout: float = 1.0) -> int:
    deadline = time.monotonic() + timeout
    value = read()
    while not want(value) and time.monotonic() < deadline:
        time.sleep(0.05)
        value = read()
    return value


def _three_at_once(ctx, client: ClientProcess, server: ScenarioServer) -> None:
    results = ctx.concurrent([f"GET {server.url(f'/c{n}')}" for n in range(3)], client=client)
    for number, result in enumerate(results):
        expect_response(result, f"concurrent request {number}")


@client_case(
    "CLI-REUSE-24",
    title="3 concurrent requests, back to idle with --max-idle-per-host 2: 2 kept, the excess one closed, "
    "descriptors back to the baseline",
    requirement=POOL_LIMIT,
    level=Level.REQUIRED,
    mistakes=("leak-excess-idle",),
)
def idle_limit(ctx) -> None:
    """Idle limit 2 after 3 concurrent requests: the excess connection is closed, descriptors come back."""
    client = ctx.client(max_idle_per_host=2)
    warm = ctx.server(_held_until_three, name="warm-up server")
    _three_at_once(ctx, client, warm)
    client.close_idle()
    baseline = _settled(client.fd_count, lambda n: False, 0.2)
    server = ctx.server(_held_until_three)
    _three_at_once(ctx, client, server)
    opened = len(server.snapshot())
    if opened != 3:
        raise Unsupported(f"the client did not run 3 requests at once (it used {opened} connections)")
    server.wait_for(lambda led: sum(c.closed_by_client for c in led) >= 1, 1.0)
    time.sleep(0.2)
    closed = [c.id for c in server.snapshot() if c.closed_by_client]
    if not closed:
        raise Violation("the excess third connection closed (the server sees EOF or RST)", "all 3 still open")
    if len(closed) > 1:
        raise Violation("2 connections kept idle (max-idle-per-host 2)", f"the client closed {len(closed)}")
    idle_fds = _settled(client.fd_count, lambda n: n <= baseline + 2)
    if idle_fds > baseline + 2:
        raise Violation(f"at most {baseline} + 2 descriptors while 2 connections are idle",
                        f"{idle_fds} descriptors ({client.fd_count(sockets_only=True)} sockets)")
    client.close_idle()
    all_closed = server.wait_for(lambda led: all(c.closed_by_client for c in led), 1.0)
    final = _settled(client.fd_count, lambda n: n <= baseline)
    if not all_closed or final > baseline:
        open_ids = [c.id for c in server.snapshot() if not c.closed_by_client]
        raise Violation(f"after CLOSE_IDLE: every connection closed, {baseline} descriptors (the baseline)",
                        f"still open: {open_ids}; {final} descriptors")


def _mix_servers(ctx) -> list[ScenarioServer]:
    lies = response(b"", headers=["Foo: Bar"])
    return [
        ctx.server({ANY: [Step(lies, close="fin")]}, name="lies about keep-alive"),
        ctx.server({ANY: [Step(response(), close="rst")]}, name="RST after the response"),
        ctx.server({ANY: [Step(response()), Step(None, close="fin")]}, name="keep-alive race"),
        ctx.server({ANY: [Step(response(b"foo", length=10), close="fin")]}, name="truncated body"),
        ctx.server({ANY: [Step(response() + response(b"", "408 Request Timeout", ["Connection: close"]))]},
                   name="excess 408"),
        ctx.server({ANY: [Step(response())]}, name="keep-alive"),
    ]


@client_case(
    "CLI-REUSE-27",
    title="leak soak: 60 requests over servers that close, reset, race, truncate and send junk; then "
    "CLOSE_IDLE: descriptors back to the baseline, no connection left open",
    requirement="Connections are released on every path, errors included (Go TestTransportPersistConnLeak, "
    "TestTransportIssue10457).",
    level=Level.RECOMMENDED,
    timeout=25.0,
)
def leak_soak(ctx) -> None:
    servers = _mix_servers(ctx)
    client = ctx.default_client
    for server in servers:  # warm-up: every code path once
        ctx.get(server, "/warm")
    client.close_idle()
    baseline = _settled(client.fd_count, lambda n: False, 0.2)
    for number in range(10):
        for server in servers:
            ctx.get(server, f"/{number}")
    client.close_idle()
    final = _settled(client.fd_count, lambda n: n <= baseline, 2.0)
    for server in servers:
        server.wait_for(lambda led: all(c.client_close or c.server_close for c in led), 1.0)
    lingering = [f"{s.name}: c{c.id}" for s in servers for c in s.snapshot()
                 if c.client_close is None and c.server_close is None]
    if final > baseline or lingering:
        raise Violation(f"{baseline} descriptors (the baseline) and no connection left open",
                        f"{final} descriptors; open: {', '.join(lingering[:6]) or 'none'}")
