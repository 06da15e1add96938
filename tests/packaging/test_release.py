"""packaging/libexec/release-chrony: what package removal does to chrony's configuration.

Run against a scratch root (CHRONYCTL6_RELEASE_ROOT); the booted instance
(tests/packaging/test_booted.py) runs the real removal. Whatever the layout, chrony keeps a Time
Sync source once /run/chronyctl6 is gone.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.packaging_support import PACKAGING, run

SCRIPT = PACKAGING / "libexec" / "release-chrony"
MANAGED = "# This file is managed by chronyctl6. `chronyctl6 apply` rewrites it.\n"
V6 = "server fd00:ec2::123 prefer iburst minpoll 4 maxpoll 4"
V4 = "server 169.254.169.123 prefer iburst minpoll 4 maxpoll 4"


def release(root: Path) -> str:
    proc = run(["sh", SCRIPT], env={**os.environ, "CHRONYCTL6_RELEASE_ROOT": str(root)})
    return proc.stderr


def _root(tmp_path: Path, conf: str, runtime: str | None = None) -> Path:
    (tmp_path / "etc/chrony").mkdir(parents=True)
    (tmp_path / "etc/chrony/chrony.conf").write_text(conf, encoding="utf-8")
    if runtime is not None:
        (tmp_path / "run/chronyctl6").mkdir(parents=True)
        (tmp_path / "run/chronyctl6/timesync.sources").write_text(runtime, encoding="utf-8")
    return tmp_path


def test_keeps_this_launchs_line_in_a_persistent_sourcedir(tmp_path: Path) -> None:
    conf = MANAGED + "sourcedir /run/chronyctl6\nsourcedir /run/chrony-dhcp\nsourcedir /etc/chrony/sources.d\n"
    root = _root(tmp_path, conf, f"# chosen at boot\n{V6}\n")
    said = release(root)
    written = (root / "etc/chrony/sources.d/chronyctl6-removed.sources").read_text(encoding="utf-8")
    assert [line for line in written.splitlines() if not line.startswith("#")] == [V6]
    assert (root / "etc/chrony/chrony.conf").read_text(encoding="utf-8") == conf
    assert "stays as chronyctl6 wrote it" in said and "chronyctl6-removed.sources" in said


def test_appends_the_ipv4_endpoint_when_nothing_else_is_known(tmp_path: Path) -> None:
    root = _root(tmp_path, MANAGED + "driftfile /var/lib/chrony/chrony.drift\nsourcedir /run/chronyctl6/\n")
    release(root)
    lines = (root / "etc/chrony/chrony.conf").read_text(encoding="utf-8").splitlines()
    assert lines[-1] == V4 and lines.count(V4) == 1


def test_a_fixed_time_sync_line_needs_nothing(tmp_path: Path) -> None:
    conf = MANAGED + f"{V6}\nsourcedir /etc/chrony/sources.d\n"
    root = _root(tmp_path, conf)
    assert "chrony keeps it" in release(root)
    assert (root / "etc/chrony/chrony.conf").read_text(encoding="utf-8") == conf
    assert not (root / "etc/chrony/sources.d").exists()


def test_a_config_chronyctl6_does_not_manage_is_left_alone(tmp_path: Path) -> None:
    conf = "pool 2.debian.pool.ntp.org iburst\nsourcedir /run/chronyctl6\n"
    root = _root(tmp_path, conf)
    assert release(root) == ""
    assert (root / "etc/chrony/chrony.conf").read_text(encoding="utf-8") == conf
