"""Decide the time sources and render chrony.conf from the templates.

Pure but for reading the template files. `decide` turns settings and host facts into Choices;
`render_config` turns Choices and the file being replaced into the new text. The host facts come
in as data (`Network`, `Hint`: what effects.host gathers satisfies them); nothing here reads them.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import jinja2

from chronyctl6.chronyconf import directives
from chronyctl6.configure import phc as phc_policy
from chronyctl6.configure.platforms import Platform, StockLine
from chronyctl6.configure.settings import Settings
from chronyctl6.errors import BadInput
from chronyctl6.text import shown

BOOT_SOURCES_NAME = "timesync.sources"


class Network(Protocol):
    """The host's addresses as the endpoint choice needs them (effects.host.HostNetwork)."""

    @property
    def global_ipv6(self) -> tuple[str, ...]: ...

    @property
    def has_global_ipv6(self) -> bool: ...

    @property
    def has_ipv4(self) -> bool: ...

    @property
    def unusable_ipv6(self) -> tuple[str, ...]: ...  # "address%interface: why not"


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
    # The PHC decided at every boot: the file says `confdir RUNTIME_DIR`, the boot step writes
    # phc.conf there only on a launch that has the clock (configure/phc.py).
    phc_at_boot: bool = False
    live: bool = False
    phc_present: frozenset[str] = frozenset()  # PHC device paths this live host has
    own_refclocks: frozenset[str] = frozenset()  # refclock lines chronyctl6 recorded writing (state)
    dropin_phc: tuple[str, ...] | None = None  # options of an operator's ENA PHC line moved from a drop-in

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
    phc_line: str | None = None  # the refclock line chronyctl6 wrote into the file itself
    phc_boot_options: tuple[str, ...] | None = None  # what the boot-time PHC uses; None: none
    notes: tuple[str, ...] = ()  # what happened to the operator's lines, said in the output
    warnings: tuple[str, ...] = ()
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
    if hint is not None and hint.ipv6_assigned is False and network.has_ipv4:
        # Instance metadata, where it answered, knows what local addresses cannot: EC2 gave the
        # interface no IPv6 address, so whatever global address this host has is not EC2's.
        return Endpoint(directives.TIMESYNC_IPV4, "instance metadata says the interface has no IPv6 address "
                                                  "in EC2, so fd00:ec2::123 is out of reach")
    if network.has_global_ipv6:
        return Endpoint(directives.TIMESYNC_IPV6, f"this host has an IPv6 address with a route to Time Sync "
                                                  f"({shown(network.global_ipv6[0])})")
    if network.has_ipv4:
        why = "this host has no IPv6 address" if not network.unusable_ipv6 else \
            f"no usable IPv6 address ({shown(network.unusable_ipv6[0])})"
        return Endpoint(directives.TIMESYNC_IPV4, f"{why}, so fd00:ec2::123 is out of reach")
    # Neither: an IPv6-only instance whose address is not up yet must still never get IPv4.
    return Endpoint(directives.TIMESYNC_IPV6, "this host has no IPv4 address at all")


def decide(
    settings: Settings,
    platform: Platform,
    *,
    network: Network | None,
    phc_device: str | None,
    hint: Hint | None = None,
    own_refclocks: frozenset[str] = frozenset(),
    phc_present: frozenset[str] | None = None,
    dropin_phc: tuple[str, ...] | None = None,
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
    if settings.phc == "on" and phc_device is None and network is not None:
        raise BadInput("--phc on, but this host has no ENA PTP hardware clock (/dev/ptp_ena)",
                       hint="use --phc auto; " + phc_policy.ENABLE_FIX)
    # An image (or a host that picks its endpoint at boot, so may be launched again elsewhere)
    # never carries a PHC line of ours: the boot step decides, launch by launch.
    phc_at_boot = settings.phc != "off" and (network is None or at_boot)
    if settings.phc != "off" and not phc_at_boot:
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
        phc_at_boot=phc_at_boot,
        live=network is not None,
        phc_present=phc_present if phc_present is not None else frozenset({phc_device} if phc_device else ()),
        own_refclocks=own_refclocks,
        dropin_phc=dropin_phc,
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


MAXCLOCKERROR_PPM = 50.0  # what ClockBound's bound assumes (aws/clock-bound README: maxclockerror 50)


def render_config(choices: Choices, existing: str | None, drop: Mapping[str, str] | None = None) -> Rendered:
    """drop: directives (normalized) to drop as well, with why (the takeover's stoppers)."""
    runtime_dir = choices.platform.runtime_sourcedir
    own = _OwnLines(choices, runtime_dir)
    verdicts = [directives.Verdict(d, directives.Fate.DROP, drop[d.normalized])
                if drop and d.normalized in drop else own.judge(d)
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
    phc = None if own.operator_phc_kept else choices.phc
    boot_options = own.boot_options()
    extra: dict[str, object] = {
        "phc": phc,
        "phc_options": " ".join(phc_policy.DEFAULT_OPTIONS),
        "phc_confdir": runtime_dir if boot_options is not None else None,
        # settings.toml's own maxclockerror comes later in the file: chronyd takes the last one
        "maxclockerror": None if "maxclockerror" in last else f"{MAXCLOCKERROR_PPM:g}",
    }
    text = _render(choices, stock=stock, carried=carried, extra=extra)
    # A line the new text writes again (chronyctl6's own Time Sync line on a second apply) is not dropped.
    written = {d.normalized for d in directives.parse(text)}
    dropped = tuple(v for v in dropped if v.directive.normalized not in written)
    return Rendered(text=text, dropped=dropped, carried=tuple(carried),
                    carried_from=tuple(first_seen[c] for c in carried), stock=tuple(s.line for s in stock),
                    from_settings=(*choices.directives, *choices.extra_sources),
                    phc_line=phc_policy.refclock_line(phc, phc_policy.DEFAULT_OPTIONS) if phc else None,
                    phc_boot_options=boot_options, notes=tuple(own.notes), warnings=tuple(own.warnings))


class _OwnLines:
    """The verdict on each line of the file being replaced, with chronyctl6's own lines known
    from its state: refclocks (configure/phc.py), the boot-time confdir, maxclockerror."""

    def __init__(self, choices: Choices, runtime_dir: str) -> None:
        self.choices, self.runtime_dir = choices, runtime_dir
        self.moved: tuple[str, ...] | None = None
        self.operator_phc_kept = False
        self.notes: list[str] = []
        self.warnings: list[str] = []

    def judge(self, d: directives.Directive) -> directives.Verdict:
        if d.keyword == "refclock":
            return self._refclock(d)
        if d.keyword == "confdir" and d.args and d.args[0].rstrip("/") == self.runtime_dir:
            return directives.Verdict(d, directives.Fate.DROP, "boot-time PHC directory: chronyctl6 manages it")
        if d.keyword == "maxclockerror" and _ppm(d.args) <= MAXCLOCKERROR_PPM:
            why = ("chronyctl6's own value, written again" if _ppm(d.args) == MAXCLOCKERROR_PPM else
                   f"below the {MAXCLOCKERROR_PPM:g} ppm drift allowance ClockBound's bound assumes: "
                   "chronyctl6 writes maxclockerror 50")
            return directives.Verdict(d, directives.Fate.DROP, why)
        return directives.judge(d, runtime_sourcedir=self.runtime_dir,
                                replaced_sourcedirs=self.choices.platform.replaced_sourcedirs)

    def _refclock(self, d: directives.Directive) -> directives.Verdict:
        c = self.choices
        shown = phc_policy.boot_file(self.runtime_dir)
        rv = phc_policy.judge_refclock(d, own=c.own_refclocks, live=c.live, present=c.phc_present,
                                       boot_file_shown=shown)
        if rv.moved is not None:
            if self.moved is None:
                self.moved = rv.moved
            else:  # one clock, one boot-time line: the first one's options
                rv = phc_policy.RefclockVerdict(False, rv.reason, note=(
                    f"your `{d.line}` is a second ENA PHC line: {shown} uses the first one's options"))
        if rv.keep and phc_policy.is_ena_phc(d.args):
            self.operator_phc_kept = True
        leap = phc_policy.leap_problem(d.args, smeared_ntp=True) if not rv.reason.startswith("chronyctl6") else None
        if leap:  # beside Time Sync's smeared NTP line, which every render writes
            self.warnings.append(f"`{d.line}`: {leap}; add `trust` to it (policy: {phc_policy.LEAP_POLICY})")
        self.notes += [rv.note] if rv.note else []
        self.warnings += [rv.warning] if rv.warning else []
        return directives.Verdict(d, directives.Fate.KEEP if rv.keep else directives.Fate.DROP, rv.reason)

    def boot_options(self) -> tuple[str, ...] | None:
        """The refclock options the boot step writes where the launch has the clock; None when
        the boot step writes no PHC line (the operator's own is kept, or the PHC is off)."""
        if self.operator_phc_kept:
            return None
        if self.moved is not None:
            return self.moved
        if self.choices.dropin_phc is not None:
            return self.choices.dropin_phc
        return phc_policy.DEFAULT_OPTIONS if self.choices.phc_at_boot else None


def _ppm(args: tuple[str, ...]) -> float:
    try:
        value = float(args[0]) if args else 0.0
    except ValueError:
        return 0.0
    return value if math.isfinite(value) else 0.0  # NaN counts as unset; inf is refused by chronyd anyway


def _stock_lines(platform: Platform, existing: str | None, kept: list[directives.Directive],
                 overridden: set[str]) -> list[StockLine]:
    """The platform's stock lines the file being replaced has, in that file's order (Debian 13
    moved confdir last so that conf.d overrides the main file: order matters to chrony). With no
    file to take over, the platform's usual set."""
    by_line = {s.normalized: s for s in platform.stock}
    if existing is None:
        chosen = [s for s in platform.stock if s.usual]
    else:
        above = comments_above(existing)
        chosen = list(dict.fromkeys(
            replace(by_line[d.normalized], comment=above.get(d.lineno, by_line[d.normalized].comment))
            for d in kept if d.normalized in by_line))
    return [s for s in chosen if s.line.split(maxsplit=1)[0] not in overridden]


# A comment is carried as written unless it holds a character some reader takes for a line break,
# a terminal control or a byte that is not UTF-8 (chronyd reads `# x\rcmdallow all` as one
# comment; another tool may not): then the platform data's comment is written instead.
_UNSAFE_COMMENT = re.compile("[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029\ud800-\udfff]")


def comments_above(text: str) -> dict[int, str]:
    """line number -> the comment block right above that line (no blank line between), as written:
    the distribution's own words are carried byte for byte, not retyped from platform data."""
    found: dict[int, str] = {}
    block: list[str] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        stripped = raw.strip(directives.WHITESPACE)
        if not stripped:
            block = []
        elif stripped[0] in directives.COMMENT_CHARS:
            block.append(raw)
        else:
            if block and not any(_UNSAFE_COMMENT.search(line) or len(directives.encode(line)) > 512
                                 for line in block):
                found[number] = "\n".join(block)
            block = []
    return found


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
        "phc_desc": choices.phc or ("decided at every boot" if choices.phc_at_boot else "none"),
        "phc_options": " ".join(phc_policy.DEFAULT_OPTIONS),
        "phc_confdir": None,
        "maxclockerror": f"{MAXCLOCKERROR_PPM:g}",
        "extra_sources": choices.extra_sources,
        "directives": choices.directives,
        "carried": carried,
        "stock": stock,
    }


TEMPLATE = "base.conf.j2"


def _render(choices: Choices, *, stock: list[StockLine], carried: list[str],
            extra: dict[str, object] | None = None) -> str:
    template = environment().get_template(TEMPLATE)
    text = template.render({**_context(choices, stock=stock, carried=carried), **(extra or {})})
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n") + "\n"
