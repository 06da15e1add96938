# ruff: noqa: E501  (the kernel's table lines, as captured)
"""Which IPv6 addresses can reach Time Sync, from the kernel's own tables as data (pure), and once
for real in a network namespace of the test's own (root): an address on `lo`, on an interface that
is down, or without a route towards fd00:ec2::/32 (or a default one) through its interface does
not count."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from chronyctl6.effects import host
from chronyctl6.effects.host import Link
from tests.conftest import REPO, require

# Captured on this project's build machine (a container: eth0 with fd00::2/64, default via fd00::1).
IF_INET6 = """\
00000000000000000000000000000001 01 80 10 80       lo
fe8000000000000000fc00fffe000001 04 40 20 80     eth0
fd000000000000000000000000000002 04 40 00 82     eth0
"""
ROUTES = """\
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000002 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0
00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000003 00000000 80200001       lo
fd000000000000000000000000000002 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000003 00000000 80200001     eth0
ff000000000000000000000000000000 08 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000003 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
"""
DEFAULT_VIA_ETH0 = ROUTES.splitlines()[2]
LINKS = {"lo": Link("lo", True, True), "eth0": Link("eth0", True, False), "eth1": Link("eth1", True, False)}
V4 = (("eth0", "192.0.2.2"), ("lo", "127.0.0.1"))


def net(inet6: str = IF_INET6, routes: str | None = ROUTES, links: dict[str, Link] = LINKS) -> host.HostNetwork:
    parsed = host.parse_ipv6_routes(routes) if routes is not None else None
    return host.network_from(links, host.parse_if_inet6(inet6), V4, parsed)


def test_the_captured_machine_reaches_time_sync_over_ipv6() -> None:
    found = net()
    assert found.global_ipv6 == ("fd00::2%eth0",) and found.unusable_ipv6 == ()
    assert found.ipv4 == ("192.0.2.2%eth0",)  # 127.0.0.1 on lo is not an address to reach anything


def test_a_global_address_on_lo_does_not_count() -> None:
    inet6 = IF_INET6.replace("fd000000000000000000000000000002 04 40 00 82     eth0",
                             "20010db8000000000000000000000010 01 80 00 80       lo")
    found = net(inet6)
    assert not found.has_global_ipv6
    assert found.unusable_ipv6 == ("2001:db8::10%lo: on a loopback interface",)


def test_without_a_route_towards_time_sync_the_address_does_not_count() -> None:
    routes = ROUTES.replace(DEFAULT_VIA_ETH0 + "\n", "")  # the lo catch-all `unreachable` is what is left
    found = net(routes=routes)
    assert not found.has_global_ipv6
    assert "no route towards fd00:ec2::123" in found.unusable_ipv6[0]


def test_a_route_to_fd00_ec2_32_is_enough_and_the_longest_prefix_wins() -> None:
    specific = ("fd000ec2000000000000000000000000 20 00000000000000000000000000000000 00 "
                "fe800000000000000000000000000001 00000400 00000001 00000000 00000003     eth1\n")
    found = net(routes=ROUTES + specific)  # eth0's default loses to the /32 through eth1
    assert not found.has_global_ipv6
    assert found.unusable_ipv6 == ("fd00::2%eth0: the route towards fd00:ec2::123 leaves through eth1",)
    only_specific = ROUTES.replace(DEFAULT_VIA_ETH0 + "\n", "") + specific.replace("eth1", "eth0")
    assert net(routes=only_specific).global_ipv6 == ("fd00::2%eth0",)


def test_an_interface_that_is_down_or_an_address_not_yet_valid_does_not_count() -> None:
    down = {**LINKS, "eth0": Link("eth0", False, False)}
    assert net(links=down).unusable_ipv6 == ("fd00::2%eth0: its interface is down",)
    assert net(links=down).ipv4 == ()
    tentative = IF_INET6.replace("04 40 00 82     eth0", "04 40 00 40     eth0")
    assert net(tentative).unusable_ipv6 == ("fd00::2%eth0: still tentative",)
    failed = IF_INET6.replace("04 40 00 82     eth0", "04 40 00 08     eth0")
    assert "duplicate address detection failed" in net(failed).unusable_ipv6[0]


def test_unknown_routes_do_not_veto_an_address_on_an_up_interface() -> None:
    assert net(routes=None).global_ipv6 == ("fd00::2%eth0",)


def test_garbage_lines_are_skipped() -> None:
    assert host.parse_if_inet6("x\n\x1b[2J 1 2 3 4 5\n" + IF_INET6)[-1].ifname == "eth0"
    assert len(host.parse_ipv6_routes("zz " * 10 + "\n" + ROUTES)) == 7


SCRIPT = """
set -e
ip link set lo up
ip -6 addr add 2001:db8:1::1/64 dev lo
ip link add d0 type veth peer name d1
ip link set d1 up
ip -6 addr add 2001:db8:2::5/64 dev d0 nodad
ip link set d0 up
show() { "$PYTHON" -c 'import json, dataclasses
from chronyctl6.effects import host
print(json.dumps(dataclasses.asdict(host.read_network())))'; }
show
ip -6 route add fd00:ec2::/32 dev d0
show
ip link set d0 down
show
"""


@pytest.mark.root
def test_read_network_in_a_namespace_of_its_own() -> None:
    require(os.geteuid() == 0, "root (a network namespace of the test's own)")
    require(shutil.which("ip") is not None and shutil.which("unshare") is not None, "iproute2, util-linux")
    done = subprocess.run(["unshare", "--net", "--", "bash", "-c", SCRIPT], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(REPO), "PYTHON": sys.executable},
                          check=False)
    assert done.returncode == 0, done.stderr
    no_route, routed, down = (json.loads(line) for line in done.stdout.splitlines())
    # The address on lo never counts; d0's counts once a route towards fd00:ec2::/32 leaves through it.
    assert no_route["global_ipv6"] == [] and any("%lo: on a loopback" in u for u in no_route["unusable_ipv6"])
    assert any("2001:db8:2::5%d0: no route" in u for u in no_route["unusable_ipv6"])
    assert routed["global_ipv6"] == ["2001:db8:2::5%d0"]
    assert down["global_ipv6"] == []
