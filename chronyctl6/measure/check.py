"""`chronyctl6 check`: is this clock right, and by how much?

Pure: measurements (chronyctl6.measure.exchange) and chronyd's tracking and sources in, a
CheckResult out. What gathers them (sockets, chronyc, the configuration) is
chronyctl6.measure.gather; rendering for people, JSON, Nagios and Prometheus is
chronyctl6.measure.report.

The verdict's one error bound (the status line, Nagios perfdata, Prometheus metrics and the
shipped alert rules all use it): the largest this clock's error against UTC can be,

    max_error = |offset| + path bound + root distance,   root distance = root delay / 2 + root dispersion

offset and path bound from the whole burst (measure.exchange.combine: within the interval every
valid reply's offset +- delay / 2 (and its timestamps' precision) agrees on, its midpoint where
queueing shows, else the replies' mean; the path bound is the distance to the interval's farther
end, at most the fastest reply's delay plus precision), root delay and dispersion as the replies
state them.
WARNING from max_error >= --warn, CRITICAL from max_error >= --crit.

chronyd not synchronised is CRITICAL, as in `status` and as check_ntp_time says of a clock
with no usable time: one meaning of "unsynchronised" (Tracking.synchronised) everywhere.

Statuses follow the Nagios plugin API: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
"""

from __future__ import annotations

import math
from enum import IntEnum

from chronyctl6.errors import ChronyCtlError, ExitStatus
from chronyctl6.measure import exchange
from chronyctl6.plain import Frozen, Record

# Imported where used: `check` runs every minute, and start-up is most of its time (typing too:
# mypy reads a TYPE_CHECKING of our own as typing's).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Final

    from chronyctl6.effects.chronyc import Source, Tracking
    from chronyctl6.measure import clockbound  # imported where used: only with chronyd's view
    from chronyctl6.measure.synced import Synchronised

IPV4_SERVER = "169.254.169.123"
DEFAULT_WARN = 0.1
DEFAULT_CRIT = 1.0
DEFAULT_TIMEOUT = 2.0
# chronyc prints 9 decimals; never call a rounding difference a disagreement.
_SLACK = 1e-6


def decimal(value: float) -> str:
    """A number as a plain decimal (0.00001, never 1e-05): what Nagios perfdata parsers and
    people read. The shortest digits that round-trip (repr's), without an exponent."""
    if not math.isfinite(value):
        return "U"  # Nagios' "undetermined"; never reached by checked thresholds
    text = repr(float(value))
    sign = "-" if text.startswith("-") else ""
    text = text.lstrip("-")
    mantissa, _, exp_text = text.partition("e")
    whole, _, frac = mantissa.partition(".")
    digits, point = whole + frac, len(whole) + int(exp_text or 0)
    if point <= 0:
        digits, point = "0" * (1 - point) + digits, 1
    elif point > len(digits):
        digits += "0" * (point - len(digits))
    whole, frac = digits[:point].lstrip("0") or "0", digits[point:].rstrip("0")
    return sign + whole + (f".{frac}" if frac else "") if whole + frac != "0" else "0"


class CheckStatus(IntEnum):
    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


class CheckUsageError(ChronyCtlError):
    """Bad arguments: UNKNOWN (exit 3), like any plugin that cannot measure; status word `usage`."""

    status = ExitStatus.BAD_INPUT


class Thresholds(Frozen):
    __slots__ = ("crit", "warn")
    warn: Final[float]
    crit: Final[float]

    def __init__(self, warn: float = DEFAULT_WARN, crit: float = DEFAULT_CRIT) -> None:
        finite = math.isfinite(warn) and math.isfinite(crit)
        if not (finite and 0 < warn <= crit):
            raise CheckUsageError(
                f"thresholds --warn {warn:g} --crit {crit:g}: need finite numbers, "
                "0 < warn <= crit",
                hint="e.g. --warn 0.1 --crit 1",
            )
        self.warn = warn
        self.crit = crit

    def classify(self, max_error: float) -> CheckStatus:
        """The status for the largest error the measurement allows (Sample.max_error)."""
        if max_error >= self.crit:
            return CheckStatus.CRITICAL
        if max_error >= self.warn:
            return CheckStatus.WARNING
        return CheckStatus.OK


class ChronydView(Frozen):
    """What chronyd believes, and whether that fits our own measurement."""

    __slots__ = ("allowed", "bound", "bound_status", "difference", "disagrees", "problem", "sources", "tracking")
    tracking: Final[Tracking | None]
    problem: Final[str | None]  # why there is no view (chronyd not running)
    difference: Final[float | None]  # |direct offset - chronyd's system offset|
    allowed: Final[float | None]  # the most the two bounds let that difference be
    disagrees: Final[bool]
    sources: Final[tuple[Source, ...]]  # `chronyc sources`, for the metrics; () if unread
    # chronyd's bound against UTC as ClockBound computes it (measure/clockbound.py: drift allowance
    # and the ENA PHC's error bound included), from measure.gather.chronyd_clockbound, judged by the
    # same --warn/--crit: the clock applications read
    bound: Final[clockbound.Bound | None]
    bound_status: Final[str | None]  # ok | warning | critical

    def __init__(self, tracking: Tracking | None, problem: str | None = None, difference: float | None = None,
                 allowed: float | None = None, disagrees: bool = False, sources: tuple[Source, ...] = (),
                 bound: clockbound.Bound | None = None, bound_status: str | None = None) -> None:
        self.tracking = tracking
        self.problem = problem
        self.difference = difference
        self.allowed = allowed
        self.disagrees = disagrees
        self.sources = sources
        self.bound = bound
        self.bound_status = bound_status

    def with_bound(self, bound: clockbound.Bound | None, bound_status: str | None) -> ChronydView:
        """This view with chronyd's bound and its verdict."""
        return ChronydView(self.tracking, self.problem, self.difference, self.allowed, self.disagrees,
                           self.sources, bound, bound_status)

    @property
    def clockbound(self) -> float | None:
        return self.bound.seconds if self.bound is not None else None


def compare_chronyd(sample: exchange.Sample | None, tracking: Tracking,
                    sources: tuple[Source, ...] = ()) -> ChronydView:
    """chronyd disagrees when both claims cannot be true at once: our sample puts the true
    offset within `offset +- error_bound` (path and the server's root distance), chronyd puts it
    within `system_offset +- its root distance`; disjoint intervals mean one of them is wrong."""
    if sample is None or not tracking.synchronised:
        return ChronydView(tracking, sources=sources)
    difference = abs(sample.offset - tracking.system_offset)
    allowed = sample.error_bound + tracking.root_distance + _SLACK
    # A chronyd that reports NaN or infinity is not taken as agreeing.
    finite = all(math.isfinite(x) for x in (tracking.system_offset, tracking.root_delay,
                                             tracking.root_dispersion))
    return ChronydView(tracking, None, difference, allowed, not (finite and difference <= allowed),
                       sources)


class CheckResult(Record):
    __slots__ = ("chosen", "chronyd", "hint", "measurements", "notes", "server_from", "status", "summary",
                 "synchronised", "thresholds")
    status: CheckStatus
    summary: str  # one line: the verdict and its main reason
    thresholds: Thresholds
    measurements: list[exchange.Measurement]
    chosen: exchange.Measurement | None  # the server the verdict rests on
    chronyd: ChronydView | None
    notes: list[str]  # other things worth saying
    hint: str | None
    server_from: str  # --server, or where the default came from (chronyconf.servers)
    synchronised: Synchronised | None  # this boot's synchronisation, as `chronyctl6 wait` kept it

    def __init__(self, status: CheckStatus, summary: str, thresholds: Thresholds,
                 measurements: list[exchange.Measurement], chosen: exchange.Measurement | None = None,
                 chronyd: ChronydView | None = None, notes: list[str] | None = None, hint: str | None = None,
                 server_from: str = "--server", synchronised: Synchronised | None = None) -> None:
        self.status = status
        self.summary = summary
        self.thresholds = thresholds
        self.measurements = measurements
        self.chosen = chosen
        self.chronyd = chronyd
        self.notes = [] if notes is None else notes
        self.hint = hint
        self.server_from = server_from
        self.synchronised = synchronised

    @property
    def sample(self) -> exchange.Sample | None:
        return self.chosen.best if self.chosen else None

    @property
    def max_error(self) -> float | None:
        s = self.sample
        return s.max_error if s else None


def describe_failure(m: exchange.Measurement) -> str:
    where = m.target.address
    if m.error is not None and not m.target.resolved:
        return m.error
    if m.error is not None:
        return f"cannot send to {where}: {m.error}"
    if m.kiss_code is not None and not m.samples:
        return f"{where} sent a kiss-of-death ({m.kiss_code}): kiss_of_death, sent nothing more"
    if not m.rejected:
        return f"no reply from {where} ({m.sent} requests)"
    reasons = ", ".join(f"{reason} x{count}" for reason, count in sorted(m.rejected.items()))
    return f"no valid reply from {where} ({m.sent} requests; rejected: {reasons})"


def evaluate(
    measurements: list[exchange.Measurement],
    thresholds: Thresholds,
    tracking: Tracking | None = None,
    chronyd_problem: str | None = None,
    ipv6_hint: str | None = None,
    sources: tuple[Source, ...] = (),
    bound: clockbound.Bound | None = None,
) -> CheckResult:
    """The verdict. The server with the smallest distance to UTC decides; chronyd's view can
    only make it worse: a disagreement is a WARNING, chronyd not synchronised is CRITICAL (no
    usable time for the applications, as `status` says)."""
    usable = [m for m in measurements if m.best is not None]
    notes = [describe_failure(m) for m in measurements if m.best is None]
    for m in measurements:
        if m.kiss_code is not None and m.samples:
            notes.append(f"{m.target.address} sent kiss code {m.kiss_code}: backed off")
    # Not asked (--no-chronyd): no view at all, so nothing about chronyd is reported.
    chronyd = (compare_chronyd(None, tracking, sources) if tracking
               else ChronydView(None, chronyd_problem) if chronyd_problem else None)
    chronyd = _with_bound(chronyd, bound, thresholds)
    if not usable:
        summary = notes[0] if notes else "no server to ask"
        status = CheckStatus.UNKNOWN
        if tracking is not None and not tracking.synchronised:  # known: no usable time
            status, summary = CheckStatus.CRITICAL, summary + "; chronyd is not synchronised"
        return CheckResult(status, summary, thresholds, measurements, None, chronyd, notes[1:],
                           ipv6_hint)
    chosen = min(usable, key=lambda m: m.best.error_bound if m.best else float("inf"))
    sample = chosen.best
    assert sample is not None
    worst = sample.max_error
    status = thresholds.classify(worst)
    summary = (
        f"offset {sample.offset:+.6f} s to {chosen.target.address} "
        f"(+-{sample.error_bound:.6f} s)"
    )
    if status is not CheckStatus.OK:
        limit = thresholds.crit if status is CheckStatus.CRITICAL else thresholds.warn
        summary += f": could be {worst:.6f} s off, limit {decimal(limit)} s"
    if tracking is not None:
        chronyd = compare_chronyd(sample, tracking, sources)
        if chronyd.disagrees:
            status = max(status, CheckStatus.WARNING)
            summary += (
                f"; chronyd disagrees: it says {tracking.system_offset:+.6f} s, "
                f"{chronyd.difference:.6f} s apart (bounds allow {chronyd.allowed:.6f} s)"
            )
        elif not tracking.synchronised:
            status = max(status, CheckStatus.CRITICAL)
            summary += "; chronyd is not synchronised"
        chronyd = _with_bound(chronyd, bound, thresholds)
        if (chronyd is not None and bound is not None and bound.seconds is not None
                and chronyd.bound_status in ("warning", "critical")):
            status = max(status, CheckStatus.CRITICAL if chronyd.bound_status == "critical" else CheckStatus.WARNING)
            summary += f"; chronyd's clock could be {bound.seconds:.6f} s off (ClockBound's bound)"
    return CheckResult(status, summary, thresholds, measurements, chosen, chronyd, notes)


def _with_bound(view: ChronydView | None, bound: clockbound.Bound | None,
                thresholds: Thresholds) -> ChronydView | None:
    if view is None or bound is None:
        return view
    from chronyctl6.measure import clockbound

    return view.with_bound(bound, clockbound.classify(bound, thresholds.warn, thresholds.crit))


def ipv6_route_hint(measurements: list[exchange.Measurement],
                    has_global_ipv6: Callable[[], bool]) -> str | None:
    """Say so when IPv6 cannot work here, and point at the IPv4 endpoint. Only for servers
    beyond this host (fd00:ec2::123, not ::1) that got nowhere: no route, or no answer at all
    (an answer of any kind proves the path works). has_global_ipv6 is asked only then (the
    caller's reading of the host: it costs psutil)."""
    import socket

    def remote(m: exchange.Measurement) -> bool:
        import ipaddress  # only on this failure path

        ip = ipaddress.ip_address(m.target.address.split("%")[0])
        return not (ip.is_loopback or ip.is_link_local)

    v6 = [m for m in measurements if m.best is None and not m.rejected
          and m.target.family == socket.AF_INET6 and remote(m)]
    if not v6:
        return None
    if any(exchange.unreachable(m) for m in v6):
        why = "this host has no usable IPv6 route"
    else:
        if has_global_ipv6():
            return None
        why = "this host has no global IPv6 address"
    return (
        f"{why} to {v6[0].target.address}; the IPv6 endpoint needs a Nitro instance in a "
        f"subnet with an IPv6 CIDR and an IPv6 address on the interface. "
        f"Use the IPv4 endpoint meanwhile: --server {IPV4_SERVER}"
    )
