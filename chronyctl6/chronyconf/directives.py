"""chrony.conf as data: parse lines into directives and decide what a takeover keeps.

Pure. chrony reads one directive a line; lines starting with #, %, ; or ! are comments.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import Enum

COMMENT_CHARS = "#%;!"

TIMESYNC_IPV6 = "fd00:ec2::123"
TIMESYNC_IPV4 = "169.254.169.123"
TIMESYNC_ADDRESSES = frozenset({TIMESYNC_IPV6, TIMESYNC_IPV4})
# Sources that serve Amazon's leap-smeared time: mixing these with them is fine.
SMEARED_HOSTS = TIMESYNC_ADDRESSES | {"time.aws.com"}
PHC_DEVICES = ("/dev/ptp_ena", "/dev/ptp0")

SOURCE_KEYWORDS = frozenset({"server", "pool", "peer"})
# Directives chrony accepts more than once; any other one set twice means the last one wins,
# so an operator's value of it replaces the distro's stock value.
MULTI_KEYWORDS = frozenset({
    "server", "pool", "peer", "refclock", "allow", "deny", "cmdallow", "cmddeny", "bindaddress",
    "bindcmdaddress", "include", "confdir", "sourcedir", "hwtimestamp", "log", "ntsservercert",
    "ntsserverkey", "ntstrustedcerts", "initstepslew", "broadcast", "ratelimit", "local",
})


@dataclass(frozen=True)
class Directive:
    keyword: str
    args: tuple[str, ...]
    line: str  # as written, without the line break
    lineno: int = 0

    @property
    def normalized(self) -> str:
        return " ".join((self.keyword, *self.args))

    @property
    def multi(self) -> bool:
        return self.keyword in MULTI_KEYWORDS


def parse(text: str) -> list[Directive]:
    directives = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        words = raw.split()
        if not words or words[0][0] in COMMENT_CHARS:
            continue
        directives.append(Directive(words[0].lower(), tuple(words[1:]), raw.strip(), lineno))
    return directives


class Fate(Enum):
    KEEP = "keep"
    DROP = "drop"


@dataclass(frozen=True)
class Verdict:
    directive: Directive
    fate: Fate
    reason: str = ""


def is_smeared(host: str) -> bool:
    return host.lower().rstrip(".") in SMEARED_HOSTS


def is_timesync(host: str) -> bool:
    try:
        return str(ipaddress.ip_address(host)) in TIMESYNC_ADDRESSES
    except ValueError:
        return False


def judge(directive: Directive, *, runtime_sourcedir: str,
          replaced_sourcedirs: tuple[tuple[str, str], ...] = ()) -> Verdict:
    """What a takeover does with one directive of a file chronyctl6 is about to replace."""
    kw, args = directive.keyword, directive.args
    if kw in SOURCE_KEYWORDS:
        host = args[0] if args else ""
        if is_timesync(host):
            why = "Time Sync source: chronyctl6 writes the one line that fits this instance"
        elif is_smeared(host):
            why = "source chosen by chronyctl6: list extra sources in settings.toml"
        else:
            why = ("public non-smeared source: mixing it with Time Sync's leap-smeared time "
                   "is what AWS advises against")
        return Verdict(directive, Fate.DROP, why)
    if kw in ("leapsectz", "leapseclist"):  # leapseclist: chrony 4.6+, Debian 13, Fedora 40+
        return Verdict(directive, Fate.DROP,
                       "Time Sync smears leap seconds; chronyd must not apply them on top "
                       "(chrony.conf(5))")
    if kw == "refclock" and len(args) >= 2 and args[0].upper() == "PHC" and args[1] in PHC_DEVICES:
        return Verdict(directive, Fate.DROP, "ENA PTP hardware clock: chronyctl6 manages it (--phc)")
    if kw == "sourcedir" and args and args[0].rstrip("/") == runtime_sourcedir:
        return Verdict(directive, Fate.DROP, "boot-time source directory: chronyctl6 manages it")
    for directory, why in replaced_sourcedirs:
        if kw == "sourcedir" and args and args[0].rstrip("/") == directory:
            return Verdict(directive, Fate.DROP, why)
    return Verdict(directive, Fate.KEEP)


MANAGED_MARK = "managed by chronyctl6"


def is_managed(text: str) -> bool:
    """chronyctl6 wrote this file (its header says so in the first lines)."""
    return any(MANAGED_MARK in line for line in text.splitlines()[:3])


INCLUDE_KEYWORDS = frozenset({"include", "confdir", "sourcedir"})


def rebase_includes(text: str, root: str) -> str:
    """The same configuration with the files it pulls in taken under root: how an image's
    chrony.conf is validated on the machine that builds the image."""
    out = []
    for line in text.splitlines():
        words = line.split()
        if words and words[0].lower() in INCLUDE_KEYWORDS:
            words = [words[0], *(root.rstrip("/") + w if w.startswith("/") else w for w in words[1:])]
            line = " ".join(words)
        out.append(line)
    return "\n".join(out) + "\n"
