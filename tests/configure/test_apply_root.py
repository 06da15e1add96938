"""apply into image roots (--root): first write, idempotence, diffs, backups, faults, locking."""

from __future__ import annotations

import fcntl
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import cli, cli_json, stock_root, write_settings

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
    done = cli("apply", "--root", str(root), "--ipv6", "on", "--dry-run", "--diff")
    assert done.returncode == 0, done.stderr
    assert "+server fd00:ec2::123" in done.stdout and "-pool 2.debian.pool.ntp.org iburst" in done.stdout
    assert "would change" in done.stdout
    assert conf.read_bytes() == before
    assert sorted(p.name for p in conf.parent.iterdir()) == listing  # no backup, no temp file


def test_backup_keeps_mode_and_owner(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    conf = root / DEBIAN_CONF
    original = conf.read_bytes()
    os.chown(conf, 1234, 4321)
    conf.chmod(0o640)
    result = cli_json("apply", "--root", str(root), "--ipv6", "on")
    backup = Path(result["backup"])
    assert backup == conf.with_name("chrony.conf.chronyctl6.bak")
    assert backup.read_bytes() == original
    for path in (backup, conf):
        st = path.stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1234, 4321, 0o640), path


def test_json_output_shape(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "rhel9")
    result = cli_json("apply", "--root", str(root), "--ipv6", "off")
    assert {"changed", "path", "backup", "action", "diff"} <= set(result)
    assert result["path"] == "/etc/chrony.conf"


def test_root_with_auto_ipv6_chooses_at_boot(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "amzn2023")
    done = cli("apply", "--root", str(root))
    assert done.returncode == 0, done.stderr
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


def _in_private_mounts(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-euc", script],
                          capture_output=True, text=True, timeout=60, check=False)


def test_read_only_directory(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    conf = root / DEBIAN_CONF
    before = conf.read_bytes()
    from tests.conftest import REPO
    done = _in_private_mounts(
        f"mount --bind {conf.parent} {conf.parent}; mount -o remount,bind,ro {conf.parent}; "
        f"cd {REPO}; python3 -m chronyctl6 apply --root {root} --ipv6 on"
    )
    assert done.returncode == 1, done.stderr
    assert "Read-only file system" in done.stderr
    assert conf.read_bytes() == before


def test_disk_full(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    conf = root / DEBIAN_CONF
    before = conf.read_bytes()
    from tests.conftest import REPO
    # A tiny tmpfs holding only the old file and a filler that leaves almost no room.
    done = _in_private_mounts(
        f"mount -t tmpfs -o size=16k tmpfs {conf.parent}; printf %s {before.hex()} | xxd -r -p > {conf}; "
        f"dd if=/dev/zero of={conf.parent}/filler bs=1k count=64 2>/dev/null || true; "
        f"cd {REPO}; set +e; python3 -m chronyctl6 apply --root {root} --ipv6 on; rc=$?; "
        f"sha256sum {conf}; ls -a {conf.parent}; exit $rc"
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "disk is full" in done.stderr or "No space left" in done.stderr
    import hashlib
    assert hashlib.sha256(before).hexdigest() in done.stdout
    assert ".tmp" not in done.stdout  # no temp file left behind


def test_second_apply_while_one_holds_the_lock(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    directory = root / "etc/chrony"
    before = (directory / "chrony.conf").read_bytes()
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        done = cli("apply", "--root", str(root), "--ipv6", "on", "--lock-timeout", "0.5")
    finally:
        os.close(fd)
    assert done.returncode == 3
    assert "another chronyctl6 apply" in done.stderr
    assert (directory / "chrony.conf").read_bytes() == before
    assert cli("apply", "--root", str(root), "--ipv6", "on").returncode == 0


def test_live_apply_needs_root() -> None:
    # Debian's own python3 and python3-typer 0.7.0: the unprivileged user cannot read our venv.
    done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           "/usr/bin/python3", "-m", "chronyctl6", "apply", "--ipv6", "on", "--distro", "debian"],
                          capture_output=True, text=True, timeout=60, check=False,
                          cwd=str(Path(__file__).resolve().parents[2]))
    assert done.returncode == 4, done.stderr
    assert "needs root" in done.stderr


def test_choosing_at_boot_enables_the_boot_unit_in_the_image(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    unit = root / "lib/systemd/system/chronyctl6-boot.service"
    unit.parent.mkdir(parents=True)
    unit.write_text("[Service]\nExecStart=/usr/bin/chronyctl6 boot\n")
    done = cli("apply", "--root", str(root))
    assert done.returncode == 0, done.stderr
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
    done = cli("apply", "--root", str(root), "--ipv6", "on", "--diff")
    assert done.returncode == 0, done.stderr
    assert (etc_d / "link-local.sources").read_text() == (
        "# Amazon Time Sync, IPv4\n# disabled by chronyctl6: a second Time Sync line: chronyctl6 writes the one "
        "this instance uses\n# server 169.254.169.123 prefer iburst\n")
    assert (etc_d / "ntp-pool.sources").read_text().endswith("# pool 2.amazon.pool.ntp.org iburst\n")
    assert (etc_d / "aws.sources").read_text() == "pool time.aws.com iburst\n"
    assert "-server 169.254.169.123 prefer iburst" in done.stdout  # shown in the diff
    # Amazon Linux refills /run/chrony.d at every boot: its sourcedir is replaced, not edited.
    assert "dropped: sourcedir /run/chrony.d  (Amazon Linux fills it at every boot" in done.stdout
    assert "\nsourcedir /run/chrony.d" not in (root / "etc/chrony.conf").read_text()
    assert link.is_symlink() and str(link.readlink()) == target  # left alone
    # Nothing left to disable on the second run.
    again = cli("apply", "--root", str(root), "--ipv6", "on", "-o", "json")
    assert '"changed": false' in again.stdout
