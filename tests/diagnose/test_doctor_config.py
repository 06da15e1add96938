"""doctor reads the configuration through the one traversal and the one source policy."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from chronyctl6.configure.platforms import by_name
from chronyctl6.diagnose.doctor import Status
from chronyctl6.effects import configtree
from tests.diagnose.test_doctor_checks import by_id, config, healthy


def test_leapseclist_is_flagged_beside_smeared_time() -> None:
    f = replace(healthy(), config=config("server fd00:ec2::123 prefer iburst",
                                         "leapseclist /usr/share/zoneinfo/leap-seconds.list"))
    c = by_id(f)["config-smear"]
    assert c.status is Status.WARN and "leapseclist /usr/share/zoneinfo/leap-seconds.list" in c.evidence
    assert c.fix == "sudo chronyctl6 apply"


def test_any_spelling_of_the_time_sync_address_counts() -> None:
    f = replace(healthy(), config=config("server fd00:ec2:0:0:0:0:0:123 prefer iburst",
                                         "server 169.254.169.123 iburst"))
    c = by_id(f)["config-timesync"]
    assert c.status is Status.WARN and "both Time Sync endpoints" in c.evidence


def test_suse_pool_dropin_gets_the_package_fix() -> None:
    f = replace(healthy(), platform=by_name("sles"), config=config(
        "server fd00:ec2::123 prefer iburst", "include /etc/chrony.d/*.conf",
        extra={"/etc/chrony.d/pool.conf": ("pool 2.suse.pool.ntp.org iburst",)}))
    c = by_id(f)["config-smear"]
    assert c.status is Status.WARN
    assert c.fix == ("sudo zypper install chrony-pool-empty && sudo chronyctl6 apply && "
                     "sudo systemctl restart chronyd")


def test_a_refused_file_fails_the_config_checks_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "etc/chrony").mkdir(parents=True)
    (tmp_path / "etc/chrony/chrony.conf").write_text("server fd00:ec2::123 iburst\nconfdir /etc/chrony/conf.d\n")
    (tmp_path / "etc/chrony/conf.d").mkdir()
    os.mkfifo(tmp_path / "etc/chrony/conf.d/x.conf")
    tree = configtree.load("/etc/chrony/chrony.conf", tmp_path)
    checks = by_id(replace(healthy(), config=tree))
    for check_id in ("config-timesync", "config-smear"):
        assert checks[check_id].status is Status.FAIL
        assert checks[check_id].evidence == ("/etc/chrony/conf.d/x.conf (confdir /etc/chrony/conf.d in "
                                             "/etc/chrony/chrony.conf:2) is a FIFO, not a regular file: refused")


def test_status_drift_sees_a_conflict_added_in_a_dropin_after_apply(tmp_path: Path) -> None:
    from chronyctl6.diagnose.status import drift
    from tests.helpers import cli_json, stock_root

    root = stock_root(tmp_path, "debian12")
    cli_json("apply", "--root", str(root), "--ipv6", "on")
    (root / "etc/chronyctl6").mkdir(parents=True, exist_ok=True)
    (root / "etc/chronyctl6/settings.toml").write_text("ipv6 = 'on'\n")
    state, managed = drift(None, root)
    assert (state.state, managed) == ("in-sync", "/etc/chrony/chrony.conf")
    (root / "etc/chrony/conf.d").mkdir(exist_ok=True)
    (root / "etc/chrony/conf.d/late.conf").write_text("pool 0.pool.ntp.org iburst\n")
    state, _ = drift(None, root)
    assert state.state == "drift" and "/etc/chrony/conf.d/late.conf" in state.detail
