"""Decide the time sources and render chrony.conf from the templates.

Pure but for reading the template files. `decide` turns settings and host facts into Choices;
`render_config` turns Choices and the file being replaced into the new text. The host facts come
in as data (`Network`, `Hint`: what effects.host gathers satisfies them); nothing here reads them.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import jinja2

from chronyctl6.chronyconf import directives
from chronyctl6.configure.platforms import Platform, StockLine
from chronyctl6.configure.settings import Settings
from chronyctl6.errors import BadInput

BOOT_SOURCES_NAME = "timesync.sources"


class Network(Protocol):
    """The host's addresses as the endpoint choice needs them (effects.host.HostNetwork)."""

    @property
    def global_ipv6(self) -> tuple[str, ...]: ...

    @property
    def has_global_ipv6(self) -> bool: ...

    @property
    def has_ipv4(self) -> bool: ...


class Hint(Protocol):
    """What instance metadata said (effects.host.InstanceHint)."""

    @property
    def xen(self) -> bool: ...

    @property
    def ipv6_assigned(self) -> bool | None: ...


@dataclass(frozen=True)
class Endpoint:
    address: str
    reason: str


@dataclass(frozen=True)
class Choices:
    platform: Platform
    endpoint: Endpoint | None  # None: chosen at boot by `chronyctl6 boot`
    phc: str | None
    timesync_options: tuple[str, ...]
    extra_sources: tuple[str, ...] = ()
    directives: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    @property
    def at_boot(self) -> bool:
        return self.endpoint is None


@dataclass(frozen=True)
class Rendered:
    text: str
    dropped: tuple[directives.Verdict, ...]
    carried: tuple[str, ...]
    stock: tuple[str, ...] = ()  # the distro's stock lines written
    from_settings: tuple[str, ...] = ()  # settings.toml's directives and extra sources
    carried_from: tuple[int, ...] = ()  # each carried line's number in the file taken over

    def carried_lineno(self, line: str) -> int | None:
        """Where a carried line (as written in the new text) stood in the file taken over."""
        words = " ".join(line.split())
        for text, lineno in zip(self.carried, self.carried_from, strict=False):
            if " ".join(text.split()) == words:
                return lineno
        return None

    def origin(self, lineno: int) -> str:
        """Where line `lineno` (1-based) of the text comes from: stock (the distro's packaged file),
        carried (the operator's, from the file taken over), settings (settings.toml), template
        (chronyctl6's own: Time Sync, the PHC, the boot-time sourcedir), or comment."""
        lines = self.text.split("\n")
        words = lines[lineno - 1].split() if 0 < lineno <= len(lines) else []
        if not words or words[0][0] in directives.COMMENT_CHARS:
            return "comment"
        line = " ".join(words)
        for origin, group in (("settings", self.from_settings), ("carried", self.carried), ("stock", self.stock)):
            if line in {" ".join(item.split()) for item in group}:
                return origin
        return "template"


def explain_rejection(rendered: Rendered, platform: Platform, config_path: str, chronyd: str,
                      at: tuple[str, int] | None, in_candidate: int | None) -> tuple[str, str]:
    """A one-line message and a hint for a configuration chronyd rejected, fitting where the line
    came from. chronyd: which chronyd judged ("chronyd 4.3 from this host"); at: the file and line
    it named; in_candidate: that line's number when the file is the candidate itself."""
    if in_candidate is None:
        if at is None:
            return (f"{chronyd} rejects the new configuration",
                    "nothing was written; run `chronyctl6 render` and `chronyd -p -f FILE` to see why")
        return (f"{chronyd} rejects line {at[1]} of {at[0]}, a file the configuration includes",
                "nothing was written; chronyctl6 does not write that file: fix or remove the line there")
    lines = rendered.text.split("\n")
    line = lines[in_candidate - 1].strip() if 0 < in_candidate <= len(lines) else "?"
    origin = rendered.origin(in_candidate)
    said = f"{chronyd} rejects `{line}`"
    if origin == "stock":
        return (f"{said}, a line of {platform.label}'s stock chrony.conf",
                "nothing was written; that chronyd is older than the chrony the distribution wrote this line "
                "for: validate with the image's own chronyd (run as root, on its architecture) or a newer chrony")
    if origin == "carried":
        lineno = rendered.carried_lineno(line)
        which = f"line {lineno}" if lineno else "a line"
        return (f"{said}, {which} of the existing {config_path}, carried over into the new file",
                f"nothing was written; fix or remove {which if lineno else 'that line'} in {config_path}, "
                "then apply again")
    if origin == "settings":
        return (f"{said}, from settings.toml",
                "nothing was written; check the settings.toml value chronyd names")
    return (f"{said}, a line chronyctl6 writes itself",
            "nothing was written; chronyctl6 needs chrony 4.0 or newer: update chrony")


def choose_endpoint(mode: str, network: Network, hint: Hint | None = None) -> Endpoint:
    """The single Time Sync endpoint for `--ipv6 auto|on|off` on a host with these addresses
    (and, where instance metadata answered, this kind of instance)."""
    if mode == "on":
        return Endpoint(directives.TIMESYNC_IPV6, "--ipv6 on")
    if mode == "off":
        if not network.has_ipv4:
            raise BadInput(
                "--ipv6 off on a host with no IPv4 address: chronyd could not reach 169.254.169.123",
                hint="use --ipv6 on (or auto) on an IPv6-only instance",
            )
        return Endpoint(directives.TIMESYNC_IPV4, "--ipv6 off")
    if hint is not None and hint.xen and network.has_ipv4:
        return Endpoint(directives.TIMESYNC_IPV4, "a Xen instance: fd00:ec2::123 answers only on Nitro instances")
    if network.has_global_ipv6:
        return Endpoint(directives.TIMESYNC_IPV6, f"this host has an IPv6 address ({network.global_ipv6[0]})")
    if network.has_ipv4:
        return Endpoint(directives.TIMESYNC_IPV4, "this host has no IPv6 address, so fd00:ec2::123 is out of reach")
    # Neither: an IPv6-only instance whose address is not up yet must still never get IPv4.
    return Endpoint(directives.TIMESYNC_IPV6, "this host has no IPv4 address at all")


def decide(
    settings: Settings,
    platform: Platform,
    *,
    network: Network | None,
    phc_device: str | None,
    hint: Hint | None = None,
) -> Choices:
    """network None means an image build (--root): the future network is unknown."""
    warnings: list[str] = []
    at_boot = settings.at_boot or (network is None and settings.ipv6 == "auto")
    if at_boot:
        endpoint = None
    elif network is None:
        address = directives.TIMESYNC_IPV6 if settings.ipv6 == "on" else directives.TIMESYNC_IPV4
        endpoint = Endpoint(address, f"--ipv6 {settings.ipv6}")
    else:
        endpoint = choose_endpoint(settings.ipv6, network, hint)

    phc: str | None = None
    if settings.phc == "on":
        if phc_device is None and network is not None:
            raise BadInput("--phc on, but this host has no ENA PTP hardware clock (/dev/ptp_ena)",
                           hint="use --phc auto; the clock needs ENA 2.10+ with phc_enable=1")
        phc = phc_device or directives.PHC_DEVICES[0]
    elif settings.phc == "auto" and network is not None:
        phc = phc_device

    for source in settings.extra_sources:
        if not directives.is_smeared(source.host):
            warnings.append(
                f"{source.kind} {source.host} serves non-smeared time: beside Time Sync's "
                "leap-smeared time the two disagree by up to a second around a leap second"
            )
    return Choices(
        platform=platform,
        endpoint=endpoint,
        phc=phc,
        timesync_options=settings.timesync_options,
        extra_sources=tuple(s.line for s in settings.extra_sources),
        directives=settings.directives,
        warnings=tuple(warnings),
    )


def template_dirs() -> list[Path]:
    package = Path(__file__).resolve().parent.parent
    # Installed: chronyctl6/templates; from a source checkout: templates/ beside the package.
    return [d for d in (package / "templates", package.parent / "templates") if d.is_dir()]


@functools.cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(d) for d in template_dirs()]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 -- chrony.conf, not HTML; values are validated in settings
    )


def render_config(choices: Choices, existing: str | None) -> Rendered:
    runtime_dir = choices.platform.runtime_sourcedir
    verdicts = [directives.judge(d, runtime_sourcedir=runtime_dir,
                           replaced_sourcedirs=choices.platform.replaced_sourcedirs)
                for d in directives.parse(existing or "")]
    kept = [v.directive for v in verdicts if v.fate is directives.Fate.KEEP]
    dropped = tuple(v for v in verdicts if v.fate is directives.Fate.DROP)

    stock_all = {s.normalized for s in choices.platform.stock}
    # chrony takes the last of a single-valued directive; where the operator set one to a value
    # of their own, theirs replaces the distro's stock line.
    last: dict[str, directives.Directive] = {}
    for d in kept:
        if not d.multi:
            last[d.keyword] = d
    kept = [d for d in kept if d.multi or last[d.keyword] is d]
    overridden = {k for k, d in last.items() if d.normalized not in stock_all}
    from_settings = {" ".join(line.split()) for line in (*choices.directives, *choices.extra_sources)}
    first_seen = {d.line: d.lineno for d in reversed(kept)}
    carried = list(dict.fromkeys(
        d.line for d in kept if d.normalized not in stock_all | from_settings
    ))
    stock = _stock_lines(choices.platform, existing, kept, overridden)
    text = _render(choices, stock=stock, carried=carried)
    # A line the new text writes again (chronyctl6's own Time Sync line on a second apply) is not dropped.
    written = {d.normalized for d in directives.parse(text)}
    dropped = tuple(v for v in dropped if v.directive.normalized not in written)
    return Rendered(text=text, dropped=dropped, carried=tuple(carried),
                    carried_from=tuple(first_seen[c] for c in carried), stock=tuple(s.line for s in stock),
                    from_settings=(*choices.directives, *choices.extra_sources))


def _stock_lines(platform: Platform, existing: str | None, kept: list[directives.Directive],
                 overridden: set[str]) -> list[StockLine]:
    """The platform's stock lines the file being replaced has, in that file's order (Debian 13
    moved confdir last so that conf.d overrides the main file: order matters to chrony). With no
    file to take over, the platform's usual set."""
    by_line = {s.normalized: s for s in platform.stock}
    if existing is None:
        chosen = [s for s in platform.stock if s.usual]
    else:
        chosen = list(dict.fromkeys(by_line[d.normalized] for d in kept if d.normalized in by_line))
    return [s for s in chosen if s.line.split(maxsplit=1)[0] not in overridden]


def render_boot_sources(endpoint: Endpoint, options: tuple[str, ...]) -> str:
    template = environment().get_template("timesync.sources.j2")
    return template.render(endpoint=endpoint.address, reason=endpoint.reason, timesync_options=options)


def _context(choices: Choices, *, stock: list[StockLine], carried: list[str]) -> dict[str, object]:
    endpoint = choices.endpoint
    return {
        "platform": choices.platform,
        "at_boot": choices.at_boot,
        "endpoint": endpoint.address if endpoint else "",
        "endpoint_desc": (f"{endpoint.address} ({endpoint.reason})" if endpoint
                          else "chosen at boot (IPv6 if the instance has an IPv6 address)"),
        "runtime_sourcedir": choices.platform.runtime_sourcedir,
        "timesync_options": choices.timesync_options,
        "phc": choices.phc,
        "phc_desc": choices.phc or "none",
        "extra_sources": choices.extra_sources,
        "directives": choices.directives,
        "carried": carried,
        "stock": stock,
    }


TEMPLATE = "base.conf.j2"


def _render(choices: Choices, *, stock: list[StockLine], carried: list[str]) -> str:
    template = environment().get_template(TEMPLATE)
    text = template.render(_context(choices, stock=stock, carried=carried))
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n") + "\n"
