"""chronyd's error bound, the most the clock applications read may be off true time, computed as
AWS's ClockBound computes it (pure arithmetic over `chronyc tracking` and two sysfs/config facts).

ClockBound (https://github.com/aws/clock-bound):
- clock-bound-d/src/clock_snapshot_poller/chronyd_snapshot_poller.rs, `extract_error_bound_nsec`:
  root_delay / 2 + root_dispersion + |current_correction| (chronyc's "System time"), plus the
  PHC's error bound when tracking's reference is the PHC;
- clock-bound-d/src/phc_utils.rs: that error bound is /sys/bus/pci/devices/BDF/phc_error_bound,
  in nanoseconds;
- clock-bound-shm/src/lib.rs, `compute_bound_at`: the bound then grows by the drift allowance
  (max_drift_ppb, which must match chrony's `maxclockerror`) times the time since it was read.

The growth since chronyd's last clock update is already inside the root dispersion chronyc
reports: chrony's REF_GetTrackingReport (reference.c) returns the dispersion at the last update
plus (skew + |residual frequency| + maxclockerror) x the time since it (ClockBound's comment:
"the root dispersion reported by chrony is at the time the tracking data is retrieved"). So the
bound adds maxclockerror only from the reading to now, and reports the part of the dispersion
that is the drift allowance since the last update (`drift_since_update`) to show it, without
counting it twice. The maxclockerror used is the one in force in chronyd's configuration.
"""

from __future__ import annotations

import math

from chronyctl6.plain import Frozen

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: check's start-up (mypy reads it so)
if TYPE_CHECKING:
    from typing import Final

CHRONY_DEFAULT_MAXCLOCKERROR = 1.0  # ppm, chrony.conf(5)


class Bound(Frozen):
    __slots__ = ("drift_since_update", "growth", "half_root_delay", "maxclockerror_ppm", "offset",
                 "phc_error_bound", "problem", "root_dispersion", "seconds", "since_update")
    seconds: Final[float | None]  # None: no bound (not synchronised, a value that is not a number, ...)
    offset: Final[float]  # |system time offset|
    root_dispersion: Final[float]
    half_root_delay: Final[float]
    phc_error_bound: Final[float | None]  # seconds; None where the PHC is not the reference
    maxclockerror_ppm: Final[float]
    since_update: Final[float | None]  # seconds since chronyd's last clock update
    drift_since_update: Final[float]  # maxclockerror x since_update: inside root_dispersion already
    growth: Final[float]  # maxclockerror x the time from reading tracking to now
    problem: Final[str | None]

    def __init__(self, seconds: float | None, offset: float, root_dispersion: float, half_root_delay: float,
                 phc_error_bound: float | None, maxclockerror_ppm: float, since_update: float | None,
                 drift_since_update: float, growth: float, problem: str | None = None) -> None:
        self.seconds = seconds
        self.offset = offset
        self.root_dispersion = root_dispersion
        self.half_root_delay = half_root_delay
        self.phc_error_bound = phc_error_bound
        self.maxclockerror_ppm = maxclockerror_ppm
        self.since_update = since_update
        self.drift_since_update = drift_since_update
        self.growth = growth
        self.problem = problem

    def as_dict(self) -> dict[str, object]:
        return {
            "bound_seconds": self.seconds, "offset_seconds": self.offset,
            "root_dispersion_seconds": self.root_dispersion, "half_root_delay_seconds": self.half_root_delay,
            "phc_error_bound_seconds": self.phc_error_bound, "maxclockerror_ppm": self.maxclockerror_ppm,
            "since_update_seconds": self.since_update, "drift_since_update_seconds": self.drift_since_update,
            "growth_seconds": self.growth, "problem": self.problem,
        }


def compute(*, system_offset: float, root_delay: float, root_dispersion: float, synchronised: bool,
            maxclockerror_ppm: float, since_update: float | None = None, age: float = 0.0,
            phc_reference: bool = False, phc_error_bound: float | None = None) -> Bound:
    """The bound from one tracking reading. age: seconds from the reading to now (monotonic);
    phc_reference: the reference is the PHC, so its error bound (seconds) must be added."""
    rate = maxclockerror_ppm * 1e-6
    since = since_update if since_update is not None and math.isfinite(since_update) and since_update >= 0 else None
    parts = (abs(system_offset), root_dispersion, root_delay / 2)
    base = Bound(None, parts[0], parts[1], parts[2], phc_error_bound if phc_reference else None,
                 maxclockerror_ppm, since, rate * since if since is not None else 0.0, rate * max(age, 0.0))
    problem = None
    if not synchronised:
        problem = "chronyd is not synchronised: no bound"
    elif not all(math.isfinite(v) for v in (*parts, maxclockerror_ppm, age)) or min(parts[1:]) < 0 or rate < 0:
        problem = "chronyd reported a value that is not a finite, non-negative number"
    elif phc_reference and (phc_error_bound is None or not math.isfinite(phc_error_bound) or phc_error_bound < 0):
        problem = "the PHC is the reference but its error bound (phc_error_bound in sysfs) cannot be read"
    if problem:
        return _with(base, None, problem)
    return _with(base, sum(parts) + ((phc_error_bound or 0.0) if phc_reference else 0.0) + base.growth, None)


def _with(b: Bound, seconds: float | None, problem: str | None) -> Bound:
    return Bound(seconds, b.offset, b.root_dispersion, b.half_root_delay, b.phc_error_bound,
                 b.maxclockerror_ppm, b.since_update, b.drift_since_update, b.growth, problem)


def classify(bound: Bound, warn: float, crit: float) -> str:
    """ok | warning | critical for the bound against thresholds (seconds); no bound is critical:
    nothing then says how far off the clock may be."""
    if bound.seconds is None or bound.seconds >= crit:
        return "critical"
    return "warning" if bound.seconds >= warn else "ok"

