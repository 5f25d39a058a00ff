"""Target selection: a --target spec string -> a Target (not started).

Specs: 'reference' or 'reference ARGS...' (the built reference responder with extra options),
a named real server (php-fpm, go-fcgi, libfcgi, fcgiwrap, perl-fcgi, uwsgi, php-cgi, node-fastcgi,
mojo-fastcgi, net-async-fastcgi: harness/targets/named.py),
'tcp:HOST:PORT', 'unix:PATH' (an application already listening there) and 'cmd:COMMAND' (a shell
command the harness spawns: harness/targets/base.py CommandTarget). This module imports both
base.py and named.py; neither imports it.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from types import MappingProxyType

from harness.targets.base import CommandTarget, ReferenceTarget, Target, TargetError, TcpTarget, UnixTarget
from harness.targets.named import NAMED_TARGETS, PROBE_LIMITATION_KEYS, named_target

PROBE_APP_CHOICES = ("auto", "yes", "no")


def parse_target(spec: str, root: Path) -> Target:
    """A Target from its --target spec (a name from harness/targets/named.py starts that real server)."""
    if spec in NAMED_TARGETS:
        return named_target(spec, root)
    if spec == "reference":
        return ReferenceTarget(root)
    if spec.startswith("reference "):
        try:
            options = shlex.split(spec[len("reference ") :])
        except ValueError as error:  # an unbalanced quote
            raise TargetError(f"{spec!r}: the reference responder's options cannot be split ({error})") from None
        if any(option == "--fault" and value == "list" for option, value in zip(options, options[1:])) \
                or "--fault=list" in options:
            raise TargetError(f"{spec!r}: --fault list only lists the fault modes "
                              "(build/reference-server/fcgispec-responder --fault list); name one of them")
        return ReferenceTarget(root, options)
    kind, colon, rest = spec.partition(":")
    if colon and kind == "tcp":
        return TcpTarget(rest)
    if colon and kind == "unix":
        return UnixTarget(rest)
    if colon and kind == "cmd":
        return CommandTarget(rest)
    raise TargetError(
        f"unknown target {spec!r}: expected reference, {', '.join(NAMED_TARGETS)}, tcp:HOST:PORT, unix:PATH or cmd:COMMAND"
    )


def parse_probe_limitations(text: str) -> dict[str, str]:
    """--probe-limitations 'KEY=why,KEY=why' -> {KEY: why}; the keys are harness/targets/named.py's LIMIT_*."""
    limitations: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, _, why = item.partition("=")
        key = key.strip()
        if key not in PROBE_LIMITATION_KEYS:
            raise TargetError(
                f"--probe-limitations: unknown key {key!r}; the keys are {', '.join(sorted(PROBE_LIMITATION_KEYS))}"
            )
        limitations[key] = why.strip() or "declared with --probe-limitations"
    return limitations


def declare_probe_app(
    target: Target,
    *,
    script_filename: str | None = None,
    limitations: str | None = None,
    probe_app: str | None = None,
) -> None:
    """What the user says about any target's probe app (--script-filename, --probe-limitations,
    --probe-app) becomes what the target declares (harness/targets/base.py Target).

    A SCRIPT_FILENAME given without --probe-app means there is a probe app to find: the target
    is asked (has_probe_app None), as a cmd: target always is.
    """
    if probe_app is not None and probe_app not in PROBE_APP_CHOICES:
        raise TargetError(f"--probe-app: expected one of {', '.join(PROBE_APP_CHOICES)}, got {probe_app!r}")
    if script_filename:
        target.script_filename = os.path.abspath(script_filename)
        if probe_app is None and target.has_probe_app is False:
            target.has_probe_app = None
    if limitations is not None:
        target.probe_limitations = MappingProxyType(parse_probe_limitations(limitations))
    if probe_app is not None:
        target.has_probe_app = {"auto": None, "yes": True, "no": False}[probe_app]
