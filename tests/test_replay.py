"""Replay: every golden capture replays cleanly against the reference responder, and known
bugs (fault modes of the reference, an independent responder) are pointed at."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator

import pytest

from harness import cli_capture
from harness.fcgi_codec import RecordType
from harness.replay import meaning, plan_connection, replay
from harness.targets import CommandTarget, ReferenceTarget, Target, reference_binary
from harness.transcript import APP_TO_WS, read_transcript

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = sorted((ROOT / "fixtures" / "captures").glob("*/*.transcript"))
NGINX_KEEPALIVE = ROOT / "fixtures" / "captures" / "nginx" / "sequential-keepalive.transcript"
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


def test_content_mode_compares_stdout(reference: Target) -> None:
    transcript = read_transcript(NGINX_KEEPALIVE)
    # Change one byte of the captured answer: protocol level still passes, content does not.
    for item in transcript.connections[0].items:
        if getattr(item, "direction", None) == APP_TO_WS and hasattr(item, "record") \
                and item.record.type == RecordType.STDOUT and item.record.content:
            content = item.record.content
            item.record = type(item.record)(item.record.type, item.record.request_id,
                                            content[:-1] + b"!", item.record.padding)
            break
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
    assert cli_capture.main(["replay", "/nonexistent.transcript"]) == 2


def test_meaning_ignores_ports_and_splitting() -> None:
    transcript = read_transcript(NGINX_KEEPALIVE)
    summary = meaning(transcript)
    assert len(summary) == 1 and len(summary[0]) == 6  # five requests and who closed first
    assert "REMOTE_PORT=*" in summary[0][0] and "closed first: ws FIN" in summary[0][-1]
