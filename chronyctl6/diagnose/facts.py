"""What `chronyctl6 doctor` reads from this host, once, into plain data.

IMDS over both families and one short NTP exchange per Time Sync address (`check`'s validated
exchange) run at the same time, so the slowest of them bounds the whole: about 1 s when an
endpoint is silent. Then addresses, the route to fd00:ec2::123, chrony's version, the time
daemons running (psutil), the configuration chronyd loaded with its drop-ins, the PTP clock, and
chronyd's tracking as the bound `status` judges (measure.gather, the one reader and computation).
The checks in chronyctl6.diagnose.doctor are pure functions of the Facts returned here.
"""

from __future__ import annotations

import errno
import logging
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from chronyctl6.chronyconf import directives, traversal
from chronyctl6.configure.platforms import Platform
from chronyctl6.diagnose import firewall
from chronyctl6.effects import commands, configtree, daemons, host, metadata, service
from chronyctl6.effects import phc as phc_effects
from chronyctl6.effects.host import HostNetwork
from chronyctl6.effects.phc import PhcFacts
from chronyctl6.errors import BadInput, ChronyCtlError, CommandFailed
from chronyctl6.measure import clockbound, exchange

log = logging.getLogger(__name__)

NTP_SAMPLES = 2
NTP_DEADLINE = 1.0


@dataclass(frozen=True)
class NtpOutcome:
    """One Time Sync address, as `check`'s validated exchange saw it."""

    address: str
    kind: str  # reply | timeout | unreachable | kiss | rejected | error
    detail: str

    @property
    def ok(self) -> bool:
        return self.kind == "reply"


@dataclass(frozen=True)
class Route:
    destination: str
    source: str | None  # the address the kernel would send from
    error: str | None  # errno name when there is no route

    @property
    def ok(self) -> bool:
        return self.source is not None


@dataclass(frozen=True)
class FirewallView:
    """The local firewall's OUTPUT rules that drop NTP to Time Sync, from every tool present."""

    read: tuple[str, ...] = ()  # the tools whose rules were read
    blocks: tuple[firewall.Block, ...] = ()
    problems: tuple[str, ...] = ()  # a tool present whose rules could not be read (not root?)


@dataclass(frozen=True)
class Facts:
    imds_v6: metadata.Reach | None
    imds_v4: metadata.Reach | None
    network: HostNetwork
    interfaces: dict[str, str]  # interface name -> MAC
    route_v6: Route
    ntp_v6: NtpOutcome | None
    ntp_v4: NtpOutcome | None
    chrony_version: tuple[int, ...] | None
    chronyd: tuple[daemons.Proc, ...]
    platform: Platform | None
    config: traversal.ConfigTree | None
    config_from: str  # how we know which file chronyd loaded
    phc: str | None
    others: tuple[daemons.Proc, ...]
    imdsv1_asked: bool = False
    seconds: dict[str, float] = field(default_factory=dict)
    ipv6_setting: str = "auto"  # settings.toml's ipv6: what this instance is meant to use
    at_boot: bool = False
    firewall: FirewallView = field(default_factory=FirewallView)
    phc_facts: PhcFacts | None = None  # driver support, phc_enable, the clocks sysfs names
    # Where ipv6_setting comes from: settings.toml (its path), the intent `apply` kept in its state file, or
    # the default; doctor's intent says it.
    ipv6_from: str = "settings"
    unread: tuple[str, ...] = ()  # what could not be read (a non-root user and chronyctl6's 0700 state)
    offline: str | None = None  # --root: the image inspected (nothing of this host is asked)
    systemd: bool = True  # systemd runs here (its fixes are systemctl's; else said as absent)
    image_chrony_unit: service.UnitState | None = None  # offline: chrony's unit in the image (None: no platform)
    image_rivals: tuple[service.UnitState, ...] = ()  # offline: other time daemons' units enabled in the image
    image_chronyd: str | None = None  # offline: where the image has chronyd
    image_boot_unit: service.UnitState | None = None  # offline: chronyctl6-boot.service in the image
    # chronyd's bound on the clock's error as `status` computes it (measure.gather.chronyd_clockbound);
    # None when chronyd is not running or did not answer (bound_problem then says why, if it runs).
    bound: clockbound.Bound | None = None
    bound_problem: str | None = None

    @property
    def metadata(self) -> metadata.InstanceMetadata | None:
        for reach in (self.imds_v6, self.imds_v4):
            if reach is not None and reach.metadata is not None:
                return reach.metadata
        return None


@dataclass(frozen=True)
class Options:
    imdsv1: bool = False
    imds_timeout: float = metadata.DEFAULT_TIMEOUT
    imds_total: float = metadata.DEFAULT_TOTAL
    ntp_deadline: float = NTP_DEADLINE
    root: Path = Path("/")  # where the files are read (tests give a root of their own, and still ask this host)
    offline: bool = False  # --root: the image at root alone, nothing of this host


def route_to(destination: str) -> Route:
    """Which source address the kernel picks for destination: a UDP connect sends nothing."""
    family = socket.AF_INET6 if ":" in destination else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.connect((destination, 123))
        except OSError as exc:
            name = errno.errorcode.get(exc.errno or 0, str(exc))
            return Route(destination, None, f"{name}: {exc.strerror}")
        return Route(destination, str(s.getsockname()[0]), None)


def measure_timesync(deadline: float) -> tuple[NtpOutcome, NtpOutcome]:
    """Both Time Sync addresses at once, through `check`'s validated exchange."""
    targets = [*exchange.resolve(directives.TIMESYNC_IPV6), *exchange.resolve(directives.TIMESYNC_IPV4)]
    results = exchange.measure(targets, samples=NTP_SAMPLES, timeout=deadline)
    v6, v4 = (_outcome(m) for m in results)
    return v6, v4


def _outcome(m: exchange.Measurement) -> NtpOutcome:
    address = m.target.address
    best = m.best
    if best is not None:
        return NtpOutcome(address, "reply", f"offset {best.offset * 1e3:+.3f} ms, delay {best.delay * 1e3:.3f} ms, "
                                            f"stratum {best.stratum}, {len(m.samples)}/{m.sent} replies")
    if m.error is not None:
        kind = "unreachable" if exchange.unreachable(m) else "error"
        return NtpOutcome(address, kind, f"cannot send: {m.error}")
    if m.kiss_code is not None:
        return NtpOutcome(address, "kiss", f"kiss-of-death {m.kiss_code}: the server told us to stop")
    if m.rejected:
        if set(m.rejected) == {exchange.Reject.UNREACHABLE}:
            return NtpOutcome(address, "unreachable", f"ICMP unreachable: {m.details[0] if m.details else ''}")
        reasons = ", ".join(f"{k} x{v}" for k, v in sorted(m.rejected.items()))
        return NtpOutcome(address, "rejected", f"{m.sent} sent, every reply refused ({reasons})")
    return NtpOutcome(address, "timeout", f"no reply to {m.sent} request(s) within the deadline")


def read_firewall() -> FirewallView:
    """nft's ruleset and iptables' OUTPUT chains, where the tools are installed. Reads only."""
    addresses = (directives.TIMESYNC_IPV6, directives.TIMESYNC_IPV4)
    read: list[str] = []
    blocks: list[firewall.Block] = []
    problems: list[str] = []
    for tool, argv in (("nft", ["nft", "-j", "list", "ruleset"]), ("ip6tables", ["ip6tables", "-S", "OUTPUT"]),
                       ("iptables", ["iptables", "-S", "OUTPUT"])):
        if commands.which(tool) is None:
            continue
        try:
            done = commands.run(argv, timeout=5.0)
        except CommandFailed as exc:
            problems.append(exc.message)
            continue
        if not done.ok:
            problems.append(f"{' '.join(argv)}: {done.brief()}")
            continue
        read.append(tool)
        found = (firewall.nft_blocks(done.stdout, addresses) if tool == "nft"
                 else firewall.iptables_blocks(tool, done.stdout, addresses))
        blocks.extend(found)
    return FirewallView(tuple(read), tuple(blocks), tuple(problems))


def _interfaces() -> dict[str, str]:
    import psutil

    macs = {}
    for name, addrs in psutil.net_if_addrs().items():
        for a in addrs:
            if a.family == psutil.AF_LINK and a.address and a.address != "00:00:00:00:00:00":
                macs[name] = a.address.lower()
    return macs


@dataclass(frozen=True)
class Chosen:
    """The instance's intent as apply would take it, and where its ipv6 choice comes from."""

    platform: Platform | None
    ipv6: str = "auto"
    at_boot: bool = False
    ipv6_from: str = "the default"
    unread: tuple[str, ...] = ()


def _platform(root: Path) -> Chosen:
    """The platform, and the ipv6 and at_boot apply would take (the instance's intent): a flag
    given to `apply` is kept in its state file and wins over the default, settings.toml's key
    over both (plan.choose_settings, the one rule)."""
    from chronyctl6.configure import plan, settings
    from chronyctl6.effects import history

    request = plan.Request(root=root)
    try:
        basics = plan.read_basics(request)
        chosen, _ = plan.choose_settings(request, basics)
    except ChronyCtlError:
        return Chosen(None)
    unread = (basics.intent_problem,) if basics.intent_problem else ()
    explicit = settings.explicit_keys(basics.settings_text) if basics.settings_text is not None else frozenset()
    if "ipv6" in explicit:
        origin = basics.settings_where
    elif basics.intent.get("ipv6") == chosen.ipv6:
        origin = f"the intent `chronyctl6 apply --ipv6 {chosen.ipv6}` kept in {history.STATE_DIR}/state.json"
    else:
        origin = "the default"
    try:
        found: Platform | None = plan.platform_of(chosen, basics)
    except ChronyCtlError:
        found = None
    return Chosen(found, chosen.ipv6, chosen.at_boot, origin, unread)


def gather_offline(root: Path) -> Facts:
    """The image at root, from its files alone: its settings and kept intent, the configuration
    its chronyd will read (configtree: every path inside the image), its units. No IMDS, no
    packet, no process table, no chronyc: doctor says those checks are not applicable."""
    started = time.monotonic()
    if not root.is_dir():
        raise BadInput(f"--root {root} is not a directory", hint="give the directory the image is mounted at")
    chosen = _platform(root)
    platform = chosen.platform
    config = configtree.load(platform.config_path, root) if platform is not None else None
    rivals = service.enabled_rivals(root)
    chrony = service.unit_state(root, f"{platform.unit}.service", "multi-user.target") if platform else None
    reader = configtree.RootReader(root)
    binary = next((p for p in daemons.CHRONYD_PATHS if reader.exists(p)), None)
    return Facts(
        imds_v6=None, imds_v4=None, network=HostNetwork((), ()), interfaces={},
        route_v6=Route(directives.TIMESYNC_IPV6, None, "not applicable offline"), ntp_v6=None, ntp_v4=None,
        chrony_version=None, chronyd=(), platform=platform, config=config,
        config_from=f"{platform.label} default, in the image" if platform is not None else "not known",
        phc=None, others=(), seconds={"total": round(time.monotonic() - started, 3)},
        ipv6_setting=chosen.ipv6, at_boot=chosen.at_boot, ipv6_from=chosen.ipv6_from, unread=chosen.unread,
        offline=str(root), image_chrony_unit=chrony, image_rivals=rivals, image_chronyd=binary,
        image_boot_unit=service.unit_state(root, "chronyctl6-boot.service", "multi-user.target"))


def gather(options: Options) -> Facts:
    from chronyctl6.effects import chrony_tools

    if options.offline:
        return gather_offline(options.root)
    seconds: dict[str, float] = {}
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {host_: pool.submit(metadata.reach, host_, allow_v1=options.imdsv1, timeout=options.imds_timeout,
                                      total=options.imds_total)
                   for host_ in (metadata.IMDS_V6, metadata.IMDS_V4)}
        t = time.monotonic()
        ntp_v6, ntp_v4 = measure_timesync(options.ntp_deadline)
        seconds["ntp"] = round(time.monotonic() - t, 3)
        reach_v6, reach_v4 = futures[metadata.IMDS_V6].result(), futures[metadata.IMDS_V4].result()
    seconds["imds"] = max(reach_v6.seconds, reach_v4.seconds)
    log.debug("IMDS: %s; %s", reach_v6.detail, reach_v4.detail)

    chosen = _platform(options.root)
    platform = chosen.platform
    scan = daemons.scan()
    config_path, config_from = None, "not known"
    if scan.chronyd and scan.chronyd[0].config_path:
        config_path, config_from = scan.chronyd[0].config_path, "chronyd -f"
    elif platform is not None:
        config_path = platform.config_path
        config_from = f"{platform.label} default" + (", chronyd without -f" if scan.chronyd else "")
    config = configtree.load(config_path, options.root) if config_path else None
    found = phc_effects.discover(options.root)
    bound, bound_problem = chronyd_bound(config_path, options.root) if scan.chronyd else (None, None)
    seconds["total"] = round(time.monotonic() - started, 3)
    return Facts(
        imds_v6=reach_v6, imds_v4=reach_v4, network=host.read_network(), interfaces=_interfaces(),
        route_v6=route_to(directives.TIMESYNC_IPV6), ntp_v6=ntp_v6, ntp_v4=ntp_v4,
        chrony_version=chrony_tools.chronyd_version(), chronyd=scan.chronyd, platform=platform, config=config,
        config_from=config_from, phc=found.phc.device if found.phc else None, phc_facts=found, others=scan.others,
        imdsv1_asked=options.imdsv1, seconds=seconds, ipv6_setting=chosen.ipv6, at_boot=chosen.at_boot,
        firewall=read_firewall(), ipv6_from=chosen.ipv6_from, unread=chosen.unread,
        systemd=service.systemd_running(), bound=bound, bound_problem=bound_problem,
    )


def chronyd_bound(config_path: str | None, root: Path) -> tuple[clockbound.Bound | None, str | None]:
    """chronyd's bound now, read and computed as `status` and `check` do (measure.gather: one
    chronyc reader, one bound computation), or why chronyd did not tell it."""
    from chronyctl6.measure import gather as measured

    read_at = time.monotonic()
    tracking, _, problem = measured.chronyd_view()
    if tracking is None:
        return None, problem
    return measured.chronyd_clockbound(tracking, read_at, config_path, root), None
