"""`chronyctl6 wait`: block until chronyd keeps this clock on Time Sync within a bound, saying
at every step why it does not yet; the boot-ordering step for services that need synchronised
time (chronyctl6-wait.service, ordered before time-sync.target, usable in place of chrony's own
chrony-wait.service, which asks only "synchronised to anything?" and says nothing of why not).

`judge` is pure (tracking and sources in, a verdict out); `wait` loops over injected seams (what
chronyd says, a monotonic clock, sleep), so tests drive it without timers. Time is measured on
CLOCK_MONOTONIC/CLOCK_BOOTTIME, never on the wall clock: chronyd may step the wall clock while we
wait (that is the point), backwards included.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from chronyctl6.chronyconf import directives
from chronyctl6.effects import chrony_tools, files
from chronyctl6.effects.chrony_tools import Source, Tracking
from chronyctl6.errors import ChronyCtlError, CommandFailed
from chronyctl6.measure import synced
from chronyctl6.measure.clockbound import Bound
from chronyctl6.text import shown

DEFAULT_TIMEOUT = 180.0  # chrony-wait.service's own limit (chronyc waitsync 180 ...)
DEFAULT_MAX_ERROR = 0.1  # seconds: `check`'s default warning threshold
MAX_POLL = 24  # chrony's longest poll, log2 seconds (a larger one from chronyc is not believed)
NOT_SYNCHRONISED = "Not synchronised"


@dataclass(frozen=True)
class Reading:
    """What chronyd said at one moment: tracking (None: it does not answer) and its sources."""

    tracking: Tracking | None
    sources: tuple[Source, ...] = ()
    error: str | None = None  # why tracking could not be read
    # chronyd's bound as `status` reports it (measure.gather.chronyd_clockbound, ClockBound's
    # computation): None where it was not computed, which is never ready.
    bound: Bound | None = None


@dataclass(frozen=True)
class Verdict:
    ready: bool
    reason: str  # why not yet, or what it is synchronised to
    source: str | None = None  # the selected source
    bound: float | None = None  # seconds: ClockBound's bound, as status reports it


def is_timesync(source: Source) -> bool:
    return source.mode == "#" or directives.is_timesync(source.name)


def judge(reading: Reading, *, max_error: float, any_source: bool = False) -> Verdict:
    """Ready once chronyd is synchronised to Time Sync (or the ENA PTP clock; any source with
    any_source) and its bound is within max_error. Otherwise the most useful reason why not."""
    t = reading.tracking
    if t is None:
        return Verdict(False, f"chronyd does not answer ({shown(reading.error or 'not running yet?')})")
    selected = next((s for s in reading.sources if s.selected), None)
    if t.leap_status == NOT_SYNCHRONISED or selected is None:
        return Verdict(False, _why_unsynchronised(reading.sources))
    name = shown(selected.name)
    if not any_source and not is_timesync(selected):
        return Verdict(False, f"synchronised to {name}, not to Time Sync", name)
    if reading.bound is None or reading.bound.seconds is None:
        why = reading.bound.problem if reading.bound is not None else None
        return Verdict(False, f"synchronised to {name}, but no bound on the clock's error: "
                              f"{shown(why or 'not computed')}", name)
    error = reading.bound.seconds  # the bound status reports: one computation for both
    if error > max_error:
        return Verdict(False, f"synchronised to {name}, but the clock may still be {error:.6f} s off "
                              f"(above {max_error:g} s)", name, error)
    # Within the bound now is not enough: it must stay within max_error until chronyd's next clock
    # update. Until then chronyd's root dispersion grows by (skew + |residual frequency| +
    # maxclockerror) x the time since its last update (chrony's REF_GetTrackingReport; the README's
    # "chronyd's bound"), and the update itself adds skew and residual over the interval it closes
    # (reference.c). The next update comes one poll of the selected source after the last, so the
    # interval is the poll's, not the last one: right after iburst that was 2 s and the next is 16 s
    # (minpoll 4). Measured on real chronyd (maxclockerror 50, poll 4, skew 6.4 ppm): the bound
    # rose from 0.000049 s to 0.000899 s before the next update, where skew x the last interval
    # said 13 us; and right after selection the next update lifted 0.043 s to 0.131 s. A reply
    # lost on the way postpones the update by a poll: that is beyond "the next update".
    interval = max(t.update_interval, 2.0 ** min(selected.poll, MAX_POLL), 1.0)  # NaN interval stays NaN
    rate = t.skew_ppm + abs(t.residual_freq_ppm) + reading.bound.maxclockerror_ppm
    growth = rate * 1e-6 * interval
    if not growth <= max_error - error:  # NaN from chronyd is never ready
        return Verdict(False, f"synchronised to {name}, within {error:.6f} s, but its bound may grow by "
                              f"{growth:.6f} s before chronyd's next update (skew {t.skew_ppm:g} + residual "
                              f"{abs(t.residual_freq_ppm):g} + maxclockerror {reading.bound.maxclockerror_ppm:g} "
                              f"ppm over {interval:g} s), above {max_error:g} s together", name, error)
    return Verdict(True, f"synchronised to {name}, within {error:.6f} s", name, error)


def _why_unsynchronised(sources: tuple[Source, ...]) -> str:
    if not sources:
        return "not synchronised: chronyd has no sources (is a Time Sync line in what it reads?)"
    silent = [shown(s.name) for s in sources if s.reach == 0]
    if len(silent) == len(sources):
        return (f"not synchronised: no reply yet from {', '.join(silent)} (reach 0; "
                f"`chronyctl6 doctor` says why Time Sync does not answer)")
    heard = ", ".join(f"{shown(s.name)} reach {s.reach:03o} state {shown(s.state)}" for s in sources if s.reach)
    return f"not synchronised yet: {heard} (chronyd selects a source after a few replies)"


@dataclass
class WaitResult:
    ready: bool
    reason: str
    source: str | None
    bound_seconds: float | None
    waited_seconds: float
    since_boot_seconds: float | None  # CLOCK_BOOTTIME when it became ready: seconds from boot to sync
    since_init_seconds: float | None  # seconds since this PID namespace's init started (a container's boot)
    steps: list[str] = field(default_factory=list)  # each distinct reason seen, in order

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def wait(read: Callable[[], Reading], *, timeout: float, max_error: float, any_source: bool = False,
         interval: float = 1.0, progress: Callable[[str], None] | None = None,
         monotonic: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
         boottime: Callable[[], tuple[float | None, float | None]] | None = None) -> WaitResult:
    """Ask chronyd every `interval` seconds until ready or `timeout` has passed (at least once)."""
    start = monotonic()
    steps: list[str] = []
    while True:
        verdict = judge(read(), max_error=max_error, any_source=any_source)
        if not steps or steps[-1] != verdict.reason:
            steps.append(verdict.reason)
            if progress is not None and not verdict.ready:
                progress(verdict.reason)
        waited = monotonic() - start
        if verdict.ready or waited >= timeout:
            since_boot, since_init = (boottime or since_boot_and_init)() if verdict.ready else (None, None)
            return WaitResult(verdict.ready, verdict.reason, verdict.source, verdict.bound, round(waited, 3),
                              _rounded(since_boot), _rounded(since_init), steps)
        sleep(min(interval, max(timeout - waited, 0.0)))


def _rounded(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None


def since_boot_and_init() -> tuple[float | None, float | None]:
    """Seconds since the kernel booted (CLOCK_BOOTTIME), and since PID 1 of this PID namespace
    started (from /proc/1/stat's start time, in clock ticks after boot): on an instance the two
    differ by the kernel's own start-up; in a container only the second is its boot."""
    try:
        now = time.clock_gettime(time.CLOCK_BOOTTIME)
    except (AttributeError, OSError):
        return None, None
    try:
        with open("/proc/1/stat", "rb") as handle:
            stat = handle.read(4096)
        started = int(stat.rsplit(b")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return now, None
    return now, max(now - started, 0.0)


def ask_chronyd(socket: str | None = None) -> Reading:
    """The effect `wait` polls: chronyd's tracking and sources (chronyc), never raising."""
    try:
        read_at = time.monotonic()
        tracking = chrony_tools.parse_tracking(_chronyc("tracking", socket))
        found = tuple(chrony_tools.parse_sources(_chronyc("sources", socket)))
    except ChronyCtlError as exc:
        return Reading(None, (), exc.message)
    return Reading(tracking, found, bound=chronyd_bound(tracking, read_at))


def chronyd_bound(tracking: Tracking, read_at: float) -> Bound:
    """The bound `status` reports (measure.gather.chronyd_clockbound), with the maxclockerror in
    force in the configuration the running chronyd loaded, as status finds it."""
    from chronyctl6.effects import daemons
    from chronyctl6.measure import gather

    try:
        scan = daemons.scan()
        loaded = scan.chronyd[0].config_path if scan.chronyd else None
    except (OSError, ChronyCtlError):  # /proc unreadable: the default configuration, as status
        loaded = None
    return gather.chronyd_clockbound(tracking, read_at, loaded)


def _chronyc(what: str, socket: str | None) -> str:
    done = chrony_tools.chronyc(what, socket=socket)
    if not done.ok:
        raise CommandFailed(f"chronyc {what}: {done.brief()}")
    return done.stdout


RECORD = synced.RECORD  # read back by status and check (measure.gather.synchronised_record)


def record(result: WaitResult) -> str | None:
    """Keep when this boot's clock became synchronised (for `status` and the metric); /run is
    emptied at every boot, so the figure is always this boot's. Returns a warning, or None."""
    import json
    from pathlib import Path

    data = {"since_boot_seconds": result.since_boot_seconds, "since_init_seconds": result.since_init_seconds,
            "source": result.source,
            "bound_seconds": result.bound_seconds}
    try:
        Path(RECORD).parent.mkdir(mode=0o755, exist_ok=True)
        files.atomic_write(Path(RECORD), (json.dumps(data, sort_keys=True) + "\n").encode())
    except (ChronyCtlError, OSError) as exc:
        return f"could not record the time of synchronisation in {RECORD}: {getattr(exc, 'message', exc)}"
    return None
