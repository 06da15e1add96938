"""`chronyctl6 check` end to end against loopback NTP servers: exit codes, the four output
formats (parsed by real parsers), the textfile, and what the command imports at start-up.

Runs inside a fresh network namespace (the suite is started under `unshare -n`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from chronyctl6.cli import app
from tests.contract import validate
from tests.helpers import cli_runner
from tests.ntp_fixtures import HOSTILE, Responder, ServerState, require_isolated_netns, silent

REPO = Path(__file__).resolve().parents[2]
runner = cli_runner()


@pytest.fixture(autouse=True)
def _netns() -> None:
    require_isolated_netns()


def check(*args: str) -> tuple[int, str]:
    """The command in-process. chronyd is left out unless a test names its socket: whatever
    chronyd this machine runs must not sway these verdicts."""
    hermetic = [] if "--chronyd-socket" in args else ["--no-chronyd"]
    result = runner.invoke(app, ["check", *hermetic, *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout


def check_json(r: Responder, *args: str) -> tuple[int, dict[str, Any]]:
    code, out = check("--server", r.host, "--port", str(r.port), "-o", "json", *args)
    return code, data(code, out)


def data(code: int, out: str) -> dict[str, Any]:
    """check's report out of the chronyctl6/v1 envelope (validated), with its verdict."""
    doc = validate(json.loads(out))
    assert doc["command"] == "check" and doc["exit_code"] == code
    return {**doc["data"], "status": doc["status"].upper(), "exit_code": doc["exit_code"]}


def metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge" and family.documentation
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
            assert s.timestamp is None  # textfile collector: no timestamps
    return found


# ---- verdicts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "warn", "crit", "status", "code"),
    [
        (0.25, "0.5", "1", "OK", 0),
        (-0.25, "0.5", "1", "OK", 0),
        (0.25, "0.1", "1", "WARNING", 1),
        (-0.25, "0.1", "1", "WARNING", 1),
        (0.25, "0.05", "0.2", "CRITICAL", 2),
        (-0.25, "0.05", "0.2", "CRITICAL", 2),
        (0.0, "0.1", "1", "OK", 0),
    ],
)
def test_offset_and_thresholds_map_to_exit_codes(
    offset: float, warn: str, crit: str, status: str, code: int
) -> None:
    with Responder(state=ServerState(offset=offset)) as r:
        exit_code, out = check_json(r, "--warn", warn, "--crit", crit, "--samples", "3")
    assert exit_code == code and out["status"] == status and out["exit_code"] == code
    assert out["verdict"] == status  # the envelope's status word, as Nagios spells it
    assert isinstance(out["offset_seconds"], float)
    assert isinstance(out["error_bound_seconds"], float)
    assert abs(out["offset_seconds"] - offset) <= out["error_bound_seconds"] + 2e-6
    assert out["max_error_seconds"] == pytest.approx(abs(out["offset_seconds"])
                                                     + out["error_bound_seconds"])
    assert out["root_distance_seconds"] == pytest.approx(0.000125 / 2 + 0.00025, abs=1e-4)
    assert out["server"] == "::1" and out["stratum"] == 2 and out["leap"] == 0
    assert out["ref_id"] == "A9FEA97B" and isinstance(out["delay_seconds"], float)
    # Replies later than twice the best delay are not waited for (a loaded machine makes some).
    assert out["sent"] == 3 and 1 <= out["valid"] <= 3 and out["rejected"] == {}
    samples = out["samples"]
    assert isinstance(samples, list) and len(samples) == out["valid"]
    assert all(isinstance(s["offset_seconds"], float) and s["delay_seconds"] >= 0
               for s in samples)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_server_is_never_ok(name: str) -> None:
    behaviour, reason = HOSTILE[name]
    with Responder(behaviour, ServerState(offset=0.0)) as r:
        # Deadlines long enough for the responder thread to answer on a loaded machine (a reply that
        # matches no request is waited for until the deadline).
        code, out = check_json(r, "--samples", "2", "--timeout", "1.5")
        _, line = check("--server", "::1", "--port", str(r.port), "-o", "nagios",
                        "--samples", "1", "--timeout", "1.0")
    assert code == 3 and out["status"] == out["verdict"] == "UNKNOWN"
    assert out["offset_seconds"] is None
    assert out["rejected"].get(reason, 0) >= 1
    assert line.startswith("NTP UNKNOWN: ") and reason in line and "|" not in line


def test_no_reply_is_unknown_within_the_deadline() -> None:
    with Responder(silent) as r:
        start = time.monotonic()
        code, out = check("--server", "::1", "--port", str(r.port), "--timeout", "0.5")
        elapsed = time.monotonic() - start
    assert code == 3 and out.startswith("UNKNOWN: no reply from ::1")
    assert elapsed < 0.5 + 1.5  # the deadline holds (bound generous for a loaded machine)


def test_best_of_several_servers_decides_and_the_dead_one_is_noted() -> None:
    with Responder(state=ServerState(offset=0.01)) as good, Responder(silent) as dead:
        code, out = check("--server", "::1", "--port", str(good.port), "--server", "127.0.0.1",
                          "--samples", "2", "--timeout", "0.5", "-o", "json")
    report = data(code, out)
    # Both names share the port: 127.0.0.1 has no listener there, ::1 answers.
    assert code == 0 and report["server"] == "::1"
    assert [s["address"] for s in report["servers"]] == ["::1", "127.0.0.1"]
    assert report["servers"][1]["valid"] == 0
    del dead


def test_default_server_without_an_ipv6_route_points_at_the_ipv4_endpoint() -> None:
    code, out = check()
    assert code == 3
    assert "fd00:ec2::123" in out and "Network is unreachable" in out
    assert "--server 169.254.169.123" in out


# ---- bad arguments are UNKNOWN (3), never click's 2 -----------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--samples", "0"],
        ["--samples", "9"],
        ["--samples", "many"],
        ["--warn", "2", "--crit", "1"],
        ["--warn", "0"],
        ["--timeout", "0"],
        ["-o", "xml"],
        ["--bogus"],
        ["--port", "0"],
        ["--textfile", "metrics.txt"],
    ],
)
def test_bad_arguments_exit_3(args: list[str]) -> None:
    code, _ = check("--server", "::1", "--port", "9", *args) if "--port" not in args else check(
        "--server", "::1", *args)
    assert code == 3


# ---- formats --------------------------------------------------------------------------------


def test_nagios_line_with_perfdata() -> None:
    with Responder(state=ServerState(offset=-0.05)) as r:
        code, out = check("--server", "::1", "--port", str(r.port), "-o", "nagios",
                          "--warn", "0.1", "--crit", "1")
    assert code == 0 and out.count("\n") == 1
    m = re.fullmatch(
        r"NTP OK: Offset (-\d+\.\d{6}) secs, max error \d+\.\d{6} secs\|"
        r"offset=(-\d+\.\d+)s;;;; max_error=\d+\.\d+s;0\.1;1;0; delay=\d+\.\d+s;;;0; "
        r"root_distance=\d+\.\d+s;;;0; root_delay=\d+\.\d+s;;;0; "
        r"root_dispersion=\d+\.\d+s;;;0; stratum=2;;;0;16\n",
        out,
    )
    assert m is not None, out
    assert abs(float(m.group(1)) - float(m.group(2))) < 1e-6
    assert abs(float(m.group(1)) + 0.05) < 0.01


def test_prometheus_output_parses_and_says_what_json_says() -> None:
    with Responder(state=ServerState(offset=0.125)) as r:
        code, text = check("--server", "::1", "--port", str(r.port), "-o", "prometheus")
    assert code == 1
    found = metrics(text)
    server = (("server", "::1"),)
    assert found[("chronyctl6_check_status", ())] == 1
    assert found[("chronyctl6_check_up", server)] == 1
    assert abs(found[("chronyctl6_check_offset_seconds", server)] - 0.125) < 0.01
    assert found[("chronyctl6_check_stratum", server)] == 2
    assert found[("chronyctl6_check_requests_sent", server)] == 6
    assert found[("chronyctl6_check_threshold_seconds", (("level", "warning"),))] == 0.1
    assert found[("chronyctl6_check_root_delay_seconds", server)] == pytest.approx(0.000125, abs=1e-4)
    assert found[("chronyctl6_check_root_dispersion_seconds", server)] == pytest.approx(0.00025, abs=1e-4)
    assert found[("chronyctl6_check_max_error_seconds", server)] >= 0.125
    # check() passes --no-chronyd: then nothing about chronyd at all.
    assert not any("chronyd" in name or name.startswith("chrony_") for name, _ in found)


def test_prometheus_counts_rejections_by_reason() -> None:
    behaviour, _ = HOSTILE["leap 3"]
    with Responder(behaviour) as r:
        code, text = check("--server", "::1", "--port", str(r.port), "-o", "prometheus",
                           "--samples", "2", "--timeout", "0.5")
    found = metrics(text)
    assert code == 3 and found[("chronyctl6_check_status", ())] == 3
    assert found[("chronyctl6_check_up", (("server", "::1"),))] == 0
    key = ("chronyctl6_check_replies_rejected", (("reason", "unsynchronised"), ("server", "::1")))
    assert found[key] >= 1
    assert not any(name == "chronyctl6_check_offset_seconds" for name, _ in found)


def test_textfile_is_written_atomically(tmp_path: Path) -> None:
    target = tmp_path / "chronyctl6.prom"
    target.write_text("old\n")
    with Responder(state=ServerState(offset=0.001)) as r:
        code, out = check("--server", "::1", "--port", str(r.port), "--textfile", str(target))
    assert code == 0 and out.startswith("OK: ")
    found = metrics(target.read_text())
    assert found[("chronyctl6_check_status", ())] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chronyctl6.prom"]  # no temp left
    assert target.stat().st_mode & 0o777 == 0o644


def test_textfile_is_written_when_unknown_too(tmp_path: Path) -> None:
    target = tmp_path / "ntp.prom"
    with Responder(silent) as r:
        code, _ = check("--server", "::1", "--port", str(r.port), "--timeout", "0.3",
                        "--textfile", str(target))
    assert code == 3 and metrics(target.read_text())[("chronyctl6_check_up", (("server", "::1"),))] == 0


def test_text_output_says_which_way_the_clock_is_off() -> None:
    with Responder(state=ServerState(offset=-0.02)) as r:
        code, out = check("--server", "::1", "--port", str(r.port))
    assert code == 0 and out.startswith("OK: offset -0.0")
    # Every reply that came in time is valid (one after the straggler cut-off may be left out).
    assert "this clock is ahead of the server" in out and re.search(r"6 sent, [1-6] valid, 0 rejected", out)


def test_help_says_what_the_sign_means() -> None:
    result = runner.invoke(app, ["check", "--help"])
    assert result.exit_code == 0
    assert "positive when this clock is BEHIND" in " ".join(result.stdout.split())


# ---- the real command, as monitoring runs it -------------------------------------------------


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chronyctl6", *args], cwd=REPO, capture_output=True, text=True,
        timeout=30, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})}, check=False,
    )


def test_exit_codes_of_the_real_process() -> None:
    with Responder(state=ServerState(offset=0.3)) as r:
        warn = run_cli("check", "--no-chronyd", "--server", "::1", "--port", str(r.port),
                       "-o", "nagios")
        crit = run_cli("check", "--no-chronyd", "--server", "::1", "--port", str(r.port),
                       "--crit", "0.2", "-o", "nagios")
    bad = run_cli("check", "--samples", "0")
    assert (warn.returncode, crit.returncode, bad.returncode) == (1, 2, 3)
    for done, word in ((warn, "WARNING"), (crit, "CRITICAL")):
        m = re.match(rf"NTP {word}: Offset (\d+\.\d+) secs, max error [0-9.]+ secs\|", done.stdout)
        assert m is not None and abs(float(m.group(1)) - 0.3) < 0.01, done.stdout


def test_check_imports_nothing_it_does_not_need() -> None:
    probe = (
        "import sys\n"
        "from chronyctl6.__main__ import main\n"
        "sys.argv = ['chronyctl6', 'check', '--server', '127.0.0.1', '--port', '9', '--no-chronyd',"
        " '--timeout', '0.3', '-o', 'json']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                          text=True, timeout=30, check=False)
    loaded = set(done.stderr.split())
    assert "chronyctl6.measure.exchange" in loaded  # the probe did run a check
    for heavy in ("jinja2", "psutil", "chronyctl6.configure.render", "chronyctl6.configure.plan",
                  "chronyctl6.configure.apply"):
        assert heavy not in loaded, heavy


def test_a_server_that_does_not_resolve_is_unknown_with_a_hint() -> None:
    code, out = check("--server", "fd00:ec2::123::1", "-o", "json")
    report = data(code, out)
    assert code == 3 and report["status"] == report["verdict"] == "UNKNOWN"
    assert "cannot resolve" in report["summary"] and "--server" in report["hint"]


def test_a_bad_name_does_not_hide_a_good_server() -> None:
    with Responder(state=ServerState(offset=0.002)) as r:
        code, out = check("--server", "fd00:ec2::123::1", "--server", "::1",
                          "--port", str(r.port))
    assert code == 0 and out.startswith("OK: ") and "cannot resolve" in out


# ---- every outcome is one line for Nagios; thresholds must be finite ------------------------


@pytest.mark.parametrize("args", [
    ["--crit", "1e999"], ["--crit", "inf"], ["--crit", "nan"], ["--warn", "nan"],
    ["--warn", "-0.1"], ["--warn", "-1", "--crit", "-0.5"], ["-w", "-inf"], ["-c", "Infinity"],
])
@pytest.mark.parametrize("output", ["nagios", "json", "text", "prometheus"])
def test_non_finite_or_negative_thresholds_are_unknown(args: list[str], output: str) -> None:
    code, out = check("--server", "::1", "--port", "9", "-o", output, *args)
    assert code == 3
    if output == "nagios":
        assert out.count("\n") == 1 and out.startswith("NTP UNKNOWN: thresholds "), out
    if output == "json":
        assert "Infinity" not in out and "NaN" not in out
        doc = validate(json.loads(out))  # bad arguments: the envelope's "usage", exit 3
        assert (doc["status"], doc["exit_code"], doc["data"]) == ("usage", 3, {})
        assert doc["messages"][0]["level"] == "error"
        assert doc["messages"][0]["text"].startswith("thresholds ")


def test_plugin_aliases_do_what_the_long_options_do() -> None:
    with Responder(state=ServerState(offset=0.3)) as r:
        short = check("-H", "::1", "--port", str(r.port), "-w", "0.1", "-c", "0.2", "-t", "1",
                      "-o", "nagios")
        long = check("--server", "::1", "--port", str(r.port), "--warn", "0.1", "--crit", "0.2",
                     "--timeout", "1", "-o", "nagios")
    assert short[0] == long[0] == 2
    for _, line in (short, long):
        assert line.startswith("NTP CRITICAL: ") and "max_error=" in line and ";0.1;0.2;0;" in line


@pytest.mark.parametrize("where", ["missing/dir/chronyctl6.prom", "file/chronyctl6.prom",
                                   "readonly/chronyctl6.prom"])
@pytest.mark.parametrize("output", ["nagios", "json"])
def test_an_unwritable_textfile_is_one_unknown_line_not_a_traceback(
        tmp_path: Path, where: str, output: str) -> None:
    (tmp_path / "file").write_text("a file, not a directory\n")
    (tmp_path / "readonly").mkdir()
    (tmp_path / "readonly").chmod(0o500)
    path = tmp_path / where
    with Responder(state=ServerState(offset=0.001)) as r:
        done = run_cli("check", "--no-chronyd", "--server", "::1", "--port", str(r.port),
                       "-o", output, "--textfile", str(path), env={"HOME": str(tmp_path)})
    assert "Traceback" not in done.stderr
    if os.geteuid() == 0 and where.startswith("readonly"):
        assert done.returncode == 0  # root writes anyway: nothing to refuse
        return
    assert done.returncode == 3, done.stdout + done.stderr
    if output == "nagios":
        assert done.stdout.count("\n") == 1
        assert done.stdout.startswith(f"NTP UNKNOWN: cannot write the metrics to {path}")
        assert "the measurement: OK" in done.stdout
    else:
        doc = validate(json.loads(done.stdout))  # UNKNOWN, and the measurement kept
        assert (doc["status"], doc["exit_code"]) == ("unknown", 3)
        assert doc["data"]["verdict"] == "OK" and doc["data"]["offset_seconds"] is not None
        assert doc["messages"][0]["level"] == "error"
        assert doc["messages"][0]["text"].startswith(f"cannot write the metrics to {path}")
    assert "cannot write the metrics" in done.stderr


def test_the_textfile_directory_comes_from_the_environment(tmp_path: Path) -> None:
    with Responder(state=ServerState(offset=0.001)) as r:
        done = run_cli("check", "--no-chronyd", "--server", "::1", "--port", str(r.port),
                       "-o", "nagios", env={"CHRONYCTL6_TEXTFILE_DIR": str(tmp_path)})
        explicit = tmp_path / "other.prom"
        run_cli("check", "--no-chronyd", "--server", "::1", "--port", str(r.port),
                "--textfile", str(explicit), env={"CHRONYCTL6_TEXTFILE_DIR": str(tmp_path)})
    assert done.returncode == 0 and done.stdout.startswith("NTP OK: ")
    found = metrics((tmp_path / "chronyctl6.prom").read_text())
    assert found[("chronyctl6_check_status", ())] == 0
    assert metrics(explicit.read_text())[("chronyctl6_check_status", ())] == 0


@pytest.mark.parametrize("bad", ["a" * 300, "ntp\texample", "x" * 70 + ".example",
                                 "ntp.example\u2028", "\x1b[2J"])
def test_an_invalid_server_is_refused_alone(bad: str) -> None:
    with Responder(state=ServerState(offset=0.002)) as r:
        code, out = check("--server", bad, "--server", "::1", "--port", str(r.port),
                          "-o", "nagios")
    assert code == 0 and out.startswith("NTP OK: ") and out.count("\n") == 1
    assert "\x1b" not in out and "\u2028" not in out and "\t" not in out
    code, out = check("--server", bad, "-o", "json")
    report = data(code, out)
    assert code == 3 and report["status"] == report["verdict"] == "UNKNOWN"
    assert "NTP server" in report["summary"] and len(report["summary"]) < 200


@pytest.mark.parametrize("output", ["text", "json", "nagios", "prometheus"])
def test_hostile_bytes_on_the_command_line_never_reach_the_output_raw(
        tmp_path: Path, output: str) -> None:
    """A server name and a textfile path with an escape sequence and bytes that are not UTF-8,
    as a real argv carries them: no traceback, no raw escape in any output."""
    bad_server = b"\x1b]0;owned\x07\xff\xfe.example"
    bad_path = str(tmp_path).encode() + b"/missing\x1b[2J\xff/x.prom"
    with Responder(state=ServerState(offset=0.001)) as r:
        done = subprocess.run(
            [sys.executable.encode(), b"-m", b"chronyctl6", b"check", b"--no-chronyd",
             b"--server", bad_server, b"--server", b"::1", b"--port", str(r.port).encode(),
             b"-o", output.encode(), b"--textfile", bad_path],
            cwd=REPO, capture_output=True, timeout=30, check=False,
            env={**os.environ, "PYTHONPATH": str(REPO), "LC_ALL": "C.UTF-8"})
    assert b"Traceback" not in done.stderr, done.stderr
    assert done.returncode == 3  # the textfile cannot be written
    for stream in (done.stdout, done.stderr):
        assert b"\x1b" not in stream and b"\x07" not in stream
        stream.decode("utf-8")  # whatever came in, what goes out is UTF-8
    if output == "nagios":
        assert done.stdout.count(b"\n") == 1 and done.stdout.startswith(b"NTP UNKNOWN: ")
