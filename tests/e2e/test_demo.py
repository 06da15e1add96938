"""scripts/demo, the first thing a newcomer runs, ends in one verdict: doctor, check and status
(after `chronyctl6 wait`) all say healthy, or all say it is not; never one of each (issue 20).

It runs as a newcomer runs it (as root; it makes its own network namespace inside the suite's).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

# Network namespaces, overlay mounts, chronyd: root.
pytestmark = [pytest.mark.e2e, pytest.mark.root]
HEALTHY = "Verdict: healthy (doctor exit 0, check exit 0, status exit 0)"
NOT_HEALTHY = "Verdict: NOT healthy, and all three say so (doctor exit 2, check exit 2, status exit 2)"


@pytest.mark.parametrize(("args", "code", "verdict"), [
    ((), 0, HEALTHY), (("--no-ipv6",), 0, HEALTHY), (("--timesync", "silent"), 1, NOT_HEALTHY),
], ids=["dual-stack", "ipv4-only", "time-sync-silent"])
def test_the_demo_ends_in_one_verdict(args: tuple[str, ...], code: int, verdict: str) -> None:
    if os.geteuid() != 0:
        pytest.fail("needs root (marked root)")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("CHRONYCTL6_DEMO_INNER", None)  # the demo makes its own network namespace, as for a newcomer
    done = subprocess.run([sys.executable, str(REPO / "scripts/demo"), *args], capture_output=True, text=True,
                          env=env, timeout=300, check=False)
    output = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)
    assert done.returncode == code, output
    assert output.rstrip().splitlines()[-1].startswith(f"== {verdict}"), output
