"""`chronyctl6 status`: drift computed from the same plan apply uses (real temporary roots), the
report's shape (plain data), and the real thing against the simulated instance's chronyd."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chronyctl6.configure.plan import Request, make_plan
from chronyctl6.diagnose import status as st
from chronyctl6.effects import chrony_tools, daemons
from sandbox import TIME_SYNC_V6, Ec2
from tests.helpers import stock_root

Factory = Callable[..., Ec2]
Record = Callable[[str, object], None]


def apply(ec2: Ec2) -> None:
    done = ec2.instance.run(["chronyctl6", "apply", "--wait", "30"], timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_drift_follows_what_render_would_write(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    drift, managed = st.drift(None, root)
    assert managed == "/etc/chrony/chrony.conf"
    assert drift.state == "drift" and drift.files == ("/etc/chrony/chrony.conf",)
    assert "-pool 2.debian.pool.ntp.org iburst" in drift.diff
    plan = make_plan(Request(root=root))
    plan.config.path.write_bytes(plan.config.new)
    assert st.drift(None, root)[0].state == "in-sync"
    assert st.drift("/etc/chrony/chrony.conf", root)[0].state == "in-sync"
    other = st.drift("/srv/chrony-test.conf", root)[0]
    assert other.state == "unknown" and "chronyd loaded /srv/chrony-test.conf" in other.detail


def test_drift_is_unknown_where_nothing_can_be_rendered(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_text('ID="plan9"\n')
    drift, managed = st.drift(None, tmp_path)
    assert drift.state == "unknown" and "cannot render" in drift.detail and managed is None


def test_report_shape() -> None:
    source = chrony_tools.parse_sources("^,*,fd00:ec2::123,3,4,377,5,0.000001,0.000001,0.00002\n"
                                  "^,?,169.254.169.123,0,4,0,-,0.0,0.0,0.0\n")
    tracking = chrony_tools.parse_tracking("7F7F0101,fd00:ec2::123,4,1700000000.1,0.000001,0.000002,0.000003,"
                                     "-1.5,0.001,0.02,0.0002,0.0001,16.0,Normal\n")
    proc = daemons.Proc(42, "chronyd", "_chrony", time.time() - 90, ("chronyd", "-f", "/etc/chrony/chrony.conf"))
    report = st.StatusReport((proc,), "/etc/chrony/chrony.conf", "chronyd -f",
                             st.Drift("in-sync", "as rendered"), tuple(source), tracking, (), ())
    d: dict[str, Any] = report.as_dict()
    assert d["selected"] == "fd00:ec2::123" and report.exit_status == 0
    assert [(s["name"], s["reach"], s["reachability_ratio"]) for s in d["sources"]] == [
        ("fd00:ec2::123", "377", 1.0), ("169.254.169.123", "000", 0.0)]
    t = d["tracking"]
    assert isinstance(t, dict)
    assert t["root_distance_seconds"] == pytest.approx(0.0001 + 0.0002 / 2)
    assert (t["frequency_ppm"], t["skew_ppm"], t["leap_status"]) == (-1.5, 0.02, "Normal")
    assert d["chronyd"][0]["uptime_seconds"] >= 90
    assert st.StatusReport((), None, "chronyd is not running", st.Drift("unknown", "x"), (), None, (),
                           ()).exit_status == 1


@pytest.mark.e2e
def test_status_reads_the_instance_chronyd(ec2_factory: Factory, record_property: Record) -> None:
    ec2 = ec2_factory()
    inst = ec2.instance
    stopped = inst.run(["chronyctl6", "status", "-o", "json"])
    assert stopped.returncode == 1 and json.loads(stopped.stdout)["chronyd"] == []
    apply(ec2)
    inst.wait_selected(TIME_SYNC_V6, timeout=30)
    started = time.monotonic()
    done = inst.run(["chronyctl6", "status", "-o", "json"], check=True)
    record_property("status_seconds", round(time.monotonic() - started, 2))
    s = json.loads(done.stdout)
    [proc] = s["chronyd"]
    assert proc["pid"] == inst.chronyd_pid() and proc["user"] == "_chrony" and proc["uptime_seconds"] >= 0
    assert s["config"]["path"] == "/etc/chrony/chrony.conf" and s["config"]["from"] == "chronyd -f"
    assert s["config"]["drift"]["state"] == "in-sync"
    assert s["selected"] == TIME_SYNC_V6
    [src] = s["sources"]
    assert src["selected"] and src["reach"] != "000" and 0 < src["reachability_ratio"] <= 1
    t = s["tracking"]
    assert t["ref_name"] == TIME_SYNC_V6 and t["leap_status"] == "Normal" and t["synchronised"]
    assert abs(t["system_offset_seconds"]) < 0.01 and t["root_distance_seconds"] > 0
    for key in ("frequency_ppm", "skew_ppm"):
        assert isinstance(t[key], float)
    assert s["conflicting_daemons"] == [] and s["errors"] == []

    text = inst.run(["chronyctl6", "status"], check=True).stdout
    assert f"chronyd: pid {proc['pid']}, user _chrony" in text
    assert re.search(rf"\^\* {re.escape(TIME_SYNC_V6)} .* <- selected", text)
    assert "leap Normal" in text and "conflicting daemons: none" in text

    # Someone edits the file by hand: drift, and the diff that apply would make.
    inst.write_text("/etc/chrony/chrony.conf", inst.read_text("/etc/chrony/chrony.conf") + "# hand edit\n")
    drifted = json.loads(inst.run(["chronyctl6", "status", "-o", "json"], check=True).stdout)
    assert drifted["config"]["drift"]["state"] == "drift"
    assert drifted["config"]["drift"]["files"] == ["/etc/chrony/chrony.conf"]
    assert "-# hand edit" in drifted["config"]["drift"]["diff"]
