"""SIGKILL apply at random points: the file is always the old one or the new one, whole, and the
original kept at first takeover survives."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO
from tests.helpers import cli, stock_root

RUNS = 60


def test_sigkill_never_leaves_a_partial_file(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    conf = root / "etc/chrony/chrony.conf"
    stock = conf.read_bytes()
    # The two files apply alternates between, rendered once by runs nobody kills; how long a
    # changing run takes here (the fastest of three: load only slows the others), to spread the kills
    # across its whole life.
    versions = set()
    durations = []
    for mode in ("on", "off", "on"):
        start = time.monotonic()
        assert cli("apply", "--root", str(root), "--ipv6", mode).returncode == 0
        durations.append(time.monotonic() - start)
        versions.add(conf.read_bytes())
    assert len(versions) == 2
    duration = min(durations)

    rng = random.Random(20261129)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    outcomes = {"killed": 0, "finished": 0}
    for i in range(RUNS):
        mode = "off" if i % 2 == 0 else "on"
        proc = subprocess.Popen([sys.executable, "-m", "chronyctl6", "apply", "--root", str(root), "--ipv6", mode],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        # Most of a run is interpreter start-up: lean the kills towards its end, where it writes.
        time.sleep(rng.uniform(duration * 0.3, duration * 1.05))
        proc.send_signal(signal.SIGKILL)
        rc = proc.wait(timeout=30)
        outcomes["killed" if rc == -signal.SIGKILL else "finished"] += 1
        assert conf.read_bytes() in versions, f"run {i}: partial or foreign file"
    # A later apply cleans up temp files a killed one left behind, and succeeds.
    assert cli("apply", "--root", str(root), "--ipv6", "on").returncode == 0
    leftovers = [p.name for p in conf.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
    assert outcomes["killed"] >= RUNS // 2, outcomes
    # Whatever the kills interrupted, the distribution's file is still kept as it was.
    assert cli("restore", "--root", str(root), "--original").returncode == 0
    assert conf.read_bytes() == stock
