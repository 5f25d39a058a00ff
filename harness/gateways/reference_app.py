"""A known application bug behind the gateway: the reference responder, in one of its fault modes, as the application.

The scripted application (application.py) still takes the gateway's connections and keeps the
ledger; every connection is passed through, byte for byte, to a reference responder
(reference-server/) started with --fault NAME on a loopback port of its own. The case then sees
what a gateway does in front of the real bug the fault mode replays (reference-server/faults.c),
and the ledger shows both directions as with a scripted answer.
"""

from __future__ import annotations

from typing import Sequence

from harness.gateways.application import AppConn, Script
from harness.installation.paths import PROJECT_ROOT
from harness.targets.base import ReferenceTarget, TargetError
from harness.targets.faults import known_faults
from harness.verdicts import HarnessError

# One request at a time per connection, as the scripted application and most real ones (php-fpm) answer.
RESPONDER_OPTIONS = ("--no-mpx", "--quiet")


class ReferenceApplication:
    """The reference responder with these fault modes, on a free loopback port, until stop()."""

    def __init__(self, faults: Sequence[str], options: Sequence[str] = ()) -> None:
        known = known_faults()
        unknown = [name for name in faults if known and name not in known]
        if unknown:
            raise HarnessError(f"the reference responder has no fault mode {', '.join(unknown)}")
        args = [arg for name in faults for arg in ("--fault", name)]
        self.faults = tuple(faults)
        self.target = ReferenceTarget(PROJECT_ROOT, [*args, *RESPONDER_OPTIONS, *options])
        try:
            self.target.start()
        except TargetError as error:
            self.target.stop()
            self.target.discard_log()
            raise HarnessError(f"the reference responder could not be started as the application: {error}") from None
        assert self.target.port is not None
        self.address = ("127.0.0.1", self.target.port)

    @property
    def description(self) -> str:
        return f"the reference responder with --fault {' --fault '.join(self.faults)}" if self.faults \
            else "the reference responder"

    def script(self) -> Script:
        """The script that passes each of the gateway's connections through to the responder."""

        def relay(conn: AppConn) -> None:
            conn.relay(self.address)

        return relay

    def stop(self) -> None:
        self.target.stop()
        self.target.discard_log()
