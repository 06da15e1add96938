"""The clknetsim ground-truth harness's pure parts: the truth it writes into the simulation's
configuration, the path expressions, and how it reads a steered clock's true error back. (The
simulation itself needs a clknetsim this repository does not build: benchmarks/README.md.)"""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from benchmarks import clknetsim_truth as sim
from benchmarks.paths import PATHS, Trial


def test_every_client_starts_the_truth_behind_the_server(tmp_path: Path) -> None:
    trial = Trial(0.125, (50e-6, "normal", 5e-6, 0.0), (70e-6, "normal", 5e-6, 0.0))
    nodes = sim.nodes("python3", tmp_path)
    assert (nodes[sim.STEERED_NODE - 1].name, nodes[sim.QUERY_NODE - 1].name) == ("steering chronyd", "chronyc")
    assert f"fc00::123:{sim.STEERED_NODE}" in nodes[sim.QUERY_NODE - 1].argv  # chronyc asks the steered node
    sim.write_configs(tmp_path, trial, nodes)
    conf = dict(line.split(" = ", 1) for line in (tmp_path / "conf").read_text().splitlines())
    assert conf["node1_offset"] == "0" and conf["node1_freq"] == "0"
    for number in range(2, len(nodes) + 1):
        if number == sim.QUERY_NODE:  # chronyc reads true time, over a fixed short hop
            assert conf[f"node{number}_offset"] == "0" and f"node{number}_delay1" not in conf
            continue
        assert float(conf[f"node{number}_offset"]) == -0.125  # server - client = the truth
        assert conf[f"node{number}_freq"] == "0"
        assert conf[f"node{number}_delay1"] == sim.leg_expr(trial.up)
        assert conf[f"node1_delay{number}"] == sim.leg_expr(trial.down)
    assert "maxclockerror 50" in (tmp_path / "client.conf").read_text()


def test_leg_expressions_say_what_the_paths_draw() -> None:
    assert sim.leg_expr((40e-6, "normal", 5e-6, 0.0)) == "(max 1e-7 (+ 4e-05 (* 5e-06 (normal))))"
    assert sim.leg_expr((1e-3, "exp", 2e-4, 0.0)) == "(+ 0.001 (* 0.0002 (exponential)))"
    lossy = sim.leg_expr((1e-3, "exp", 2e-4, 0.01))
    # Dropped (negative) exactly when a fresh exponential exceeds -ln(0.01): probability 1 %.
    assert lossy.startswith("(+ (+ 0.001") and repr(math.log(0.01)) in lossy and "(* -1000 " in lossy
    for name in PATHS:
        trial = PATHS[name].trial(random.Random(name))
        for leg in (trial.up, trial.down):
            expr = sim.leg_expr(leg)
            assert expr.count("(") == expr.count(")")


def test_the_steered_clock_error_is_read_at_the_query_and_signed_as_check_signs() -> None:
    # clknetsim logs clock minus true time; a clock 2 us ahead at t = 600.00 s and 4 us ahead at
    # 600.01 s is 3 us ahead at 600.005 s: an offset of -3 us as chronyctl6 signs it.
    rate = sim.OFFSET_RATE
    lines = ["\t".join(["0.0"] * (sim.STEERED_NODE - 1) + ["0.0"]) for _ in range(int(600 * rate) + 5)]
    lines[int(600 * rate) - 1] = "\t".join(["0.0"] * (sim.STEERED_NODE - 1) + ["0.000002"])
    lines[int(600 * rate)] = "\t".join(["0.0"] * (sim.STEERED_NODE - 1) + ["0.000004"])
    assert sim.steered_truth("\n".join(lines), 600.005) == pytest.approx(-3e-6)
