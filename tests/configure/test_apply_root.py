"""apply into image roots (--root): first write, idempotence, diffs, backups, faults, locking."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.contract import envelope
from tests.helpers import apply_root, cli, cli_json, stock_root, write_settings

DEBIAN_CONF = "etc/chrony/chrony.conf"


def test_first_apply_then_nothing_to_do(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    conf = root / DEBIAN_CONF
    first = cli_json("apply", "--root", str(root), "--ipv6", "on")
    assert first["changed"] is True
    assert first["action"] == "none"  # an image: nothing is restarted
    assert first["validated"] is True
    assert "server fd00:ec2::123 prefer iburst minpoll 4 maxpoll 4" in conf.read_text()
    before = conf.stat()
    second = cli_json("apply", "--root", str(root), "--ipv6", "on")
    after = conf.stat()
    assert second["changed"] is False and second["diff"] == ""
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_takeover_keeps_operator_lines_and_lists_what_it_dropped(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    conf = root / DEBIAN_CONF
    operator = ["allow 192.0.2.0/24", "local stratum 10", "hwtimestamp *", "bindcmdaddress 127.0.0.1",
                "log tracking measurements", "maxclockerror 50"]
    conf.write_text(conf.read_text() + "\n".join(operator) + "\n")
    result = cli_json("apply", "--root", str(root), "--ipv6", "on")
    text = conf.read_text()
    for line in operator:
        assert f"\n{line}\n" in text
    assert {d["line"] for d in result["dropped"]} == {"pool 2.debian.pool.ntp.org iburst", "leapsectz right/UTC"}
    for keep in ("confdir /etc/chrony/conf.d", "sourcedir /run/chrony-dhcp", "sourcedir /etc/chrony/sources.d",
                 "keyfile /etc/chrony/chrony.keys", "driftfile /var/lib/chrony/chrony.drift"):
        assert f"\n{keep}\n" in text
    assert "\nleapsectz" not in text and "\npool " not in text


@pytest.mark.parametrize("distro", ["debian12", "ubuntu2204", "amzn2", "amzn2023", "rhel9"])
def test_takeover_of_each_stock_file_with_operator_lines(tmp_path: Path, distro: str) -> None:
    root = stock_root(tmp_path, distro)
    conf = next(p for p in (root / "etc/chrony.conf", root / DEBIAN_CONF) if p.exists())
    conf.write_text(conf.read_text() + "allow 198.51.100.0/24\nmaxclockerror 50\nmakestep 0.1 -1\n")
    cli_json("apply", "--root", str(root), "--ipv6", "on")
    text = conf.read_text()
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert "allow 198.51.100.0/24" in lines and "maxclockerror 50" in lines
    # The operator's makestep replaces the distro's: chrony would take the last one anyway.
    assert [ln for ln in lines if ln.startswith("makestep")] == ["makestep 0.1 -1"]
    assert [ln for ln in lines if "169.254.169.123" in ln or "fd00:ec2::123" in ln] == [
        "server fd00:ec2::123 prefer iburst minpoll 4 maxpoll 4"]
    # Re-applying our own file changes nothing.
    assert cli_json("apply", "--root", str(root), "--ipv6", "on")["changed"] is False


def test_changed_settings_rewrite(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    cli_json("apply", "--root", str(root), "--ipv6", "on")
    write_settings(root, "ipv6 = 'off'\ndirectives = ['maxclockerror 50']\n")
    result = cli_json("apply", "--root", str(root))
    assert result["changed"] is True
    assert "-server fd00:ec2::123" in result["diff"] and "+server 169.254.169.123" in result["diff"]
    assert "+maxclockerror 50" in result["diff"]


def test_dry_run_and_diff_write_nothing(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    conf = root / DEBIAN_CONF
    before = conf.read_bytes()
    listing = sorted(p.name for p in conf.parent.iterdir())
    done = apply_root(root, "--ipv6", "on", "--dry-run", "--diff")
    assert "+server fd00:ec2::123" in done.stdout and "-pool 2.debian.pool.ntp.org iburst" in done.stdout
    assert "would change" in done.stdout
    assert conf.read_bytes() == before
    assert sorted(p.name for p in conf.parent.iterdir()) == listing  # no backup, no temp file


@pytest.mark.root  # chown: the owner is kept
def test_backup_keeps_mode_and_owner(tmp_path: Path) -> None:
    """The backup is the history entry in the state directory, never a copy beside the file (where
    chronyd may read it); restore puts it back with its mode and owner."""
    root = stock_root(tmp_path, "debian12")
    conf = root / DEBIAN_CONF
    original = conf.read_bytes()
    os.chown(conf, 1234, 4321)
    conf.chmod(0o640)
    listing = sorted(p.name for p in conf.parent.iterdir())
    result = cli_json("apply", "--root", str(root), "--ipv6", "on")
    backup = Path(result["backup"])
    assert backup == Path(result["history"]) / DEBIAN_CONF
    assert backup.is_relative_to(root / "var/lib/chronyctl6/history") and backup.read_bytes() == original
    assert sorted(p.name for p in conf.parent.iterdir()) == listing  # nothing beside chrony.conf
    st = conf.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1234, 4321, 0o640)
    assert cli("restore", "--root", str(root)).returncode == 0
    st = conf.stat()
    assert conf.read_bytes() == original and (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1234, 4321, 0o640)


def test_json_output_shape(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "rhel9")
    result = cli_json("apply", "--root", str(root), "--ipv6", "off")
    assert {"changed", "path", "backup", "action", "diff"} <= set(result)
    assert result["path"] == "/etc/chrony.conf"


def test_root_with_auto_ipv6_chooses_at_boot(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "amzn2023")
    done = apply_root(root)
    text = (root / "etc/chrony.conf").read_text()
    assert "\nsourcedir /run/chronyctl6\n" in text
    assert "\nserver " not in text
    assert "chronyctl6-boot.service" in done.stderr


# ---- faults: each leaves the previous file byte for byte -----------------------------------

def test_chronyd_rejects_the_candidate(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    conf = root / DEBIAN_CONF
    before = conf.read_bytes()
    listing = sorted(p.name for p in conf.parent.iterdir())
    write_settings(root, "directives = ['makestep never ever']\n")
    done = cli("apply", "--root", str(root), "--ipv6", "on")
    assert done.returncode == 1
    assert "rejects `makestep never ever`, from settings.toml (Could not parse makestep directive at line" \
        in done.stderr
    assert ".tmp" not in done.stderr  # the candidate's temporary name means nothing to the operator
    assert conf.read_bytes() == before
    assert sorted(p.name for p in conf.parent.iterdir()) == listing  # no backup, no temp file


def test_bad_settings_write_nothing(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    before = (root / DEBIAN_CONF).read_bytes()
    write_settings(root, '[[servers]]\nhost = "ok.example\\nserver evil.example"\n')
    done = cli("apply", "--root", str(root))
    assert done.returncode == 2
    assert "servers[0].host" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert (root / DEBIAN_CONF).read_bytes() == before


def test_unknown_distro_is_a_clear_error(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    (root / "etc/os-release").write_text('ID=gentoo\nPRETTY_NAME="Gentoo"\n')
    done = cli("render", "--root", str(root))
    assert done.returncode == 2
    assert "--distro" in done.stderr
    assert cli("render", "--root", str(root), "--distro", "debian").returncode == 0


def _apply_under_mounts(root: Path, mounts: str, after: str = "") -> subprocess.CompletedProcess[str]:
    """`apply --root ROOT --ipv6 on` as a process, in a private mount namespace where `mounts` ran
    first; `after` runs once it exited (its status kept)."""
    from tests.conftest import REPO

    script = (f"{mounts}; cd {REPO}; set +e; python3 -m chronyctl6 apply --root {root} --ipv6 on; rc=$?; "
              f"{after}exit $rc")
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-euc", script],
                          capture_output=True, text=True, timeout=60, check=False)


def _read_only(directory: Path) -> str:
    return f"mount --bind {directory} {directory}; mount -o remount,bind,ro {directory}"


@pytest.mark.root  # mounts in a private mount namespace
def test_read_only_directory(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    conf = root / DEBIAN_CONF
    before = conf.read_bytes()
    done = _apply_under_mounts(root, _read_only(conf.parent))
    assert done.returncode == 1, done.stderr
    assert "Read-only file system" in done.stderr
    assert conf.read_bytes() == before


@pytest.mark.root  # mounts in a private mount namespace
def test_disk_full(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    conf = root / DEBIAN_CONF
    before = conf.read_bytes()
    # A tiny tmpfs holding only the old file and a filler that leaves almost no room.
    done = _apply_under_mounts(
        root, f"mount -t tmpfs -o size=16k tmpfs {conf.parent}; printf %s {before.hex()} | xxd -r -p > {conf}; "
              f"dd if=/dev/zero of={conf.parent}/filler bs=1k count=64 2>/dev/null || true",
        after=f"sha256sum {conf}; ls -a {conf.parent}; ")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "disk is full" in done.stderr or "No space left" in done.stderr
    import hashlib
    assert hashlib.sha256(before).hexdigest() in done.stdout
    assert ".tmp" not in done.stdout  # no temp file left behind


def test_second_apply_while_one_holds_the_lock(tmp_path: Path) -> None:
    """The lock is the state directory's `lock` (0600 in a 0700 directory): a flock on the
    configuration directory, which any local user can open, no longer stops apply; a holder of
    the real lock does, and the message names it (here: it wrote nothing, so "unknown")."""
    root = stock_root(tmp_path, "debian12")
    directory = root / "etc/chrony"
    before = (directory / "chrony.conf").read_bytes()
    state = root / "var/lib/chronyctl6"
    state.mkdir(parents=True, mode=0o700)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    lock = os.open(state / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = cli("apply", "--root", str(root), "--ipv6", "on", "--lock-timeout", "0.5")
    finally:
        os.close(lock)
    try:
        assert done.returncode == 3
        assert f"{state}/lock is held by an unknown process" in done.stderr
        assert "another chronyctl6 apply" not in done.stderr
        assert (directory / "chrony.conf").read_bytes() == before
        free = cli("apply", "--root", str(root), "--ipv6", "on", "--lock-timeout", "0.5")  # config dir still flocked
    finally:
        os.close(fd)
    assert free.returncode == 0, free.stderr


@pytest.mark.parametrize("args", [["apply", "--ipv6", "on", "--distro", "debian"],
                                  ["apply", "--check", "--distro", "debian"],
                                  ["restore", "--original"]], ids=["apply", "check", "restore"])
def test_live_apply_needs_root(args: list[str]) -> None:
    if os.geteuid() != 0:  # already unprivileged (scripts/test's run as nobody)
        done = cli(*args)
    else:  # Debian's own python3 and python3-typer 0.7.0 as nobody, who may not read root's python
        done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                               "/usr/bin/python3", "-m", "chronyctl6", *args],
                              capture_output=True, text=True, timeout=60, check=False,
                              cwd=str(Path(__file__).resolve().parents[2]))
    assert done.returncode == 4, done.stderr
    assert "needs root" in done.stderr


def test_choosing_at_boot_enables_the_boot_unit_in_the_image(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    unit = root / "lib/systemd/system/chronyctl6-boot.service"
    unit.parent.mkdir(parents=True)
    unit.write_text("[Service]\nExecStart=/usr/bin/chronyctl6 boot\n")
    apply_root(root)
    link = root / "etc/systemd/system/multi-user.target.wants/chronyctl6-boot.service"
    assert link.is_symlink() and os.readlink(link) == "/lib/systemd/system/chronyctl6-boot.service"
    # A fixed endpoint does not need it, and a second bake leaves the link alone.
    assert cli("apply", "--root", str(root)).returncode == 0 and link.is_symlink()


def test_at_boot_without_the_unit_says_how_to_run_the_boot_step(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    done = cli("apply", "--root", str(root))
    assert done.returncode == 0
    assert "chronyctl6-boot.service is not installed here" in done.stderr
    assert not (root / "etc/systemd/system").exists()


def test_conflicting_dropins_are_disabled_and_boot_filled_dirs_replaced(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "amzn2023")
    etc_d, run_d = root / "etc/chrony.d", root / "run/chrony.d"
    etc_d.mkdir()
    # The stock root's /run/chrony.d holds amazon-chrony-config's absolute links into the image.
    link = run_d / "link-local-ipv4.sources"
    target = "/usr/share/amazon-chrony-config/link-local-ipv4_unspecified.sources"
    assert link.is_symlink() and str(link.readlink()) == target
    (etc_d / "link-local.sources").write_text("# Amazon Time Sync, IPv4\nserver 169.254.169.123 prefer iburst\n")
    (etc_d / "ntp-pool.sources").write_text("pool 2.amazon.pool.ntp.org iburst\n")
    (etc_d / "aws.sources").write_text("pool time.aws.com iburst\n")  # smeared: fine beside Time Sync
    done = apply_root(root, "--ipv6", "on", "--diff")
    assert (etc_d / "link-local.sources").read_text() == (
        "# Amazon Time Sync, IPv4\n# disabled by chronyctl6: a second Time Sync line: chronyctl6 writes the one "
        "this instance uses\n# server 169.254.169.123 prefer iburst\n")
    assert (etc_d / "ntp-pool.sources").read_text().endswith("# pool 2.amazon.pool.ntp.org iburst\n")
    assert (etc_d / "aws.sources").read_text() == "pool time.aws.com iburst\n"
    assert "-server 169.254.169.123 prefer iburst" in done.stdout  # shown in the diff
    # Amazon Linux refills /run/chrony.d at every boot: its sourcedir is replaced, not edited.
    assert re.search(r"dropped: /etc/chrony\.conf:\d+: sourcedir /run/chrony\.d  \(Amazon Linux fills it at every boot",
                     done.stdout)
    assert "\nsourcedir /run/chrony.d" not in (root / "etc/chrony.conf").read_text()
    assert link.is_symlink() and str(link.readlink()) == target  # left alone
    # Nothing left to disable on the second run.
    assert cli_json("apply", "--root", str(root), "--ipv6", "on")["changed"] is False


# ---- state that must hold is checked on every run; apply --check --------------------------

def _install_unit(root: Path) -> Path:
    unit = root / "lib/systemd/system/chronyctl6-boot.service"
    unit.parent.mkdir(parents=True, exist_ok=True)
    unit.write_text("[Service]\nExecStart=/usr/bin/chronyctl6 boot\n")
    return root / "etc/systemd/system/multi-user.target.wants/chronyctl6-boot.service"


def test_an_image_baked_before_the_unit_existed_gets_it_enabled_on_the_next_run(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    apply_root(root)  # baked before the package was installed
    conf = (root / DEBIAN_CONF).read_bytes()
    link = _install_unit(root)
    check = cli("apply", "--root", str(root), "--check")
    assert check.returncode == 5, check.stdout + check.stderr
    assert "enable /lib/systemd/system/chronyctl6-boot.service" in check.stdout
    assert not link.is_symlink()  # --check changed nothing
    done = cli_json("apply", "--root", str(root))
    assert done["files"] == [] and done["enabled"] == "/lib/systemd/system/chronyctl6-boot.service"
    assert os.readlink(link) == "/lib/systemd/system/chronyctl6-boot.service"
    assert (root / DEBIAN_CONF).read_bytes() == conf  # chrony.conf was already up to date
    assert cli("apply", "--root", str(root), "--check").returncode == 0


def test_a_kill_between_write_and_enable_is_repaired_by_the_next_run(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    link = _install_unit(root)
    apply_root(root)
    link.unlink()  # what a SIGKILL after the write and before the link leaves
    assert cli("apply", "--root", str(root), "--check").returncode == 5
    apply_root(root)
    assert link.is_symlink()


def test_check_exits_5_with_a_diff_when_files_differ_and_writes_nothing(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    conf = (root / DEBIAN_CONF).read_bytes()
    done = cli("apply", "--root", str(root), "--ipv6", "on", "--check", "--diff")
    assert done.returncode == 5, done.stderr
    assert "+server fd00:ec2::123" in done.stdout and "would change: /etc/chrony/chrony.conf" in done.stdout
    assert (root / DEBIAN_CONF).read_bytes() == conf
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # no state, no history
    as_json = cli("apply", "--root", str(root), "--ipv6", "on", "--check", "-o", "json")
    doc = envelope(as_json, "apply")  # the chronyctl6/v1 envelope, valid against the schema
    assert as_json.returncode == 5 and doc["status"] == "pending"
    assert doc["data"]["check"] is True and doc["data"]["changed"] is True
    assert cli("apply", "--root", str(root), "--ipv6", "on", "--check", "--dry-run").returncode == 5
    apply_root(root, "--ipv6", "on")
    assert cli("apply", "--root", str(root), "--ipv6", "on", "--check").returncode == 0
    # Bad input is still 2, even with --check.
    assert cli("apply", "--root", str(root), "--ipv6", "maybe", "--check").returncode == 2


@pytest.mark.parametrize("flag", ["--wait", "--lock-timeout"])
@pytest.mark.parametrize("value", ["nan", "inf", "-1", "-inf"])
def test_wait_and_lock_timeout_refuse_nan_inf_and_negatives(tmp_path: Path, flag: str, value: str) -> None:
    root = stock_root(tmp_path, "debian12")
    conf = (root / DEBIAN_CONF).read_bytes()
    done = cli("apply", "--root", str(root), "--ipv6", "on", f"{flag}={value}")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert (root / DEBIAN_CONF).read_bytes() == conf


@pytest.mark.root  # mounts in a private mount namespace
def test_a_multi_file_change_whose_second_file_is_read_only_leaves_the_first_as_before(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "amzn2023")
    conf, dropin = root / "etc/chrony.conf", root / "etc/chrony.d/link-local.sources"
    dropin.parent.mkdir()  # the operator's: AL2023's stock image has no /etc/chrony.d
    dropin.write_text("server 169.254.169.123 prefer iburst\n")
    before = {p: p.read_bytes() for p in (conf, dropin)}
    done = _apply_under_mounts(root, _read_only(dropin.parent))
    assert done.returncode == 1, done.stderr
    assert "Read-only file system" in done.stderr and "previous configuration is restored" in done.stderr
    assert {p: p.read_bytes() for p in before} == before
    assert not list((root / "var/lib/chronyctl6").glob("history/*"))


def test_a_fifo_or_a_huge_file_in_place_of_chrony_conf_is_refused_not_read(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    conf = root / DEBIAN_CONF
    conf.unlink()
    os.mkfifo(conf)
    done = cli("apply", "--root", str(root), "--ipv6", "on", timeout=30)
    assert done.returncode == 2 and "not a regular file" in done.stderr
    conf.unlink()
    with conf.open("wb") as f:
        f.truncate(64 << 20)
    done = cli("apply", "--root", str(root), "--ipv6", "on", timeout=30)
    assert done.returncode == 2 and "over the 1048576 chronyctl6 reads" in done.stderr  # files.read_bounded


@pytest.mark.parametrize("link", ["etc/chrony", "var/lib"])
def test_an_image_symlink_pointing_out_of_the_root_is_never_written_through(tmp_path: Path, link: str) -> None:
    """An absolute symlink in an image points at the build host: here, at a directory beside the root.
    The one rooted-path rule (files.resolve_in_root) takes it inside the image again, as chronyd
    there would: reads and writes land under the root, never on the build host."""
    root = stock_root(tmp_path, "debian12")
    outside = tmp_path / "build-host" / link
    outside.parent.mkdir(parents=True)
    inside = root / link
    if inside.exists():
        shutil.move(str(inside), str(outside))
    else:
        outside.mkdir()
    inside.parent.mkdir(parents=True, exist_ok=True)
    inside.symlink_to(outside)  # absolute
    before = {p: p.read_bytes() for p in outside.rglob("*") if p.is_file()}
    done = cli("apply", "--root", str(root), "--ipv6", "on")
    rerooted = root / str(outside).lstrip("/")  # where the link leads inside the image
    if link == "etc/chrony":  # inside the image that directory does not exist: nothing to take over
        assert done.returncode == 2, done.stdout + done.stderr
        assert f"{rerooted} does not exist" in done.stderr
        assert not (root / "var/lib/chronyctl6").exists()  # refused before anything was written, anywhere
    else:  # the state directory is kept inside the image, under the re-rooted link
        assert done.returncode == 0, done.stdout + done.stderr
        assert (rerooted / "chronyctl6/state.json").is_file()
        assert (rerooted / "chronyctl6/original/etc/chrony/chrony.conf").is_file()
    assert "restored" not in done.stderr
    assert {p: p.read_bytes() for p in outside.rglob("*") if p.is_file()} == before
    assert not (outside / "chronyctl6").exists()
