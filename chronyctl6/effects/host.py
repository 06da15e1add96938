"""What this host has: addresses (psutil), the ENA PTP hardware clock, os-release, settings.

Reading only; every path is taken under a root so image builds read the image, not the builder.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path

from chronyctl6.chronyconf.directives import TIMESYNC_IPV6
from chronyctl6.text import shown


@dataclass(frozen=True)
class HostNetwork:
    """The addresses Time Sync can be reached from. An IPv6 address counts only where it can reach
    fd00:ec2::123: on an interface that is up and not loopback, not tentative or failed, and the
    route the kernel would take towards fd00:ec2::123 (a route to fd00:ec2::/32 or a default one)
    leaves through that interface."""

    global_ipv6: tuple[str, ...]  # usable global IPv6 addresses, "address%interface"
    ipv4: tuple[str, ...]  # IPv4 addresses on non-loopback interfaces that are up
    unusable_ipv6: tuple[str, ...] = ()  # "address%interface: why not" (doctor says why)

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


# ---- pure: the kernel's tables as data ------------------------------------------------------

TIMESYNC_V6 = ipaddress.IPv6Address(TIMESYNC_IPV6)
# linux/if_addr.h and linux/ipv6_route.h
IFA_F_DADFAILED, IFA_F_TENTATIVE = 0x08, 0x40
RTF_REJECT, RTF_LOCAL = 0x0200, 0x80000000
SCOPE_GLOBAL = 0x00


@dataclass(frozen=True)
class Link:
    name: str
    up: bool
    loopback: bool


@dataclass(frozen=True)
class Address6:
    address: ipaddress.IPv6Address
    ifname: str
    scope: int
    flags: int


@dataclass(frozen=True)
class Route6:
    network: ipaddress.IPv6Network
    metric: int
    flags: int
    ifname: str


def parse_if_inet6(text: str) -> list[Address6]:
    """/proc/net/if_inet6: address (32 hex digits), index, prefix length, scope, flags, name."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 6 or len(parts[0]) != 32:
            continue
        try:
            address = ipaddress.IPv6Address(int(parts[0], 16))
            out.append(Address6(address, parts[5], int(parts[3], 16), int(parts[4], 16)))
        except ValueError:
            continue
    return out


def parse_ipv6_routes(text: str) -> list[Route6]:
    """/proc/net/ipv6_route: destination, prefix length, source, its length, next hop, metric,
    reference count, use, flags, device (every table the kernel holds, local included)."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 10:
            continue
        try:
            net = ipaddress.IPv6Network((int(parts[0], 16), int(parts[1], 16)))
            out.append(Route6(net, int(parts[5], 16), int(parts[8], 16), parts[9]))
        except ValueError:
            continue
    return out


def route_to(routes: list[Route6], address: ipaddress.IPv6Address) -> Route6 | None:
    """The route the kernel would take: the longest prefix holding `address`, then the lowest
    metric (a reject route, like the kernel's catch-all `unreachable` on lo, included)."""
    matching = [r for r in routes if address in r.network and not r.flags & RTF_LOCAL]
    return min(matching, key=lambda r: (-r.network.prefixlen, r.metric), default=None)


def network_from(links: dict[str, Link], addresses: list[Address6], ipv4: tuple[tuple[str, str], ...],
                 routes: list[Route6] | None) -> HostNetwork:
    """Which addresses can reach Time Sync (routes None: unknown, so not required)."""
    def usable_link(name: str) -> str | None:
        link = links.get(name)
        if link is None or link.loopback:
            return "on a loopback interface"
        return None if link.up else "its interface is down"

    route = route_to(routes, TIMESYNC_V6) if routes is not None else None
    good: list[str] = []
    bad: list[str] = []
    for a in addresses:
        ip = a.address
        if a.scope != SCOPE_GLOBAL or ip.is_link_local or ip.is_loopback or ip.is_multicast:
            continue
        why = usable_link(a.ifname)
        if why is None and a.flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED):
            why = "duplicate address detection failed" if a.flags & IFA_F_DADFAILED else "still tentative"
        if why is None and routes is not None:
            if route is None or route.flags & RTF_REJECT:
                why = "no route towards fd00:ec2::123 (neither fd00:ec2::/32 nor a default route)"
            elif route.ifname != a.ifname:
                why = f"the route towards fd00:ec2::123 leaves through {shown(route.ifname)}"
        if why:  # a line to show: the interface name as the one sanitiser prints it
            bad.append(f"{ip}%{shown(a.ifname)}: {why}")
        else:
            good.append(f"{ip}%{a.ifname}")
    v4 = sorted(f"{address}%{name}" for name, address in ipv4
                if usable_link(name) is None and not ipaddress.IPv4Address(address).is_loopback)
    return HostNetwork(tuple(sorted(good)), tuple(v4), tuple(sorted(bad)))


def _proc_text(path: str) -> str | None:
    from chronyctl6.effects import files

    try:
        data = files.read_bounded(Path(path), limit=8 << 20)  # a full routing table fits
    except files.Unreadable:
        return None
    return data.decode("ascii", "replace") if data is not None else None


def _scope_hex(address: str) -> str:
    ip = ipaddress.IPv6Address(address.split("%", 1)[0])
    return "20" if ip.is_link_local else "10" if ip.is_loopback else "00"


def read_network() -> HostNetwork:
    """This network namespace's addresses and IPv6 routes (psutil, /proc/net): reads only."""
    import psutil  # imported here: `check` must not pay for it at start-up

    links: dict[str, Link] = {}
    for name, st in psutil.net_if_stats().items():
        flags = set(getattr(st, "flags", "").split(","))
        links[name] = Link(name, bool(st.isup), "loopback" in flags or name == "lo")
    ipv4 = tuple((name, a.address) for name, addrs in psutil.net_if_addrs().items()
                 for a in addrs if a.family == socket.AF_INET)
    inet6 = _proc_text("/proc/net/if_inet6")
    routes = _proc_text("/proc/net/ipv6_route")
    if inet6 is None:  # no /proc: psutil's view, without the kernel's address flags
        inet6 = "".join(f"{ipaddress.IPv6Address(a.address.split('%', 1)[0]).exploded.replace(':', '')} "
                        f"00 40 {_scope_hex(a.address)} 80 {name}\n"
                        for name, addrs in psutil.net_if_addrs().items()
                        for a in addrs if a.family == socket.AF_INET6)
    return network_from(links, parse_if_inet6(inet6), ipv4,
                        parse_ipv6_routes(routes) if routes is not None else None)


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
