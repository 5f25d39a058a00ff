"""Target selection: a --target spec string -> a Target (not started).

Specs: 'reference' or 'reference ARGS...' (the built reference responder with extra options),
a named real server (php-fpm, go-fcgi, libfcgi, fcgiwrap, perl-fcgi, uwsgi, php-cgi, node-fastcgi,
mojo-fastcgi, net-async-fastcgi: harness/targets/named.py),
'tcp:HOST:PORT', 'unix:PATH' (an application already listening there) and 'cmd:COMMAND' (a shell
command the harness spawns: harness/targets/base.py CommandTarget). This module imports both
base.py and named.py; neither imports it.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from harness.targets.base import CommandTarget, ReferenceTarget, Target, TargetError, TcpTarget, UnixTarget
from harness.targets.named import NAMED_TARGETS, named_target


def parse_target(spec: str, root: Path) -> Target:
    """A Target from its --target spec (a name from harness/targets/named.py starts that real server)."""
    if spec in NAMED_TARGETS:
        return named_target(spec, root)
    if spec == "reference":
        return ReferenceTarget(root)
    if spec.startswith("reference "):
        return ReferenceTarget(root, shlex.split(spec[len("reference ") :]))
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
