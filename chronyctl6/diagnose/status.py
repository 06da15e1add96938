"""`chronyctl6 status`: chronyd's state at a glance, read only.

The process (psutil), the configuration it loaded and whether that still matches what
`chronyctl6 render` would write (drift, from the same plan that apply makes), its sources and
tracking (chronyc), any other time daemon fighting it, and this boot's seconds to
synchronisation as `chronyctl6 wait` kept them.

With --root an image is inspected offline: its configuration (through effects.configtree, every
path resolved inside the image), its state file and its units; nothing of this host (no chronyc,
no process table, no network, no /run) is asked, and the report says what is not applicable.
A non-root user may not read chronyctl6's state (0700) or a file chronyd reads: the report says
what it could not read and leaves drift unjudged, rather than inventing it.
"""

from __future__ import annotations

import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from chronyctl6.chronyconf import directives
from chronyctl6.effects import chrony_tools, daemons, files, service
from chronyctl6.errors import BadInput, ChronyCtlError
from chronyctl6.measure import check, clockbound, gather, synced

if TYPE_CHECKING:
    from chronyctl6.configure.plan import Plan

# Seconds of chronyd's bound: check's --warn/--crit defaults (one definition; doctor judges with these too).
DEFAULT_WARN = check.DEFAULT_WARN
DEFAULT_CRIT = check.DEFAULT_CRIT


@dataclass(frozen=True)
class Drift:
    state: str  # in-sync | drift | unknown
    detail: str
    files: tuple[str, ...] = ()  # what apply would change
    diff: str = ""
    unread: tuple[str, ...] = ()  # what this user could not read, so drift is not judged

    def as_dict(self) -> dict[str, object]:
        return {"state": self.state, "detail": self.detail, "files": list(self.files), "diff": self.diff,
                "unread": list(self.unread)}


NOT_APPLICABLE = ("chronyd's process, its sources and tracking (chronyc) and its error bound",
                  "other running time daemons (the process table)", "the network and Time Sync's answers",
                  f"this boot's synchronisation record ({synced.RECORD})")
# Units an image's boot starts (WantedBy), and what an enabled one means for time keeping.
OUR_UNITS = (("chronyctl6-boot.service", "multi-user.target"), ("chronyctl6-wait.service", "multi-user.target"),
             ("chronyctl6-check.timer", "timers.target"))


@dataclass(frozen=True)
class Offline:
    """`status --root`: the image's units, and what only a running system can say."""

    root: str
    chrony: service.UnitState | None  # the distribution's chrony unit (None: no platform known)
    units: tuple[service.UnitState, ...] = ()  # chronyctl6's own
    rivals: tuple[service.UnitState, ...] = ()  # other time daemons' units enabled in the image
    not_applicable: tuple[str, ...] = NOT_APPLICABLE
    boot_unit: str | None = None  # the endpoint is chosen at boot: chronyctl6-boot.service's state, when not enabled
    kept: dict[str, object] = field(default_factory=dict)  # the intent apply --root kept in the image's state file

    @property
    def problems(self) -> tuple[str, ...]:
        found = []
        if self.chrony is not None and self.chrony.state != "enabled":
            found.append(f"{self.chrony.unit} is {self.chrony.state}: chronyd will not start at boot")
        found += [f"{u.unit} is enabled: it fights chronyd over the clock" for u in self.rivals]
        if self.boot_unit:
            found.append(f"the Time Sync endpoint is chosen at every boot, but chronyctl6-boot.service is "
                         f"{self.boot_unit}: no Time Sync line at boot")
        return tuple(found)

    def as_dict(self) -> dict[str, object]:
        return {"root": self.root, "kept_intent": dict(self.kept),
                "chrony_unit": self.chrony.as_dict() if self.chrony else None,
                "units": [u.as_dict() for u in self.units], "conflicting_units": [u.as_dict() for u in self.rivals],
                "problems": list(self.problems), "not_applicable": list(self.not_applicable)}


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
    synchronised: synced.Synchronised | None = None  # this boot's, as `chronyctl6 wait` kept it
    offline: Offline | None = None  # --root: an image, inspected offline

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
        synchronised; unknown: chronyd runs but chronyc could not be read.
        Offline (--root): ok when the image's configuration is what chronyctl6 renders and chrony
        starts at boot alone; warning with drift, chrony not enabled or a rival enabled; unknown
        when the configuration cannot be read."""
        if self.offline is not None:
            if self.drift.state == "unknown":
                return "unknown"
            return "warning" if self.drift.state == "drift" or self.offline.problems else "ok"
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
            "synchronised_at_boot": self.synchronised.as_dict() if self.synchronised is not None else None,
            "offline": self.offline.as_dict() if self.offline is not None else None,
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
    found, _ = planned(config_path, root)
    return found


def planned(config_path: str | None, root: Path = Path("/")) -> tuple[tuple[Drift, str | None], Plan | None]:
    """drift(), and the plan it came from (None where nothing could be planned)."""
    from chronyctl6.configure import plan as planning
    from chronyctl6.effects import history

    request = planning.Request(root=root)
    unread: list[str] = []
    try:
        basics = planning.read_basics(request)
        if basics.intent_problem and _denied(history.Store(root).base):
            unread.append(basics.intent_problem)  # the recorded choices decide what render writes
        plan = planning.plan(request, planning.gather(request, basics))
    except files.Unreadable as exc:
        if not exc.denied:
            return (Drift("unknown", f"cannot render: {exc.message}"), None), None
        return (_unjudged([*unread, exc.message]), None), None
    except ChronyCtlError as exc:
        return (Drift("unknown", f"cannot render: {exc.message}"), None), None
    managed = plan.config.shown
    if unread:
        return (_unjudged(unread), managed), plan
    if config_path is not None and config_path != managed:
        return (Drift("unknown", f"chronyd loaded {config_path}, but chronyctl6 manages {managed}"), managed), plan
    pending = plan.pending
    if not pending:
        return (Drift("in-sync", f"{', '.join(c.shown for c in plan.changes)}: as `chronyctl6 render` "
                                 "would write"), managed), plan
    at = "" if request.live else f" --root {shlex.quote(str(root))}"
    return (Drift("drift", f"{', '.join(c.shown for c in pending)} differ(s) from what `chronyctl6 render` "
                           f"would write: `chronyctl6 apply{at} --diff --dry-run` shows how",
                  tuple(c.shown for c in pending), plan.diff()), managed), plan


def _denied(directory: Path) -> bool:
    """This user may not look into directory (chronyctl6's state, 0700 root's)."""
    return os.path.isdir(directory) and not os.access(directory, os.R_OK | os.X_OK)


def _unjudged(unread: list[str]) -> Drift:
    """A user who cannot read what render reads cannot tell drift: say so, never guess."""
    return Drift("unknown", f"not judged: as uid {os.geteuid()} (not root) chronyctl6 could not read "
                            f"{'; '.join(unread)}; run `sudo chronyctl6 status`", unread=tuple(unread))


def status(root: Path = Path("/"), chronyc_socket: str | None = None, *, warn: float = DEFAULT_WARN,
           crit: float = DEFAULT_CRIT) -> StatusReport:
    if Path(os.path.abspath(root)) != Path("/"):
        return offline(root, warn=warn, crit=crit)
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
    kept, note = gather.synchronised_record()
    warnings += [note] if note else []
    warnings += [report_drift.detail] if report_drift.unread else []  # said even with -q, and in JSON's messages
    return StatusReport(scan.chronyd, config_path, config_from, report_drift, tuple(sources), tracking,
                        tuple(errors), scan.others, tuple(warnings), bound, warn, crit, kept)


def offline(root: Path, *, warn: float = DEFAULT_WARN, crit: float = DEFAULT_CRIT) -> StatusReport:
    """The image at root, from its files alone (the module's docstring)."""
    if not root.is_dir():
        raise BadInput(f"--root {root} is not a directory", hint="give the directory the image is mounted at")
    (report_drift, managed), plan = planned(None, root)
    chrony = (service.unit_state(root, f"{plan.platform.unit}.service", "multi-user.target")
              if plan is not None else None)
    ours = tuple(service.unit_state(root, unit, target) for unit, target in OUR_UNITS)
    rivals = service.enabled_rivals(root)
    boot = next(u for u in ours if u.unit == "chronyctl6-boot.service")
    at_boot = plan is not None and plan.choices.endpoint is None
    view = Offline(str(root), chrony, ours, rivals,
                   boot_unit=boot.state if at_boot and boot.state != "enabled" else None, kept=kept_intent(root))
    warnings = tuple(plan.warnings) if plan is not None else ()
    return StatusReport((), managed, f"the image at {root}", report_drift, (), None, (), (), warnings,
                        None, warn, crit, None, view)


def kept_intent(root: Path) -> dict[str, object]:
    """The well-formed choices of the image's state file (a damaged or hostile one keeps nothing;
    plan's warning says why)."""
    from chronyctl6.configure import platforms, settings
    from chronyctl6.effects import history

    try:
        recorded, _ = history.Store(root).intent()
    except ChronyCtlError:
        return {}
    kept: dict[str, object] = {k: recorded[k] for k in ("ipv6", "phc") if recorded.get(k) in settings.MODES}
    if isinstance(recorded.get("at_boot"), bool):
        kept["at_boot"] = recorded["at_boot"]
    if recorded.get("distro") in platforms.BY_NAME:
        kept["distro"] = recorded["distro"]
    return kept


def chronyd_bound(tracking: chrony_tools.Tracking, read_at: float, config_path: str | None,
                  root: Path = Path("/")) -> clockbound.Bound:
    """chronyd's bound now, as check computes it (measure.gather.chronyd_clockbound), with the
    maxclockerror in force in the configuration chronyd loaded."""
    return gather.chronyd_clockbound(tracking, read_at, config_path, root)
