"""`chronyctl6 release`: what package removal (the .deb's prerm, the RPM's %preun) does to chrony's
configuration, through the same planner/executor as every other change.

Run against image roots (--root); the booted instance (tests/packaging/test_booted.py) runs the
real removal. Whatever the layout, chrony keeps a Time Sync source once /run/chronyctl6 is gone,
and nothing of chronyctl6's that could break it stays: no `sourcedir /run/chronyctl6`, no boot
unit enabled.
"""

from __future__ import annotations

import os
from pathlib import Path

from chronyctl6.effects import chrony_tools
from tests.helpers import apply_root, cli, cli_json, put, stock_root

MANAGED = "# This file is managed by chronyctl6. `chronyctl6 apply` rewrites it.\n"
V6 = "server fd00:ec2::123 prefer iburst minpoll 4 maxpoll 4"
V4 = "server 169.254.169.123 prefer iburst minpoll 4 maxpoll 4"
LINK = "etc/systemd/system/multi-user.target.wants/chronyctl6-boot.service"
UNIT = "/usr/lib/systemd/system/chronyctl6-boot.service"


def _root(tmp_path: Path, conf: str, runtime: str | None = None) -> Path:
    root = stock_root(tmp_path, "debian12")
    (root / "etc/chrony/chrony.conf").write_text(conf, encoding="utf-8")
    if runtime is not None:
        put(root, "run/chronyctl6/timesync.sources", runtime)
    return root


def _active(root: Path) -> list[str]:
    text = (root / "etc/chrony/chrony.conf").read_text(encoding="utf-8")
    return [ln for ln in text.splitlines() if ln and not ln.startswith("#")]


def test_this_launchs_line_replaces_the_boot_steps_sourcedir(tmp_path: Path) -> None:
    conf = MANAGED + "sourcedir /run/chronyctl6\nsourcedir /run/chrony-dhcp\nsourcedir /etc/chrony/sources.d\n"
    root = _root(tmp_path, conf, f"# chosen at boot\n{V6}\n")
    (root / LINK).parent.mkdir(parents=True)
    (root / LINK).symlink_to(UNIT)
    done = cli_json("release", "--root", str(root))
    assert _active(root) == [V6, "sourcedir /run/chrony-dhcp", "sourcedir /etc/chrony/sources.d"]
    assert not (root / "run/chronyctl6/timesync.sources").exists()
    assert not (root / LINK).is_symlink()  # no boot unit left enabled
    assert done["endpoint"] == "fd00:ec2::123" and done["disabled"] == ["/" + LINK]
    assert any("so that chrony keeps a source" in line for line in done["said"])
    assert not [p for p in root.rglob("*") if ".chronyctl6" in p.name]  # no backup, no temp file


def test_the_ipv4_endpoint_when_nothing_else_is_known(tmp_path: Path) -> None:
    root = _root(tmp_path, MANAGED + "driftfile /var/lib/chrony/chrony.drift\nsourcedir /run/chronyctl6/\n")
    assert cli("release", "--root", str(root)).returncode == 0
    assert _active(root) == ["driftfile /var/lib/chrony/chrony.drift", V4]


def test_a_fixed_time_sync_line_needs_nothing(tmp_path: Path) -> None:
    conf = MANAGED + f"{V6}\nsourcedir /etc/chrony/sources.d\n"
    root = _root(tmp_path, conf)
    done = cli("release", "--root", str(root))
    assert done.returncode == 0 and "its Time Sync line is in it" in done.stdout
    assert (root / "etc/chrony/chrony.conf").read_text(encoding="utf-8") == conf


def test_a_config_chronyctl6_does_not_manage_is_left_alone(tmp_path: Path) -> None:
    conf = "pool 2.debian.pool.ntp.org iburst\nsourcedir /run/chronyctl6\n"
    root = _root(tmp_path, conf, f"{V6}\n")
    done = cli("release", "--root", str(root))
    assert done.returncode == 0 and "not managed by chronyctl6" in done.stdout
    assert (root / "etc/chrony/chrony.conf").read_text(encoding="utf-8") == conf
    assert (root / "run/chronyctl6/timesync.sources").exists()  # read by a configuration not ours


def test_a_baked_image_released_keeps_a_time_sync_source_chronyd_accepts(tmp_path: Path) -> None:
    """The real thing: a stock Debian 12 root baked with --at-boot, then released: chronyd -p accepts
    the result, and the only source it names is Time Sync's."""
    root = stock_root(tmp_path, "debian12")
    unit = root / UNIT.lstrip("/")
    unit.parent.mkdir(parents=True)
    unit.write_text("[Service]\nExecStart=/usr/bin/chronyctl6 boot\n")
    apply_root(root, "--at-boot")
    assert "sourcedir /run/chronyctl6" in _active(root) and (root / LINK).is_symlink()
    before = os.stat(root / "etc/chrony/chrony.conf")
    assert cli("release", "--root", str(root)).returncode == 0
    active = _active(root)
    assert "sourcedir /run/chronyctl6" not in active and V4 in active
    assert [ln for ln in active if ln.split()[0] in ("server", "pool", "peer")] == [V4]
    after = os.stat(root / "etc/chrony/chrony.conf")
    assert (after.st_mode, after.st_uid, after.st_gid) == (before.st_mode, before.st_uid, before.st_gid)
    assert not (root / LINK).is_symlink()
    checked = chrony_tools.validate_config(str(root / "etc/chrony/chrony.conf"), root=str(root))
    assert checked.ok, checked.brief()
    # And it is undoable like any change: `restore` puts the baked configuration back.
    assert cli("restore", "--root", str(root)).returncode == 0
    assert "sourcedir /run/chronyctl6" in _active(root)
