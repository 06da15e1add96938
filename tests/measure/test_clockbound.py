"""chronyd's error bound as ClockBound computes it: the arithmetic, in process (issue 19 item 3).
Cases mirror ClockBound's own tests (aws/clock-bound chronyd_snapshot_poller.rs,
clock-bound-shm/src/lib.rs) so the two agree on the same inputs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from chronyctl6.effects import bound_facts
from chronyctl6.measure.clockbound import Bound, classify, compute


def _bound(**kw: object) -> Bound:
    args: dict[str, object] = dict(system_offset=0.0, root_delay=0.0, root_dispersion=0.0, synchronised=True,
                                   maxclockerror_ppm=50.0)
    args.update(kw)
    return compute(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize("offset", [1.0, -1.0])
def test_offset_root_dispersion_half_root_delay_as_clockbound(offset: float) -> None:
    # ClockBound's test_extract_error_bound_nsec_from_tracking: 1 + 3/2 + 2 = 4.5 s either sign
    assert _bound(system_offset=offset, root_delay=3.0, root_dispersion=2.0).seconds == pytest.approx(4.5)


def test_the_phc_error_bound_counts_only_when_the_phc_is_the_reference() -> None:
    # ClockBound's with_phc_ref_id_matching_tracking_ref_id: 3.5 s + 123456 ns
    common = dict(system_offset=-1.0, root_delay=1.0, root_dispersion=2.0, phc_error_bound=123456e-9)
    assert _bound(**common, phc_reference=True).seconds == pytest.approx(3.500123456)
    b = _bound(**common, phc_reference=False)
    assert b.seconds == pytest.approx(3.5) and b.phc_error_bound is None


def test_it_grows_by_maxclockerror_from_the_reading_on() -> None:
    # ClockBound's compute_bound_ok: 10 us + 1 ppm x 2 s = 12 us
    b = _bound(root_dispersion=10e-6, maxclockerror_ppm=1.0, age=2.0)
    assert b.seconds == pytest.approx(12e-6) and b.growth == pytest.approx(2e-6)


def test_the_drift_since_the_last_update_is_shown_not_counted_twice() -> None:
    # chronyd's root dispersion already holds maxclockerror x the time since its last update
    b = _bound(root_dispersion=0.0005, since_update=10.0)
    assert b.drift_since_update == pytest.approx(0.0005) and b.seconds == pytest.approx(0.0005)
    assert _bound(since_update=-5.0).since_update is None  # a clock stepped back: not a duration


@pytest.mark.parametrize("kw, said", [
    ({"synchronised": False}, "not synchronised"),
    ({"root_dispersion": math.nan}, "not a finite"),
    ({"system_offset": math.inf}, "not a finite"),
    ({"root_delay": -1.0}, "not a finite"),
    ({"phc_reference": True, "phc_error_bound": None}, "cannot be read"),
    ({"phc_reference": True, "phc_error_bound": math.nan}, "cannot be read"),
])
def test_no_bound_rather_than_a_wrong_one(kw: dict[str, object], said: str) -> None:
    b = _bound(**kw)
    assert b.seconds is None and b.problem is not None and said in b.problem
    assert classify(b, 0.1, 1.0) == "critical"


@pytest.mark.parametrize("seconds, verdict", [(0.0999, "ok"), (0.1, "warning"), (0.99, "warning"), (1.0, "critical")])
def test_thresholds(seconds: float, verdict: str) -> None:
    assert classify(_bound(root_dispersion=seconds), 0.1, 1.0) == verdict


def test_the_maxclockerror_in_force_is_the_last_one_chronyd_reads(tmp_path: Path) -> None:
    conf = tmp_path / "etc/chrony/chrony.conf"
    (tmp_path / "etc/chrony/conf.d").mkdir(parents=True)
    conf.write_text("maxclockerror 50\nconfdir /etc/chrony/conf.d\n")
    (tmp_path / "etc/chrony/conf.d/op.conf").write_text("maxclockerror 100\nmaxclockerror nan\n")
    ppm, where = bound_facts.maxclockerror("/etc/chrony/chrony.conf", tmp_path)
    assert ppm == 100.0 and where == "/etc/chrony/conf.d/op.conf:1"
    conf.write_text("server 169.254.169.123\n")
    assert bound_facts.maxclockerror(None, tmp_path)[0] == 1.0  # chrony's default


def test_a_phc_reference_is_recognised_by_name_or_refid() -> None:
    assert bound_facts.is_phc_reference("50484330", "PHC0") and bound_facts.is_phc_reference("50484330", "")
    assert not bound_facts.is_phc_reference("A9FEA97B", "169.254.169.123")
