"""Two runs at once in one checkout: the second waits for the first one's build instead of
writing the same objects (which once ended in `ranlib: file truncated`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_two_setups_at_once_in_a_fresh_checkout_both_succeed(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(checkout)], check=True, timeout=120)
    # The working tree as it is now (the clone has the last commit only).
    subprocess.run(["cp", "-a", f"{ROOT}/scripts/.", f"{checkout}/scripts/"], check=True)
    setups = [subprocess.Popen([str(checkout / "scripts" / "setup")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
              for _ in range(2)]
    outputs = [setup.communicate(timeout=600)[0].decode(errors="replace") for setup in setups]
    assert [setup.returncode for setup in setups] == [0, 0], "\n".join(outputs)
    responder = checkout / "build" / "reference-server" / "fcgispec-responder"
    assert subprocess.run([str(responder), "--help"], capture_output=True, timeout=30).returncode == 0
