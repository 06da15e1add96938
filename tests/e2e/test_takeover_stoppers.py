"""Kept directives that stop synchronisation, with real chronyd (-x) on the simulated instance
(Time Sync serving on fd00:ec2::123 inside the sandbox's namespaces).

What apply would leave if it kept the operator's `minsources 2` or `authselectmode require` beside
its single Time Sync line never synchronises: chronyd collects samples from fd00:ec2::123 and still
selects nothing. apply drops those lines (reporting file and line), and chronyd then has
fd00:ec2::123 selected by the same fourth reply: the control that shows the same instance does
synchronise in that time."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chronyctl6.effects import chrony_tools
from sandbox import TIME_SYNC_V6, Ec2, SandboxError
from tests.helpers import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.root]

Factory = Callable[..., Ec2]
SAMPLES = 0o17  # four replies in the reachability register: iburst's burst is over


def sources_after_samples(ec2: Ec2, timeout: float = 60.0) -> list[chrony_tools.Source]:
    """chronyd's sources once fd00:ec2::123 has answered four times: a condition waited on with a
    generous deadline (a chronyd just restarted by apply that does not answer yet counts as no
    sources), failing with what chronyd last said."""
    def answered(found: list[chrony_tools.Source]) -> bool:
        return any(s.name == TIME_SYNC_V6 and s.reach & SAMPLES == SAMPLES for s in found)

    return wait_for(lambda: _sources(ec2), answered, what=f"four replies from {TIME_SYNC_V6}", timeout=timeout,
                    every=0.2)


def _sources(ec2: Ec2) -> list[chrony_tools.Source]:
    try:
        return ec2.instance.sources()
    except SandboxError:
        return []


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

    # What a takeover that kept the line would leave: chronyctl6's file plus the operator's line,
    # polled every 0.25 s instead of 16 s (the stopper does not care; four replies come sooner).
    kept = rendered.stdout.replace("minpoll 4 maxpoll 4", "minpoll -2 maxpoll -2")
    assert kept != rendered.stdout
    inst.start_chronyd(kept + f"{stopper}\n")
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
