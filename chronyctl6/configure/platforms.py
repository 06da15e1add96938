"""Distributions as data: where chrony lives and what the distro's stock file holds.

Pure: `detect` takes the text of os-release, nothing here touches the filesystem. The stock lines
are the directives a takeover keeps from the distro's packaged chrony.conf, each with the comment
the packaged file puts above it (tests/fixtures/stock holds those files; a test checks this data
against them). A render writes only the stock lines the file it replaces has: no directive the
distro's own file did not have.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, replace

from chronyctl6.errors import BadInput


@dataclass(frozen=True)
class StockLine:
    line: str
    comment: str  # the packaged file's comment above the line, '#' and line breaks included; or ''
    usual: bool = True  # written when there is no file to take over (False: older releases only)

    @property
    def normalized(self) -> str:
        return " ".join(self.line.split())


@dataclass(frozen=True)
class Platform:
    name: str  # what --distro takes
    label: str
    os_ids: tuple[str, ...]  # os-release ID values that mean this platform
    config_path: str
    unit: str  # systemd unit of chronyd
    user: str  # the user chronyd drops privileges to
    stock: tuple[StockLine, ...]  # the stock directives a takeover keeps, in the packaged order
    version_major: str = ""  # os-release VERSION_ID's major part, where one ID covers two platforms
    # Source directories the distro fills at every boot with sources of its own choosing that
    # conflict with Time Sync's single line: a takeover replaces them (reason: the text).
    replaced_sourcedirs: tuple[tuple[str, str], ...] = ()
    families: tuple[str, ...] = ()  # ID_LIKE words, beyond os_ids, that mean this layout

    @property
    def runtime_sourcedir(self) -> str:
        """Where the boot step drops the Time Sync source: under /run, so a baked image
        never carries a stale choice into its next launch."""
        return "/run/chronyctl6"


_DHCP = StockLine("sourcedir /run/chrony-dhcp", "# Use NTP servers from DHCP.")
_DRIFT = StockLine("driftfile /var/lib/chrony/drift",
                   "# Record the rate at which the system clock gains/losses time.")
_MAKESTEP = StockLine("makestep 1.0 3", "# Allow the system clock to be stepped in the first three updates\n"
                                        "# if its offset is larger than 1 second.")
_RTCSYNC = StockLine("rtcsync", "# Enable kernel synchronization of the real-time clock (RTC).")
_KEYFILE = StockLine("keyfile /etc/chrony.keys", "# Specify file containing keys for NTP authentication.")
_NTSDUMP = StockLine("ntsdumpdir /var/lib/chrony", "# Save NTS keys and cookies.")
_LOGDIR = StockLine("logdir /var/log/chrony", "# Specify directory for log files.")

# Debian 11-13, Ubuntu 22.04-25.10 (Debian 13's wording; 13 and Ubuntu 25.10 moved confdir last).
DEBIAN_STOCK = (
    StockLine("sourcedir /run/chrony-dhcp", "# Use time sources from DHCP."),
    StockLine("sourcedir /etc/chrony/sources.d", "# Use NTP sources found in /etc/chrony/sources.d."),
    StockLine("keyfile /etc/chrony/chrony.keys",
              "# This directive specifies the location of the file containing ID/key pairs for\n"
              "# NTP authentication."),
    StockLine("driftfile /var/lib/chrony/chrony.drift",
              "# This directive specifies the file into which chronyd will store the rate\n"
              "# information."),
    _NTSDUMP,
    StockLine("logdir /var/log/chrony", "# Log files location."),
    StockLine("maxupdateskew 100.0", "# Stop bad estimates upsetting machine clock."),
    StockLine("rtcsync", "# This directive enables kernel synchronisation (every 11 minutes) of the\n"
                         "# real-time clock. Note that it can't be used along with the 'rtcfile' directive."),
    StockLine("makestep 1 3",
              "# Step the system clock instead of slewing it if the adjustment is larger than\n"
              "# one second, but only in the first three clock updates."),
    StockLine("confdir /etc/chrony/conf.d", "# Include configuration files found in /etc/chrony/conf.d."),
)
# RHEL 9 (chrony 4.3) and Fedora (4.8: no active keyfile there).
RHEL_STOCK = (_DHCP, _DRIFT, _MAKESTEP, _RTCSYNC, _KEYFILE, _NTSDUMP, _LOGDIR)
# SLES 15: the pool is a drop-in of chrony-pool-suse, read through the include.
SLES_STOCK = (
    replace(_DHCP, usual=False),  # openSUSE Factory's spec adds it
    _DRIFT, _MAKESTEP, _RTCSYNC, _LOGDIR,
    StockLine("include /etc/chrony.d/*.conf",
              "# Also include any directives found in configuration files in /etc/chrony.d"),
)
_AMAZON_DROPINS = (
    StockLine("confdir /etc/chrony.d", "# Include configuration found in /etc/chrony.d/*.conf"),
    StockLine("sourcedir /etc/chrony.d", "# Use NTP sources found in /etc/chrony.d/*.sources"),
)
_AMAZON_LOG = StockLine("log measurements statistics tracking", "# Select which information is logged.")
# Amazon Linux 2: the chrony.d layout; older images had the sources, dumponexit and dumpdir in the file.
AMZN2_STOCK = (
    _DHCP, *_AMAZON_DROPINS, _DRIFT, _MAKESTEP, _RTCSYNC, _KEYFILE, _LOGDIR, _AMAZON_LOG,
    StockLine("dumponexit", "# save data between restarts for fast re-load", usual=False),
    StockLine("dumpdir /var/run/chrony", "", usual=False),  # under dumponexit's comment
)
AMZN2023_STOCK = (_DHCP, *_AMAZON_DROPINS, _DRIFT, _MAKESTEP, _RTCSYNC, _KEYFILE, _NTSDUMP, _LOGDIR,
                  _AMAZON_LOG)

PLATFORMS: tuple[Platform, ...] = (
    Platform("amzn2", "Amazon Linux 2", ("amzn",), "/etc/chrony.conf", "chronyd", "chrony",
             AMZN2_STOCK, version_major="2"),
    Platform("amzn2023", "Amazon Linux 2023", ("amzn",), "/etc/chrony.conf", "chronyd", "chrony",
             AMZN2023_STOCK, version_major="2023",
             replaced_sourcedirs=(("/run/chrony.d", "Amazon Linux fills it at every boot with the IPv4 Time "
                                   "Sync line (and time.aws.com): a second Time Sync line beside chronyctl6's"),)),
    Platform("rhel", "RHEL family", ("rhel", "centos", "rocky", "almalinux", "ol", "fedora"),
             "/etc/chrony.conf", "chronyd", "chrony", RHEL_STOCK),
    Platform("debian", "Debian", ("debian",), "/etc/chrony/chrony.conf", "chrony", "_chrony", DEBIAN_STOCK),
    Platform("ubuntu", "Ubuntu", ("ubuntu",), "/etc/chrony/chrony.conf", "chrony", "_chrony", DEBIAN_STOCK),
    Platform("sles", "SLES / openSUSE", ("sles", "sled", "opensuse-leap", "opensuse-tumbleweed",
                                         "opensuse"),
             "/etc/chrony.conf", "chronyd", "chrony", SLES_STOCK, families=("suse",)),
)

BY_NAME = {p.name: p for p in PLATFORMS}


def parse_os_release(text: str) -> dict[str, str]:
    """os-release(5): KEY=value lines, values shell-quoted."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        try:
            words = shlex.split(raw)
        except ValueError:
            continue
        fields[key.strip()] = words[0] if words else ""
    return fields


def by_name(name: str) -> Platform:
    try:
        return BY_NAME[name]
    except KeyError:
        raise BadInput(
            f"unknown distro {name!r}",
            hint=f"--distro takes one of: {', '.join(BY_NAME)}",
        ) from None


def detect(os_release: str | None, *, where: str = "/etc/os-release") -> Platform:
    if os_release is None:
        raise BadInput(
            f"{where} is missing, so the distribution is unknown",
            hint=f"pass --distro ({', '.join(BY_NAME)})",
        )
    fields = parse_os_release(os_release)
    os_id = fields.get("ID", "").lower()
    major = fields.get("VERSION_ID", "").split(".")[0]
    for platform in PLATFORMS:
        if os_id in platform.os_ids and platform.version_major in ("", major):
            return platform
    # os-release(5): ID_LIKE names the distributions this one derives from, closest first
    # (Raspbian "debian", RHCOS "rhel fedora", Linux Mint "ubuntu debian", SLE Micro "suse").
    # A derivative lays chrony out as its family does; a platform tied to one release (Amazon
    # Linux 2 or 2023) is never matched this way.
    known_id = any(os_id in p.os_ids for p in PLATFORMS)  # a release of it not known: never guessed
    for like in ([] if known_id else fields.get("ID_LIKE", "").lower().split()):
        family = next((p for p in PLATFORMS if not p.version_major and like in (*p.os_ids, *p.families)), None)
        if family is not None:
            return family
    pretty = fields.get("PRETTY_NAME") or os_id or "an unnamed system"
    raise BadInput(
        f"chronyctl6 does not know how {pretty} (ID={os_id or '?'}) lays out chrony",
        hint=f"pass --distro with the closest of: {', '.join(BY_NAME)}",
    )
