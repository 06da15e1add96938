"""`check` against a real chronyd: serving NTP on loopback (as Time Sync would), and as the
local daemon whose view `check` reports and compares. chronyd runs with -x (never touches
the clock), as root without a privilege drop, with every path in a temp dir, and -t as a
backstop so it can never outlive the test."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chronyctl6.cli import app
from chronyctl6.effects import commands
from chronyctl6.measure import exchange
from tests import chronyd_process
from tests.conftest import require
from tests.contract import validate
from tests.helpers import START_UP_NEVER, cli_runner, modules_run_imports, wait_for
from tests.ntp_fixtures import Responder, ServerState, require_isolated_netns

# Runs a real chronyd (its command socket under /run): root.
pytestmark = pytest.mark.root


@dataclass
class Chronyd:
    port: int
    socket: str
    log: Path


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.bind(("::1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def chronyd(tmp_path: Path) -> Iterator[Chronyd]:
    require_isolated_netns()
    require(commands.which("chronyd") is not None, "chronyd is not installed (apt-get install chrony)")
    tmp_path.chmod(0o700)  # chronyd refuses a command socket in a world-accessible directory
    port = free_udp_port()
    conf = tmp_path / "chronyd.conf"
    sock = tmp_path / "chronyd.sock"
    conf.write_text(
        "local stratum 3\n"
        "allow\n"
        f"port {port}\n"
        "bindaddress ::1\n"
        "cmdport 0\n"
        f"bindcmdaddress {sock}\n"
        f"pidfile {tmp_path / 'chronyd.pid'}\n"
    )
    log = tmp_path / "chronyd.log"
    with chronyd_process.running(conf, ttl=120, log=log) as proc:
        wait_for(lambda: sock.exists() and _serves(port), what="chronyd serving NTP on ::1", timeout=30,
                 alive=lambda: proc.poll() is None, context=lambda: chronyd_process.log_of(proc, log))
        yield Chronyd(port, str(sock), log)


def _serves(port: int) -> bool:
    m = exchange.measure(exchange.resolve("::1", port), samples=1, timeout=0.3)[0]
    return m.best is not None


def check(*args: str) -> tuple[int, dict[str, Any]]:
    result = cli_runner().invoke(app, ["check", "-o", "json", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    doc = validate(json.loads(result.stdout))  # the chronyctl6/v1 envelope
    assert doc["exit_code"] == result.exit_code
    out: dict[str, Any] = {**doc["data"], "status": doc["status"].upper()}
    return result.exit_code, out


def test_check_against_real_chronyd_is_ok(chronyd: Chronyd) -> None:
    code, out = check("--server", "::1", "--port", str(chronyd.port), "--no-chronyd")
    assert code == 0 and out["verdict"] == "OK"
    assert out["stratum"] == 3 and out["leap"] == 0 and out["ref_id"] == "7F7F0101"
    assert 1 <= out["valid"] <= 6 and out["rejected"] == {}  # a straggler past the cut-off may be left out
    # chronyd and this test share one clock: the offset is zero within the error bound.
    assert abs(out["offset_seconds"]) <= out["error_bound_seconds"] + 2e-6


def test_chronyds_view_is_reported_and_agrees(chronyd: Chronyd) -> None:
    code, out = check("--server", "::1", "--port", str(chronyd.port),
                      "--chronyd-socket", chronyd.socket)
    view = out["chronyd"]
    assert view["running"] is True and view["problem"] is None
    assert view["ref_id"] == "7F7F0101" and view["stratum"] == 3
    assert view["leap_status"] == "Normal" and view["synchronised"] is True
    assert isinstance(view["offset_seconds"], float) and view["root_distance_seconds"] >= 0
    assert view["disagrees"] is False and code == 0


@pytest.mark.parametrize("output", ["json", "nagios", "prometheus"])
def test_asking_a_chronyd_that_answers_imports_no_dataclasses_typing_or_tempfile(chronyd: Chronyd, output: str) -> None:
    """The whole default path: chronyc's tracking and sources, chronyd's bound (the maxclockerror
    in force, read through the configuration traversal) and the boot's record."""
    loaded, done = modules_run_imports("chronyctl6.__main__", "main", [
        "chronyctl6", "check", "-H", "::1", "--port", str(chronyd.port), "-o", output,
        "--chronyd-socket", chronyd.socket])
    assert done.returncode == 0, done
    assert {"chronyctl6.effects.bound_facts", "chronyctl6.chronyconf.traversal"} <= loaded  # the bound was computed
    assert not loaded & set(START_UP_NEVER), sorted(loaded & set(START_UP_NEVER))
    if output == "json":
        view = json.loads(done.stdout)["data"]["chronyd"]
        assert view["running"] is True and view["bound"]["bound_seconds"] is not None, view


def test_disagreement_with_chronyd_is_flagged(chronyd: Chronyd) -> None:
    # A server 0.25 s ahead, while chronyd believes the clock is right: one of them is wrong.
    with Responder(state=ServerState(offset=0.25)) as r:
        code, out = check("--server", "::1", "--port", str(r.port), "--warn", "1", "--crit", "2",
                          "--chronyd-socket", chronyd.socket)
    assert code == 1 and out["verdict"] == "WARNING"
    assert out["chronyd"]["disagrees"] is True
    assert out["chronyd"]["difference_seconds"] > out["chronyd"]["allowed_seconds"]
    assert "chronyd disagrees" in out["summary"]


def test_chronyd_not_running_is_said_and_does_not_fail_the_check(tmp_path: Path) -> None:
    require(commands.which("chronyc") is not None, "chronyc is not installed (apt-get install chrony)")
    with Responder(state=ServerState(offset=0.001)) as r:
        code, out = check("--server", "::1", "--port", str(r.port),
                          "--chronyd-socket", str(tmp_path / "nothing.sock"))
    assert code == 0 and out["chronyd"]["running"] is False and out["chronyd"]["problem"]


@pytest.fixture
def client(chronyd: Chronyd, tmp_path: Path) -> Iterator[str]:
    """A second chronyd (-x) whose sources are the first one and a port nobody serves; yields
    its command socket once it has selected the first and bounds its clock within 0.05 s (check
    warns past 0.1 s: just selected, chronyd's bound can still be above it)."""
    home = tmp_path / "client"
    home.mkdir(mode=0o700)
    sock = home / "chronyd.sock"
    (home / "chronyd.conf").write_text(
        f"server ::1 port {chronyd.port} iburst minpoll -2 maxpoll -2\n"
        f"server 127.0.0.1 port {free_udp_port()} minpoll -2 maxpoll -2\n"  # chronyd keys by address
        "port 0\ncmdport 0\n"
        f"bindcmdaddress {sock}\npidfile {home / 'chronyd.pid'}\n")
    log = home / "chronyd.log"
    with chronyd_process.running(home / "chronyd.conf", ttl=120, log=log) as proc:
        wait_for(lambda: chronyd_process.sources(sock),
                 lambda found: any(s.selected and s.name == "::1" for s in found),
                 what="the client chronyd selecting the first", timeout=60, every=0.2,
                 alive=lambda: proc.poll() is None, context=lambda: chronyd_process.log_of(proc, log))
        chronyd_process.wait_tracking(sock, proc, lambda t: t.ref_name == "::1" and t.max_error <= 0.05,
                                      what="the client chronyd's bound within 0.05 s", log=log)
        yield str(sock)


def test_chronyds_sources_are_exported_as_chrony_exporter_names_them(chronyd: Chronyd, client: str) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    result = cli_runner().invoke(app, ["check", "-o", "prometheus", "--server", "::1", "--port",
                                      str(chronyd.port), "--chronyd-socket", client])
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(result.stdout):
        for s in family.samples:
            found.setdefault(s.name, []).append((dict(s.labels), s.value))
    assert result.exit_code == 0, result.stdout
    ((info, _),) = found["chrony_tracking_info"]
    assert info["tracking_address"] == info["tracking_name"] == "::1"
    assert re.fullmatch("[0-9A-F]{8}", info["tracking_refid"])
    states = {labels["source_address"]: (labels["source_state"], labels["source_mode"])
              for labels, _ in found["chrony_sources_state_info"]}
    assert states["::1"] == ("sync", "client") and states["127.0.0.1"][1] == "client"
    reach = {labels["source_address"]: value for labels, value in found["chronyctl6_sources_reachability_ratio"]}
    assert reach["::1"] > 0.0 and reach["127.0.0.1"] == 0.0  # the live one, the dead one


def test_an_unsynchronised_chronyd_is_critical_and_names_the_server_check_asks(tmp_path: Path) -> None:
    """A chronyd (-x) whose one source is the IPv4 Time Sync endpoint, in this namespace where
    nothing routes there (the kernel refuses every send: no packet leaves): chronyd is not
    synchronised, so check is CRITICAL (as status), and without --server it asks the endpoint
    chronyd's own sources name."""
    require_isolated_netns()
    require(commands.which("chronyd") is not None, "chronyd is not installed (apt-get install chrony)")
    home = tmp_path / "lonely"
    home.mkdir(mode=0o700)
    sock = home / "chronyd.sock"
    (home / "chronyd.conf").write_text(
        "server 169.254.169.123 iburst\nport 0\ncmdport 0\n"
        f"bindcmdaddress {sock}\npidfile {home / 'chronyd.pid'}\n")
    with chronyd_process.running(home / "chronyd.conf") as proc:
        wait_for(lambda: chronyd_process.sources(sock), lambda found: any(s.name == "169.254.169.123" for s in found),
                 what="chronyd answering with its source", timeout=30, alive=lambda: proc.poll() is None)
        code, out = check("--timeout", "0.5", "--chronyd-socket", str(sock))
    assert out["server_from"] == "chronyd's sources" and out["servers"][0]["address"] == "169.254.169.123"
    assert out["servers"][0]["sent"] == 0  # refused by the kernel: nothing left this namespace
    assert out["chronyd"]["synchronised"] is False
    assert code == 2 and out["verdict"] == "CRITICAL" and "chronyd is not synchronised" in out["summary"]


def test_chronyds_bound_is_reported_in_every_output(chronyd: Chronyd) -> None:
    """chronyd's bound as ClockBound computes it, judged by --warn/--crit (issue 19 item 3)."""
    code, out = check("--server", "::1", "--port", str(chronyd.port), "--chronyd-socket", chronyd.socket)
    bound = out["chronyd"]["bound"]
    assert code == 0 and bound["status"] == "ok" and bound["problem"] is None
    t = out["chronyd"]
    assert bound["bound_seconds"] >= abs(t["offset_seconds"]) + t["root_distance_seconds"] - 1e-9
    nagios = cli_runner().invoke(app, ["check", "-o", "nagios", "--server", "::1", "--port", str(chronyd.port),
                                      "--chronyd-socket", chronyd.socket]).stdout
    assert "chronyd_bound=" in nagios and ";0.1;1;" in nagios.split("chronyd_bound=")[1].split()[0]
    prom = cli_runner().invoke(app, ["check", "-o", "prometheus", "--server", "::1", "--port", str(chronyd.port),
                                    "--chronyd-socket", chronyd.socket]).stdout
    assert "chronyctl6_check_chronyd_clockbound_seconds " in prom
    text = cli_runner().invoke(app, ["check", "--server", "::1", "--port", str(chronyd.port),
                                    "--chronyd-socket", chronyd.socket]).stdout
    assert "bound" in text and "as ClockBound computes it" in text
