"""Nagios ranges as the monitoring plugins' library reads them (pure): the guidelines' examples,
strtod's reading of numbers, and fperfdata's printing."""

from __future__ import annotations

import math

import pytest

from chronyctl6.measure import ranges


# The threshold format's own table (monitoring-plugins' guidelines), plus strtod's corners.
@pytest.mark.parametrize(
    ("text", "alerts", "quiet"),
    [
        ("10", [-1.0, 10.5, 11.0], [0.0, 5.0, 10.0]),
        ("10:", [9.99, -5.0], [10.0, 1e9]),
        ("~:10", [10.01], [-1e9, 10.0]),
        ("10:20", [9.0, 21.0], [10.0, 15.0, 20.0]),
        ("@10:20", [10.0, 15.0, 20.0], [9.0, 21.0]),
        ("@~:0", [-3.0, 0.0], [0.5]),
        ("abc", [0.5, -0.5], [0.0]),  # strtod: no number is 0, so the range is 0..0
        ("1.5e1", [15.5], [15.0]),
        ("2x", [2.5], [2.0]),  # strtod stops at the first character it cannot read
        ("~", [0.1], [0.0]),  # "~" without a colon is an end: strtod gives 0
    ],
)
def test_alerts_as_the_plugins_library_does(text: str, alerts: list[float], quiet: list[float]) -> None:
    r = ranges.parse(text)
    assert [v for v in alerts if r.alerts(v)] == alerts
    assert [v for v in quiet if r.alerts(v)] == []


@pytest.mark.parametrize("text", ["5:1", "@20:10", "nan:5", "1:nan"])
def test_start_above_end_is_refused(text: str) -> None:
    with pytest.raises(ranges.RangeError):
        ranges.parse(text)


def test_a_nan_value_alerts_wherever_the_range_has_ends() -> None:
    assert ranges.parse("10").alerts(math.nan) and ranges.parse("10:").alerts(math.nan)
    assert ranges.status(math.nan, ranges.parse("60"), ranges.parse("120")) == 2


def test_critical_is_judged_before_warning() -> None:
    w, c = ranges.parse("1"), ranges.parse("2")
    assert [ranges.status(v, w, c) for v in (0.5, 1.5, 2.5)] == [0, 1, 2]
    assert ranges.status(5.0, None, None) == 0


def test_perfdata_is_printed_as_fperfdata_does() -> None:
    w, c = ranges.parse("60"), ranges.parse("10:")
    assert ranges.fperfdata("offset", 0.000123, "s", w, c) == "offset=0.000123s;60.000000;0.000000;"
    assert ranges.fperfdata("stratum", 2, "", None, ranges.parse("4"), 0, 16) == "stratum=2;;4;0;16"
    assert ranges.fperfdata("a b", 1.0) == "'a b'=1.000000;;;"
