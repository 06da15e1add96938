"""`chronyctl6 wait`'s judgement (pure, from chronyc's own CSV) and its loop (driven by a fake
clock through its seams: no timer is raced)."""

from __future__ import annotations

import pytest

from chronyctl6.diagnose.wait import Reading, judge, wait
from chronyctl6.effects.chrony_tools import Source, Tracking, parse_sources, parse_tracking
from chronyctl6.measure import gather
from tests.helpers import FakeClock

# `chronyc -n -c tracking` / `sources` as chronyd 4.3 prints them (captured on the simulated instance).
SYNCED = parse_tracking("FD00EC21,fd00:ec2::123,4,1733200000.123456789,0.000001234,0.000000500,"
                        "0.000002000,-3.210,0.001,0.050,0.000180000,0.000250000,16.1,Normal\n")
UNSYNCED = parse_tracking("00000000,,0,0.000000000,0.000000000,0.000000000,0.000000000,0.000,0.000,0.000,"
                          "1.000000000,1.000000000,0.0,Not synchronised\n")
LOOSE = parse_tracking("FD00EC21,fd00:ec2::123,4,1733200000.1,0.250000000,0.0,0.0,0.0,0.0,0.0,"
                       "0.001,0.010,16.1,Normal\n")
SELECTED = tuple(parse_sources("^,*,fd00:ec2::123,3,4,377,3,0.000001,0.000001,0.000020\n"))
HEARD = tuple(parse_sources("^,?,fd00:ec2::123,3,4,3,3,0.000001,0.000001,0.000020\n"))
SILENT = tuple(parse_sources("^,?,fd00:ec2::123,0,4,0,-,0.0,0.0,0.0\n"))
POOL = tuple(parse_sources("^,*,192.0.2.7,2,6,377,3,0.000001,0.000001,0.000020\n"))
PHC = tuple(parse_sources("#,*,PHC0,0,0,377,1,0.0000001,0.0000001,0.000001\n"))


def read(tracking: Tracking, sources: tuple[Source, ...], *, age: float = 0.0, phc_reference: bool = False,
         phc_error_bound: float | None = None) -> Reading:
    """A reading with the bound status would report for it (gather.bound_from_tracking, the one
    computation), read 16 s after chronyd's last update and `age` seconds before now."""
    bound = gather.bound_from_tracking(tracking, maxclockerror_ppm=50.0, now=tracking.ref_time + 16, age=age,
                                       phc_reference=phc_reference, phc_error_bound=phc_error_bound)
    return Reading(tracking, sources, bound=bound)


@pytest.mark.parametrize(("reading", "ready", "said"), [
    (Reading(None, (), "chronyc tracking: 506 Cannot talk to daemon"), False, "chronyd does not answer (chronyc"),
    (Reading(UNSYNCED, ()), False, "chronyd has no sources"),
    (Reading(UNSYNCED, SILENT), False, "no reply yet from fd00:ec2::123 (reach 0"),
    (Reading(UNSYNCED, HEARD), False, "fd00:ec2::123 reach 003 state ?"),
    (read(SYNCED, POOL), False, "synchronised to 192.0.2.7, not to Time Sync"),
    (read(LOOSE, SELECTED), False, "may still be 0.260500 s off (above 0.1 s)"),
    (read(SYNCED, SELECTED), True, "synchronised to fd00:ec2::123, within 0.000341 s"),
    (read(SYNCED, PHC), True, "synchronised to PHC0"),
    (Reading(SYNCED, SELECTED), False, "no bound on the clock's error: not computed"),
    (read(SYNCED, PHC, phc_reference=True), False, "phc_error_bound in sysfs"),
])
def test_judge_says_why_not_yet(reading: Reading, ready: bool, said: str) -> None:
    verdict = judge(reading, max_error=0.1)
    assert verdict.ready is ready and said in verdict.reason, verdict


# Right after selection (captured shape): within 0.043 s, but skew 5000 ppm over 16 s updates.
SETTLING = parse_tracking("FD00EC21,fd00:ec2::123,4,1733200000.1,0.000006,0.0,0.0,0.0,2.0,5000.0,"
                          "0.00003,0.0427,16.0,Normal\n")
# Right after iburst: the last update came 2 s after the one before, the next comes a poll (2^4 s) later.
IBURST = parse_tracking("FD00EC21,fd00:ec2::123,4,1733200000.1,0.000006,0.0,0.0,0.0,0.0,1500.0,"
                        "0.00003,0.03,2.0,Normal\n")
# Settled, as read on the real chronyd (maxclockerror 50, poll 4): skew 6.4 ppm, the bound 0.000054
# s just after an update; it reached 0.000899 s before the next one.
STEADY = parse_tracking("FD00EC21,fd00:ec2::123,4,1733200000.1,0.000004,0.0,0.0,0.0,0.0,6.4,"
                        "0.00001,0.000045,16.1,Normal\n")


def old_rule_growth(tracking: Tracking) -> float:
    """The growth wait allowed for before (skew and residual over the last update interval, no
    maxclockerror): the cases below, and the e2e test on the real chronyd, are those it took for
    ready."""
    return (tracking.skew_ppm + abs(tracking.residual_freq_ppm)) * 1e-6 * max(tracking.update_interval, 1.0)


def old_rule_ready(tracking: Tracking, max_error: float) -> bool:
    bound = read(tracking, SELECTED).bound
    assert bound is not None and bound.seconds is not None
    return bound.seconds + old_rule_growth(tracking) <= max_error


@pytest.mark.parametrize(("tracking", "max_error", "ready"), [
    (SETTLING, 0.05, False),  # 0.0428 + (5000 + 2 + 50) ppm x 16 s = 0.1236 s before the next update
    (SETTLING, 0.2, True),
    (SYNCED, 0.1, True),
    # (1500 + 50) ppm x 16 s = 0.0248 s, not x 2 s (the last interval) = 0.0031 s: 0.0550 s in all.
    (IBURST, 0.05, False),
    (IBURST, 0.06, True),
    # (6.4 + 50) ppm x 16.1 s = 0.000908 s: under 1 ms is never ready with this configuration.
    (STEADY, 0.0005, False),
    (STEADY, 0.003, True),
    # chronyd's skew as NaN (a hostile or broken reply): never ready, whatever the limit.
    (parse_tracking("FD00EC21,fd00:ec2::123,4,1733200000.1,0.000006,0.0,0.0,0.0,0.0,nan,"
                    "0.00003,0.0001,16.0,Normal\n"), 10.0, False),
    # ...nor an update interval that is not a number.
    (parse_tracking("FD00EC21,fd00:ec2::123,4,1733200000.1,0.000006,0.0,0.0,0.0,0.0,1.0,"
                    "0.00003,0.0001,nan,Normal\n"), 10.0, False),
])
def test_a_bound_that_can_grow_past_the_limit_before_chronyds_next_update_is_not_ready(
        tracking: Tracking, max_error: float, ready: bool) -> None:
    verdict = judge(read(tracking, SELECTED), max_error=max_error)
    assert verdict.ready is ready, verdict
    if tracking is SETTLING and not ready:
        assert ("may grow by 0.080832 s before chronyd's next update (skew 5000 + residual 2 + "
                "maxclockerror 50 ppm over 16 s), above 0.05 s together") in verdict.reason


@pytest.mark.parametrize(("tracking", "max_error"), [(IBURST, 0.05), (STEADY, 0.0005)])
def test_the_old_rule_took_these_for_ready(tracking: Tracking, max_error: float) -> None:
    """What the poll interval and maxclockerror change: each case above that is not ready now was."""
    assert old_rule_ready(tracking, max_error)
    assert not judge(read(tracking, SELECTED), max_error=max_error).ready


def test_the_next_update_is_a_poll_of_the_selected_source_away() -> None:
    """chronyd polling every 2^6 s: four times the growth of 2^4 s; a poll no chrony has (a
    hostile chronyc) is held at chrony's longest, 2^24 s, not raised to an overflow."""
    def margin_needed(poll: int) -> str:
        source = Source("^", "*", "fd00:ec2::123", 3, poll, 0o377, 3, 0.0, 0.0, 0.00002)
        return judge(read(STEADY, (source,)), max_error=0.0005).reason

    assert "over 64 s" in margin_needed(6) and "may grow by 0.003610 s" in margin_needed(6)
    assert "over 1.67772e+07 s" in margin_needed(10**6)
    assert "over 16.1 s" in margin_needed(-3)  # a refclock's short poll: the last interval is longer


def test_any_source_accepts_a_pool_and_bound_uses_chronyds_own_terms() -> None:
    verdict = judge(read(SYNCED, POOL), max_error=0.1, any_source=True)
    assert verdict.ready and verdict.bound == pytest.approx(0.000001234 + 0.00025 + 0.00018 / 2)


def test_the_bound_is_the_one_status_reports_grown_since_the_reading() -> None:
    # Read 2000 s ago: ClockBound's bound has grown by maxclockerror (50 ppm) x 2000 s = 0.1 s,
    # which chronyc's max error alone (|offset| + root distance) never shows.
    reading = read(SYNCED, SELECTED, age=2000.0)
    verdict = judge(reading, max_error=0.1)
    assert reading.bound is not None and reading.bound.seconds is not None
    assert verdict.bound == reading.bound.seconds == pytest.approx(SYNCED.max_error + 50e-6 * 2000)
    assert not verdict.ready and "above 0.1 s" in verdict.reason


def test_the_phc_error_bound_counts_when_the_phc_is_the_reference() -> None:
    verdict = judge(read(SYNCED, PHC, phc_reference=True, phc_error_bound=0.2), max_error=0.1)
    assert not verdict.ready and verdict.bound == pytest.approx(SYNCED.max_error + 0.2)


def test_names_from_chronyd_are_sanitised() -> None:
    hostile = tuple(parse_sources("^,?,evil\x1b[2Jname,3,4,0,-,0.0,0.0,0.0\n"))
    reason = judge(Reading(UNSYNCED, hostile), max_error=0.1).reason
    assert "\x1b" not in reason and "evil\\e[2Jname" in reason


def test_wait_polls_until_ready_and_reports_each_reason_once() -> None:
    clock = FakeClock()
    readings = iter([Reading(None, (), "no socket"), Reading(UNSYNCED, SILENT), Reading(UNSYNCED, SILENT),
                     Reading(UNSYNCED, HEARD), read(SYNCED, SELECTED)])
    said: list[str] = []
    result = wait(lambda: next(readings), timeout=30, max_error=0.1, progress=said.append,
                  monotonic=clock.monotonic, sleep=clock.sleep, boottime=lambda: (7.25, 5.5))
    assert result.ready and result.source == "fd00:ec2::123"
    assert result.waited_seconds == 4.0 and (result.since_boot_seconds, result.since_init_seconds) == (7.25, 5.5)
    assert len(said) == 3 and len(result.steps) == 4, "a reason repeated is said once"


def test_wait_gives_up_at_the_timeout_with_the_last_reason() -> None:
    clock = FakeClock()
    result = wait(lambda: Reading(UNSYNCED, SILENT), timeout=2.5, max_error=0.1,
                  monotonic=clock.monotonic, sleep=clock.sleep, boottime=lambda: (1.0, 1.0))
    assert not result.ready and "reach 0" in result.reason and result.since_boot_seconds is None
    assert clock.slept == [1.0, 1.0, 0.5] and result.waited_seconds == 2.5, "never sleeps past the deadline"


def test_a_clock_stepped_backwards_does_not_extend_the_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the monotonic seam counts: a wall clock stepped back by chronyd (an hour at each
    reading, here) changes nothing."""
    import time

    wall = [1e9]

    def stepped_back() -> float:
        wall[0] -= 3600
        return wall[0]

    monkeypatch.setattr(time, "time", stepped_back)
    clock = FakeClock()
    result = wait(lambda: Reading(UNSYNCED, HEARD), timeout=2.5, max_error=0.1,
                  monotonic=clock.monotonic, sleep=clock.sleep, boottime=lambda: (1.0, 1.0))
    assert not result.ready and clock.slept == [1.0, 1.0, 0.5] and result.waited_seconds == 2.5
    clock = FakeClock()
    result = wait(lambda: Reading(UNSYNCED, HEARD), timeout=0, max_error=0.1,
                  monotonic=clock.monotonic, sleep=clock.sleep)
    assert not result.ready and clock.slept == [], "timeout 0: asks once, never sleeps"


def test_since_boot_and_init_are_read_from_this_kernel() -> None:
    from chronyctl6.diagnose.wait import since_boot_and_init

    boot, init = since_boot_and_init()
    assert boot is not None and boot > 0
    assert init is not None and 0 <= init <= boot
