"""Kept directives that stop synchronisation, with real chronyd (-x) on the simulated instance
(Time Sync serving on fd00:ec2::123 inside the sandbox's namespaces).

What apply would leave if it kept the operator's `minsources 2` or `authselectmode require` beside
its single Time Sync line never synchronises: chronyd collects samples from fd00:ec2::123 and still
selects nothing. apply drops those lines (reporting file and line), and chronyd then has
fd00:ec2::123 selected by the same fourth reply: the control that shows the same instance does
synchronise in that time."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from chronyctl6.effects import chrony_tools
from sandbox import TIME_SYNC_V6, Ec2

pytestmark = [pytest.mark.e2e, pytest.mark.root]

Factory = Callable[..., Ec2]
SAMPLES = 0o17  # four replies in the reachability register: iburst's burst is over


def sources_after_samples(ec2: Ec2, timeout: float = 40.0) -> list[chrony_tools.Source]:
    """chronyd's sources once fd00:ec2::123 has answered four times (or the deadline passed)."""
    deadline = time.monotonic() + timeout
    while True:
        found = ec2.instance.sources()
        timesync = [s for s in found if s.name == TIME_SYNC_V6]
        if (timesync and timesync[0].reach & SAMPLES == SAMPLES) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


@pytest.mark.parametrize("stopper", ["minsources 2", "authselectmode require"])
def test_a_kept_stopper_never_synchronises_and_apply_drops_it(ec2_factory: Factory, stopper: str) -> None:
    ec2 = ec2_factory()
    inst = ec2.instance
    path = inst.distro.chrony_conf_path
    operator = inst.read_text(path) + f"{stopper}\n"
    inst.write_text(path, operator)
    rendered = inst.run(["chronyctl6", "render", "--ipv6", "on"])
    assert rendered.returncode == 0, rendered.stderr
    assert f"\n{stopper}\n" not in rendered.stdout

    # What a takeover that kept the line would leave: chronyctl6's file plus the operator's line.
    inst.start_chronyd(rendered.stdout + f"{stopper}\n")
    found = sources_after_samples(ec2)
    (timesync,) = [s for s in found if s.name == TIME_SYNC_V6]
    assert timesync.reach & SAMPLES == SAMPLES, found  # it answered, four times
    assert not [s for s in found if s.selected], found  # and still nothing is selected
    assert inst.tracking().leap_status == "Not synchronised"

    # The control: apply (which drops the line and restarts chronyd), then the same four samples.
    inst.write_text(path, operator)
    done = inst.run(["chronyctl6", "apply", "--ipv6", "on", "--wait", "0", "-o", "json"], timeout=90)
    assert done.returncode == 0, done.stderr
    assert f'"line": "{stopper}"' in done.stdout and f'"file": "{path}"' in done.stdout
    found = sources_after_samples(ec2)
    assert [s.name for s in found if s.selected] == [TIME_SYNC_V6], found
