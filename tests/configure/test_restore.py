"""restore: the previous version (the newest history entry) or --original (the distribution's
files as kept at first takeover), byte for byte with mode and owner, through the transaction."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from chronyctl6.configure import executor
from chronyctl6.configure import restore as restore_mod
from chronyctl6.configure.plan import Request
from chronyctl6.configure.transaction import RolledBack
from chronyctl6.effects import chrony_tools, history, service
from chronyctl6.errors import CommandFailed
from tests.configure.test_transaction import LINK, REAL_LIVE_SEAMS, FakeService, Host, live  # noqa: F401 (the fixture)
from tests.conftest import require
from tests.helpers import apply_root, cli, cli_json, put, stock_root

CONF = "etc/chrony/chrony.conf"


def _meta(path: Path) -> tuple[bytes, int, int, int]:
    st = path.stat()
    return path.read_bytes(), st.st_mode & 0o7777, st.st_uid, st.st_gid


@pytest.mark.root  # chown: the owner comes back
def test_restore_original_returns_the_distro_file_byte_for_byte_after_two_changes(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    conf = root / CONF
    conf.write_bytes(conf.read_bytes() + b"# the operator's \xff byte, CRLF\r\n")
    os.chown(conf, 1234, 4321)
    conf.chmod(0o640)
    original = _meta(conf)
    for mode in ("on", "off"):
        apply_root(root, "--ipv6", mode)
    assert _meta(conf) != original
    done = cli("restore", "--root", str(root), "--original")
    assert done.returncode == 0, done.stderr
    assert "restored (original): /etc/chrony/chrony.conf" in done.stdout
    assert _meta(conf) == original
    # A restore is itself undoable, and the original is kept for good.
    assert cli("restore", "--root", str(root)).returncode == 0
    assert "server 169.254.169.123" in conf.read_text(errors="replace")
    assert cli("restore", "--root", str(root), "--original").returncode == 0
    assert _meta(conf) == original


def test_restore_goes_back_one_version(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    conf = root / CONF
    apply_root(root, "--ipv6", "on")
    on = conf.read_bytes()
    apply_root(root, "--ipv6", "off")
    result = cli_json("restore", "--root", str(root))
    assert result["files"] == ["/etc/chrony/chrony.conf"] and result["source"] == "previous"
    assert conf.read_bytes() == on


def test_history_keeps_the_last_ten(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    for i in range(13):
        apply_root(root, "--ipv6", "on" if i % 2 else "off")
    entries = history.Store(root).entries()
    assert len(entries) == history.KEEP == 10
    assert all((e / "manifest.json").is_file() for e in entries)


def test_nothing_to_restore(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    before = (root / CONF).read_bytes()
    # The package's removal script on a host chronyctl6 never changed: success, nothing done.
    done = cli("restore", "--root", str(root), "--original", "--no-wait")
    assert done.returncode == 0 and "nothing to restore" in done.stdout
    plain = cli("restore", "--root", str(root))
    assert plain.returncode == 1 and "no earlier version is kept" in plain.stderr
    assert (root / CONF).read_bytes() == before


def test_a_hostile_manifest_never_leads_outside_the_root(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    apply_root(root, "--ipv6", "on")
    manifest = root / "var/lib/chronyctl6/original/manifest.json"
    data = json.loads(manifest.read_text())
    data["/../../../outside"] = {"existed": False}
    data["relative/path"] = {"existed": False}
    manifest.write_text(json.dumps(data))
    victim = tmp_path / "outside"
    victim.write_text("keep me\n")
    assert cli("restore", "--root", str(root), "--original").returncode == 0
    assert victim.read_text() == "keep me\n"


def test_restore_validates_the_files_as_it_leaves_them_drop_ins_included(tmp_path: Path) -> None:
    """restore runs apply's validate step: chronyd judges the restored main file with every drop-in
    as the restore puts it back, not as it is now. A drop-in's leapseclist (chrony 4.6+) that apply
    commented out would come back: this host's chrony 4.3 rejects it, so nothing is restored, and
    the line is named as the instance sees its file."""
    version = chrony_tools.chronyd_version()
    require(version is not None and version < (4, 6), "a host chronyd older than 4.6 (Debian 12's 4.3)")
    root = stock_root(tmp_path, "debian12")
    leap = root / "etc/chrony/conf.d/leap.conf"
    leap.write_text("leapseclist /usr/share/zoneinfo/leap-seconds.list\n")
    apply_root(root, "--ipv6", "on")
    assert "# leapseclist" in leap.read_text()
    now = {p: _meta(p) for p in (root / CONF, leap)}
    entries = history.Store(root).entries()
    done = cli("restore", "--root", str(root), "--original")
    assert done.returncode == 1, done.stdout
    assert "rejects the configuration the restore would put back (line 1 of /etc/chrony/conf.d/leap.conf)" \
        in done.stderr
    hint = next(ln for ln in done.stderr.splitlines() if ln.startswith("chronyctl6: hint:"))
    assert "restore --original" not in hint  # never sends the operator back to what just failed
    assert str(root) not in done.stderr and ".chronyctl6-" not in done.stderr
    assert {p: _meta(p) for p in now} == now  # nothing put back
    assert history.Store(root).entries() == entries
    assert not [p for p in root.rglob("*") if ".chronyctl6-" in p.name]  # no candidate or tree left


@pytest.mark.parametrize("value", ["nan", "inf", "-3"])
def test_restore_refuses_bad_wait(tmp_path: Path, value: str) -> None:
    root = stock_root(tmp_path, "debian12")
    assert cli("restore", "--root", str(root), f"--wait={value}").returncode == 2


@pytest.mark.root  # a live host's files with their owner (chown) and apply's root check
def test_a_live_restore_whose_chronyd_does_not_answer_is_rolled_back(
    live: Host, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    stock = live.snapshot()
    live.apply(at_boot=True)
    applied = live.snapshot()
    log: list[str] = []
    monkeypatch.setattr(executor, "live_seams", REAL_LIVE_SEAMS)  # the real seams, over a stand-in manager
    monkeypatch.setattr(service, "choose", lambda *a, **k: FakeService(log, "svc"))

    def silent() -> None:
        raise CommandFailed("chronyc: 506 Cannot talk to daemon")

    monkeypatch.setattr(chrony_tools, "tracking", silent)
    with pytest.raises(RolledBack) as failed:
        restore_mod.restore(Request(root=live.root), original=True, wait=0.5)
    assert "chronyd does not answer within 0.5 s after the change" in failed.value.message
    assert live.snapshot() == applied
    assert log == ["svc:restart", "svc:restart"]  # onto the original, then back
    assert (live.root / LINK).is_symlink()
    # And once chronyd answers, the original comes back, without the boot unit chronyctl6 enabled.
    monkeypatch.setattr(chrony_tools, "tracking", lambda: None)
    done = restore_mod.restore(Request(root=live.root), original=True, wait=0.5)
    assert done.changed and done.answered_after is not None
    assert sorted(done.files) == ["/etc/chrony.conf", "/etc/chrony.d/link-local.sources",
                                  "/etc/systemd/system/multi-user.target.wants/chronyctl6-boot.service",
                                  "/run/chronyctl6/timesync.sources"]  # the boot step's file goes too
    assert (live.root / "etc/chrony.d/link-local.sources").read_text() == "server 169.254.169.123 prefer iburst\n"
    assert not (live.root / LINK).is_symlink()
    assert live.snapshot() == stock  # bytes, mode 0640 and owner 1234:4321 of chrony.conf included


def test_a_history_entry_a_kill_left_half_written_is_cleared(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    apply_root(root, "--ipv6", "on")
    half = root / "var/lib/chronyctl6/history/20260101T000000.000000000Z"
    put(half, "etc/chrony/chrony.conf", "half\n")
    apply_root(root, "--ipv6", "off")
    assert not half.exists()
    assert len(history.Store(root).entries()) == 2


# ---- issue 18: nothing of ours where chronyd reads; restore whatever apply accepted ---------

def _tree(root: Path, under: str = "etc/chrony") -> dict[str, tuple[bytes, int, int, int]]:
    return {str(p.relative_to(root)): _meta(p) for p in sorted((root / under).rglob("*")) if p.is_file()}


def test_include_star_a_second_apply_is_a_no_op_and_restore_original_gives_the_tree_back(tmp_path: Path) -> None:
    """`include /etc/chrony/conf.d/*` reads every file there, whatever its name: a copy of ours
    there (the *.chronyctl6.bak an older version left) is a live public source. apply removes it
    (the history is the backup), writes none, and a second apply has nothing to do; restore
    --original gives the distribution's tree back byte for byte, without our copy."""
    root = stock_root(tmp_path, "debian12")
    conf = root / CONF
    conf.write_bytes(conf.read_bytes() + b"include /etc/chrony/conf.d/*\n")
    (root / "etc/chrony/conf.d/README").unlink()  # chronyd would read its prose too
    (root / "etc/chrony/conf.d/pool.conf").write_text("server 192.0.2.1 iburst\n")
    original = _tree(root)
    old_copy = root / "etc/chrony/conf.d/pool.conf.chronyctl6.bak"
    old_copy.write_text("server 192.0.2.2 iburst\n")  # left beside pool.conf by an older chronyctl6
    apply_root(root, "--ipv6", "on")
    assert not old_copy.exists()
    assert not [p for p in (root / "etc/chrony").rglob("*") if "chronyctl6" in p.name]
    apply_root(root, "--ipv6", "on", "--check", "--diff")
    # The real traversal, as chronyd reads it: no source but Time Sync's is active.
    from chronyctl6.effects import configtree

    tree = configtree.load("/etc/chrony/chrony.conf", root)
    assert [located.directive.args[0] for located in tree.sources()] == ["fd00:ec2::123"]
    done = cli("restore", "--root", str(root), "--original")
    assert done.returncode == 0, done.stderr
    assert _tree(root) == original  # byte for byte, mode and owner; our old copy not brought back


def test_an_image_applied_with_distro_is_restorable(tmp_path: Path) -> None:
    """os-release names no distribution chronyctl6 knows: apply needed --distro; restore takes the
    distribution apply recorded, or --distro like apply."""
    root = stock_root(tmp_path, "debian12")
    (root / "etc/os-release").write_text('ID=mydebian\nVERSION_ID="12"\n')
    stock = (root / CONF).read_bytes()
    assert cli("apply", "--root", str(root), "--ipv6", "on").returncode == 2  # unknown: apply refuses too
    apply_root(root, "--ipv6", "on", "--distro", "debian")
    assert json.loads((root / "var/lib/chronyctl6/state.json").read_text())["intent"]["distro"] == "debian"
    done = cli("restore", "--root", str(root), "--original")
    assert done.returncode == 0, done.stderr
    assert (root / CONF).read_bytes() == stock
    again = cli("restore", "--root", str(root), "--distro", "debian")  # back to the applied file
    assert again.returncode == 0, again.stderr
    assert b"fd00:ec2::123" in (root / CONF).read_bytes()


@pytest.mark.root
def test_a_debian13_original_restores_when_only_an_older_host_chronyd_can_judge(
        tmp_path: Path, chrony_root: Callable[[str], Path]) -> None:
    """Debian 13's stock chrony.conf has `leapseclist` (chrony 4.6+). Where the image's own chronyd
    cannot run here, this host's 4.3 judges and refuses the line it does not know: the
    distribution's own file is restored all the same, byte for byte, and the result says so."""
    version = chrony_tools.chronyd_version()
    require(version is not None and version < (4, 6), "a host chronyd older than 4.6 (Debian 12's 4.3)")
    from tests import chrony_roots

    root = chrony_roots.copy_of(chrony_root("debian13"), tmp_path)  # the session's one unpacked root
    stock = (root / CONF).read_bytes()
    assert b"\nleapseclist" in stock
    (root / "usr/sbin/chronyd").write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 57)  # another architecture's
    apply_root(root, "--ipv6", "on")
    done = cli_json("restore", "--root", str(root), "--original")
    assert (root / CONF).read_bytes() == stock
    assert any("does not know a directive" in w and "restored as kept" in w for w in done["warnings"])
