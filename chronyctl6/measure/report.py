"""`check` results as data (for JSON), text for people, a Nagios plugin line, Prometheus text.

Pure functions of a CheckResult. Seconds everywhere, as plain numbers; never NaN or infinity.

The verdict's one error bound, used by the status line, the Nagios perfdata (`max_error`, with
the thresholds), the Prometheus metrics (`chronyctl6_check_max_error_seconds`) and the shipped
alert rules: max_error = |offset| + path bound (at most the minimum delay,
plus timestamp precision) + root distance (root delay / 2 + root dispersion).

Prometheus names (see packaging/prometheus/README.md for the mapping):
- our own NTP measurement: `chronyctl6_check_*`, suffixes as node_exporter's ntp collector
  (`node_ntp_offset_seconds`, `_rtt_seconds`, `_stratum`, `_leap`, `_root_delay_seconds`,
  `_root_dispersion_seconds`) where they mean the same;
- chronyd's tracking, as `chronyc tracking` states it: chrony_exporter's `chrony_tracking_*`,
  with `chrony_tracking_info` naming the source chronyd follows;
- chronyd's sources (`chronyc sources`): chrony_exporter's `chrony_sources_*` (state_info with
  source_state and source_mode, stratum, polling interval, last sample age, offset and error),
  and `chronyctl6_sources_reachability_ratio`, which chrony_exporter lacks;
- the bounds: our measurement's `chronyctl6_check_max_error_seconds` (per server) and chronyd's
  as ClockBound computes it, `chronyctl6_check_chronyd_clockbound_seconds` (measure.clockbound,
  through measure.gather.chronyd_clockbound), with `chronyctl6_check_chronyd_maxclockerror_ppm` and,
  with the ENA PHC as the reference, `chronyctl6_check_chronyd_phc_error_bound_seconds`;
- with --no-chronyd, no chronyd series at all.
"""

from __future__ import annotations

import math

from chronyctl6.measure.check import CheckResult, ChronydView, decimal
from chronyctl6.measure.exchange import Measurement, Sample
from chronyctl6.text import shown

TYPE_CHECKING = False  # typing's, without importing typing: `check` imports this module at start-up
if TYPE_CHECKING:
    from typing import Any

    from chronyctl6.effects.chronyc import Source, Tracking

one_line = shown  # the one sanitiser: a server's or a name's text on one line
LEAP_TEXT = {0: "normal", 1: "insert second", 2: "delete second", 3: "unsynchronised"}


def _num(value: float | None) -> float | None:
    """JSON has no NaN or infinity (Python would write `Infinity`): those become null."""
    return value if value is not None and math.isfinite(value) else None


def _sample_data(s: Sample | None) -> dict[str, Any]:
    return {
        "offset_seconds": _num(s.offset) if s else None,
        "delay_seconds": _num(s.delay) if s else None,
        "error_bound_seconds": _num(s.error_bound) if s else None,
        "max_error_seconds": _num(s.max_error) if s else None,
        "root_delay_seconds": _num(s.root_delay) if s else None,
        "root_dispersion_seconds": _num(s.root_dispersion) if s else None,
        "root_distance_seconds": _num(s.root_distance) if s else None,
    }


def _measurement_data(m: Measurement) -> dict[str, Any]:
    return {
        "server": m.target.server,
        "address": m.target.address,
        "port": m.target.port,
        "sent": m.sent,
        "valid": len(m.samples),
        "rejected": dict(sorted(m.rejected.items())),
        "rejections": list(m.details),
        "kiss_code": m.kiss_code,
        "error": m.error,
        **_sample_data(m.best),
        "samples": [{"offset_seconds": _num(s.offset), "delay_seconds": _num(s.delay)}
                    for s in m.samples],
    }


def to_data(r: CheckResult) -> dict[str, Any]:
    """The `data` of check's JSON output: a plain dict, unit-suffixed names."""
    s, chosen = r.sample, r.chosen
    where = chosen or (r.measurements[0] if r.measurements else None)
    out: dict[str, Any] = {
        "verdict": r.status.name,
        "summary": r.summary,
        "server": where.target.address if where else None,
        "server_from": r.server_from,  # --server, or why this is the default one
        "port": where.target.port if where else None,
        **_sample_data(s),
        "stratum": s.stratum if s else None,
        "leap": s.leap if s else None,
        "leap_status": LEAP_TEXT[s.leap] if s else None,
        "ref_id": s.ref_id if s else None,
        "samples": [{"offset_seconds": _num(x.offset), "delay_seconds": _num(x.delay)}
                    for x in chosen.samples] if chosen else [],
        "sent": sum(m.sent for m in r.measurements),
        "valid": sum(len(m.samples) for m in r.measurements),
        "rejected": _rejected_totals(r),
        "thresholds": {"warn_seconds": _num(r.thresholds.warn),
                       "crit_seconds": _num(r.thresholds.crit)},
        "servers": [_measurement_data(m) for m in r.measurements],
        "notes": list(r.notes),
        "hint": r.hint,
        "chronyd": None,
        # this boot's seconds to synchronisation, as `chronyctl6 wait` kept them (null: not recorded)
        "synchronised_at_boot": r.synchronised.as_dict() if r.synchronised is not None else None,
    }
    view = r.chronyd
    if view is not None:
        t = view.tracking
        out["chronyd"] = {
            "running": t is not None,
            "problem": view.problem,
            "source": t.ref_name if t else None,
            "ref_id": t.ref_id if t else None,
            "stratum": t.stratum if t else None,
            "offset_seconds": _num(t.system_offset) if t else None,  # status says the same
            "root_delay_seconds": _num(t.root_delay) if t else None,
            "root_dispersion_seconds": _num(t.root_dispersion) if t else None,
            "root_distance_seconds": _num(t.root_distance) if t else None,
            "max_error_seconds": _num(t.max_error) if t else None,
            "leap_status": t.leap_status if t else None,
            "synchronised": t.synchronised if t else None,
            "difference_seconds": _num(view.difference),
            "allowed_seconds": _num(view.allowed),
            "disagrees": view.disagrees,
            "bound": _bound_data(view),
        }
    return out


def _bound_data(view: ChronydView) -> dict[str, Any] | None:
    """chronyd's bound as ClockBound computes it (measure/clockbound.py), with its verdict."""
    b = view.bound
    if b is None:
        return None
    data: dict[str, Any] = {k: (_num(v) if isinstance(v, float) else v) for k, v in b.as_dict().items()}
    return {**data, "status": view.bound_status}


def _bound_line(view: ChronydView) -> str | None:
    b = view.bound
    if b is None:
        return None
    if b.seconds is None:
        return f"               bound        none: {one_line(b.problem or '')}"
    phc = f" + PHC {b.phc_error_bound:.9f}" if b.phc_error_bound is not None else ""
    return (f"               bound        {b.seconds:.6f} s ({view.bound_status}) = |offset| {b.offset:.9f} + root "
            f"dispersion {b.root_dispersion:.9f} + root delay/2 {b.half_root_delay:.9f}{phc} + "
            f"{b.maxclockerror_ppm:g} ppm since reading; as ClockBound computes it")


def _rejected_totals(r: CheckResult) -> dict[str, int]:
    totals: dict[str, int] = {}
    for m in r.measurements:
        for reason, count in m.rejected.items():
            totals[reason] = totals.get(reason, 0) + count
    return dict(sorted(totals.items()))


def to_text(r: CheckResult) -> str:
    lines = [f"{r.status.name}: {one_line(r.summary)}"]
    s, chosen = r.sample, r.chosen
    if s is not None and chosen is not None:
        direction = "behind" if s.offset > 0 else "ahead of"
        lines += [
            f"  offset       {s.offset:+.6f} s +- {s.error_bound:.6f} s "
            f"(this clock is {direction} the server)",
            f"  max error    {s.max_error:.6f} s = |offset| + path bound + root distance "
            f"(warning at {decimal(r.thresholds.warn)} s, critical at "
            f"{decimal(r.thresholds.crit)} s)",
            f"  server       {chosen.target.address} port {chosen.target.port}: stratum "
            f"{s.stratum}, ref id {s.ref_id}, leap {LEAP_TEXT[s.leap]}",
            f"  delay        {s.delay:.6f} s; root distance {s.root_distance:.6f} s (root delay "
            f"{s.root_delay:.6f}, root dispersion {s.root_dispersion:.6f})",
        ]
    for m in r.measurements:
        rejected = sum(m.rejected.values())
        why = ", ".join(f"{k} x{v}" for k, v in sorted(m.rejected.items()))
        lines.append(
            f"  requests     {m.target.address}: {m.sent} sent, {len(m.samples)} valid, "
            f"{rejected} rejected" + (f" ({why})" if why else "")
        )
    view = r.chronyd
    if view is not None and view.tracking is not None:
        t = view.tracking
        lines.append(
            f"  chronyd      source {one_line(t.ref_name or t.ref_id)} (stratum {t.stratum}), "
            f"system time {abs(t.system_offset):.6f} s "
            f"{'slow' if t.system_offset > 0 else 'fast'}, leap {t.leap_status}, root distance "
            f"{t.root_distance:.6f} s"
        )
        if view.difference is not None and view.allowed is not None:
            verdict = "DISAGREES" if view.disagrees else "agrees"
            lines.append(
                f"               {verdict} with this measurement: {view.difference:.6f} s apart, "
                f"bounds allow {view.allowed:.6f} s"
            )
        bound_line = _bound_line(view)
        if bound_line:
            lines.append(bound_line)
    elif view is not None and view.problem:
        lines.append(f"  chronyd      not consulted: {one_line(view.problem)}")
    lines += [f"  note         {one_line(note)}" for note in r.notes]
    if r.hint:
        lines.append(f"  hint         {one_line(r.hint)}")
    return "\n".join(lines)


def nagios_unknown(message: str) -> str:
    """The one Nagios line for a check that could not measure (bad arguments, an unwritable
    --textfile, an unexpected error): `NTP UNKNOWN: message`, no perfdata."""
    return "NTP UNKNOWN: " + one_line(message).replace("|", "/")


def _perf(label: str, value: float, uom: str = "s", warn: str = "", crit: str = "",
          low: str = "0", high: str = "") -> str:
    """`'label'=value[UOM];warn;crit;min;max` with plain decimals (never 1e-05)."""
    return f"{label}={decimal(round(value, 9))}{uom};{warn};{crit};{low};{high}"


def to_nagios(r: CheckResult) -> str:
    """One line as check_ntp_time's, `NTP OK: Offset 0.000051 secs, max error ...|perfdata`.
    The thresholds go with `max_error`, the quantity the verdict judges."""
    s = r.sample
    if s is None:
        return nagios_unknown(r.summary + (f" ({r.hint})" if r.hint else ""))
    t = r.thresholds
    extra = r.summary.split("; ", 1)[1] if "; " in r.summary else ""
    head = (f"NTP {r.status.name}: Offset {s.offset:.6f} secs, max error {s.max_error:.6f} secs"
            + (f", {extra}" if extra else ""))
    perf = [
        _perf("offset", s.offset, low=""),
        _perf("max_error", s.max_error, warn=decimal(t.warn), crit=decimal(t.crit)),
        _perf("delay", s.delay),
        _perf("root_distance", s.root_distance),
        _perf("root_delay", s.root_delay),
        _perf("root_dispersion", s.root_dispersion),
        _perf("stratum", s.stratum, uom="", high="16"),
    ]
    bound = r.chronyd.bound if r.chronyd is not None else None
    if bound is not None and bound.seconds is not None:  # chronyd's bound, judged by the same thresholds
        perf.append(_perf("chronyd_bound", bound.seconds, warn=decimal(t.warn), crit=decimal(t.crit)))
    return one_line(head).replace("|", "/") + "|" + " ".join(perf)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _Prom:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def gauge(self, name: str, help_text: str, series: list[tuple[dict[str, str], float]]) -> None:
        series = [(labels, value) for labels, value in series if math.isfinite(value)]
        if not series:
            return
        self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        for labels, value in series:
            text = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            self.lines.append(f"{name}{{{text}}} {value!r}" if text else f"{name} {value!r}")


CHECK = "chronyctl6_check_"
TRACKING = "chrony_tracking_"


def to_prometheus(r: CheckResult) -> str:
    p = _Prom()
    p.gauge(CHECK + "status", "Verdict: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
            [({}, float(int(r.status)))])
    p.gauge(CHECK + "threshold_seconds", "Thresholds the verdict applies to max_error_seconds.",
            [({"level": "warning"}, r.thresholds.warn), ({"level": "critical"}, r.thresholds.crit)])
    ms = r.measurements

    def per(m: Measurement) -> dict[str, str]:
        return {"server": m.target.address}

    p.gauge(CHECK + "up", "1 if the server gave at least one valid reply.",
            [(per(m), 1.0 if m.best else 0.0) for m in ms])
    good = [(m, m.best) for m in ms if m.best is not None]
    # The server that decided the verdict: its max error is the one the verdict judged.
    chosen = r.chosen

    def series(value: Any) -> list[tuple[dict[str, str], float]]:
        return [(per(m), float(value(b))) for m, b in good]

    p.gauge(CHECK + "offset_seconds", "Server time minus local time (> 0: this clock is "
            "behind), as node_ntp_offset_seconds.", series(lambda b: b.offset))
    p.gauge(CHECK + "rtt_seconds", "Round-trip delay of the minimum-delay sample less the "
            "server's processing, as node_ntp_rtt_seconds.", series(lambda b: b.delay))
    p.gauge(CHECK + "root_delay_seconds", "The server's root delay, as node_ntp_root_delay_seconds.",
            series(lambda b: b.root_delay))
    p.gauge(CHECK + "root_dispersion_seconds", "The server's root dispersion, as "
            "node_ntp_root_dispersion_seconds.", series(lambda b: b.root_dispersion))
    p.gauge(CHECK + "root_distance_seconds", "The server's root distance: root delay / 2 + root "
            "dispersion.", series(lambda b: b.root_distance))
    p.gauge(CHECK + "error_bound_seconds", "The offset's bound against UTC: path bound + root "
            "distance.", series(lambda b: b.error_bound))
    p.gauge(CHECK + "max_error_seconds", "The verdict's quantity: |offset| + path bound (at most the minimum "
            "delay) + root distance, the most this clock can be off UTC.", series(lambda b: b.max_error))
    p.gauge(CHECK + "selected", "1 for the server whose reply decided the verdict.",
            [(per(m), 1.0 if m is chosen else 0.0) for m, _ in good])
    p.gauge(CHECK + "stratum", "The server's stratum, as node_ntp_stratum.",
            series(lambda b: b.stratum))
    p.gauge(CHECK + "leap", "The server's leap indicator (0 none, 1 insert, 2 delete), as "
            "node_ntp_leap.", series(lambda b: b.leap))
    p.gauge(CHECK + "requests_sent", "Requests sent in this check.",
            [(per(m), float(m.sent)) for m in ms])
    p.gauge(CHECK + "replies_valid", "Replies accepted in this check.",
            [(per(m), float(len(m.samples))) for m in ms])
    rejected = [
        ({**per(m), "reason": k}, float(v)) for m in ms for k, v in sorted(m.rejected.items())
    ]
    p.gauge(CHECK + "replies_rejected", "Replies refused in this check, by reason.", rejected)
    view = r.chronyd
    if view is None:  # --no-chronyd: nothing about chronyd at all
        return "\n".join(p.lines) + "\n"
    t = view.tracking
    p.gauge(CHECK + "chronyd_up", "1 if chronyd answered chronyc tracking.",
            [({}, 1.0 if t else 0.0)])
    if t is not None:
        p.gauge(CHECK + "chronyd_synchronised", "1 if chronyd says it is synchronised.",
                [({}, 1.0 if t.synchronised else 0.0)])
        p.gauge(CHECK + "chronyd_max_error_seconds", "|system time| + root delay / 2 + root "
                "dispersion: chronyd's bound against UTC, as ClockBound computes it.",
                [({}, t.max_error)])
        b = view.bound
        if b is not None and b.seconds is not None:
            p.gauge(CHECK + "chronyd_maxclockerror_ppm", "The maxclockerror in force in chronyd's "
                    "configuration (ppm).", [({}, b.maxclockerror_ppm)])
            if b.phc_error_bound is not None:
                p.gauge(CHECK + "chronyd_phc_error_bound_seconds", "The ENA PTP hardware clock's own error "
                        "bound (sysfs phc_error_bound).", [({}, b.phc_error_bound)])
        if view.difference is not None:
            p.gauge(CHECK + "chronyd_disagreement", "1 if chronyd's offset and ours cannot both "
                    "be right.", [({}, 1.0 if view.disagrees else 0.0)])
        # chronyd's own view, named as chrony_exporter names it.
        for name, help_text, value in (
            ("system_time_seconds", "chronyd's system time offset (> 0: the clock is slow).",
             t.system_offset),
            ("last_offset_seconds", "chronyd's offset at its last clock update.", t.last_offset),
            ("rms_offset_seconds", "chronyd's long-term average offset.", t.rms_offset),
            ("root_delay_seconds", "chronyd's root delay.", t.root_delay),
            ("root_dispersion_seconds", "chronyd's root dispersion.", t.root_dispersion),
            ("stratum", "chronyd's stratum.", float(t.stratum)),
            ("frequency_ppms", "chronyd's frequency correction, ppm.", t.frequency_ppm),
            ("residual_frequency_ppms", "chronyd's residual frequency, ppm.", t.residual_freq_ppm),
            ("skew_ppms", "chronyd's frequency error bound, ppm.", t.skew_ppm),
            ("update_interval_seconds", "chronyd's interval between clock updates.",
             t.update_interval),
            ("reference_timestamp_seconds", "When chronyd last updated the clock (Unix time).",
             t.ref_time),
        ):
            p.gauge(TRACKING + name, help_text, [({}, value)])
        _selected_source(p, t)
        if view.clockbound is not None:
            p.gauge(CHECK + "chronyd_clockbound_seconds", "chronyd's bound against UTC as "
                    "ClockBound computes it: |offset| + root dispersion (which chronyd grows by the drift "
                    "allowance since its last update) + root delay / 2, plus the ENA PHC's error bound when "
                    "it is the reference, grown by maxclockerror since the reading. Judged by threshold_seconds.",
                    [({}, view.clockbound)])
    _sources(p, view.sources)
    _synchronised(p, r)
    return "\n".join(p.lines) + "\n"


def _synchronised(p: _Prom, r: CheckResult) -> None:
    """What an image builder watches: seconds from boot until `chronyctl6 wait` found the clock
    on Time Sync within its bound (absent until it has, this boot)."""
    kept = r.synchronised
    if kept is None:
        return
    p.gauge(CHECK + "boot_to_synchronised_seconds", "Seconds from boot (CLOCK_BOOTTIME) until chronyctl6 wait found "
            "the clock on Time Sync within its bound, this boot.", [({}, kept.since_boot_seconds)])
    if kept.since_init_seconds is not None:
        p.gauge(CHECK + "init_to_synchronised_seconds", "Seconds from this PID namespace's init (a container's "
                "start) until chronyctl6 wait found the clock synchronised, this boot.",
                [({}, kept.since_init_seconds)])


# `chronyc sources` state characters as chrony_exporter's source_state (facebook/time's names)
# and modes as its source_mode.
SOURCE_STATE = {"*": "sync", "?": "unreach", "x": "falseticker", "~": "jittery", "+": "candidate",
                "-": "outlier"}
SOURCE_MODE = {"^": "client", "=": "peer", "#": "ref"}
SOURCES = "chrony_sources_"


def _selected_source(p: _Prom, t: Tracking) -> None:
    """chrony_exporter's chrony_tracking_info: which source chronyd follows, by address (empty
    for a reference clock), name and reference ID. Never a DNS name: chronyc runs with -n."""
    name = shown(t.ref_name, 253)
    address = name if _is_address(t.ref_name) else ""
    p.gauge(TRACKING + "info", "The source chronyd follows (chronyc tracking): address, name, "
            "reference ID.", [({"tracking_address": address, "tracking_name": name,
                               "tracking_refid": shown(t.ref_id, 16)}, 1.0)])


def _is_address(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return False
    return True


def _sources(p: _Prom, sources: tuple[Source, ...]) -> None:
    """Per source, as chrony_exporter names them; reachability (which it lacks) as ours."""
    if not sources:
        return

    def labels(s: Source) -> dict[str, str]:
        name = shown(s.name, 253)
        return {"source_address": name if _is_address(s.name) else "", "source_name": name}

    p.gauge(SOURCES + "state_info", "Each source's state (chronyc sources: sync, candidate, "
            "outlier, jittery, falseticker, unreach) and mode (client, peer, ref).",
            [({**labels(s), "source_state": SOURCE_STATE.get(s.state, shown(s.state, 8)),
               "source_mode": SOURCE_MODE.get(s.mode, shown(s.mode, 8))}, 1.0) for s in sources])
    p.gauge(SOURCES + "stratum", "Each source's stratum.",
            [(labels(s), float(s.stratum)) for s in sources])
    p.gauge(SOURCES + "polling_interval_seconds", "Each source's polling interval.",
            [(labels(s), float(2.0 ** s.poll)) for s in sources])
    p.gauge(SOURCES + "last_sample_age_seconds", "Seconds since each source's last good sample.",
            [(labels(s), float(s.last_rx)) for s in sources if s.last_rx is not None])
    p.gauge(SOURCES + "last_sample_offset_seconds", "Each source's last sample offset, as chronyc "
            "sources states it (> 0: the local clock is ahead of the source).",
            [(labels(s), s.adjusted_offset) for s in sources])
    p.gauge(SOURCES + "last_sample_error_margin_seconds", "Each source's last sample margin of "
            "error.", [(labels(s), s.error) for s in sources])
    p.gauge("chronyctl6_sources_reachability_ratio", "The share of each source's last 8 polls that "
            "were answered (chronyd's reach register); 0 for a source that stopped answering.",
            [(labels(s), s.reachability_ratio) for s in sources])
