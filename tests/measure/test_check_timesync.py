"""`check_timesync` beside the real check_ntp_time (Debian's monitoring-plugins-basic), case by
case against the same loopback responders: the same exit status for the same input. Then what
check_ntp_time lacks (stratum and bound thresholds) and the plugin's own start-up.

Runs inside a fresh network namespace (the suite is started under `unshare -n`).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from chronyctl6.measure import check_timesync
from tests.conftest import require
from tests.helpers import START_UP_NEVER, modules_run_imports
from tests.ntp_fixtures import Behaviour, Responder, ServerState, _tamper, honest, kiss, require_isolated_netns, silent

REPO = Path(__file__).resolve().parents[2]
CHECK_NTP_TIME = "/usr/lib/nagios/plugins/check_ntp_time"


@pytest.fixture(autouse=True)
def _netns() -> None:
    require_isolated_netns()


@pytest.fixture
def plugin() -> str:
    require(os.access(CHECK_NTP_TIME, os.X_OK),
            f"{CHECK_NTP_TIME} is missing (apt-get install monitoring-plugins-basic)")
    return CHECK_NTP_TIME


def real(plugin: str, args: list[str]) -> tuple[int, str]:
    done = subprocess.run([plugin, *args], capture_output=True, text=True, timeout=30, check=False)
    return done.returncode, done.stdout


def ours(args: list[str]) -> tuple[int, str]:
    code, out, _err = check_timesync.run(args)
    return code, out


@pytest.fixture
def responder(request: pytest.FixtureRequest) -> Iterator[Responder]:
    behaviour, state, host = request.param
    with Responder(behaviour, state, host=host) as r:
        yield r


def server(behaviour: Behaviour = honest, offset: float = 0.0, host: str = "::1", **state: object
           ) -> tuple[Behaviour, ServerState, str]:
    return behaviour, ServerState(offset=offset, **state), host  # type: ignore[arg-type]


# (responder, arguments after -H/-p, the exit status both must give): the cases first.
CASES: dict[str, tuple[tuple[Behaviour, ServerState, str], list[str], int]] = {
    "a good server": (server(offset=0.002), [], 0),
    "a good server over IPv4": (server(offset=-0.002, host="127.0.0.1"), [], 0),
    "an offset past -w": (server(offset=5.0), ["-w", "1", "-c", "10"], 1),
    "an offset past -c": (server(offset=-5.0), ["-w", "1", "-c", "2"], 2),
    "an offset past the default 60 s": (server(offset=75.0), [], 1),
    "an offset past the default 120 s": (server(offset=-130.0), [], 2),
    "-q does not soften a real offset": (server(offset=5.0), ["-q", "-w", "1", "-c", "2"], 2),
    "a kiss-of-death (RATE)": (server(kiss("RATE")), [], 2),
    "a kiss-of-death (DENY) with -q": (server(kiss("DENY")), ["-q"], 3),
    "leap 3 (not synchronised)": (server(_tamper(leap=3)), [], 2),
    "leap 3 with -q": (server(_tamper(leap=3)), ["-q"], 3),
    "range 10: (alert below 10)": (server(offset=5.0), ["-w", "10:"], 1),
    "range @4:6 (alert inside)": (server(offset=5.0), ["-w", "@4:6"], 1),
    "range ~:3 (alert above 3)": (server(offset=5.0), ["-c", "~:3"], 2),
    "range @4:6 outside": (server(offset=7.0), ["-w", "@4:6"], 0),
    "a range that is only a word (strtod: 0)": (server(offset=0.5), ["-c", "abc"], 2),
    "a range with start above end": (server(), ["-c", "5:1"], 3),
    "-o moves the offset as check_ntp_time does": (server(offset=5.0), ["-o", "5", "-w", "8"], 1),
    "-o the other way": (server(offset=5.0), ["-o", "-5", "-w", "1"], 0),
    "long options, abbreviated": (server(offset=5.0), ["--warn", "1", "--critical=10"], 1),
    "-6 with an IPv4 address": (server(host="127.0.0.1"), ["-6"], 3),
    "-4 with an IPv6 address": (server(), ["-4"], 3),
    "a port that is no service": (server(), ["-p", "nonesuch"], 3),
}


@pytest.mark.parametrize("responder,args,expected", CASES.values(), ids=CASES.keys(), indirect=["responder"])
def test_exit_status_as_check_ntp_time(plugin: str, responder: Responder, args: list[str], expected: int) -> None:
    argv = ["-H", responder.host, "-p", str(responder.port), *args]
    theirs, their_line = real(plugin, argv)
    mine, my_line = ours(argv)
    assert (mine, theirs) == (expected, expected), (my_line, their_line)
    # The same first words: NTP OK/WARNING/CRITICAL/UNKNOWN, or the same error.
    assert my_line.split(":")[0].split(" - ")[0] == their_line.split(":")[0].split(" - ")[0]


@pytest.mark.parametrize("quiet", [[], ["-q"]], ids=["", "-q"])
@pytest.mark.parametrize("kind", ["silent", "port unreachable"])
def test_no_response_is_critical_even_with_q(plugin: str, kind: str, quiet: list[str]) -> None:
    """check_ntp_time dies CRITICAL when nothing came back: -q softens only "Offset unknown"."""
    def both(port: int) -> list[tuple[int, str]]:
        argv = ["-H", "::1", "-p", str(port), "-t", "2", *quiet]
        return [real(plugin, argv), ours(argv)]

    if kind == "silent":
        with Responder(silent) as r:
            results = both(r.port)
    else:
        with Responder(silent) as r:
            closed = r.port  # bound while the responder lived: nothing listens there now
        results = both(closed)
    assert [code for code, _ in results] == [2, 2], results
    # check_ntp_time says it one of two ways, as its measuring loop or its alarm ends first.
    assert results[0][1].startswith(("NTP CRITICAL: No response from NTP server", "CRITICAL - Socket timeout"))
    assert results[1][1] == "NTP CRITICAL: No response from NTP server"


@pytest.mark.parametrize("args", [[], ["-H"], ["-x", "-H", "::1"], ["-h"], ["--version"], ["-H", "bad name"]],
                         ids=["nothing", "-H without value", "an unknown option", "-h", "--version", "bad name"])
def test_usage_and_information_exit_as_check_ntp_time(plugin: str, args: list[str]) -> None:
    theirs, _ = real(plugin, args)
    mine, _ = ours(args)
    assert mine == theirs == 3


def test_perfdata_keeps_check_ntp_time_offset_item_first() -> None:
    with Responder(state=ServerState(offset=0.25)) as r:
        code, line = ours(["-H", "::1", "-p", str(r.port), "-w", "0.5", "-c", "1"])
    assert code == 0
    head, perf = line.split("|")
    assert head.startswith("NTP OK: Offset ") and head.endswith(" secs")
    items = perf.split()
    # The truth (0.25 s) lies within the bound the plugin states (max_error = |offset| + bound): a
    # busy machine delays the responder's thread, so a fixed tolerance would race the scheduler.
    offset = float(head.split()[3])
    max_error = float(items[1].split("=", 1)[1].split("s", 1)[0])
    assert abs(offset - 0.25) <= max_error - abs(offset) + 1e-6, (offset, max_error)
    assert items[0].startswith("offset=0.2") and items[0].endswith("s;0.500000;1.000000;")
    assert items[1].startswith("max_error=") and items[2] == "stratum=2;;;0;16"


# ---- beyond check_ntp_time: stratum and bound thresholds --------------------------------------


@pytest.mark.parametrize(
    "state,args,expected",
    [
        (ServerState(stratum=4), ["-W", "3", "-C", "5"], 1),
        (ServerState(stratum=6), ["-W", "3", "-C", "5"], 2),
        (ServerState(stratum=1), ["-W", "3", "-C", "5"], 0),
        (ServerState(root_dispersion=0.4), ["--bound-warning", "0.1", "--bound-critical", "1"], 1),
        (ServerState(root_dispersion=1.5), ["--bound-warning", "0.1", "--bound-critical", "1"], 2),
        (ServerState(), ["--bound-warning", "0.1", "--bound-critical", "1"], 0),
        (ServerState(), ["--bound-critical", "5:1"], 3),
    ],
    ids=["stratum warning", "stratum critical", "stratum ok", "bound warning", "bound critical",
         "bound ok", "bad bound range"],
)
def test_stratum_and_bound_thresholds(state: ServerState, args: list[str], expected: int) -> None:
    with Responder(state=state) as r:
        code, line = ours(["-H", "::1", "-p", str(r.port), *args])
    assert code == expected, line


def test_bound_is_reported_with_its_thresholds() -> None:
    with Responder(state=ServerState(root_dispersion=0.4)) as r:
        code, line = ours(["-H", "::1", "-p", str(r.port), "--bound-warning", "0.1"])
    assert code == 1 and ", max error 0.4" in line.split("|")[0]
    assert any(item.startswith("max_error=0.4") and ";0.100000;" in item for item in line.split("|")[1].split())


def test_verbose_says_what_was_measured() -> None:
    with Responder(state=ServerState(offset=0.001)) as r:
        code, out = ours(["-H", "::1", "-p", str(r.port), "-v"])
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("selected ::1 port")
    # All six sent; a reply later than the straggler cut-off (twice the best delay) is left out on a
    # loaded machine, so "6 valid" would race that timer: every reply that came is valid.
    assert re.search(r"6 sent, [1-6] valid;", lines[1]) and lines[-1].startswith("NTP OK"), lines


# ---- the console script: its own process, and what it imports --------------------------------


def run_script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=30, check=False,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def test_console_script_exits_with_the_verdict() -> None:
    with Responder(state=ServerState(offset=5.0)) as r:
        done = run_script("-m", "chronyctl6.measure.check_timesync", "-H", "::1", "-p", str(r.port),
                          "-w", "1", "-c", "10")
    assert done.returncode == 1 and done.stdout.startswith("NTP WARNING: Offset 5.0"), done


def test_pyproject_installs_the_console_script() -> None:
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["check_timesync"] == "chronyctl6.measure.check_timesync:main"


HEAVY = ("typer", "click", "json", "psutil", "jinja2", "subprocess", "chronyctl6.effects",
         "chronyctl6.configure", "chronyctl6.diagnose", "chronyctl6.cli", "argparse")


def imported_by(args: list[str]) -> set[str]:
    """Every module a run of the plugin imported, from python -X importtime."""
    done = run_script("-X", "importtime", "-m", "chronyctl6.measure.check_timesync", *args)
    return {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}


def test_start_up_imports_only_what_a_measurement_needs() -> None:
    with Responder(state=ServerState(offset=0.001)) as r:
        modules = imported_by(["-H", "::1", "-p", str(r.port)])
    assert "chronyctl6.measure.exchange" in modules  # it did measure
    assert not {m for m in modules if m.split(".")[0] in HEAVY or m.startswith(HEAVY)}, sorted(modules)


@pytest.mark.parametrize("args", [[], ["-v", "--bound-warning", "1", "-W", "2"]])
def test_the_console_script_imports_no_dataclasses_inspect_or_typing(args: list[str]) -> None:
    """As installed (check_timesync = chronyctl6.measure.check_timesync:main), under -S so the
    interpreter's own site hooks hide nothing (-X importtime above counts what site imported too)."""
    with Responder(state=ServerState(offset=0.001)) as r:
        loaded, done = modules_run_imports("chronyctl6.measure.check_timesync", "main",
                                           ["check_timesync", "-H", "::1", "-p", str(r.port), *args])
    assert done.returncode == 0 and done.stdout.splitlines()[-1].startswith("NTP OK"), done
    assert not loaded & set(START_UP_NEVER), sorted(loaded & set(START_UP_NEVER))
    assert "chronyctl6.measure.exchange" in loaded
