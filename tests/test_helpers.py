"""The suite's own waiting helpers: a poll that fails with what it saw, a clock that moves only
when slept on. A helper that could not fail would make every wait built on it a test that cannot."""

from __future__ import annotations

import itertools

import pytest

from tests.helpers import FakeClock, wait_for


def test_wait_for_returns_what_it_saw_once_ready() -> None:
    counter = itertools.count()
    assert wait_for(lambda: next(counter), lambda n: n >= 3, what="three", every=0) == 3


def test_wait_for_fails_at_its_deadline_with_the_last_thing_seen_and_the_context() -> None:
    with pytest.raises(pytest.fail.Exception, match=r"seven: not within 0.05 s; last seen: 6\n\(log\)"):
        wait_for(lambda: 6, lambda n: n == 7, what="seven", timeout=0.05, every=0.01, context=lambda: "(log)")


def test_wait_for_fails_at_once_when_the_process_under_test_ended() -> None:
    with pytest.raises(pytest.fail.Exception, match="the process under test ended; last seen: None"):
        wait_for(lambda: None, what="an answer", timeout=3600, alive=lambda: False)


def test_the_fake_clock_moves_only_when_slept_on() -> None:
    clock = FakeClock(now=5.0)
    assert clock.monotonic() == clock.monotonic() == 5.0
    clock.sleep(0.25)
    clock.sleep(1.0)
    assert clock.monotonic() == 6.25 and clock.slept == [0.25, 1.0]
