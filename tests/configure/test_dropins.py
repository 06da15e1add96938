"""Drop-ins chronyd reads through confdir and include (*.conf), not only sourcedir (*.sources):
their conflicting lines are disabled in persistent directories; hostile ones are refused by name
or resolved inside the image, never followed on the host or blocked on."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from chronyctl6.configure.plan import Request, make_plan
from chronyctl6.configure.takeover import DISABLED_MARK
from chronyctl6.effects import chrony_tools, configtree
from chronyctl6.errors import BadInput
from tests.conftest import require
from tests.helpers import cli, cli_json, stock_root


def test_ubuntu_cloud_images_timesync_line_in_conf_d_is_disabled(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "ubuntu2404")
    cpc = root / "etc/chrony/conf.d/00-cpc.conf"
    result = cli_json("apply", "--root", str(root), "--ipv6", "on")
    assert "/etc/chrony/conf.d/00-cpc.conf" in result["files"]
    assert cpc.read_text() == (
        "## CLOUD_IMG: This file was created/modified by the Cloud Image build process\n"
        f"{DISABLED_MARK}: a second Time Sync line: chronyctl6 writes the one this instance uses\n"
        "# server 169.254.169.123 prefer iburst minpoll 4 maxpoll 4\n")


def test_sles_pool_drop_in_is_disabled_and_a_conf_change_restarts(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "sles15")
    plan = make_plan(Request(root=root, ipv6="on", phc="off"))
    pool = next(c for c in plan.pending if c.shown == "/etc/chrony.d/pool.conf")
    assert pool.kind == "config"  # chronyd re-reads a *.conf only on restart, never on reload
    assert pool.new.decode().endswith("# pool 2.suse.pool.ntp.org iburst\n")


def test_leapsectz_in_a_conf_drop_in_is_disabled(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    leap = root / "etc/chrony/conf.d/leap.conf"
    leap.write_text("leapsectz right/UTC\nmaxclockerror 50\n")
    cli_json("apply", "--root", str(root), "--ipv6", "on")
    assert leap.read_text().splitlines()[1:] == ["# leapsectz right/UTC", "maxclockerror 50"]


def test_the_final_state_is_validated_with_the_drop_ins_as_apply_leaves_them(tmp_path: Path) -> None:
    """Debian 13's leapseclist in conf.d, judged by this host's chrony 4.3 (the fixture root has no
    chronyd of its own), which rejects leapseclist. apply comments the line out, and chronyd judges
    the new main file with the drop-in as it will be: accepted, written, nothing left behind."""
    version = chrony_tools.chronyd_version()
    require(version is not None and version < (4, 6), "a host chronyd older than 4.6 (Debian 12's 4.3)")
    root = stock_root(tmp_path, "debian13")
    leap = root / "etc/chrony/conf.d/leap.conf"
    leap.write_text("leapseclist /usr/share/zoneinfo/leap-seconds.list\n")
    # As the drop-in is in place, this chronyd rejects it: the check below must be of the final state.
    probe = root / "etc/chrony/probe.conf"
    probe.write_text("confdir /etc/chrony/conf.d\n")
    in_place = chrony_tools.validate_config(str(probe), root=str(root))
    probe.unlink()
    assert not in_place.ok and in_place.rejected_at() == ("/etc/chrony/conf.d/leap.conf", 1)
    result = cli_json("apply", "--root", str(root), "--ipv6", "on")
    assert version is not None
    assert result["validated_by"] == f"chronyd {'.'.join(map(str, version))} from this host"
    assert set(result["files"]) == {"/etc/chrony/chrony.conf", "/etc/chrony/conf.d/leap.conf"}
    assert leap.read_text().splitlines()[1:] == ["# leapseclist /usr/share/zoneinfo/leap-seconds.list"]
    assert chrony_tools.validate_config(str(root / "etc/chrony/chrony.conf"), root=str(root)).ok
    assert not [p for p in root.rglob("*") if ".chronyctl6-" in p.name]  # no candidate or tree left


def test_a_drop_in_the_validating_chronyd_rejects_is_named_as_the_instance_sees_it(tmp_path: Path) -> None:
    """A drop-in line apply leaves alone and this host's chrony 4.3 rejects (leapsecmode ignore is
    fine; a 4.6-only directive is not): judged in the final tree, named as the instance sees it,
    nothing written."""
    version = chrony_tools.chronyd_version()
    require(version is not None and version < (4, 6), "a host chronyd older than 4.6 (Debian 12's 4.3)")
    root = stock_root(tmp_path, "debian13")
    conf_d = root / "etc/chrony/conf.d"
    (conf_d / "leap.conf").write_text("leapseclist /usr/share/zoneinfo/leap-seconds.list\n")  # edited by apply
    (conf_d / "zz-new.conf").write_text("maxclockerror 50\nopencommands activity\n")  # chrony 4.6+
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    done = cli("apply", "--root", str(root), "--ipv6", "on")
    assert done.returncode == 1
    assert "rejects line 2 of /etc/chrony/conf.d/zz-new.conf, a file the configuration includes" in done.stderr
    assert str(root) not in done.stderr and ".chronyctl6-" not in done.stderr
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before  # nothing written


def test_hostile_drop_ins_are_not_followed_read_or_blocked_on(tmp_path: Path) -> None:
    """A FIFO (reading it would block forever) and a file far larger than a drop-in are refused,
    each named with how chronyd reaches it; an absolute link to a host file and a directory
    linked out of the image are resolved inside the image, never followed on this host."""
    root = stock_root(tmp_path, "debian12")
    conf_d = root / "etc/chrony/conf.d"
    request = Request(root=root, ipv6="on", phc="off")
    reached = "(confdir /etc/chrony/conf.d in /etc/chrony/chrony.conf:"

    os.mkfifo(conf_d / "fifo.conf")
    with pytest.raises(BadInput) as refused:
        make_plan(request)
    assert refused.value.message.startswith(f"/etc/chrony/conf.d/fifo.conf {reached}")
    assert "is a FIFO, not a regular file" in refused.value.message
    (conf_d / "fifo.conf").unlink()

    with (conf_d / "huge.conf").open("wb") as f:
        f.truncate(64 << 20)  # sparse: 64 MiB of nothing
    with pytest.raises(BadInput) as refused:
        make_plan(request)
    assert refused.value.message.startswith(f"/etc/chrony/conf.d/huge.conf {reached}")
    assert "over the" in refused.value.message
    (conf_d / "huge.conf").unlink()

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.sources").write_text("server 192.0.2.1\n")
    (outside / "host.conf").write_text("server 192.0.2.2\n")
    (conf_d / "abs.conf").symlink_to(outside / "host.conf")  # this host's file, not the image's
    (conf_d / "passwd.conf").symlink_to("/etc/passwd")
    shutil.rmtree(root / "etc/chrony/sources.d")
    (root / "etc/chrony/sources.d").symlink_to(outside)  # a directory leading out of the image
    plan = make_plan(request)
    assert {c.shown for c in plan.pending} == {"/etc/chrony/chrony.conf"}
    assert not any("192.0.2" in w for w in plan.warnings)
    tree = configtree.load("/etc/chrony/chrony.conf", root)
    assert {"/etc/chrony/conf.d/abs.conf", "/etc/chrony/conf.d/passwd.conf"} <= set(tree.missing)  # not in the image
    assert not any(r.shown.startswith("/etc/chrony/sources.d/") for r in tree.read)
    assert not any("192.0.2" in d.directive.line for d in tree.directives)
    assert (outside / "x.sources").read_text() == "server 192.0.2.1\n"
    assert (outside / "host.conf").read_text() == "server 192.0.2.2\n"


def test_control_characters_and_other_encodings_inside_a_drop_in_survive(tmp_path: Path) -> None:
    """chrony splits lines at \\n only: a \\r, form feed or U+2028 stays inside its line, and
    bytes that are not UTF-8 are written back unchanged."""
    root = stock_root(tmp_path, "debian12")
    odd = root / "etc/chrony/conf.d/odd.conf"
    kept = b"# a\rcomment\x0cwith\xe2\x80\xa8breaks and Latin-1 \xe9\n"
    odd.write_bytes(kept + b"pool pool.ntp.org iburst\n")
    plan = make_plan(Request(root=root, ipv6="on", phc="off"))
    change = next(c for c in plan.pending if c.shown == "/etc/chrony/conf.d/odd.conf")
    assert change.new.startswith(kept)
    assert change.new.endswith(b"\n# pool pool.ntp.org iburst\n")


def test_a_validation_tree_a_killed_run_left_is_removed_by_the_next_apply(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    left = root / "etc/chrony/..chrony.conf.chronyctl6-x1.tmp.chronyctl6-tree-y2.tmp"
    (left / "etc/chrony/conf.d").mkdir(parents=True)
    (left / "etc/chrony/conf.d/leap.conf").write_text("# commented\n")
    cli_json("apply", "--root", str(root), "--ipv6", "on")
    assert not left.exists()
