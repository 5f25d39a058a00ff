"""What a replay found: per connection, how many requests were answered as captured and the first
divergence (with the records around it, on the target's side and in the capture); the report."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Divergence:
    connection: int
    request: int | None
    message: str
    target_context: list[str] = field(default_factory=list)
    capture_context: list[str] = field(default_factory=list)

    def describe(self) -> str:
        lines = [f"connection {self.connection}: {self.message}"]
        if self.target_context:
            lines.append("  target (last records, '>' sent by the replay, '<' from the target):")
            lines.extend("  " + line for line in self.target_context)
        if self.capture_context:
            lines.append("  capture (around this point, '=>' marks it):")
            lines.extend("  " + line for line in self.capture_context)
        return "\n".join(lines)


@dataclass
class ConnectionResult:
    number: int
    requests: int
    answered: int  # requests that got their END_REQUEST (on a diverged connection: before it diverged)
    divergence: Divergence | None = None
    connected: bool = True  # False: the target did not accept the connection (the divergence says why)


@dataclass
class ReplayResult:
    source: str
    target: str
    level: str
    connections: list[ConnectionResult] = field(default_factory=list)
    concurrent: bool = False

    @property
    def divergences(self) -> list[Divergence]:
        return [c.divergence for c in self.connections if c.divergence is not None]

    @property
    def ok(self) -> bool:
        return not self.divergences

    @property
    def unreachable(self) -> bool:
        """No connection could be opened: nothing was judged (the harness could not run)."""
        return bool(self.connections) and not any(c.connected for c in self.connections)

    @property
    def first_divergence(self) -> Divergence | None:
        found = self.divergences
        return found[0] if found else None

    def report(self) -> str:
        requests = sum(c.requests for c in self.connections)
        # A connection that diverged was not answered as captured, whatever it answered before.
        as_captured = sum(c.answered for c in self.connections if c.divergence is None)
        diverged = [c for c in self.connections if c.divergence is not None]
        at_once = ", connections concurrently" if self.concurrent else ""
        head = (f"replay of {self.source} against {self.target} ({self.level}{at_once}): "
                f"{len(self.connections)} connection(s), {as_captured}/{requests} request(s) answered as captured")
        if self.ok:
            return head + "\nno divergence"
        answered_there = sum(c.answered for c in diverged)
        head += (f"; {len(diverged)} connection(s) diverged, with {sum(c.requests for c in diverged)} request(s), "
                 f"{answered_there} of them with an END_REQUEST")
        lines = [head, "the first divergence:", self.divergences[0].describe()]
        for other in self.divergences[1:]:
            lines.append(f"also: connection {other.connection}: {other.message}")
        return "\n".join(lines)
