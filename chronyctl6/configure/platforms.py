"""Distributions as data: where chrony lives and what the distro's stock file holds.

Pure: `detect` takes the text of os-release, nothing here touches the filesystem.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from chronyctl6.errors import BadInput


@dataclass(frozen=True)
class Platform:
    name: str  # what --distro takes
    label: str
    os_ids: tuple[str, ...]  # os-release ID values that mean this platform
    config_path: str
    unit: str  # systemd unit of chronyd
    user: str  # the user chronyd drops privileges to
    template: str  # the template holding the distro's stock directives
    version_major: str = ""  # os-release VERSION_ID's major part, where one ID covers two platforms
    # Source directories the distro fills at every boot with sources of its own choosing that
    # conflict with Time Sync's single line: a takeover replaces them (reason: the text).
    replaced_sourcedirs: tuple[tuple[str, str], ...] = ()

    @property
    def runtime_sourcedir(self) -> str:
        """Where the boot step drops the Time Sync source: under /run, so a baked image
        never carries a stale choice into its next launch."""
        return "/run/chronyctl6"


PLATFORMS: tuple[Platform, ...] = (
    Platform("amzn2", "Amazon Linux 2", ("amzn",), "/etc/chrony.conf", "chronyd", "chrony",
             "amzn2.conf.j2", version_major="2"),
    Platform("amzn2023", "Amazon Linux 2023", ("amzn",), "/etc/chrony.conf", "chronyd", "chrony",
             "amzn2023.conf.j2", version_major="2023",
             replaced_sourcedirs=(("/run/chrony.d", "Amazon Linux fills it at every boot with the IPv4 Time "
                                   "Sync line (and time.aws.com): a second Time Sync line beside chronyctl6's"),)),
    Platform("rhel", "RHEL family", ("rhel", "centos", "rocky", "almalinux", "ol", "fedora"),
             "/etc/chrony.conf", "chronyd", "chrony", "rhel.conf.j2"),
    Platform("debian", "Debian", ("debian",), "/etc/chrony/chrony.conf", "chrony", "_chrony",
             "debian.conf.j2"),
    Platform("ubuntu", "Ubuntu", ("ubuntu",), "/etc/chrony/chrony.conf", "chrony", "_chrony",
             "debian.conf.j2"),
    Platform("sles", "SLES / openSUSE", ("sles", "sled", "opensuse-leap", "opensuse-tumbleweed",
                                         "opensuse"),
             "/etc/chrony.conf", "chronyd", "chrony", "sles.conf.j2"),
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
    pretty = fields.get("PRETTY_NAME") or os_id or "an unnamed system"
    raise BadInput(
        f"chronyctl6 does not know how {pretty} (ID={os_id or '?'}) lays out chrony",
        hint=f"pass --distro with the closest of: {', '.join(BY_NAME)}",
    )
