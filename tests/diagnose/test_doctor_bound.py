"""doctor's `chronyd` check judges chronyd's bound on the clock's error as `status` does (issue 20
item 1): right after a start chronyd has selected Time Sync while its bound is still a second or
more, and doctor must not pass what status calls warning or critical. Pure: plain Facts, the one
bound computation (measure.gather.bound_from_tracking), status's own report for the comparison."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chronyctl6.diagnose import doctor, status
from chronyctl6.diagnose.doctor import Status
from chronyctl6.effects.chrony_tools import Tracking
from chronyctl6.measure import check, clockbound, gather
from tests.diagnose.test_doctor_checks import by_id, healthy

NOW = 1.7e9


def tracking(root_dispersion: float, leap: str = "Normal", offset: float = 0.0) -> Tracking:
    return Tracking("FD00EC20", "fd00:ec2::123", 1, NOW - 2.0, offset, 0.0, 0.0, 0.0, 0.0, 0.0,
                    0.0002, root_dispersion, 16.0, leap)


def bound(t: Tracking) -> clockbound.Bound:
    """As status computes it: the one place a tracking reading becomes a bound."""
    return gather.bound_from_tracking(t, maxclockerror_ppm=1.0, now=NOW, age=0.0)


def status_word(b: clockbound.Bound) -> str | None:
    """What `status` says of this bound, from its own report and its default thresholds."""
    report = status.StatusReport((), None, "chronyd -f", status.Drift("in-sync", ""), (), None, (), (), (), b)
    return report.bound_status


def test_status_and_doctor_judge_with_checks_one_pair_of_thresholds() -> None:
    assert (status.DEFAULT_WARN, status.DEFAULT_CRIT) == (check.DEFAULT_WARN, check.DEFAULT_CRIT)
    assert status.DEFAULT_WARN < status.DEFAULT_CRIT


@pytest.mark.parametrize(("dispersion", "word", "verdict"), [
    (0.001, "ok", Status.PASS),
    (0.4, "warning", Status.WARN),  # selected Time Sync seconds ago, still settling
    (1.7, "critical", Status.WARN),  # the figure issue 20 saw right after apply
])
def test_doctor_says_of_the_bound_what_status_says(dispersion: float, word: str, verdict: Status) -> None:
    b = bound(tracking(dispersion))
    assert status_word(b) == word
    c = by_id(replace(healthy(), bound=b))["chronyd"]
    assert c.status is verdict
    assert f"chronyd's bound on the clock's error is {b.seconds:.6f} s (as status computes it: {word}" in c.evidence
    assert "pid 42 as _chrony" in c.evidence  # the process is still described
    if verdict is Status.PASS:
        assert c.fix is None
    else:
        assert c.steps == ("sudo chronyctl6 wait",)
        assert c.note is not None and "still settling after a start" in c.note
        assert f"within {status.DEFAULT_WARN:g} s" in c.note
        assert doctor.exit_status(doctor.run_checks(replace(healthy(), bound=b))) == 1  # a warning, not a failure


def test_the_thresholds_are_statuss_own_at_their_edges() -> None:
    """A bound exactly at status's warning threshold warns, just under it passes: the same
    comparison (clockbound.classify), not a restated one."""
    just_under = bound(tracking(status.DEFAULT_WARN - 0.0002 / 2 - 1e-6))
    at_warn = bound(tracking(status.DEFAULT_WARN - 0.0002 / 2))
    assert status_word(just_under) == "ok"
    assert by_id(replace(healthy(), bound=just_under))["chronyd"].status is Status.PASS
    assert status_word(at_warn) == "warning"
    assert by_id(replace(healthy(), bound=at_warn))["chronyd"].status is Status.WARN


def test_not_synchronised_is_what_status_calls_critical_and_doctor_warns_with_wait() -> None:
    b = bound(tracking(0.0, leap="Not synchronised"))
    assert b.seconds is None and status_word(b) == "critical"
    c = by_id(replace(healthy(), bound=b))["chronyd"]
    assert c.status is Status.WARN
    assert "chronyd has no bound on the clock's error (chronyd is not synchronised: no bound)" in c.evidence
    assert "(as status computes it: critical)" in c.evidence
    assert c.steps == ("sudo chronyctl6 wait",)


def test_no_answer_from_chronyd_judges_nothing_and_says_why() -> None:
    """status says unknown when chronyc cannot be read; doctor does not invent a verdict either."""
    c = by_id(replace(healthy(), bound=None, bound_problem="chronyd is not answering (506 Cannot talk)"))["chronyd"]
    assert c.status is Status.PASS and c.fix is None
    assert "its bound is unknown (chronyd is not answering (506 Cannot talk))" in c.evidence


def test_a_hostile_problem_string_is_sanitised_on_the_way_out() -> None:
    c = by_id(replace(healthy(), bound=None, bound_problem="no\x1b[31m answer\n"))["chronyd"]
    assert "\x1b" not in c.evidence and "\n" not in c.evidence


def test_a_bound_that_is_not_a_number_is_no_bound() -> None:
    b = bound(tracking(float("nan")))
    assert b.seconds is None and status_word(b) == "critical"
    c = by_id(replace(healthy(), bound=b))["chronyd"]
    assert c.status is Status.WARN and "not a finite, non-negative number" in c.evidence
