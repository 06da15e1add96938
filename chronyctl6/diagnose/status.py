"""`chronyctl6 status`: chronyd's state at a glance, read only.

The process (psutil), the configuration it loaded and whether that still matches what
`chronyctl6 render` would write (drift, from the same plan.make_plan that apply uses), its
sources and tracking (chronyc), and any other time daemon fighting it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from chronyctl6.chronyconf import directives
from chronyctl6.effects import chrony_tools, daemons
from chronyctl6.errors import ChronyCtlError
from chronyctl6.measure import clockbound, gather

DEFAULT_WARN = 0.1  # seconds of chronyd's bound: the same defaults as check's --warn/--crit
DEFAULT_CRIT = 1.0


@dataclass(frozen=True)
class Drift:
    state: str  # in-sync | drift | unknown
    detail: str
    files: tuple[str, ...] = ()  # what apply would change
    diff: str = ""

    def as_dict(self) -> dict[str, object]:
        return {"state": self.state, "detail": self.detail, "files": list(self.files), "diff": self.diff}


@dataclass(frozen=True)
class StatusReport:
    chronyd: tuple[daemons.Proc, ...]
    config_path: str | None
    config_from: str
    drift: Drift
    sources: tuple[chrony_tools.Source, ...]
    tracking: chrony_tools.Tracking | None
    errors: tuple[str, ...]  # what could not be read (chronyc failed, ...)
    others: tuple[daemons.Proc, ...]
    warnings: tuple[str, ...] = field(default=())
    bound: clockbound.Bound | None = None  # chronyd's error bound, as ClockBound computes it
    warn: float = DEFAULT_WARN  # thresholds on the bound
    crit: float = DEFAULT_CRIT

    @property
    def bound_status(self) -> str | None:
        return clockbound.classify(self.bound, self.warn, self.crit) if self.bound is not None else None

    @property
    def selected(self) -> str | None:
        return next((s.name for s in self.sources if s.selected), None)

    @property
    def on_timesync(self) -> bool:
        """chronyd is synchronised, to a Time Sync endpoint or the ENA PTP hardware clock."""
        t, chosen = self.tracking, next((s for s in self.sources if s.selected), None)
        if t is None or not t.synchronised or chosen is None:
            return False
        return directives.is_timesync(chosen.name) or (chosen.mode == "#" and chosen.name.upper().startswith("PHC"))

    @property
    def verdict(self) -> str:
        """ok: synchronised to Time Sync, nothing fights it, the config is what chronyctl6 renders;
        warning: synchronised, with something to look at (drift, another time daemon, two chronyd),
        or synchronised to a source that is not Time Sync; critical: chronyd not running, or not
        synchronised; unknown: chronyd runs but chronyc could not be read."""
        if not self.chronyd:
            return "critical"
        if self.tracking is None:
            return "unknown" if self.errors else "critical"
        if not self.tracking.synchronised:
            return "critical"
        if self.bound_status in ("warning", "critical"):
            return str(self.bound_status)  # the clock applications read may be that far off
        if not self.on_timesync or self.others or len(self.chronyd) > 1 or self.drift.state == "drift":
            return "warning"
        return "ok"

    @property
    def exit_status(self) -> int:
        """The Nagios convention: 0 ok, 1 warning, 2 critical, 3 unknown."""
        return {"ok": 0, "warning": 1, "critical": 2}.get(self.verdict, 3)

    def as_dict(self) -> dict[str, object]:
        t = self.tracking
        return {
            "chronyd": [p.as_dict() for p in self.chronyd],
            "config": {"path": self.config_path, "from": self.config_from, "drift": self.drift.as_dict()},
            "selected": self.selected,
            "sources": [source_dict(s) for s in self.sources],
            "tracking": None if t is None else {
                "ref_id": t.ref_id, "ref_name": t.ref_name, "stratum": t.stratum,
                "offset_seconds": t.system_offset, "last_offset_seconds": t.last_offset,
                "rms_offset_seconds": t.rms_offset, "frequency_ppm": t.frequency_ppm,
                "residual_frequency_ppm": t.residual_freq_ppm, "skew_ppm": t.skew_ppm,
                "root_delay_seconds": t.root_delay, "root_dispersion_seconds": t.root_dispersion,
                "root_distance_seconds": t.root_distance, "max_error_seconds": t.max_error,
                "update_interval_seconds": t.update_interval,
                "leap_status": t.leap_status, "synchronised": t.synchronised,
            },
            "synchronised_to_timesync": self.on_timesync,
            "bound": None if self.bound is None else {**self.bound.as_dict(), "status": self.bound_status},
            "bound_thresholds": {"warn_seconds": self.warn, "crit_seconds": self.crit},
            "conflicting_daemons": [p.as_dict() for p in self.others],
            "errors": list(self.errors),
            "warnings": list(self.warnings),
        }


def source_dict(s: chrony_tools.Source) -> dict[str, object]:
    return {
        "mode": s.mode, "state": s.state, "name": s.name, "stratum": s.stratum, "poll": s.poll,
        "reach": f"{s.reach:03o}", "reachability_ratio": s.reachability_ratio, "selected": s.selected,
        "last_rx_seconds": s.last_rx, "adjusted_offset_seconds": s.adjusted_offset,
        "measured_offset_seconds": s.measured_offset, "error_seconds": s.error,
    }


def drift(config_path: str | None, root: Path = Path("/")) -> tuple[Drift, str | None]:
    """Whether the files chronyctl6 manages still say what it would render now; and the
    config path chronyctl6 manages (the distro's)."""
    from chronyctl6.configure.plan import Request, make_plan

    try:
        plan = make_plan(Request(root=root))
    except ChronyCtlError as exc:
        return Drift("unknown", f"cannot render: {exc.message}"), None
    managed = plan.config.shown
    if config_path is not None and config_path != managed:
        return Drift("unknown", f"chronyd loaded {config_path}, but chronyctl6 manages {managed}"), managed
    pending = plan.pending
    if not pending:
        return Drift("in-sync", f"{', '.join(c.shown for c in plan.changes)}: as `chronyctl6 render` "
                                "would write"), managed
    return Drift("drift", f"{', '.join(c.shown for c in pending)} differ(s) from what `chronyctl6 render` "
                          "would write: `chronyctl6 apply --diff --dry-run` shows how",
                 tuple(c.shown for c in pending), plan.diff()), managed


def status(root: Path = Path("/"), chronyc_socket: str | None = None, *, warn: float = DEFAULT_WARN,
           crit: float = DEFAULT_CRIT) -> StatusReport:
    scan = daemons.scan()
    running = scan.chronyd[0] if scan.chronyd else None
    loaded = running.config_path if running is not None else None
    report_drift, managed = drift(loaded, root)
    config_path: str | None
    if loaded is not None:
        config_path, config_from = loaded, "chronyd -f"
    else:
        config_path = managed
        config_from = "the distribution's default" if running is not None else "chronyd is not running"
    errors: list[str] = []
    sources: list[chrony_tools.Source] = []
    tracking: chrony_tools.Tracking | None = None
    read_at = time.monotonic()
    if running is not None:
        for what in ("sources", "tracking"):
            read_at = time.monotonic()
            done = chrony_tools.chronyc(what, socket=chronyc_socket)
            if not done.ok:
                errors.append(f"chronyc {what}: {done.brief()}")
                continue
            try:
                if what == "sources":
                    sources = chrony_tools.parse_sources(done.stdout)
                else:
                    tracking = chrony_tools.parse_tracking(done.stdout)
            except ChronyCtlError as exc:
                errors.append(exc.message)
    warnings = []
    if len(scan.chronyd) > 1:
        warnings.append(f"{len(scan.chronyd)} chronyd processes run: {', '.join(str(p.pid) for p in scan.chronyd)}")
    bound = chronyd_bound(tracking, read_at, config_path, root) if tracking is not None else None
    return StatusReport(scan.chronyd, config_path, config_from, report_drift, tuple(sources), tracking,
                        tuple(errors), scan.others, tuple(warnings), bound, warn, crit)


def chronyd_bound(tracking: chrony_tools.Tracking, read_at: float, config_path: str | None,
                  root: Path = Path("/")) -> clockbound.Bound:
    """chronyd's bound now, as check computes it (measure.gather.chronyd_clockbound), with the
    maxclockerror in force in the configuration chronyd loaded."""
    return gather.chronyd_clockbound(tracking, read_at, config_path, root)
