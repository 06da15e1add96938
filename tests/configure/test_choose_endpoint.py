"""Choosing the Time Sync endpoint from the host's usable addresses and, where it answered,
instance metadata (pure, in process)."""

from __future__ import annotations

import pytest

from chronyctl6.configure.render import choose_endpoint
from chronyctl6.effects.host import HostNetwork, InstanceHint

V6, V4 = "fd00:ec2::123", "169.254.169.123"
DUAL = HostNetwork(("2600:1f18::5%eth0",), ("10.0.0.5%eth0",))
V4_ONLY = HostNetwork((), ("10.0.0.5%eth0",))
V4_WITH_LO_V6 = HostNetwork((), ("10.0.0.5%eth0",), ("2001:db8::1%lo: on a loopback interface",))
V6_ONLY = HostNetwork(("2600:1f18::5%eth0",), ())


@pytest.mark.parametrize(("network", "hint", "address", "said"), [
    (DUAL, None, V6, "route to Time Sync (2600:1f18::5%eth0)"),
    (DUAL, InstanceHint("nitro", True), V6, "IPv6 address"),
    (DUAL, InstanceHint("nitro", False), V4, "instance metadata says the interface has no IPv6"),
    (DUAL, InstanceHint("xen", True), V4, "Xen"),
    (V4_ONLY, None, V4, "no IPv6 address"),
    (V4_WITH_LO_V6, None, V4, "no usable IPv6 address (2001:db8::1%lo: on a loopback interface)"),
    (V4_WITH_LO_V6, InstanceHint("nitro", True), V4, "no usable IPv6"),  # EC2 says yes, the host cannot
    (V6_ONLY, InstanceHint("nitro", False), V6, "IPv6 address"),  # no IPv4 to fall back on: never IPv4
    (HostNetwork((), ()), None, V6, "no IPv4 address at all"),
])
def test_auto(network: HostNetwork, hint: InstanceHint | None, address: str, said: str) -> None:
    chosen = choose_endpoint("auto", network, hint)
    assert chosen.address == address and said in chosen.reason


def test_a_control_character_in_an_interface_name_never_reaches_the_file() -> None:
    odd = HostNetwork(("2600:1f18::5%e\x1b[2Jth0",), ())
    assert "\x1b" not in choose_endpoint("auto", odd).reason
