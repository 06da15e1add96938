"""The ground-truth benchmark's pure parts, and one short run of it (root: namespaces)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import clients
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
    python, _why = clients.package_python()
    assert f"Python clients (chronyctl6 check, check_timesync, ntplib, same burst) ran on {python} " in done.stdout
    runs = json.loads(raw.read_text())["hop"]
    for client in ("chronyctl6 check", "check_timesync"):
        assert runs[client]["failures"] == 0 and runs[client]["covered"] == [True, True], client
    assert runs["ntplib (1 request)"]["failures"] == 0 and len(runs["ntplib (1 request)"]["errors"]) == 2


def test_check_timesyncs_line_gives_its_offset_and_the_bound_on_it() -> None:
    line = ("NTP OK: Offset -0.0001234567891 secs, max error 0.0001534567891 secs|offset=-0.000123s;100.000000;"
            "200.000000; max_error=0.000153s;100.000000;200.000000;0.000000")
    offset, bound = clients.parse_timesync(line)
    assert offset == -0.0001234567891 and bound == pytest.approx(30e-6, abs=1e-15)
    assert clients.parse_timesync("NTP OK: Offset 5e-05 secs|offset=0.000050s") == (5e-05, None)
    with pytest.raises(ValueError):
        clients.parse_timesync("NTP CRITICAL: No response from NTP server")


def test_the_python_clients_run_as_the_console_scripts_on_the_one_interpreter() -> None:
    assert clients.package_python("/opt/python") == ("/opt/python", "--python")
    python, why = clients.package_python()
    # Debian's python3 whenever it can run a check from this checkout (scripts/setup makes it so)
    debian_ok = os.access(clients.DEBIAN_PYTHON, os.X_OK) and subprocess.run(
        [clients.DEBIAN_PYTHON, "-c", "import ntplib, chronyctl6.measure.check_timesync"], cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, check=False).returncode == 0
    assert (python == clients.DEBIAN_PYTHON) == debian_ok, why
    scripts = {"chronyctl6": "chronyctl6.__main__:main", "check_timesync": "chronyctl6.measure.check_timesync:main"}
    for name, entry in scripts.items():
        module, func = entry.split(":")
        script = clients.CHECK_SCRIPT if name == "chronyctl6" else clients.TIMESYNC_SCRIPT
        assert f"from {module} import {func}" in script
    assert clients.check_argv("py", "::1")[:3] == ["py", "-c", clients.CHECK_SCRIPT]
    assert clients.timesync_argv("py", "::1")[:5] == ["py", "-c", clients.TIMESYNC_SCRIPT, "-H", "::1"]


def test_both_harnesses_print_one_table_shape() -> None:
    """benchmarks.paths.error_table: the ratio to ntplib's median, the bound's record, the
    harness's own column, and a row with no result."""
    from benchmarks.clknetsim_truth import Row
    from benchmarks.paths import error_table

    rows = [Row("check", "its bound", [1e-6, 2e-6, 3e-6], [-1e-6, 2e-6, 3e-6], [], [True, True, False]),
            Row("ntplib (1 request)", None, [4e-6, 8e-6, 12e-6], [4e-6, -8e-6, 12e-6], failures=1),
            Row("lost", failures=5)]
    lines = error_table(rows, 8, 1, "extra", lambda r: f"<{r.name}>")
    assert lines[0].startswith("| client   | median abs err us |") and "| extra | fails |" in lines[0]
    assert lines[2] == "| check    | 2.0 | 3.0 | 0.25 | +2.0 | 2/3 (its bound) | <check> | 0 |"
    assert lines[3] == ("| ntplib (1 request) | 8.0 | 12.0 | 1.00 | +4.0 | no bound | "
                        "<ntplib (1 request)> | 1 |")
    assert lines[4] == "| lost     | - | - | - | - | - | - | 5 |"


def test_a_responder_that_never_speaks_stops_the_harness_with_a_reason() -> None:
    """The start-up handshake waits for each line with a deadline: a responder stuck before it
    says anything is an error, not a harness that waits for ever."""
    from benchmarks.ground_truth import Server

    server = Server.__new__(Server)  # the handshake alone: no namespace, no responder module
    server.proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        with pytest.raises(RuntimeError, match=r"said nothing within 0\.2 s"):
            server._expect("netns", timeout=0.2)
    finally:
        server.close()
    assert server.proc.returncode == 0  # closing its stdin ended it: close() waited for it
