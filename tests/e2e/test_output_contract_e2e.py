"""The chronyctl6/v1 envelope from the commands that need an instance (boot, live apply, check,
status, doctor), on the simulated EC2 instance: success and failure, each valid against the
shipped schema, its exit_code the process's exit status."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sandbox import TIME_SYNC_V6, Ec2
from tests.conftest import REPO
from tests.contract import envelope

# The simulated instance: network namespaces, overlay mounts, chronyd (root).
pytestmark = [pytest.mark.e2e, pytest.mark.root]

Factory = Callable[..., Ec2]


def test_every_command_on_a_healthy_instance(ec2_factory: Factory) -> None:
    ec2 = ec2_factory()
    inst = ec2.instance
    applied = envelope(inst.run(["chronyctl6", "apply", "--wait", "30", "-o", "json"], timeout=120), "apply")
    assert applied["status"] == "ok" and applied["data"]["selected"] == TIME_SYNC_V6
    assert isinstance(applied["data"]["waited_seconds"], float)
    booted = envelope(inst.run(["chronyctl6", "boot", "--settle", "0", "-o", "json"], timeout=60), "boot")
    assert booted["status"] == "ok" and booted["data"]["endpoint"] == TIME_SYNC_V6
    assert "waited_for_ipv6_seconds" in booted["data"]
    # check's and status's ok need chronyd's bound within 0.1 s: selected is not yet that.
    inst.wait_synchronised(max_error=0.05)
    checked = envelope(inst.run(["chronyctl6", "check", "-o", "json"], timeout=60), "check")
    assert checked["status"] == "ok" and checked["data"]["server"] == TIME_SYNC_V6
    assert abs(checked["data"]["offset_seconds"]) < 0.1
    chronyd = checked["data"]["chronyd"]
    assert chronyd["synchronised"] and isinstance(chronyd["offset_seconds"], float)
    assert chronyd["root_distance_seconds"] >= 0
    status = envelope(inst.run(["chronyctl6", "status", "-o", "json"]), "status")
    assert status["status"] == "ok"
    doctor = envelope(inst.run(["chronyctl6", "doctor", "-o", "json"], timeout=60), "doctor")
    assert doctor["status"] == "ok" and doctor["data"]["fixes"] == []
    rendered = envelope(inst.run(["chronyctl6", "render", "-o", "json"]), "render")
    assert rendered["status"] == "ok"


def test_failures_are_envelopes_too(ec2_factory: Factory) -> None:
    ec2 = ec2_factory(timesync="silent")
    inst = ec2.instance
    # chronyd never selects a silent Time Sync: rolled back, status failed, exit 1.
    done = inst.run(["chronyctl6", "apply", "--wait", "3", "-o", "json"], timeout=120)
    failed = envelope(done, "apply")
    assert (failed["status"], done.returncode) == ("failed", 1)
    assert any(m["level"] == "error" and "restored" in m["text"] for m in failed["messages"])
    # check: no reply is UNKNOWN (3): --no-chronyd keeps to the measurement...
    done = inst.run(["chronyctl6", "check", "--no-chronyd", "--timeout", "0.5", "-o", "json"], timeout=60)
    unknown = envelope(done, "check")
    assert (unknown["status"], done.returncode) == ("unknown", 3)
    assert unknown["data"]["offset_seconds"] is None
    # ...and with chronyd's view (it runs, rolled back, unsynchronised) CRITICAL (2), as status says.
    done = inst.run(["chronyctl6", "check", "--timeout", "0.5", "-o", "json"], timeout=60)
    critical = envelope(done, "check")
    assert (critical["status"], done.returncode) == ("critical", 2)
    assert critical["data"]["chronyd"]["synchronised"] is False
    # status: chronyd runs (rolled back onto the stock file) but is not synchronised: critical.
    done = inst.run(["chronyctl6", "status", "-o", "json"])
    status = envelope(done, "status")
    assert status["status"] in ("critical", "warning") and done.returncode in (1, 2)
    assert status["data"]["synchronised_to_timesync"] is False
    # doctor: Time Sync silent is a failure (2).
    done = inst.run(["chronyctl6", "doctor", "-o", "json"], timeout=60)
    assert envelope(done, "doctor")["status"] == "critical" and done.returncode == 2
    # boot, as a non-root user (with Debian's python3 and packages): denied (4).
    done = inst.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "env",
                     f"PYTHONPATH={REPO}", "/usr/bin/python3", "-m", "chronyctl6", "boot", "-o", "json"],
                    timeout=60)
    assert done.stdout.startswith("{"), done.stdout + done.stderr
    denied = envelope(done, "boot")
    assert (denied["status"], done.returncode) == ("denied", 4)
