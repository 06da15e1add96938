"""`chronyctl6 wait` against a real chronyd (-x) on the simulated instance: it returns once
chronyd is on Time Sync within the bound, and says why not when Time Sync is silent."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from sandbox import Ec2

# The simulated instance: network namespaces, overlay mounts, chronyd (root).
pytestmark = [pytest.mark.e2e, pytest.mark.root]

CONFIG = ("server fd00:ec2::123 prefer iburst minpoll 4 maxpoll 4\n"
          "driftfile /var/lib/chrony/chrony.drift\nmakestep 1.0 3\n")


def test_wait_returns_once_on_time_sync_and_records_it(ec2: Ec2) -> None:
    inst = ec2.instance
    inst.start_chronyd(CONFIG)
    done = inst.run([*inst.cli, "wait", "--timeout", "60", "--max-error", "0.05", "-o", "json"], timeout=90)
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(done.stdout)["data"]
    assert data["ready"] is True and data["source"] == "fd00:ec2::123"
    assert 0 < data["bound_seconds"] <= 0.05 and data["since_boot_seconds"] > 0
    assert data["steps"][-1] == data["reason"] and data["reason"].startswith("synchronised to fd00:ec2::123")
    # chronyd, asked the same moment, agrees it selected Time Sync.
    assert inst.selected() == "fd00:ec2::123"
    kept = json.loads(inst.read_text("/run/chronyctl6/synchronised.json"))
    assert kept["source"] == "fd00:ec2::123" and kept["since_boot_seconds"] == data["since_boot_seconds"]
    # status and check read it back: JSON, text and the metric an image builder watches (issue 20).
    status = json.loads(inst.run([*inst.cli, "status", "-o", "json"], timeout=60).stdout)["data"]
    assert status["synchronised_at_boot"]["since_boot_seconds"] == data["since_boot_seconds"]
    text = inst.run([*inst.cli, "status"], timeout=60).stdout
    assert f"synchronised at boot: {data['since_boot_seconds']:g} s after boot (to fd00:ec2::123" in text
    metrics = inst.run([*inst.cli, "check", "-o", "prometheus"], timeout=60).stdout
    assert f"chronyctl6_check_boot_to_synchronised_seconds {data['since_boot_seconds']:g}" in metrics or (
        f"chronyctl6_check_boot_to_synchronised_seconds {float(data['since_boot_seconds'])!r}" in metrics), metrics


def test_wait_says_why_when_time_sync_is_silent(ec2_factory: Callable[..., Ec2]) -> None:
    ec2 = ec2_factory(timesync="silent")
    inst = ec2.instance
    inst.start_chronyd(CONFIG)
    done = inst.run([*inst.cli, "wait", "--timeout", "3"], timeout=30)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "not synchronised within 3 s: not synchronised: no reply yet from fd00:ec2::123 (reach 0" in done.stdout


def test_wait_without_chronyd_says_it_does_not_answer(ec2: Ec2) -> None:
    inst = ec2.instance
    done = inst.run([*inst.cli, "wait", "--timeout", "1"], timeout=30)
    assert done.returncode == 2 and "chronyd does not answer" in done.stdout, done.stdout + done.stderr
