"""`check` against a real chronyd: serving NTP on loopback (as Time Sync would), and as the
local daemon whose view `check` reports and compares. chronyd runs with -x (never touches
the clock), as root without a privilege drop, with every path in a temp dir, and -t as a
backstop so it can never outlive the test."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chronyctl6.cli import app
from chronyctl6.effects import commands
from chronyctl6.measure import exchange
from tests.conftest import require
from tests.contract import validate
from tests.helpers import cli_runner
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
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [commands.which("chronyd") or "chronyd", "-x", "-u", "root", "-d", "-t", "120",
             "-f", str(conf)],
            stdout=subprocess.DEVNULL, stderr=err,
        )
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() or not _serves(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chronyd did not come up: {log.read_text()}")
            time.sleep(0.05)
        yield Chronyd(port, str(sock), log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


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
    assert out["valid"] == 6 and out["rejected"] == {}
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
