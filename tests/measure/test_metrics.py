"""check's Prometheus metrics for chronyd's sources (pure): the selected source as
chrony_exporter's chrony_tracking_info, every source's state and reachability, and the bounds
(ours, and chronyd's ClockBound bound once the hook supplies it). Parsed by prometheus_client."""

from __future__ import annotations

from dataclasses import replace

from prometheus_client.parser import text_string_to_metric_families

from chronyctl6.effects.chrony_tools import Source
from chronyctl6.measure import report as fmt
from chronyctl6.measure.check import Thresholds, evaluate
from tests.measure.test_check_verdict import measurement, sample, tracking

Samples = dict[str, list[tuple[dict[str, str], float]]]


def series(text: str) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge" and family.documentation
        for s in family.samples:
            found.setdefault(s.name, []).append((dict(s.labels), s.value))
    return found


SOURCES = (
    Source("^", "*", "169.254.169.123", 1, 4, 0o377, 12, -0.000021, -0.000020, 0.00012),
    Source("^", "?", "fd00:ec2::123", 0, 4, 0o0, None, 0.0, 0.0, 0.0),
    Source("^", "-", "192.0.2.10", 2, 6, 0o17, 40, 0.003, 0.003, 0.01),
    Source("#", "+", "PHC0", 0, 0, 0o377, 1, 0.0000001, 0.0000001, 0.0000005),
    Source("^", "x", "evil\n\x1b[31mname", 2, 6, 0o1, 3, 1.0, 1.0, 0.1),
)


def test_the_selected_source_is_chrony_exporters_tracking_info() -> None:
    r = evaluate([measurement("169.254.169.123", sample(0.0001))], Thresholds(), tracking(0.00002), sources=SOURCES)
    (info,) = series(fmt.to_prometheus(r))["chrony_tracking_info"]
    assert info == ({"tracking_address": "169.254.169.123", "tracking_name": "169.254.169.123",
                     "tracking_refid": "A9FEA97B"}, 1.0)


def test_every_source_has_its_state_mode_and_reachability() -> None:
    r = evaluate([measurement("169.254.169.123", sample(0.0001))], Thresholds(), tracking(0.00002), sources=SOURCES)
    found = series(fmt.to_prometheus(r))
    states = {labels["source_name"]: (labels["source_state"], labels["source_mode"], labels["source_address"])
              for labels, value in found["chrony_sources_state_info"] if value == 1.0}
    assert states == {
        "169.254.169.123": ("sync", "client", "169.254.169.123"),
        "fd00:ec2::123": ("unreach", "client", "fd00:ec2::123"),
        "192.0.2.10": ("outlier", "client", "192.0.2.10"),
        "PHC0": ("candidate", "ref", ""),
        "evil\\n\\e[31mname": ("falseticker", "client", ""),  # escaped by the one sanitiser
    }
    reach = {labels["source_name"]: value for labels, value in found["chronyctl6_sources_reachability_ratio"]}
    assert reach["169.254.169.123"] == 1.0 and reach["fd00:ec2::123"] == 0.0 and reach["192.0.2.10"] == 0.5
    age = {labels["source_name"]: value for labels, value in found["chrony_sources_last_sample_age_seconds"]}
    assert "fd00:ec2::123" not in age and age["192.0.2.10"] == 40  # never sampled: no age at all
    polls = {labels["source_name"]: value for labels, value in found["chrony_sources_polling_interval_seconds"]}
    assert polls["192.0.2.10"] == 64 and polls["PHC0"] == 1
    offsets = {labels["source_name"]: value for labels, value in found["chrony_sources_last_sample_offset_seconds"]}
    assert offsets["169.254.169.123"] == -0.000021


def test_no_sources_read_means_no_source_series() -> None:
    r = evaluate([measurement("169.254.169.123", sample(0.0001))], Thresholds(), tracking(0.00002))
    found = series(fmt.to_prometheus(r))
    assert "chrony_tracking_info" in found
    assert not [name for name in found if name.startswith(("chrony_sources_", "chronyctl6_sources_"))]


def test_the_bounds_are_gauges_and_chronyds_clockbound_only_when_supplied() -> None:
    r = evaluate([measurement("169.254.169.123", sample(0.001, 0.0002))], Thresholds(), tracking(0.00002))
    found = series(fmt.to_prometheus(r))
    ((labels, ours),) = found["chronyctl6_check_max_error_seconds"]
    assert labels == {"server": "169.254.169.123"} and ours == r.max_error
    assert "chronyctl6_check_chronyd_clockbound_seconds" not in found  # the hook gave nothing
    assert r.chronyd is not None
    r.chronyd = replace(r.chronyd, clockbound=0.000345)
    assert series(fmt.to_prometheus(r))["chronyctl6_check_chronyd_clockbound_seconds"] == [({}, 0.000345)]
