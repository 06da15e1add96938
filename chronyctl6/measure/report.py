"""`check` results as text for people, JSON, a Nagios plugin line, Prometheus text format.

Pure functions of a CheckResult. Seconds everywhere, as plain numbers.

Prometheus series (node_exporter textfile collector conventions: base units, no timestamps,
HELP and TYPE for each) are named `chronyctl6_check_*`, in the style of chrony_exporter's
`chrony_tracking_*`, but a different prefix: this is our own measurement, not chronyd's.
"""

from __future__ import annotations

from typing import Any

from chronyctl6.measure.check import CheckResult
from chronyctl6.measure.exchange import Measurement

LEAP_TEXT = {0: "normal", 1: "insert second", 2: "delete second", 3: "unsynchronised"}


def _measurement_dict(m: Measurement) -> dict[str, Any]:
    best = m.best
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
        "offset": best.offset if best else None,
        "delay": best.delay if best else None,
        "error_bound": best.error_bound if best else None,
        "root_distance": best.distance if best else None,
        "samples": [{"offset": s.offset, "delay": s.delay} for s in m.samples],
    }


def to_json(r: CheckResult) -> dict[str, Any]:
    s, chosen = r.sample, r.chosen
    out: dict[str, Any] = {
        "status": r.status.name,
        "exit_code": int(r.status),
        "summary": r.summary,
        "server": (chosen or r.measurements[0]).target.address if r.measurements else None,
        "port": (chosen or r.measurements[0]).target.port if r.measurements else None,
        "offset": s.offset if s else None,
        "delay": s.delay if s else None,
        "error_bound": s.error_bound if s else None,
        "root_distance": s.distance if s else None,
        "root_delay": s.root_delay if s else None,
        "root_dispersion": s.root_dispersion if s else None,
        "stratum": s.stratum if s else None,
        "leap": s.leap if s else None,
        "leap_status": LEAP_TEXT[s.leap] if s else None,
        "ref_id": s.ref_id if s else None,
        "samples": [{"offset": x.offset, "delay": x.delay} for x in chosen.samples]
        if chosen
        else [],
        "sent": sum(m.sent for m in r.measurements),
        "valid": sum(len(m.samples) for m in r.measurements),
        "rejected": _rejected_totals(r),
        "thresholds": {"warn": r.thresholds.warn, "crit": r.thresholds.crit},
        "servers": [_measurement_dict(m) for m in r.measurements],
        "notes": list(r.notes),
        "hint": r.hint,
        "chronyd": None,
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
            "system_offset": t.system_offset if t else None,
            "leap_status": t.leap_status if t else None,
            "synchronised": t.synchronised if t else None,
            "root_distance": t.root_distance if t else None,
            "difference": view.difference,
            "allowed": view.allowed,
            "disagrees": view.disagrees,
        }
    return out


def _rejected_totals(r: CheckResult) -> dict[str, int]:
    totals: dict[str, int] = {}
    for m in r.measurements:
        for reason, count in m.rejected.items():
            totals[reason] = totals.get(reason, 0) + count
    return dict(sorted(totals.items()))


def to_text(r: CheckResult) -> str:
    lines = [f"{r.status.name}: {r.summary}"]
    s, chosen = r.sample, r.chosen
    if s is not None and chosen is not None:
        direction = "behind" if s.offset > 0 else "ahead of"
        lines += [
            f"  offset       {s.offset:+.6f} s +- {s.error_bound:.6f} s "
            f"(this clock is {direction} the server)",
            f"  server       {chosen.target.address} port {chosen.target.port}: stratum "
            f"{s.stratum}, ref id {s.ref_id}, leap {LEAP_TEXT[s.leap]}",
            f"  delay        {s.delay:.6f} s; distance to UTC {s.distance:.6f} s (root delay "
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
            f"  chronyd      source {t.ref_name or t.ref_id} (stratum {t.stratum}), system time "
            f"{abs(t.system_offset):.6f} s {'slow' if t.system_offset > 0 else 'fast'}, leap "
            f"{t.leap_status}, root distance {t.root_distance:.6f} s"
        )
        if view.difference is not None and view.allowed is not None:
            verdict = "DISAGREES" if view.disagrees else "agrees"
            lines.append(
                f"               {verdict} with this measurement: {view.difference:.6f} s apart, "
                f"bounds allow {view.allowed:.6f} s"
            )
    elif view is not None and view.problem:
        lines.append(f"  chronyd      not consulted: {view.problem}")
    lines += [f"  note         {note}" for note in r.notes]
    if r.hint:
        lines.append(f"  hint         {r.hint}")
    return "\n".join(lines)


def to_nagios(r: CheckResult) -> str:
    """One line, `NTP OK: Offset 0.000051 secs|offset=0.000051s;0.1;1;` as check_ntp_time."""
    s = r.sample
    if s is None:
        text = f"NTP UNKNOWN: {r.summary}"
        if r.hint:
            text += f" ({r.hint})"
        return text.replace("|", "/")
    t = r.thresholds
    extra = r.summary.split("; ", 1)[1] if "; " in r.summary else ""
    head = f"NTP {r.status.name}: Offset {s.offset:.6f} secs" + (f", {extra}" if extra else "")
    perf = [
        f"offset={s.offset:.6f}s;{t.warn:g};{t.crit:g};",
        f"delay={s.delay:.6f}s;;;0;",
        f"error_bound={s.error_bound:.6f}s;;;0;",
        f"root_distance={s.distance:.6f}s;;;0;",
        f"stratum={s.stratum};;;0;16",
    ]
    return head.replace("|", "/") + "|" + " ".join(perf)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _Prom:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def gauge(self, name: str, help_text: str, series: list[tuple[dict[str, str], float]]) -> None:
        if not series:
            return
        self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        for labels, value in series:
            text = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            self.lines.append(f"{name}{{{text}}} {value!r}" if text else f"{name} {value!r}")


def to_prometheus(r: CheckResult) -> str:
    p = _Prom()
    pre = "chronyctl6_check_"
    p.gauge(pre + "status", "Verdict: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
            [({}, float(int(r.status)))])
    p.gauge(pre + "threshold_seconds", "Offset thresholds of the verdict.",
            [({"level": "warning"}, r.thresholds.warn), ({"level": "critical"}, r.thresholds.crit)])
    ms = r.measurements

    def per(m: Measurement) -> dict[str, str]:
        return {"server": m.target.address}

    p.gauge(pre + "up", "1 if the server gave at least one valid reply.",
            [(per(m), 1.0 if m.best else 0.0) for m in ms])
    good = [(m, m.best) for m in ms if m.best is not None]
    p.gauge(pre + "offset_seconds", "Server time minus local time (> 0: this clock is behind).",
            [(per(m), b.offset) for m, b in good])
    p.gauge(pre + "delay_seconds", "Round-trip delay of the minimum-delay sample.",
            [(per(m), b.delay) for m, b in good])
    p.gauge(pre + "error_bound_seconds", "Half the delay: the offset's bound against the server.",
            [(per(m), b.error_bound) for m, b in good])
    p.gauge(pre + "root_distance_seconds", "Bound of the offset against UTC (delay/2 + server's "
            "root dispersion + root delay/2).", [(per(m), b.distance) for m, b in good])
    p.gauge(pre + "stratum", "The server's stratum.", [(per(m), float(b.stratum)) for m, b in good])
    p.gauge(pre + "leap_indicator", "The server's leap indicator: 0 none, 1 insert, 2 delete.",
            [(per(m), float(b.leap)) for m, b in good])
    p.gauge(pre + "requests_sent", "Requests sent in this check.",
            [(per(m), float(m.sent)) for m in ms])
    p.gauge(pre + "replies_valid", "Replies accepted in this check.",
            [(per(m), float(len(m.samples))) for m in ms])
    rejected = [
        ({**per(m), "reason": k}, float(v)) for m in ms for k, v in sorted(m.rejected.items())
    ]
    p.gauge(pre + "replies_rejected", "Replies refused in this check, by reason.", rejected)
    view = r.chronyd
    t = view.tracking if view else None
    p.gauge(pre + "chronyd_up", "1 if chronyd answered chronyc tracking.",
            [({}, 1.0 if t else 0.0)])
    if view is not None and t is not None:
        p.gauge(pre + "chronyd_synchronised", "1 if chronyd says it is synchronised.",
                [({}, 1.0 if t.synchronised else 0.0)])
        p.gauge(pre + "chronyd_system_offset_seconds",
                "chronyd's system time offset (> 0: the clock is slow).", [({}, t.system_offset)])
        p.gauge(pre + "chronyd_root_distance_seconds",
                "chronyd's root distance: root delay/2 + root dispersion.",
                [({}, t.root_distance)])
        if view.difference is not None:
            p.gauge(pre + "chronyd_disagreement", "1 if chronyd's offset and ours cannot both "
                    "be right.", [({}, 1.0 if view.disagrees else 0.0)])
    return "\n".join(p.lines) + "\n"

