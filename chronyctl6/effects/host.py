"""What this host has: addresses (psutil), the ENA PTP hardware clock, os-release, settings.

Reading only; every path is taken under a root so image builds read the image, not the builder.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class HostNetwork:
    global_ipv6: tuple[str, ...]  # scope-global IPv6 addresses on non-loopback interfaces
    ipv4: tuple[str, ...]  # IPv4 addresses on non-loopback interfaces

    @property
    def has_global_ipv6(self) -> bool:
        return bool(self.global_ipv6)

    @property
    def has_ipv4(self) -> bool:
        return bool(self.ipv4)


@dataclass(frozen=True)
class InstanceHint:
    """What instance metadata says that local addresses cannot: None where IMDS did not answer."""

    system: str | None = None  # nitro | xen
    ipv6_assigned: bool | None = None  # the primary interface has IPv6 addresses in EC2

    @property
    def xen(self) -> bool:
        return self.system == "xen"


def read_network() -> HostNetwork:
    import psutil  # imported here: `check` must not pay for it at start-up

    v6: list[str] = []
    v4: list[str] = []
    for ifname, addrs in psutil.net_if_addrs().items():
        for addr in addrs:
            if addr.family == socket.AF_INET6:
                ip6 = ipaddress.IPv6Address(addr.address.split("%", 1)[0])
                # What the kernel calls scope global is what can reach fd00:ec2::123: a
                # unique-local address counts, link-local and loopback do not.
                if not (ip6.is_link_local or ip6.is_loopback or ip6.is_multicast):
                    v6.append(f"{ip6}%{ifname}")
            elif addr.family == socket.AF_INET:
                ip4 = ipaddress.IPv4Address(addr.address)
                if not ip4.is_loopback:
                    v4.append(f"{ip4}%{ifname}")
    return HostNetwork(tuple(sorted(v6)), tuple(sorted(v4)))


def find_phc(root: Path) -> str | None:
    """The ENA PTP hardware clock's device, if this host (or the tree at root) has one: found
    through sysfs (clock_name `ena-ptp-NN`), a device node used only when it is that clock's."""
    from chronyctl6.effects import phc

    found = phc.discover(root).phc
    return found.device if found is not None else None


def read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None
