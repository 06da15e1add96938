"""chronyd's bound contains the truth (issue 19 item 3), with the real chronyd (-x) and a
loopback responder whose clock is a known offset from this machine's.

With -x chronyd never touches the clock: the clock applications read stays this machine's own,
and the responder's clock is the truth, exactly `offset` ahead of it. So the true error of the
clock applications read is -offset, and ClockBound's bound (|system time| + root dispersion +
root delay / 2, grown by maxclockerror) must be at least |offset|. It is checked while the
server answers and after it goes silent, when the bound must keep containing the truth by
growing: chronyd's reported root dispersion grows by at least maxclockerror per second (chrony's
REF_GetTrackingReport), which is why the bound adds maxclockerror only from the reading on.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chronyctl6.diagnose.status import chronyd_bound
from chronyctl6.effects import chrony_tools, commands
from chronyctl6.measure.clockbound import Bound
from tests import chronyd_process
from tests.conftest import require
from tests.ntp_fixtures import Responder, ServerState, require_isolated_netns

pytestmark = [pytest.mark.root]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    require_isolated_netns()
    require(commands.which("chronyd") is not None, "chronyd is not installed (apt-get install chrony)")
    d = tmp_path / "chronyd"
    d.mkdir(mode=0o700)
    return d


@contextlib.contextmanager
def _run(workdir: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    conf = workdir / "chrony.conf"
    conf.write_text(f"server ::1 port {port} iburst minpoll -2 maxpoll -2\nmaxclockerror 50\ncmdport 0\n"
                    f"bindcmdaddress {workdir / 'sock'}\nport 0\npidfile {workdir / 'pid'}\n")
    with chronyd_process.running(conf, log=workdir / "chronyd.log") as proc:
        yield proc


@pytest.mark.parametrize("offset", [0.25, -0.4, 0.003])
def test_the_bound_contains_the_true_offset(workdir: Path, offset: float) -> None:
    with Responder(state=ServerState(offset=offset)) as r, _run(workdir, r.port) as proc:
        checks = _while_served(workdir, proc, offset)
        # The server goes silent: no more updates; the bound must still hold, growing.
        r.behaviour = lambda request, rx, state: []
        time.sleep(1)
        read_at = time.monotonic()
        t_silent = chronyd_process.tracking(workdir / "sock")
        assert t_silent is not None
        time.sleep(1)  # the bound from that reading, used a second later
        silent = chronyd_bound(t_silent, read_at, str(workdir / "chrony.conf"))
        checks.append((t_silent, silent))
        later = chronyd_process.tracking(workdir / "sock")
    for t, b in checks:
        assert b.seconds is not None and b.maxclockerror_ppm == 50.0, b
        assert b.seconds >= abs(offset), (t, b)  # contains the truth
        assert b.seconds - abs(offset) < 0.005, (t, b)  # and says something: within 5 ms of it
        assert t.system_offset * offset > 0  # chronyd's sign: > 0 means the clock is slow
    assert silent.growth >= 50e-6 * 0.9  # a second at 50 ppm, from the reading on
    assert later is not None and later.ref_time == t_silent.ref_time  # no update since
    assert later.root_dispersion - t_silent.root_dispersion >= 50e-6 * 1.0  # chronyd grew it itself


def _while_served(workdir: Path, proc: subprocess.Popen[bytes],
                  offset: float) -> list[tuple[chrony_tools.Tracking, Bound]]:
    """Three readings half a second apart, once chronyd has converged on the responder: its bound
    within 5 ms of the truth, waited on (a generous deadline, not a fixed sleep that a loaded
    machine can outrun)."""
    conf = str(workdir / "chrony.conf")

    def converged(t: chrony_tools.Tracking) -> bool:
        bound = chronyd_bound(t, time.monotonic(), conf).seconds
        return t.synchronised and t.update_interval > 0 and bound is not None and bound - abs(offset) < 0.005

    chronyd_process.wait_tracking(workdir / "sock", proc, converged, what="chronyd converging on the responder",
                                  log=workdir / "chronyd.log")
    checks = []
    for _ in range(3):
        read_at = time.monotonic()
        t = chronyd_process.tracking(workdir / "sock")
        assert t is not None
        checks.append((t, chronyd_bound(t, read_at, conf)))
        time.sleep(0.5)
    return checks


def test_status_reports_the_bound_in_text_and_json(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`status` against this test's chronyd (other chronyd processes on a shared machine are not
    ours: the process scan is narrowed to this one)."""
    import json

    from typer.testing import CliRunner

    from chronyctl6.cli import app
    from chronyctl6.effects import daemons
    from tests.contract import validate

    with Responder(state=ServerState(offset=0.25)) as r, _run(workdir, r.port) as proc:
        _while_served(workdir, proc, 0.25)
        me = daemons.Proc(proc.pid, "chronyd", "root", time.time(), ("chronyd", "-f", str(workdir / "chrony.conf")))
        monkeypatch.setattr(daemons, "scan", lambda: daemons.Scan((me,), ()))
        sock = str(workdir / "sock")
        result = CliRunner().invoke(app, ["status", "-o", "json", "--chronyd-socket", sock])
        text = CliRunner().invoke(app, ["status", "--chronyd-socket", sock, "--warn", "0.1", "--crit", "0.2"])
    doc = validate(json.loads(result.stdout))
    bound = doc["data"]["bound"]
    assert bound["maxclockerror_ppm"] == 50.0 and bound["status"] == "warning"  # 0.25 s: past 0.1, short of 1
    assert 0.25 <= bound["bound_seconds"] < 0.255
    assert "bound: 0.25" in text.stdout and "as ClockBound computes it" in text.stdout
    assert text.exit_code == 2 and "could be 0.25" in text.stdout  # past --crit 0.2: only the bound does that
