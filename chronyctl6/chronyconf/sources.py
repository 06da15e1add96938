"""The source policy: what a server, pool, peer or refclock line is to chronyctl6 (pure).

One place decides, used by the takeover (render, plan's drop-ins), doctor and status alike.
Time Sync (fd00:ec2::123, 169.254.169.123) and time.aws.com serve Amazon's leap-smeared time;
public pools do not. The ENA PTP hardware clock does not smear either, but it is Amazon's own
clock beside Time Sync and chronyctl6 manages it (--phc): it is never called a conflict, and
doctor's smear check leaves refclocks out (as it always has).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from enum import Enum

TIMESYNC_IPV6 = "fd00:ec2::123"
TIMESYNC_IPV4 = "169.254.169.123"
TIMESYNC_ADDRESSES = frozenset({TIMESYNC_IPV6, TIMESYNC_IPV4})
# Public services that smear leap seconds over the same 24 hours (noon to noon UTC, linear) as Time
# Sync: mixing them with it is fine. time.aws.com is Amazon's own (AWS, "Leap seconds"); Google
# Public NTP is time.google.com and time1-4.google.com (developers.google.com/time/smear). Public
# pools, NIST and the rest do not smear.
SMEARED_PUBLIC = frozenset({"time.aws.com", "time.google.com", "time1.google.com", "time2.google.com",
                            "time3.google.com", "time4.google.com"})
SMEARED_HOSTS = TIMESYNC_ADDRESSES | SMEARED_PUBLIC
PHC_DEVICES = ("/dev/ptp_ena", "/dev/ptp0")
SOURCE_KEYWORDS = frozenset({"server", "pool", "peer"})
# chronyd applies leap seconds itself with either: never beside smeared time (chrony.conf(5);
# leapseclist is chrony 4.6+, enabled by Debian 13 and Fedora 40+).
LEAP_KEYWORDS = frozenset({"leapsectz", "leapseclist"})


class Kind(str, Enum):
    TIMESYNC_IPV6 = "timesync-ipv6"
    TIMESYNC_IPV4 = "timesync-ipv4"
    SMEARED = "smeared"  # time.aws.com, Google Public NTP
    NON_SMEARED = "non-smeared"  # any other server, pool or peer
    PHC = "phc"  # the ENA PTP hardware clock: chronyctl6's, not smeared, not a conflict
    REFCLOCK = "refclock"  # any other reference clock: the operator's

    def __str__(self) -> str:
        return str(self.value)

    @property
    def timesync(self) -> bool:
        return self in (Kind.TIMESYNC_IPV6, Kind.TIMESYNC_IPV4)

    @property
    def smeared(self) -> bool:
        return self.timesync or self is Kind.SMEARED


def timesync_address(host: str) -> str | None:
    """The Time Sync endpoint this host names (any spelling of the address), else None."""
    try:  # a scope (fd00:ec2::123%eth0) still names the same server
        ip = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:169.254.169.123 is the IPv4 endpoint
    address = str(ip)
    return address if address in TIMESYNC_ADDRESSES else None


def host_name(host: str) -> str:
    """A host name as DNS compares it: case-insensitive, the root's dot optional."""
    return host.lower().rstrip(".")


def is_timesync(host: str) -> bool:
    return timesync_address(host) is not None


def is_smeared(host: str) -> bool:
    return is_timesync(host) or host_name(host) in SMEARED_PUBLIC


def classify(keyword: str, args: Sequence[str]) -> Kind | None:
    """What a directive (keyword lower-case, its words) is as a time source; None if it is none."""
    if keyword == "refclock":
        if len(args) >= 2 and args[0].upper() == "PHC" and args[1] in PHC_DEVICES:
            return Kind.PHC
        return Kind.REFCLOCK if args else None
    if keyword not in SOURCE_KEYWORDS or not args:
        return None
    address = timesync_address(args[0])
    if address == TIMESYNC_IPV6:
        return Kind.TIMESYNC_IPV6
    if address == TIMESYNC_IPV4:
        return Kind.TIMESYNC_IPV4
    return Kind.SMEARED if is_smeared(args[0]) else Kind.NON_SMEARED


SECOND_TIMESYNC = "a second Time Sync line: chronyctl6 writes the one this instance uses"
NON_SMEARED_REASON = "non-smeared time beside Time Sync's leap-smeared time"


def takeover_reason(keyword: str, args: Sequence[str]) -> str | None:
    """Why a takeover drops this server/pool/peer or leap line, wherever it sits (the main file,
    an include, a confdir or sourcedir drop-in), or None when it may stay: smeared public
    sources (time.aws.com, Google's) stay beside Time Sync in every file alike."""
    if keyword in LEAP_KEYWORDS:
        return leap_reason(keyword)
    kind = classify(keyword, args)
    if kind is not None and kind.timesync:
        return SECOND_TIMESYNC
    if kind is Kind.NON_SMEARED:
        return NON_SMEARED_REASON
    return None


def leap_reason(keyword: str) -> str:
    return (f"Time Sync smears leap seconds; with {keyword} chronyd would apply them on top "
            "(chrony.conf(5))")


def takeover_edits(path: str) -> bool:
    """Whether apply comments conflicting lines out of this file itself: only files under /etc,
    which package managers leave to the administrator (rpm %config(noreplace), dpkg conffiles).
    /run is filled again at boot, /usr belongs to packages: doctor names the durable fix."""
    return path.startswith("/etc/")
