"""From a capture of a bug to a regression case: skeletons for cases/regressions/, and scripted captures.

    new_regression(FILE, name="php-12345-short-name", description="...")   (CLI: fcgispec new-regression)

reads FILE (a transcript, or a pcap/pcapng with port=N), sends its web-server side to the reference
responder for the right answers (answers="capture" keeps the captured ones), and writes
cases/regressions/<name with underscores>.py and cases/regressions/transcripts/<name>.transcript: a
case REG-<name> whose run replays the transcript (harness/replay/engine.py check_replay_file), with the
description as its title, placeholders for the source link and the spec sentence, and an empty
catches= to fill with the reference fault mode that reproduces the bug.

record_script(target, connections, meta) makes a transcript from a scripted web-server side: each
connection is a list of steps (bytes to send, a pause in seconds, "FIN" or "RST"), sent through the
recording proxy to a target (the reference responder), waiting after each send until the target
is quiet. The transcripts of cases/regressions/transcripts/ that no web server wrote were made so.
"""

from __future__ import annotations

import keyword
import re
import socket
import struct
import time
from pathlib import Path
from typing import Sequence, Union

from harness.capture.transcript import Transcript, TranscriptError, merge_meta, read_transcript, write_transcript

ROOT = Path(__file__).resolve().parents[2]
REGRESSIONS = Path("cases") / "regressions"
NAME = re.compile(r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")
QUIET_SECONDS = 0.15
SEEN_SECONDS = 0.03

Step = Union[bytes, float, str]


class SkeletonError(ValueError):
    """The regression cannot be made (bad name, unreadable capture, file already there)."""


def module_name(name: str) -> str:
    """The file name (without .py) of a regression: php-12345-short-name -> php_12345_short_name."""
    ident = re.sub(r"[^a-z0-9_]", "_", name.lower())
    return ident if ident.isidentifier() and not keyword.iskeyword(ident) else f"reg_{ident}"


def load_capture(path: str | Path, port: int | None = None) -> Transcript:
    """A transcript from a transcript file, or from a pcap/pcapng (port: the application's TCP port)."""
    from harness.capture.pcap_import import PcapError, import_pcap

    path = Path(path)
    try:
        head = path.read_bytes()[:4]
    except OSError as error:
        raise SkeletonError(f"{path}: {error}") from None
    if head.startswith(b"fcgi"):
        try:
            return read_transcript(path)
        except TranscriptError as error:
            raise SkeletonError(f"{path}: {error}") from None
    if port is None:
        raise SkeletonError(f"{path} is not a transcript; for a pcap/pcapng give the application's --port")
    try:
        transcript = import_pcap(path, port)
    except (OSError, PcapError) as error:
        raise SkeletonError(f"{path}: {error}") from None
    if not transcript.connections:
        raise SkeletonError(f"{path}: no TCP connection to port {port}")
    return transcript


CASE_TEMPLATE = '''"""{description}.

Source: TODO the bug report (issue, pull request or commit link).
Catalogue: TODO the row of the real-world bug table (../shared/reference/fastcgi-spec-catalog.md, section 6), if any.
Wire pattern: transcripts/{name}.transcript, from {origin}.

To finish: trim the transcript to the records that show the bug, write the spec sentence the bug breaks,
and name in catches= the fault mode that reproduces it (`build/reference-server/fcgispec-responder
--fault list`); tests/test_regressions.py then proves the case fails against it and passes against the
reference. Run it: ./fcgispec --case REG-{name} --target ...
"""

from __future__ import annotations

from pathlib import Path

from harness.suite.case import case
from harness.replay.engine import check_replay_file
from harness.verdicts import Level

SOURCE = "TODO: link to the bug report"
TRANSCRIPT = Path(__file__).resolve().parent / "transcripts" / "{name}.transcript"


@case(
    "REG-{name}",
    title={title!r},
    requirement="TODO: the spec sentence the bug breaks (e.g. spec section 3.3: ...)",
    level=Level.REQUIRED,
    catches=(),
)
def {function}(ctx):
    return check_replay_file(ctx, TRANSCRIPT)
'''


def new_regression(
    source: str | Path,
    *,
    name: str,
    description: str,
    port: int | None = None,
    root: Path = ROOT,
    force: bool = False,
    answers: str = "reference",
) -> tuple[Path, Path]:
    """Write the case skeleton and its transcript; returns (case file, transcript file).

    answers="reference" (the default) sends the capture's web-server side to the reference responder
    and keeps its answers: a capture of the buggy server holds the bug's answers, which a replay would
    take for the right ones. answers="capture" keeps the captured application side (a capture of a
    correct server).
    """
    if not NAME.match(name):
        raise SkeletonError(f"name {name!r}: lowercase letters, digits, '-' and '.', e.g. php-12345-short-name")
    description = " ".join(description.split()).rstrip(".")
    if not description:
        raise SkeletonError("a one-line --description is needed")
    transcript = load_capture(source, port)
    directory = Path(root) / REGRESSIONS
    case_file = directory / f"{module_name(name)}.py"
    transcript_file = directory / "transcripts" / f"{name}.transcript"
    for path in (case_file, transcript_file):
        if path.exists() and not force:
            raise SkeletonError(f"{path} exists (--force replaces it)")
    if answers == "reference":
        transcript = answers_from_reference(transcript)
    elif answers != "capture":
        raise SkeletonError(f"answers={answers!r}: 'reference' or 'capture'")
    transcript.meta = merge_meta([("bug", description)], [(k, v) for k, v in transcript.meta if k != "bug"])
    transcript_file.parent.mkdir(parents=True, exist_ok=True)
    write_transcript(transcript, transcript_file)
    origin = Path(source).name + (f" (pcap, port {port})" if port is not None else "")
    case_file.write_text(CASE_TEMPLATE.format(
        description=description.replace('"""', "'''"), name=name, origin=origin, title=description,
        function=module_name(name),
    ))
    return case_file, transcript_file


def answers_from_reference(transcript: Transcript) -> Transcript:
    """The capture's web-server side, sent again to the reference responder, with its answers."""
    from harness.replay.engine import plan_connection
    from harness.targets.base import ReferenceTarget, TargetError

    scripts: list[list[Step]] = []
    for connection in transcript.connections:
        steps: list[Step] = []
        for step in plan_connection(connection).steps:
            steps.append(step.data if step.kind == "send" else step.kind)
        if steps:
            scripts.append(steps)
    target = ReferenceTarget(ROOT, ["--quiet"])
    try:
        target.start()
    except TargetError as error:
        raise SkeletonError(f"the reference responder is needed for its answers: {error}") from None
    try:
        assert target.port is not None
        meta = [*transcript.meta, ("answers", "the reference responder's (fcgispec new-regression)"),
                ("app", f"reference ({target.binary.name})")]
        return record_script(("127.0.0.1", target.port), scripts, [(k, v) for k, v in meta if k != "tool"])
    finally:
        target.stop()


# -- scripted captures --------------------------------------------------------------------------


def record_script(target_address: tuple[str, int], connections: Sequence[Sequence[Step]],
                  meta: Sequence[tuple[str, str]] = (), *, quiet: float = QUIET_SECONDS) -> Transcript:
    """Send each connection's steps through the recording proxy to the application, in turn.

    A bytes step is sent, then the proxy waits until the application has been quiet for `quiet`
    seconds; a float pauses; "FIN" half-closes and waits for the application's close (or quiet);
    "RST" resets. A connection whose steps end without a close is closed with a FIN.
    """
    from harness.capture.recording_proxy import RecordingProxy

    proxy = RecordingProxy(target_address).start()
    try:
        for steps in connections:
            sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=5.0)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            closed = False
            for step in steps:
                if isinstance(step, (bytes, bytearray)):
                    sock.sendall(step)
                    time.sleep(SEEN_SECONDS)  # the proxy has read it: a quiet wait now counts from it
                    proxy.wait_quiet(quiet)
                elif isinstance(step, (int, float)):
                    time.sleep(step)
                elif step == "FIN":
                    sock.shutdown(socket.SHUT_WR)
                    closed = True
                elif step == "RST":
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    sock.close()
                    closed = True
                    break
                else:
                    raise ValueError(f"unknown step {step!r}")
            if not closed:
                sock.shutdown(socket.SHUT_WR)
            _drain(sock)
            sock.close()
            proxy.wait_idle(2.0)
        proxy.wait_quiet(quiet)
    finally:
        proxy.stop()
    return proxy.transcript(list(meta))


def _drain(sock: socket.socket) -> None:
    """Read what the application still sends until it closes (the proxy records it)."""
    if sock.fileno() < 0:
        return
    sock.settimeout(2.0)
    try:
        while sock.recv(65536):
            pass
    except OSError:
        pass


# -- HTTP client regressions ----------------------------------------------------------------------

CLIENT_FAMILY = "Regressions: real-world HTTP client bugs"


def client_regression(scenario_id: str, regression_id: str, *, title: str, requirement: str) -> object:
    """A regression of the HTTP client suite: the catalogue scenario scenario_id (cases/client/, e.g.
    CLI-REUSE-4) that replays the bug, under the bug's own id, title and requirement.

    It runs the scenario's own code, so that the regression and the catalogue cannot drift apart;
    its mistakes= (tests/clients/buggy_client.py --bug) are the scenario's.
    """
    import dataclasses

    from harness.suite.case import import_case_module
    from harness.clients.cases import ClientCase

    for path in sorted((ROOT / "cases" / "client").glob("*.py")):
        for value in vars(import_case_module(path)).values():
            if isinstance(value, ClientCase) and value.id == scenario_id:
                return dataclasses.replace(value, id=regression_id, title=title, requirement=requirement,
                                           section=CLIENT_FAMILY, family_order=100)
    raise SkeletonError(f"no client scenario {scenario_id} in cases/client/")
