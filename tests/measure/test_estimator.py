"""The burst estimator (exchange.combine), in process, with samples built from known truths.

A sample of true offset `theta` over one-way delays `up` and `down` has
offset = theta + (up - down) / 2 and delay = up + down: that is what an exchange measures.
"""

from __future__ import annotations

import random

import pytest

from chronyctl6.measure.exchange import MAX_DRIFT, Measurement, Sample, Target, combine, server_precision

THETA = 0.25


def sample(up: float, down: float, *, theta: float = THETA, taken: float = 0.0,
           root_delay: float = 0.0, root_dispersion: float = 0.0, precision: float = 0.0) -> Sample:
    return Sample(offset=theta + (up - down) / 2, delay=up + down, stratum=1, leap=0, version=4,
                  ref_id="GPS", root_delay=root_delay, root_dispersion=root_dispersion,
                  taken=taken, precision=precision)


def drift_allowance(samples: list[Sample]) -> float:
    """The most combine() widens any sample's interval by."""
    fastest = min(samples, key=lambda s: s.delay)
    return max(MAX_DRIFT * (abs(s.taken - fastest.taken) + s.delay + fastest.delay)
               for s in samples)


def test_no_samples_no_estimate() -> None:
    assert combine([]) is None
    assert Measurement(Target("x", 0, ("x", 123))).best is None


def test_one_sample_is_its_own_estimate() -> None:
    only = sample(100e-6, 300e-6)
    assert combine([only]) == only
    assert only.error_bound == pytest.approx(200e-6)


def test_all_equal_samples_give_that_sample() -> None:
    same = [sample(50e-6, 50e-6, taken=i * 1e-4) for i in range(6)]
    best = combine(same)
    assert best == same[0]  # nothing tighter than one of them: the sample itself, unaltered
    assert best is not None and best.path_bound is None


def test_each_direction_from_its_least_queued_sample() -> None:
    # No single exchange had both legs short: the minimum-delay one is (up 1 ms, down 4 ms).
    legs = [(1e-3, 4e-3), (5e-3, 0.5e-3), (3e-3, 3e-3), (2e-3, 6e-3)]
    samples = [sample(u, d, taken=i * 1e-4) for i, (u, d) in enumerate(legs)]
    best = combine(samples)
    assert best is not None
    # The truth lies in [theta - min down, theta + min up]; the estimate is its midpoint.
    assert best.offset == pytest.approx(THETA + (1e-3 - 0.5e-3) / 2, abs=drift_allowance(samples))
    assert best.path_bound == pytest.approx((1e-3 + 0.5e-3) / 2, abs=drift_allowance(samples))
    fastest = min(samples, key=lambda s: s.delay)
    assert abs(best.offset - THETA) < abs(fastest.offset - THETA)
    assert abs(best.offset - THETA) <= best.error_bound
    assert best.error_bound < fastest.error_bound
    assert best.delay == fastest.delay  # the delay reported is still one measured round trip


def test_asymmetric_path_still_bounded() -> None:
    # A path whose down leg is always 2 ms longer: no client can see it; the bound must hold it.
    samples = [sample(0.2e-3 + j, 2.2e-3 + j2, taken=i * 1e-4)
               for i, (j, j2) in enumerate([(0, 3e-4), (2e-4, 0), (5e-4, 1e-4)])]
    best = combine(samples)
    assert best is not None
    assert abs(best.offset - THETA) == pytest.approx(1e-3, abs=1e-5)  # about (up - down) / 2
    assert abs(best.offset - THETA) <= best.error_bound


def test_an_outlier_far_above_the_minimum_delay_weighs_nothing() -> None:
    calm = [sample(40e-6, 60e-6), sample(55e-6, 45e-6, taken=1e-4), sample(70e-6, 50e-6, taken=2e-4)]
    queued = sample(30e-3, 2e-3, taken=3e-4)  # 32 ms round trip, badly asymmetric
    without, with_outlier = combine(calm), combine([*calm, queued])
    assert without is not None and with_outlier is not None
    assert with_outlier.offset == pytest.approx(without.offset, abs=1e-7)
    assert with_outlier.path_bound == pytest.approx(without.path_bound, abs=1e-7)


def test_contradicting_samples_fall_back_to_the_minimum_delay_one() -> None:
    # The same server 10 ms apart within one burst (a step, or two clocks behind one address).
    a = sample(50e-6, 50e-6)
    b = sample(60e-6, 60e-6, theta=THETA + 0.01, taken=1e-4)
    assert combine([a, b]) == a


def test_samples_far_apart_in_time_are_widened_by_the_drift_allowance() -> None:
    # A clock 500 ppm off moves the offset 0.5 ms in the second between these two exchanges. The
    # later one has the least delay, so the estimate is of the offset then (THETA + 0.5 ms); the
    # earlier one's interval, [THETA - 1 ms, THETA + 0.45 ms], was true when taken and, taken
    # as it stands, would cut the truth out.
    early = sample(0.45e-3, 1e-3)
    late = sample(0.1e-3, 0.1e-3, theta=THETA + 0.5e-3, taken=1.0)
    best = combine([early, late])
    assert best is not None and abs(best.offset - (THETA + 0.5e-3)) <= best.error_bound
    assert combine([early, late], max_drift=0.0) != best  # the allowance is what kept it


def test_the_root_distance_is_the_largest_the_burst_states() -> None:
    samples = [sample(50e-6, 80e-6, root_delay=1e-4, root_dispersion=2e-4),
               sample(80e-6, 40e-6, taken=1e-4, root_delay=3e-4, root_dispersion=1e-4)]
    best = combine(samples)
    assert best is not None and best.path_bound is not None
    assert best.root_distance == pytest.approx(3e-4 / 2 + 2e-4)
    assert best.error_bound == pytest.approx(best.path_bound + best.root_distance)


def test_a_nan_sample_never_yields_a_nan_estimate_from_honest_ones() -> None:
    honest = [sample(40e-6, 60e-6), sample(60e-6, 30e-6, taken=1e-4)]
    broken = Sample(float("nan"), 1e-3, 1, 0, 4, "GPS", 0.0, 0.0, taken=2e-4)
    best = combine([*honest, broken])
    assert best is not None and abs(best.offset - THETA) <= best.error_bound


@pytest.mark.parametrize("kind", ["exponential", "normal", "uniform", "asymmetric"])
def test_the_bound_holds_the_truth_in_every_burst(kind: str) -> None:
    rng = random.Random(kind)

    def leg(base: float) -> float:
        if kind == "exponential":
            return base + rng.expovariate(1 / 1e-3)
        if kind == "normal":
            return max(0.0, base + rng.gauss(0, 1e-3))
        return base + rng.uniform(0, 1e-3)

    tighter = 0
    for _ in range(500):
        theta = rng.uniform(-10, 10)
        up_base = rng.uniform(0, 5e-3)
        down_base = rng.uniform(0, 5e-3) if kind == "asymmetric" else up_base
        n = rng.randint(1, 8)
        samples = [sample(leg(up_base), leg(down_base), theta=theta, taken=i * 2e-4)
                   for i in range(n)]
        best = combine(samples)
        fastest = min(samples, key=lambda s: s.delay)
        assert best is not None
        assert abs(best.offset - theta) <= best.error_bound + 1e-12
        # Never looser than the intersection's width, itself within the fastest's round trip.
        assert best.error_bound <= fastest.delay + 2 * drift_allowance(samples) + 1e-12
        tighter += best.error_bound < fastest.error_bound
    assert tighter > 150  # many bursts of several samples narrow the bound: the test has teeth


def _legs_symmetric(rng: random.Random, n: int, base: float, sigma: float) -> list[tuple[float, float]]:
    return [(base + rng.gauss(0, sigma), base + rng.gauss(0, sigma)) for _ in range(n)]


def test_symmetric_jitter_weighs_every_sample_alike() -> None:
    # Legs that scatter about 50 us both ways (a hypervisor hop): the delay says nothing about a
    # sample's error, so the estimate is the mean of the offsets.
    legs = [(50e-6, 52e-6), (47e-6, 45e-6), (53e-6, 49e-6), (49e-6, 54e-6), (51e-6, 50e-6), (46e-6, 48e-6)]
    samples = [sample(u, d, taken=i * 1e-4) for i, (u, d) in enumerate(legs)]
    best = combine(samples)
    assert best is not None
    mean = sum(s.offset for s in samples) / len(samples)
    assert best.offset == pytest.approx(mean, abs=1e-12)
    assert abs(best.offset - THETA) <= best.error_bound


def test_one_sided_jitter_keeps_the_least_queued_legs() -> None:
    # A floor of 1 ms each way and queueing above it, one leg of each sample near the floor.
    legs = [(1.0e-3, 3.0e-3), (2.5e-3, 1.0e-3), (1.2e-3, 6.0e-3), (4.0e-3, 1.1e-3), (1.05e-3, 2.2e-3),
            (7.0e-3, 1.3e-3)]
    samples = [sample(u, d, taken=i * 1e-4) for i, (u, d) in enumerate(legs)]
    best = combine(samples)
    assert best is not None
    assert best.offset == pytest.approx(THETA + (1.0e-3 - 1.0e-3) / 2, abs=drift_allowance(samples))
    assert best.path_bound == pytest.approx(1.0e-3, abs=drift_allowance(samples))


def test_the_mean_is_kept_inside_what_the_samples_prove() -> None:
    # Symmetric-looking legs, but the fastest sample's interval pins the truth near its own offset:
    # an estimate outside the intersection could not carry a bound, so the mean is clamped to it.
    samples = [sample(10e-6, 10e-6), sample(400e-6, 100e-6, taken=1e-4), sample(390e-6, 110e-6, taken=2e-4),
               sample(410e-6, 90e-6, taken=3e-4)]
    best = combine(samples)
    assert best is not None and best.path_bound is not None
    assert THETA - 10e-6 - drift_allowance(samples) <= best.offset <= THETA + 10e-6 + drift_allowance(samples)
    assert abs(best.offset - THETA) <= best.error_bound


@pytest.mark.parametrize(("kind", "most"), [("normal", 0.8), ("exponential", 0.65)])
def test_the_estimate_beats_the_minimum_delay_sample_over_many_bursts(kind: str, most: float) -> None:
    # Median absolute error over 2000 seeded bursts of 6, against the minimum-delay sample's
    # (what check reported before bursts were weighed): normal jitter about 1 ms, and queueing.
    rng = random.Random(f"beats-{kind}")
    ours, fastest_errors = [], []
    for _ in range(2000):
        if kind == "normal":
            legs = _legs_symmetric(rng, 6, 5e-3, 0.5e-3)
        else:
            legs = [(2e-3 + rng.expovariate(1 / 0.5e-3), 2e-3 + rng.expovariate(1 / 0.5e-3)) for _ in range(6)]
        samples = [sample(max(u, 0.0), max(d, 0.0), taken=i * 1e-4) for i, (u, d) in enumerate(legs)]
        best = combine(samples)
        assert best is not None and abs(best.offset - THETA) <= best.error_bound + 1e-12
        ours.append(abs(best.offset - THETA))
        fastest_errors.append(abs(min(samples, key=lambda s: s.delay).offset - THETA))
    ours.sort()
    fastest_errors.sort()
    assert ours[1000] < most * fastest_errors[1000]


def test_timestamp_precision_is_part_of_the_bound() -> None:
    # A path of 100 ns each way, timestamps good to 2^-20 s (~1 us, the server's stated precision):
    # the truth may sit anywhere within that of what the timestamps say, so the bound carries it.
    noisy = [sample(100e-9, 100e-9, theta=THETA + e, taken=i * 1e-4, precision=server_precision(-20))
             for i, e in enumerate((0.6e-6, -0.5e-6, 0.3e-6))]
    assert noisy[0].error_bound == pytest.approx(100e-9 + 2.0 ** -20)
    best = combine(noisy)
    assert best is not None and abs(best.offset - THETA) <= best.error_bound


@pytest.mark.parametrize(("exponent", "seconds"), [(-25, 2.0 ** -25), (-128, 2.0 ** -32), (0, 1.0), (127, 1.0)])
def test_a_server_precision_field_counts_within_sane_limits(exponent: int, seconds: float) -> None:
    assert server_precision(exponent) == seconds
