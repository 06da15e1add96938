"""Choosing the endpoint on the simulated instance: an IPv4-only launch with a global IPv6 address
on `lo`, or on eth0 without any route towards fd00:ec2::/32, gets 169.254.169.123 from apply and
from the boot step, and chronyd selects it (fd00:ec2::123 fails at once there: ENETUNREACH)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sandbox import TIME_SYNC_V4, Ec2

pytestmark = [pytest.mark.e2e, pytest.mark.root]

Factory = Callable[..., Ec2]
UNUSABLE = {
    "global-address-on-lo": ["ip", "-6", "addr", "add", "2001:db8:99::1/128", "dev", "lo"],
    "global-address-without-a-route": ["ip", "-6", "addr", "add", "2001:db8:0:1::10/64", "dev", "eth0", "nodad"],
}


@pytest.mark.parametrize("case", sorted(UNUSABLE))
def test_an_unusable_ipv6_address_gets_the_ipv4_endpoint(ec2_factory: Factory, case: str) -> None:
    ec2 = ec2_factory(ipv6=False)  # IPv4-only: no route towards fd00:ec2::/32 on the instance
    inst = ec2.instance
    inst.run(UNUSABLE[case], check=True)
    routes = inst.run(["ip", "-6", "route", "show"], check=True).stdout
    assert "fd00:ec2" not in routes and "default" not in routes, routes

    done = inst.run(["chronyctl6", "apply", "--wait", "30"], timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"chronyd selected {TIME_SYNC_V4} after" in done.stdout
    assert [s.name for s in inst.sources() if s.selected] == [TIME_SYNC_V4]

    boot = inst.run(["chronyctl6", "boot"], timeout=60)
    assert boot.returncode == 0, boot.stderr
    assert f"Time Sync endpoint for this boot: {TIME_SYNC_V4}" in boot.stdout
