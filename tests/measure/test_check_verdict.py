"""The verdict and its renderings as pure functions of plain data: thresholds, choosing the
server, chronyd's view and the disagreement rule, Nagios and Prometheus text."""

from __future__ import annotations

import json
import socket
from collections import Counter

import pytest
from prometheus_client.parser import text_string_to_metric_families

from chronyctl6.effects.chrony_tools import Tracking
from chronyctl6.measure import report as fmt
from chronyctl6.measure.check import (
    CheckStatus,
    CheckUsageError,
    Thresholds,
    compare_chronyd,
    evaluate,
)
from chronyctl6.measure.exchange import Measurement, Sample, Target


def sample(offset: float, delay: float = 0.0002, *, root_delay: float = 0.0,
           root_dispersion: float = 0.0, leap: int = 0) -> Sample:
    return Sample(offset, delay, 1, leap, 4, "AMZN", root_delay, root_dispersion)


def measurement(address: str, *samples: Sample, **rejected: int) -> Measurement:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sockaddr = (address, 123, 0, 0) if family == socket.AF_INET6 else (address, 123)
    m = Measurement(Target(address, family, sockaddr), sent=max(1, len(samples)))
    m.samples.extend(samples)
    m.rejected = Counter(rejected)
    return m


def tracking(system_offset: float, *, root_delay: float = 0.0001,
             root_dispersion: float = 0.0001, leap: str = "Normal",
             ref_id: str = "A9FEA97B") -> Tracking:
    return Tracking(ref_id, "169.254.169.123", 4, 1.7e9, system_offset, 0.0, 0.0, 0.0, 0.0,
                    0.0, root_delay, root_dispersion, 16.0, leap)


@pytest.mark.parametrize(
    ("worst", "status"),
    [(0.0, CheckStatus.OK), (0.0999, CheckStatus.OK), (0.1, CheckStatus.WARNING),
     (0.5, CheckStatus.WARNING), (1.0, CheckStatus.CRITICAL), (86400.0, CheckStatus.CRITICAL)],
)
def test_thresholds_classify(worst: float, status: CheckStatus) -> None:
    assert Thresholds(0.1, 1.0).classify(worst) is status


@pytest.mark.parametrize(("warn", "crit"), [
    (0.0, 1.0), (-1.0, 1.0), (2.0, 1.0), (0.1, float("inf")), (0.1, float("nan")),
    (float("nan"), 1.0), (float("-inf"), 1.0), (0.1, float("1e999")), (-0.5, -0.1)])
def test_thresholds_must_be_ordered_and_positive(warn: float, crit: float) -> None:
    with pytest.raises(CheckUsageError):
        Thresholds(warn, crit)


def test_verdict_uses_the_largest_offset_the_measurement_allows() -> None:
    # 0.099 s with an error bound of 0.002 s might be 0.101 s: not OK against 0.1.
    r = evaluate([measurement("fd00:ec2::123", sample(-0.099, delay=0.004))], Thresholds())
    assert r.status is CheckStatus.WARNING and r.max_error == pytest.approx(0.101)


def test_the_burst_estimate_is_the_answer() -> None:
    # Each sample holds the truth within offset +- delay/2: [0, 6 ms], [0, 0.2 ms], [-4 ms, 0].
    # Together (exchange.combine) they pin it at 0, within the drift allowance: tighter than the
    # minimum-delay sample (0.1 ms +- 0.1 ms) alone.
    m = measurement("fd00:ec2::123", sample(0.003, 0.006), sample(0.0001, 0.0002),
                    sample(-0.002, 0.004))
    r = evaluate([m], Thresholds())
    assert r.sample is not None and r.status is CheckStatus.OK
    assert r.sample.delay == 0.0002  # the delay shown is still the minimum measured round trip
    assert abs(r.sample.offset) <= 4e-6 and r.sample.error_bound <= 4e-6


def test_server_with_smallest_distance_to_utc_decides() -> None:
    far = measurement("169.254.169.123", sample(0.5, 0.0001, root_dispersion=0.2))
    near = measurement("fd00:ec2::123", sample(0.001, 0.0004, root_dispersion=0.0001))
    r = evaluate([far, near], Thresholds())
    assert r.chosen is near and r.status is CheckStatus.OK


def test_no_valid_reply_is_unknown_and_says_why() -> None:
    m = measurement("fd00:ec2::123", wrong_origin=3, truncated=1)
    r = evaluate([m], Thresholds())
    assert r.status is CheckStatus.UNKNOWN and r.sample is None
    assert "truncated x1" in r.summary and "wrong_origin x3" in r.summary


def test_kiss_of_death_is_reported_with_its_code() -> None:
    m = measurement("fd00:ec2::123", kiss_of_death=1)
    m.kiss_code = "RATE"
    r = evaluate([m], Thresholds())
    assert r.status is CheckStatus.UNKNOWN and "RATE" in r.summary


# ---- chronyd --------------------------------------------------------------------------------


def test_chronyd_agrees_within_both_bounds() -> None:
    view = compare_chronyd(sample(0.00010, delay=0.0002), tracking(0.00005))
    assert view.disagrees is False and view.difference == pytest.approx(0.00005)


def test_chronyd_disagrees_beyond_both_bounds() -> None:
    # We see the clock 0.25 s behind, chronyd believes it is fine: one of us is wrong.
    view = compare_chronyd(sample(0.25, delay=0.0002), tracking(0.0))
    assert view.disagrees is True
    assert view.allowed == pytest.approx(0.0001 + 0.0001 + 0.00005, abs=2e-6)


def test_disagreement_bound_includes_the_servers_root_distance() -> None:
    s = sample(0.004, delay=0.0002, root_delay=0.002, root_dispersion=0.003)
    assert compare_chronyd(s, tracking(0.0)).disagrees is False  # 0.004 < 0.0041 + chronyd's
    assert compare_chronyd(s, tracking(-0.002)).disagrees is True


def test_disagreement_makes_an_ok_offset_a_warning() -> None:
    r = evaluate([measurement("fd00:ec2::123", sample(0.05))], Thresholds(0.1, 1.0),
                 tracking(0.0))
    assert r.status is CheckStatus.WARNING and "chronyd disagrees" in r.summary


def test_disagreement_never_softens_a_critical() -> None:
    r = evaluate([measurement("fd00:ec2::123", sample(5.0))], Thresholds(0.1, 1.0),
                 tracking(0.0))
    assert r.status is CheckStatus.CRITICAL


def test_unsynchronised_chronyd_is_critical_as_in_status_but_not_compared() -> None:
    r = evaluate([measurement("fd00:ec2::123", sample(0.0001))], Thresholds(),
                 tracking(0.0, leap="Not synchronised", ref_id="00000000"))
    assert r.status is CheckStatus.CRITICAL and "not synchronised" in r.summary
    assert r.chronyd is not None and r.chronyd.difference is None


def test_unsynchronised_chronyd_is_critical_even_without_a_reply() -> None:
    r = evaluate([measurement("fd00:ec2::123")], Thresholds(),
                 tracking(0.0, leap="Not synchronised", ref_id="00000000"))
    assert r.status is CheckStatus.CRITICAL and r.summary.endswith("; chronyd is not synchronised")


def test_check_and_status_share_one_meaning_of_unsynchronised() -> None:
    """Both read Tracking.synchronised, and both call it CRITICAL (exit 2)."""
    from chronyctl6.diagnose.status import Drift, StatusReport
    from chronyctl6.effects.daemons import Proc

    t = tracking(0.0, leap="Not synchronised", ref_id="00000000")
    proc = Proc(pid=1, name="chronyd", user="root", started=0.0, cmdline=("chronyd",))
    report = StatusReport((proc,), None, "", Drift("unknown", ""), (), t, (), ())
    verdict = evaluate([measurement("fd00:ec2::123", sample(0.0001))], Thresholds(), t)
    assert report.exit_status == int(verdict.status) == 2


def test_no_chronyd_leaves_the_verdict_alone() -> None:
    r = evaluate([measurement("fd00:ec2::123", sample(0.0001))], Thresholds(), None,
                 "chronyd is not answering (506 Cannot talk to daemon)")
    assert r.status is CheckStatus.OK
    assert r.chronyd is not None and r.chronyd.problem is not None


# ---- renderings -----------------------------------------------------------------------------


def test_json_has_the_promised_fields_as_numbers() -> None:
    r = evaluate([measurement("fd00:ec2::123", sample(0.000051, 0.0001))], Thresholds(),
                 tracking(0.00004))
    out = json.loads(json.dumps(fmt.to_data(r), allow_nan=False))
    for key in ("verdict", "server", "offset_seconds", "delay_seconds", "error_bound_seconds",
                "max_error_seconds", "root_delay_seconds", "root_dispersion_seconds",
                "root_distance_seconds", "stratum", "leap", "ref_id", "samples"):
        assert key in out
    assert out["verdict"] == "OK" and out["offset_seconds"] == 0.000051
    assert out["delay_seconds"] == 0.0001 and out["root_distance_seconds"] == 0.0
    assert out["error_bound_seconds"] == 0.00005
    assert out["max_error_seconds"] == pytest.approx(0.000101)
    assert out["samples"] == [{"offset_seconds": 0.000051, "delay_seconds": 0.0001}]
    assert out["chronyd"]["disagrees"] is False and out["chronyd"]["source"] == "169.254.169.123"
    assert out["chronyd"]["root_distance_seconds"] == pytest.approx(0.00015)


def test_nagios_example_line() -> None:
    r = evaluate([measurement("fd00:ec2::123", sample(0.000051, 0.0001))], Thresholds())
    assert fmt.to_nagios(r) == (
        "NTP OK: Offset 0.000051 secs, max error 0.000101 secs|offset=0.000051s;;;; "
        "max_error=0.000101s;0.1;1;0; delay=0.0001s;;;0; root_distance=0s;;;0; "
        "root_delay=0s;;;0; root_dispersion=0s;;;0; stratum=1;;;0;16")


def test_nagios_unknown_has_no_perfdata_separator_in_its_text() -> None:
    m = measurement("fd00:ec2::123")
    m.error = "weird | text"
    line = fmt.to_nagios(evaluate([m], Thresholds()))
    assert line.startswith("NTP UNKNOWN: ") and "|" not in line and "\n" not in line


def test_prometheus_label_values_are_escaped_and_parse() -> None:
    m = measurement("fd00:ec2::123", sample(0.001))
    m.rejected = Counter({'we"ird\\reason': 2})
    text = fmt.to_prometheus(evaluate([m], Thresholds()))
    families = {f.name: f for f in text_string_to_metric_families(text)}
    (s,) = families["chronyctl6_check_replies_rejected"].samples
    assert s.labels["reason"] == 'we"ird\\reason' and s.value == 2
    assert families["chronyctl6_check_offset_seconds"].samples[0].value == 0.001


def test_perfdata_is_plain_decimals_even_for_tiny_and_huge_values() -> None:
    s = sample(-0.0000012, delay=0.00000002, root_delay=65535.0, root_dispersion=0.0000001)
    r = evaluate([measurement("fd00:ec2::123", s)], Thresholds(0.00001, 0.00005))
    line = fmt.to_nagios(r)
    perf = line.split("|", 1)[1]
    assert "e-" not in perf and "e+" not in perf and "E" not in perf
    assert "max_error=32767.50000131s;0.00001;0.00005;0;" in perf
    assert "root_delay=65535s;;;0;" in perf


def test_no_chronyd_means_no_chronyd_metrics_at_all() -> None:
    r = evaluate([measurement("fd00:ec2::123", sample(0.001))], Thresholds())
    text = fmt.to_prometheus(r)
    names = {f.name for f in text_string_to_metric_families(text)}
    assert "chronyctl6_check_max_error_seconds" in names
    assert not any("chronyd" in n or n.startswith("chrony_") for n in names), names
    assert fmt.to_data(r)["chronyd"] is None


def test_chronyd_tracking_is_exported_under_chrony_exporter_names() -> None:
    r = evaluate([measurement("fd00:ec2::123", sample(0.0001))], Thresholds(),
                 tracking(0.00004, root_delay=0.0002, root_dispersion=0.0003))
    found = {s.name: s.value for f in text_string_to_metric_families(fmt.to_prometheus(r))
             for s in f.samples if not s.labels}
    assert found["chrony_tracking_system_time_seconds"] == 0.00004
    assert found["chrony_tracking_root_delay_seconds"] == 0.0002
    assert found["chrony_tracking_root_dispersion_seconds"] == 0.0003
    assert found["chrony_tracking_stratum"] == 4
    assert found["chronyctl6_check_chronyd_up"] == 1
    assert found["chronyctl6_check_chronyd_max_error_seconds"] == pytest.approx(0.00044)


def test_nagios_unknown_is_one_safe_line() -> None:
    line = fmt.nagios_unknown("bad\nthing | \x1b[31mred\u2028more")
    # The one sanitiser (chronyctl6.text.shown) makes controls visible escapes; the pipe, which
    # would start Nagios perfdata, becomes a slash.
    assert line == "NTP UNKNOWN: bad\\nthing / \\e[31mred\\u2028more"
    assert "\n" not in line and "\u2028" not in line and "|" not in line


def all_finite(text: str) -> bool:
    """Every sample's value in the Prometheus text is a finite number (and there are some)."""
    import math

    values = [s.value for f in text_string_to_metric_families(text) for s in f.samples]
    return bool(values) and all(math.isfinite(v) for v in values)


def test_data_never_holds_nan_or_infinity() -> None:
    s = sample(float("nan"), delay=float("inf"))
    m = measurement("fd00:ec2::123", s)
    r = evaluate([m], Thresholds())
    json.dumps(fmt.to_data(r), allow_nan=False)  # raises on NaN/inf
    assert all_finite(fmt.to_prometheus(r))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_a_chronyd_reporting_non_finite_values_is_not_taken_as_agreeing(bad: float) -> None:
    for t in (tracking(bad), tracking(0.0, root_dispersion=bad), tracking(0.0, root_delay=bad)):
        r = evaluate([measurement("fd00:ec2::123", sample(0.0001))], Thresholds(), t)
        assert r.status is CheckStatus.WARNING and "chronyd disagrees" in r.summary
        json.dumps(fmt.to_data(r), allow_nan=False)
        assert all_finite(fmt.to_prometheus(r))


def test_a_host_whose_addresses_cannot_be_read_gets_no_ipv6_hint_and_no_crash(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """psutil's interface ioctls can be refused (a sandbox, chrony's simulator: EINVAL); the
    hint after a silent IPv6 server is then left out, and check's verdict stands."""
    from chronyctl6.effects import host
    from chronyctl6.measure import check, gather

    def refused() -> host.HostNetwork:
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(host, "read_network", refused)
    assert gather.has_global_ipv6() is True
    silent = measurement("2600:1f14::123")
    silent.sent = 6
    assert check.ipv6_route_hint([silent], gather.has_global_ipv6) is None
