"""The network paths the ground-truth benchmark emulates, and the statistics it prints.

Pure: a path draws one trial's parameters from a seeded generator; `benchmarks.responder` applies
them packet by packet. Delays are added to what the veth pair and the two kernels already cost.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

Leg = tuple[float, str, float, float]  # base seconds, jitter kind, jitter seconds, loss


@dataclass(frozen=True)
class Trial:
    offset: float  # the server's clock minus the client's, seconds: the truth
    up: Leg
    down: Leg


@dataclass(frozen=True)
class PathModel:
    name: str
    what: str
    draw_legs: Callable[[random.Random], tuple[Leg, Leg]]

    def trial(self, rng: random.Random) -> Trial:
        # True offsets 1 ms to 10 s, either sign, log-uniform: every digit of a client's
        # arithmetic is exercised, and none can fit a fixed offset.
        offset = math.copysign(10 ** rng.uniform(-3, 1), rng.choice((-1.0, 1.0)))
        up, down = self.draw_legs(rng)
        return Trial(offset, up, down)


def _hop(rng: random.Random) -> tuple[Leg, Leg]:
    base = rng.uniform(20e-6, 100e-6)
    return (base, "normal", 5e-6, 0.0), (base, "normal", 5e-6, 0.0)


def _wan(kind: str) -> Callable[[random.Random], tuple[Leg, Leg]]:
    def draw(rng: random.Random) -> tuple[Leg, Leg]:
        base = rng.uniform(0.1e-3, 10e-3)
        jitter = rng.uniform(0.1e-3, 1e-3)
        return (base, kind, jitter, 0.01), (base, kind, jitter, 0.01)

    return draw


def _asymmetric(rng: random.Random) -> tuple[Leg, Leg]:
    return ((rng.uniform(0.05e-3, 5e-3), "exp", 20e-6, 0.0),
            (rng.uniform(0.05e-3, 5e-3), "exp", 20e-6, 0.0))


PATHS: dict[str, PathModel] = {p.name: p for p in (
    PathModel("hop", "hypervisor-like hop: 20-100 us each way (same both ways), normal jitter "
              "sigma 5 us", _hop),
    PathModel("wan", "jittery wide-area path: 0.1-10 ms each way, queueing jitter (exponential, "
              "mean 0.1-1 ms), 1% loss each way", _wan("exp")),
    PathModel("wan-normal", "the same with symmetric jitter (normal, sigma 0.1-1 ms): the hard "
              "case for any minimum-delay filter", _wan("normal")),
    PathModel("asym", "independent one-way delays: up and down each 0.05-5 ms, exponential "
              "jitter 20 us; every client errs by about (up - down) / 2", _asymmetric),
)}


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile by the nearest-rank rule (no interpolation: a reported figure is one that
    was measured)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


class Errors(Protocol):
    """One client's row in a ground-truth table: its errors against the truth, seconds."""

    name: str
    bound_name: str | None  # what the client calls the bound it reports
    errors: list[float]  # absolute
    signed: list[float]  # reported minus true offset
    covered: list[bool]  # did the reported bound hold the truth, per trial with a bound
    failures: int


Row = TypeVar("Row", bound=Errors)


def error_table(rows: Sequence[Row], width: int, digits: int, last: str,
                cell: Callable[[Row], str]) -> list[str]:
    """The markdown table both harnesses print: per client its median and 95th-percentile
    absolute error (us, `digits` decimals), the median as a multiple of bare ntplib's, the median
    signed error (a bias shows here), how often its bound held, one column of the harness's own
    (`last`, filled by `cell`), and its failures."""
    lines = [f"| {'client':<{width}} | median abs err us | p95 abs err us | x ntplib | median signed err us "
             f"| bound held | {last} | fails |",
             "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |"]
    base = next((r for r in rows if r.name.startswith("ntplib") and r.errors), None)
    base_median = statistics.median(base.errors) if base else 0.0
    for r in rows:
        if not r.errors:
            lines.append(f"| {r.name:<{width}} | - | - | - | - | - | - | {r.failures} |")
            continue
        med = statistics.median(r.errors)
        ratio = f"{med / base_median:.2f}" if base_median else "-"
        held = f"{sum(r.covered)}/{len(r.covered)} ({r.bound_name})" if r.covered else "no bound"
        lines.append(f"| {r.name:<{width}} | {med * 1e6:.{digits}f} | {quantile(r.errors, 0.95) * 1e6:.{digits}f} | "
                     f"{ratio} | {statistics.median(r.signed) * 1e6:+.{digits}f} | {held} | {cell(r)} | "
                     f"{r.failures} |")
    return lines
