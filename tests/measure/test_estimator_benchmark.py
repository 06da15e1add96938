"""The ground-truth benchmark's pure parts, and one short run of it (root: namespaces)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.paths import PATHS, quantile

REPO = Path(__file__).resolve().parents[2]


def test_quantile_is_a_measured_value_by_nearest_rank() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert quantile(values, 0.5) == 3.0
    assert quantile(values, 0.95) == 5.0
    assert quantile(values, 0.0) == 1.0
    with pytest.raises(ValueError):
        quantile([], 0.5)


def test_paths_draw_what_they_say() -> None:
    rng = random.Random(3)
    for _ in range(200):
        hop = PATHS["hop"].trial(rng)
        assert 1e-3 <= abs(hop.offset) <= 10
        assert 20e-6 <= hop.up[0] <= 100e-6 and hop.up == hop.down
        wan = PATHS["wan"].trial(rng)
        assert 0.1e-3 <= wan.up[0] <= 10e-3 and wan.up[1] == "exp" and wan.up[3] == 0.01
        asym = PATHS["asym"].trial(rng)
        assert asym.up[0] != asym.down[0]


@pytest.mark.root
def test_one_trial_of_the_benchmark_runs_and_every_bound_holds(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("needs root: network namespaces")
    raw = tmp_path / "raw.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.ground_truth", "--trials", "2", "--paths", "hop",
         "--json", str(raw)],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "path hop:" in done.stdout
    runs = json.loads(raw.read_text())["hop"]
    ours = runs["chronyctl6 check"]
    assert ours["failures"] == 0 and ours["covered"] == [True, True]
    assert runs["ntplib (1 request)"]["failures"] == 0 and len(runs["ntplib (1 request)"]["errors"]) == 2
