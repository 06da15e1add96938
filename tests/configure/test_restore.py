"""restore: the previous version (the newest history entry) or --original (the distribution's
files as kept at first takeover), byte for byte with mode and owner, through the transaction."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from chronyctl6.configure import restore as restore_mod
from chronyctl6.configure.plan import Request
from chronyctl6.configure.transaction import RolledBack
from chronyctl6.effects import chrony_tools, history, service
from chronyctl6.errors import CommandFailed
from tests.configure.test_transaction import LINK, FakeService, Host, live  # noqa: F401 (the fixture)
from tests.conftest import require
from tests.helpers import cli, cli_json, stock_root

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
        assert cli("apply", "--root", str(root), "--ipv6", mode).returncode == 0
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
    assert cli("apply", "--root", str(root), "--ipv6", "on").returncode == 0
    on = conf.read_bytes()
    assert cli("apply", "--root", str(root), "--ipv6", "off").returncode == 0
    result = cli_json("restore", "--root", str(root))
    assert result["files"] == ["/etc/chrony/chrony.conf"] and result["source"] == "previous"
    assert conf.read_bytes() == on


def test_history_keeps_the_last_ten(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    for i in range(13):
        assert cli("apply", "--root", str(root), "--ipv6", "on" if i % 2 else "off").returncode == 0
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
    assert cli("apply", "--root", str(root), "--ipv6", "on").returncode == 0
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
    assert cli("apply", "--root", str(root), "--ipv6", "on").returncode == 0
    assert "# leapseclist" in leap.read_text()
    now = {p: _meta(p) for p in (root / CONF, leap)}
    entries = history.Store(root).entries()
    done = cli("restore", "--root", str(root), "--original")
    assert done.returncode == 1, done.stdout
    assert "rejects the configuration the restore would put back (line 1 of /etc/chrony/conf.d/leap.conf)" \
        in done.stderr
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
    monkeypatch.setattr(service, "choose", lambda *a, **k: FakeService(log, "svc"))

    def silent() -> None:
        raise CommandFailed("chronyc: 506 Cannot talk to daemon")

    monkeypatch.setattr(chrony_tools, "tracking", silent)
    with pytest.raises(RolledBack) as failed:
        restore_mod.restore(Request(root=live.root), original=True, wait=0.5)
    assert "chronyd does not answer after the restore within 0.5 s" in failed.value.message
    assert live.snapshot() == applied
    assert log == ["svc:restart", "svc:restart"]  # onto the original, then back
    assert (live.root / LINK).is_symlink()
    # And once chronyd answers, the original comes back, without the boot unit chronyctl6 enabled.
    monkeypatch.setattr(chrony_tools, "tracking", lambda: None)
    done = restore_mod.restore(Request(root=live.root), original=True, wait=0.5)
    assert done.changed and done.answered_after is not None
    assert sorted(done.files) == ["/etc/chrony.conf", "/etc/chrony.d/link-local.sources",
                                  "/etc/systemd/system/multi-user.target.wants/chronyctl6-boot.service"]
    assert (live.root / "etc/chrony.d/link-local.sources").read_text() == "server 169.254.169.123 prefer iburst\n"
    assert not (live.root / LINK).is_symlink()
    after = {k: v for k, v in live.snapshot().items()
             if not k.startswith("run/chronyctl6/") and not k.endswith(".chronyctl6.bak")}
    assert after == stock  # bytes, mode 0640 and owner 1234:4321 of chrony.conf included


def test_a_history_entry_a_kill_left_half_written_is_cleared(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    assert cli("apply", "--root", str(root), "--ipv6", "on").returncode == 0
    half = root / "var/lib/chronyctl6/history/20260101T000000.000000000Z"
    (half / "etc/chrony").mkdir(parents=True)
    (half / "etc/chrony/chrony.conf").write_text("half\n")
    assert cli("apply", "--root", str(root), "--ipv6", "off").returncode == 0
    assert not half.exists()
    assert len(history.Store(root).entries()) == 2
