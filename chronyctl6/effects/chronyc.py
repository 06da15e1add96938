"""chronyd's state through `chronyc -c` (tracking, sources): what `check` asks every minute.

Kept apart from chrony_tools' validator (`chronyd -p`, temporary trees, the image sandbox), which
pulls dataclasses, tempfile and shutil that a check never uses: this module's records are
chronyctl6.plain's (start-up is most of a check's time). chrony_tools re-exports every name here.
Parsers are pure functions of chronyc's CSV output; chronyc always gets `-n`: it must never look
up a name.
"""

from __future__ import annotations

from chronyctl6.effects import commands
from chronyctl6.errors import CommandFailed
from chronyctl6.plain import Frozen

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy reads it so)
if TYPE_CHECKING:
    from typing import Final

LEAP_STATUSES = ("Normal", "Insert second", "Delete second", "Not synchronised")


class Tracking(Frozen):
    """`chronyc -c tracking`. Offsets in seconds; system_offset > 0: the clock is behind NTP time."""

    __slots__ = ("frequency_ppm", "last_offset", "leap_status", "ref_id", "ref_name", "ref_time",
                 "residual_freq_ppm", "rms_offset", "root_delay", "root_dispersion", "skew_ppm",
                 "stratum", "system_offset", "update_interval")
    ref_id: Final[str]
    ref_name: Final[str]
    stratum: Final[int]
    ref_time: Final[float]
    system_offset: Final[float]
    last_offset: Final[float]
    rms_offset: Final[float]
    frequency_ppm: Final[float]
    residual_freq_ppm: Final[float]
    skew_ppm: Final[float]
    root_delay: Final[float]
    root_dispersion: Final[float]
    update_interval: Final[float]
    leap_status: Final[str]

    def __init__(self, ref_id: str, ref_name: str, stratum: int, ref_time: float, system_offset: float,
                 last_offset: float, rms_offset: float, frequency_ppm: float, residual_freq_ppm: float,
                 skew_ppm: float, root_delay: float, root_dispersion: float, update_interval: float,
                 leap_status: str) -> None:
        self.ref_id = ref_id
        self.ref_name = ref_name
        self.stratum = stratum
        self.ref_time = ref_time
        self.system_offset = system_offset
        self.last_offset = last_offset
        self.rms_offset = rms_offset
        self.frequency_ppm = frequency_ppm
        self.residual_freq_ppm = residual_freq_ppm
        self.skew_ppm = skew_ppm
        self.root_delay = root_delay
        self.root_dispersion = root_dispersion
        self.update_interval = update_interval
        self.leap_status = leap_status

    @property
    def synchronised(self) -> bool:
        return self.leap_status != "Not synchronised" and self.ref_id not in ("0", "00000000")

    @property
    def root_distance(self) -> float:
        """chrony's root distance: root delay / 2 + root dispersion."""
        return self.root_delay / 2 + self.root_dispersion

    @property
    def max_error(self) -> float:
        """Upper bound of the clock's error against UTC, as ClockBound computes it:
        |system offset| + root distance."""
        return abs(self.system_offset) + self.root_distance


class Source(Frozen):
    """One line of `chronyc -c sources`."""

    __slots__ = ("adjusted_offset", "error", "last_rx", "measured_offset", "mode", "name", "poll", "reach",
                 "state", "stratum")
    mode: Final[str]  # ^ server, = peer, # reference clock
    state: Final[str]  # * selected, + combined, - not combined, x falseticker, ~ too variable, ? unusable
    name: Final[str]
    stratum: Final[int]
    poll: Final[int]
    reach: Final[int]  # the 8-bit reachability register
    last_rx: Final[int | None]  # seconds since the last sample, None if never
    adjusted_offset: Final[float]
    measured_offset: Final[float]
    error: Final[float]

    def __init__(self, mode: str, state: str, name: str, stratum: int, poll: int, reach: int,
                 last_rx: int | None, adjusted_offset: float, measured_offset: float, error: float) -> None:
        self.mode = mode
        self.state = state
        self.name = name
        self.stratum = stratum
        self.poll = poll
        self.reach = reach
        self.last_rx = last_rx
        self.adjusted_offset = adjusted_offset
        self.measured_offset = measured_offset
        self.error = error

    @property
    def selected(self) -> bool:
        return self.state == "*"

    @property
    def reachability_ratio(self) -> float:
        return bin(self.reach).count("1") / 8


def parse_tracking(text: str) -> Tracking:
    fields = _single_csv_line(text, 14, "tracking")
    try:
        return Tracking(
            ref_id=fields[0],
            ref_name=fields[1],
            stratum=int(fields[2]),
            ref_time=float(fields[3]),
            system_offset=float(fields[4]),
            last_offset=float(fields[5]),
            rms_offset=float(fields[6]),
            frequency_ppm=float(fields[7]),
            residual_freq_ppm=float(fields[8]),
            skew_ppm=float(fields[9]),
            root_delay=float(fields[10]),
            root_dispersion=float(fields[11]),
            update_interval=float(fields[12]),
            leap_status=fields[13],
        )
    except ValueError as exc:
        raise CommandFailed(f"chronyc tracking printed a field that is not a number: {exc}") from exc


def parse_sources(text: str) -> list[Source]:
    sources = []
    for line in text.splitlines():
        if not line.strip():
            continue
        f = line.split(",")
        if len(f) != 10:
            raise CommandFailed(f"chronyc sources printed an unexpected line: {line!r}")
        try:
            sources.append(
                Source(
                    mode=f[0],
                    state=f[1],
                    name=f[2],
                    stratum=int(f[3]),
                    poll=int(f[4]),
                    reach=int(f[5], 8),
                    last_rx=None if f[6] in ("-", "") else int(f[6]),
                    adjusted_offset=float(f[7]),
                    measured_offset=float(f[8]),
                    error=float(f[9]),
                )
            )
        except ValueError as exc:
            raise CommandFailed(f"chronyc sources printed an unexpected line: {line!r}") from exc
    return sources


def _single_csv_line(text: str, count: int, what: str) -> list[str]:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) != 1 or len(fields := lines[0].split(",")) != count:
        raise CommandFailed(f"chronyc {what} printed something unexpected: {text.strip()[:200]!r}")
    return fields


def chronyc(*args: str, timeout: float = 5.0, socket: str | None = None) -> commands.Completed:
    """Run chronyc against the local chronyd (its default command socket, or the Unix socket
    given), numbers only."""
    where = ["-h", socket] if socket else []
    return commands.run(["chronyc", "-n", "-c", *where, *args], timeout=timeout)


def tracking() -> Tracking:
    done = chronyc("tracking")
    if not done.ok:
        raise CommandFailed(f"chronyc tracking failed: {done.brief()}", hint="is chronyd running?")
    return parse_tracking(done.stdout)


def sources() -> list[Source]:
    done = chronyc("sources")
    if not done.ok:
        raise CommandFailed(f"chronyc sources failed: {done.brief()}", hint="is chronyd running?")
    return parse_sources(done.stdout)
