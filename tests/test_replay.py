"""Replay: every golden capture replays cleanly against the reference responder, and known
bugs (fault modes of the reference, an independent responder) are pointed at."""

from __future__ import annotations

import copy
import shutil
import socket
import time
from pathlib import Path
from typing import Iterator

import pytest

from harness.replay import cli as cli_capture
from harness.replay import concurrency
from harness.wire.codec import RecordType
from harness.replay.comparison import meaning
from harness.replay.plan import Plan, plan_connection
from harness.replay.results import ConnectionResult
from harness.replay.runner import replay
from harness.targets.base import CommandTarget, ReferenceTarget, Target, TcpTarget, reference_binary
from harness.capture.transcript import APP_TO_WS, CloseItem, Connection, Transcript, read_transcript

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = sorted((ROOT / "fixtures" / "captures").glob("*/*.transcript"))
NGINX_KEEPALIVE = ROOT / "fixtures" / "captures" / "nginx" / "sequential-keepalive.transcript"
# Four connections open at once, each request answered after 200 ms (captured times overlap).
NGINX_CONCURRENT = ROOT / "fixtures" / "captures" / "nginx" / "concurrent.transcript"
INDEPENDENT = ROOT / "tests" / "servers" / "independent_responder.py"
TIMEOUT = 2.0

pytestmark = pytest.mark.skipif(not reference_binary(ROOT).exists(), reason="reference responder not built")


def started(target: Target) -> Iterator[Target]:
    target.start()
    try:
        yield target
    finally:
        target.stop()


@pytest.fixture(scope="module")
def reference() -> Iterator[Target]:
    yield from started(ReferenceTarget(ROOT))


def fault(name: str) -> Iterator[Target]:
    yield from started(ReferenceTarget(ROOT, ["--fault", name]))


def capture_id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def test_there_are_golden_captures_of_every_server() -> None:
    assert {p.parent.name for p in CAPTURES} >= {"nginx", "apache2", "lighttpd", "h2o"}


@pytest.mark.parametrize("path", CAPTURES, ids=capture_id)
def test_golden_capture_replays_cleanly_against_the_reference(reference: Target, path: Path) -> None:
    result = replay(read_transcript(path), reference, content=True, timeout=TIMEOUT, source=str(path))
    assert result.ok, result.report()
    assert sum(c.answered for c in result.connections) > 0


@pytest.mark.parametrize("path", [p for p in CAPTURES if p.parent.name in ("nginx", "h2o")][:4], ids=capture_id)
def test_replay_keeps_write_pieces_and_timing(reference: Target, path: Path) -> None:
    result = replay(read_transcript(path), reference, timing=True, timeout=TIMEOUT)
    assert result.ok, result.report()


def test_nginx_keepalive_capture_fails_against_the_go_id_reuse_bug() -> None:
    transcript = read_transcript(NGINX_KEEPALIVE)
    assert transcript.meta_value("source") == "nginx"
    for target in fault("go-id-reuse"):
        result = replay(transcript, target, timeout=TIMEOUT)
    assert not result.ok
    divergence = result.first_divergence
    assert divergence is not None and divergence.connection == 1 and divergence.request == 2
    assert divergence.message.startswith("request 2 on connection 1 reused id 1")
    assert "the target closed the connection (EOF) after BEGIN_REQUEST id=1" in divergence.message
    text = result.report()
    assert "< END_REQUEST id=1" in text and "> BEGIN_REQUEST id=1" in text  # the records around it
    assert "=> " in text  # and where in the capture


@pytest.mark.parametrize("name, expected", [
    ("keep-conn-close", "after END_REQUEST although FCGI_KEEP_CONN was set"),
    ("end-request-twice", "after its END_REQUEST"),
    ("no-empty-stdout", "before the empty STDOUT record"),
    ("reply-id-zero", "with the management id 0"),
    ("stdout-after-empty", "STDOUT after the empty record"),
    ("misframe-on-reuse", "request 2 on connection 1"),
])
def test_fault_modes_diverge_on_the_nginx_capture(name: str, expected: str) -> None:
    for target in fault(name):
        result = replay(read_transcript(NGINX_KEEPALIVE), target, timeout=TIMEOUT)
    assert not result.ok
    assert expected in result.report()


def test_keep_conn_clear_must_close() -> None:
    # lighttpd clears FCGI_KEEP_CONN: the application must close after END_REQUEST.
    path = ROOT / "fixtures" / "captures" / "lighttpd" / "sequential-keepalive.transcript"
    for target in fault("keep-conn-never-close"):
        result = replay(read_transcript(path), target, timeout=0.5)
    assert not result.ok
    assert "FCGI_KEEP_CONN was clear, but the target kept the connection open" in result.report()


def change_captured_stdout(connection: Connection) -> None:
    """Change the last byte of the first captured STDOUT content of a connection."""
    for item in connection.items:
        if getattr(item, "direction", None) == APP_TO_WS and hasattr(item, "record") \
                and item.record.type == RecordType.STDOUT and item.record.content:
            content = item.record.content
            item.record = type(item.record)(item.record.type, item.record.request_id,
                                            content[:-1] + b"!", item.record.padding)
            return
    raise AssertionError(f"connection {connection.number} has no STDOUT content")


def test_content_mode_compares_stdout(reference: Target) -> None:
    transcript = read_transcript(NGINX_KEEPALIVE)
    # Change one byte of the captured answer: protocol level still passes, content does not.
    change_captured_stdout(transcript.connections[0])
    assert replay(transcript, reference, timeout=TIMEOUT).ok
    result = replay(transcript, reference, content=True, timeout=TIMEOUT)
    assert not result.ok and "stdout differs from the capture at byte" in result.report()


def test_plan_follows_causality() -> None:
    plan = plan_connection(read_transcript(NGINX_KEEPALIVE).connections[0])
    sends = [step for step in plan.steps if step.kind == "send"]
    assert len(sends) == 5 and len(plan.requests) == 5
    assert [r.reused_from for r in plan.requests] == [None, 1, 2, 3, 4]
    # The second request is sent only once the first had its END_REQUEST.
    assert sends[1].stages == {1: 2}
    assert plan.steps[-1].kind == "FIN"


@pytest.fixture(scope="module")
def independent() -> Iterator[Target]:
    if not INDEPENDENT.exists() or shutil.which("python3") is None:
        pytest.skip("tests/servers/independent_responder.py is not there")
    yield from started(CommandTarget(f"/usr/bin/python3 {INDEPENDENT} --port {{port}}"))


@pytest.mark.parametrize("path", [p for p in CAPTURES if p.stem in ("sequential-keepalive", "large-post", "head")],
                         ids=capture_id)
def test_captures_replay_against_another_application(independent: Target, path: Path) -> None:
    # A capture made in front of the reference's probe app, replayed against a different app: protocol level.
    result = replay(read_transcript(path), independent, timeout=TIMEOUT)
    assert result.ok, result.report()


def test_cli_replay_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_capture.main(["replay", str(NGINX_KEEPALIVE), "--target", "reference", "--content"]) == 0
    assert "no divergence" in capsys.readouterr().out
    assert cli_capture.main(["replay", str(NGINX_KEEPALIVE), "--target", "reference --fault go-id-reuse",
                             "--timeout", "2"]) == 1
    assert "reused id 1" in capsys.readouterr().out
    assert cli_capture.main(["replay", "/nonexistent.transcript"]) == 4  # a file that cannot be read


def test_meaning_ignores_ports_and_splitting() -> None:
    transcript = read_transcript(NGINX_KEEPALIVE)
    summary = meaning(transcript)
    assert len(summary) == 1 and len(summary[0]) == 6  # five requests and who closed first
    assert "REMOTE_PORT=*" in summary[0][0] and "closed first: ws FIN" in summary[0][-1]


def test_meaning_leaves_the_closing_race_after_a_request_without_keep_conn_out() -> None:
    # lighttpd sets no KEEP_CONN: the application must close and lighttpd closes too, so either
    # FIN may come first; with KEEP_CONN (nginx) only the web server closes, and that is kept.
    lighttpd = read_transcript(ROOT / "fixtures" / "captures" / "lighttpd" / "sequential-keepalive.transcript")
    swapped = copy.deepcopy(lighttpd)
    for connection in swapped.connections:
        closes = [i for i, item in enumerate(connection.items) if isinstance(item, CloseItem)]
        first, second = closes[0], closes[1]
        connection.items[first], connection.items[second] = connection.items[second], connection.items[first]
    assert swapped.connections[0].closed_first().direction != lighttpd.connections[0].closed_first().direction
    assert meaning(swapped) == meaning(lighttpd)
    assert all("without KEEP_CONN: FIN" in summary[-1] for summary in meaning(lighttpd))
    nginx = copy.deepcopy(read_transcript(NGINX_KEEPALIVE))
    for connection in nginx.connections:
        for item in connection.items:
            if isinstance(item, CloseItem):
                item.direction = APP_TO_WS
    assert meaning(nginx) != meaning(read_transcript(NGINX_KEEPALIVE))


# -- concurrent replay ----------------------------------------------------------------------


def concurrent_capture(connections: int = 4) -> Transcript:
    transcript = read_transcript(NGINX_CONCURRENT)
    transcript.connections = transcript.connections[:connections]
    assert len(transcript.connections) == connections
    return transcript


def shift(connection: Connection, seconds: float) -> None:
    """Move a connection later in the capture (its opening and every item)."""
    for item in connection.items:
        if item.time_us is not None:
            item.time_us += int(seconds * 1e6)


def test_the_concurrent_capture_overlaps() -> None:
    # What the tests below rely on: connection 2 opened before connection 1 ended.
    first, second = concurrent_capture(2).connections
    assert concurrency.opening_us(second) < max(i.time_us for i in first.items if i.time_us is not None)


def test_concurrent_replay_passes_against_the_reference(reference: Target) -> None:
    for timing in (False, True):
        result = replay(concurrent_capture(2), reference, content=True, timing=timing, timeout=TIMEOUT,
                        concurrent=True)
        assert result.ok, result.report()
        assert [(c.number, c.requests, c.answered) for c in result.connections] == [(1, 1, 1), (2, 1, 1)]
        assert "connections concurrently" in result.report()


def test_concurrent_replay_holds_connections_open_at_the_same_time() -> None:
    # With --max-conns 1 a second connection open at the same time gets OVERLOADED: one after another
    # the capture replays cleanly, concurrently it cannot.
    transcript = concurrent_capture(2)
    for target in started(ReferenceTarget(ROOT, ["--max-conns", "1"])):
        sequential = replay(transcript, target, timeout=TIMEOUT)
        at_once = replay(transcript, target, timeout=TIMEOUT, concurrent=True)
        # With the captured times, connection 2 opening 100 ms after connection 1 (its request still
        # waiting for the 200 ms answer), connection 2 is the one turned away.
        later = copy.deepcopy(transcript)
        shift(later.connections[1], 0.1)
        timed = replay(later, target, timing=True, timeout=TIMEOUT, concurrent=True)
    assert sequential.ok, sequential.report()
    assert not at_once.ok
    assert [c.number for c in at_once.connections] == [1, 2]
    assert len(at_once.divergences) == 1  # one of the two got in first
    assert "protocolStatus=OVERLOADED" in at_once.divergences[0].message
    assert [c.divergence is None for c in timed.connections] == [True, False], timed.report()
    assert timed.first_divergence is not None and timed.first_divergence.connection == 2
    assert "protocolStatus=OVERLOADED, the capture had appStatus=0 protocolStatus=REQUEST_COMPLETE" in \
        timed.first_divergence.message


def test_concurrent_divergence_is_reported_for_its_connection(reference: Target) -> None:
    transcript = concurrent_capture(4)
    change_captured_stdout(transcript.connections[2])
    result = replay(transcript, reference, content=True, timeout=TIMEOUT, concurrent=True)
    assert not result.ok
    # Every connection has its result, in connection order; only connection 3 diverged.
    assert [(c.number, c.answered) for c in result.connections] == [(1, 1), (2, 1), (3, 1), (4, 1)]
    assert [d.connection for d in result.divergences] == [3]
    text = result.report()
    assert "connection 3: request 1 on connection 3 (id 1): stdout differs from the capture" in text
    assert "1 connection(s) diverged" in text
    # The diverged connection's request is not counted as answered as captured.
    assert "4 connection(s), 3/4 request(s) answered as captured; 1 connection(s) diverged, with 1 request(s), " \
        "1 of them with an END_REQUEST" in text, text


def test_concurrent_first_only_starts_no_connection_after_a_divergence(reference: Target) -> None:
    transcript = concurrent_capture(4)
    change_captured_stdout(transcript.connections[0])
    shift(transcript.connections[3], 1.5)  # opens long after connection 1 diverged (at its end, ~0.5 s)
    result = replay(transcript, reference, content=True, timing=True, timeout=TIMEOUT, concurrent=True,
                    first_only=True)
    assert [c.number for c in result.connections] == [1, 2, 3]
    assert [d.connection for d in result.divergences] == [1]


@pytest.fixture
def silent() -> Iterator[Target]:
    """A target that accepts connections (the kernel's backlog) and never reads or answers."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield TcpTarget(f"127.0.0.1:{listener.getsockname()[1]}")
    finally:
        listener.close()


def test_concurrent_replay_of_a_silent_target_ends_within_its_timeout(silent: Target) -> None:
    timeout = 1.0
    began = time.monotonic()
    result = replay(concurrent_capture(4), silent, timeout=timeout, concurrent=True)
    elapsed = time.monotonic() - began
    # The four waits run side by side: about one timeout, where one after another takes four.
    assert elapsed < 2.5 * timeout, elapsed
    assert [d.connection for d in result.divergences] == [1, 2, 3, 4]
    for divergence in result.divergences:
        assert "the capture had END_REQUEST here, the target sent nothing within 1s" in divergence.message


def test_concurrent_connection_past_its_bound_diverges(silent: Target, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every wait of a connection ends at its bound, however long its timeout: no hang.
    monkeypatch.setattr(concurrency, "connection_bound", lambda *args: 0.5)
    began = time.monotonic()
    result = replay(concurrent_capture(2), silent, timeout=60.0, concurrent=True)
    assert time.monotonic() - began < 10.0
    assert [d.connection for d in result.divergences] == [1, 2]
    for divergence in result.divergences:
        assert "took longer than its bound of 0.5s" in divergence.message
        assert "> BEGIN_REQUEST id=1" in "\n".join(divergence.target_context)  # where it was


def test_cli_replay_concurrent(capsys: pytest.CaptureFixture[str]) -> None:
    assert "--concurrent" in (cli_capture.__doc__ or "")
    assert cli_capture.main(["replay", str(NGINX_CONCURRENT), "--concurrent", "--content", "--timeout", "2"]) == 0
    assert "connections concurrently" in capsys.readouterr().out
    assert cli_capture.main(["replay", str(NGINX_CONCURRENT), "--concurrent", "--target", "reference --max-conns 1",
                             "--timeout", "2"]) == 1
    assert "protocolStatus=OVERLOADED" in capsys.readouterr().out


def test_concurrent_thread_stuck_past_its_bound_is_left_behind(silent: Target, monkeypatch: pytest.MonkeyPatch) -> None:
    # Should a connection's thread not end at all, the replay still returns, with a divergence for it.
    real = concurrency.replay_connection

    def stuck(plan: Plan, *args: object, **kwargs: object) -> ConnectionResult:
        if plan.connection.number == 2:
            time.sleep(3.0)
        return real(plan, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(concurrency, "replay_connection", stuck)
    monkeypatch.setattr(concurrency, "connection_bound", lambda *args: 0.3)
    monkeypatch.setattr(concurrency, "BOUND_SLACK", 0.2)
    began = time.monotonic()
    result = replay(concurrent_capture(2), silent, timeout=60.0, concurrent=True)
    assert time.monotonic() - began < 2.0
    assert [c.number for c in result.connections] == [1, 2]
    assert "took longer than its bound of 0.3s" in result.connections[0].divergence.message  # type: ignore[union-attr]
    assert "took longer than its bound of 0.3s after the start (its start, the captured times and every wait's " \
           "timeout) and is still running" in result.connections[1].divergence.message  # type: ignore[union-attr]


HOSTILE = ROOT / "tests" / "hostile" / "hostile.py"
NGINX_GIVES_UP = ROOT / "fixtures" / "captures" / "nginx" / "client-gives-up.transcript"


def test_a_reset_before_the_web_servers_close_is_a_divergence(monkeypatch: pytest.MonkeyPatch) -> None:
    # The target resets the connection while the replay is about to half-close it (nginx gives up on the
    # request): the half-close meets a dead socket. The wait before the close makes that race certain.
    from harness.replay import engine

    close = engine.ConnectionReplay.close

    def close_after_the_reset(run: engine.ConnectionReplay, step: object) -> None:
        time.sleep(0.3)  # the target's RST arrives, unread
        close(run, step)

    monkeypatch.setattr(engine.ConnectionReplay, "close", close_after_the_reset)
    for target in started(CommandTarget(f"/usr/bin/python3 {HOSTILE} reset --port {{port}}")):
        result = replay(read_transcript(NGINX_GIVES_UP), target, timeout=0.5)
        assert not result.ok
        assert "RST" in result.report() or "reset" in result.report(), result.report()
