"""apply --root reads every file chronyd reads and takes conflicting sources over wherever they sit;
hostile image roots are refused with one line; a second apply drops and changes nothing."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from chronyctl6.chronyconf import directives
from chronyctl6.effects import configtree
from tests.conftest import FIXTURES
from tests.helpers import cli, cli_json, stock_root, write_settings

STOCK = sorted(p.name for p in (FIXTURES / "stock").iterdir() if p.is_dir())
SLES_POOL = "/etc/chrony.d/pool.conf"  # chrony-pool-suse's file


def conf_of(root: Path) -> Path:
    return next(p for p in (root / "etc/chrony.conf", root / "etc/chrony/chrony.conf") if p.exists())


def live_lines(root: Path, main: str) -> list[str]:
    return [d.directive.normalized for d in configtree.load(main, root).directives]


@pytest.mark.parametrize("distro", STOCK)
def test_second_apply_drops_nothing_and_changes_nothing(tmp_path: Path, distro: str) -> None:
    root = stock_root(tmp_path, distro)
    first = cli_json("apply", "--root", str(root), "--ipv6", "on")
    assert first["changed"] is True
    second = cli_json("apply", "--root", str(root), "--ipv6", "on")
    assert second["dropped"] == [] and second["changed"] is False and second["files"] == []


def test_sles_pool_dropin_is_taken_over_in_the_same_change(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "sles15")
    pool = root / SLES_POOL.lstrip("/")
    pool.write_text("# Default pool of the distribution\npool 2.suse.pool.ntp.org iburst\n")
    dry = cli_json("apply", "--root", str(root), "--ipv6", "on", "--dry-run")
    assert SLES_POOL in dry["files"] and f"+++ {SLES_POOL}" in dry["diff"]
    assert pool.read_text().endswith("pool 2.suse.pool.ntp.org iburst\n")  # dry run wrote nothing
    cli_json("apply", "--root", str(root), "--ipv6", "on")
    assert "# disabled by chronyctl6: non-smeared time" in pool.read_text()
    assert "# pool 2.suse.pool.ntp.org iburst\n" in pool.read_text()
    sources = [ln for ln in live_lines(root, "/etc/chrony.conf") if ln.split()[0] in ("server", "pool", "peer")]
    assert sources == ["server fd00:ec2::123 prefer iburst minpoll 4 maxpoll 4"]
    again = cli_json("apply", "--root", str(root), "--ipv6", "on")
    assert again["changed"] is False and again["dropped"] == []


def test_conflicts_in_confdir_include_and_sourcedir_files_and_leap_lines(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    (root / "etc/chrony/conf.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/chrony/sources.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/chrony/conf.d/10-v4.conf").write_text("server 169.254.169.123 iburst\nmaxclockerror 50\n")
    # leapsectz (leapseclist is chrony 4.6+: this machine's chronyd -p would reject the stock file itself)
    (root / "etc/chrony/conf.d/20-leap.conf").write_text("leapsectz right/UTC\n")
    (root / "etc/chrony/sources.d/ubuntu.sources").write_text("pool ntp.ubuntu.com iburst\n"
                                                               "server time.aws.com iburst\n")
    result = cli_json("apply", "--root", str(root), "--ipv6", "on")
    assert set(result["files"]) >= {"/etc/chrony/conf.d/10-v4.conf", "/etc/chrony/conf.d/20-leap.conf",
                                    "/etc/chrony/sources.d/ubuntu.sources"}
    live = live_lines(root, "/etc/chrony/chrony.conf")
    assert [ln for ln in live if ln.startswith(("server", "pool"))] == [
        "server fd00:ec2::123 prefer iburst minpoll 4 maxpoll 4", "server time.aws.com iburst"]
    assert "maxclockerror 50" in live and not [ln for ln in live if ln.startswith("leapsec")]
    assert cli_json("apply", "--root", str(root), "--ipv6", "on")["changed"] is False


def test_a_directive_behind_a_carriage_return_in_a_comment_never_goes_live(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    conf = conf_of(root)
    conf.write_bytes(conf.read_bytes() + b"# note\rcmdallow all\n! x\x0c\x85\xe2\x80\xa8cmdallow all\n")
    cli_json("apply", "--root", str(root), "--ipv6", "on")
    assert "cmdallow" not in " ".join(live_lines(root, "/etc/chrony/chrony.conf"))
    assert b"cmdallow" not in conf.read_bytes()


def test_non_utf8_bytes_in_a_carried_path_round_trip(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    conf = conf_of(root)
    text = conf.read_bytes().replace(b"driftfile /var/lib/chrony/chrony.drift",
                                     b"driftfile /var/lib/chrony/d\xe9rive.drift")
    assert b"\xe9" in text
    conf.write_bytes(text)
    result = cli_json("apply", "--root", str(root), "--ipv6", "on")
    assert result["validated"] is True  # chronyd -p read it too
    assert b"\ndriftfile /var/lib/chrony/d\xe9rive.drift\n" in conf.read_bytes()
    assert cli_json("apply", "--root", str(root), "--ipv6", "on")["changed"] is False


def run_refused(root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    done = cli("apply", "--root", str(root), "--ipv6", "on", *extra, timeout=30)
    assert time.monotonic() - started < 20
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "unexpected" not in done.stderr.lower()
    return done


def test_fifo_as_chrony_conf_is_refused(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "rhel9")
    (root / "etc/chrony.conf").unlink()
    os.mkfifo(root / "etc/chrony.conf")
    done = run_refused(root)
    assert "/etc/chrony.conf is a FIFO, not a regular file" in done.stderr


def test_fifo_as_a_dropin_is_refused_naming_how_it_was_reached(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "sles15")
    os.mkfifo(root / "etc/chrony.d/evil.conf")
    done = run_refused(root)
    assert "/etc/chrony.d/evil.conf (include /etc/chrony.d/*.conf in /etc/chrony.conf:" in done.stderr


def test_include_of_dev_zero_is_refused(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "rhel9")
    (root / "dev").mkdir()
    os.symlink("/dev/zero", root / "dev/zero")  # in the image, /dev/zero -> /dev/zero: a loop
    conf = root / "etc/chrony.conf"
    conf.write_text(conf.read_text() + "include /dev/zero\n")
    done = run_refused(root)
    assert "/dev/zero" in done.stderr


def test_absolute_symlink_out_of_the_image_reads_the_images_file(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "rhel9")
    conf = root / "etc/chrony.conf"
    (root / "usr/share/chrony").mkdir(parents=True)
    (root / "usr/share/chrony/chrony.conf").write_bytes(conf.read_bytes() + b"maxclockerror 42\n")
    conf.unlink()
    conf.symlink_to("/usr/share/chrony/chrony.conf")
    cli_json("apply", "--root", str(root), "--ipv6", "on")
    assert not conf.is_symlink()  # replaced, never written through
    assert "\nmaxclockerror 42\n" in conf.read_text()
    assert "fd00:ec2::123" not in (root / "usr/share/chrony/chrony.conf").read_text()


def test_symlinked_config_directory_outside_the_image_is_resolved_inside(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    host_dir = tmp_path / "host-etc-chrony"  # stands for a path that exists on the build host
    host_dir.mkdir()
    (host_dir / "chrony.conf").write_text("pool host-only.example\n")
    real = root / "usr/lib/chrony-etc"
    real.parent.mkdir(parents=True)
    (root / "etc/chrony").rename(real)
    os.symlink(str(host_dir).replace(str(root), ""), root / "etc/chrony")  # absolute: the host's path
    done = cli("apply", "--root", str(root), "--ipv6", "on", "-o", "json")
    # Inside the image that absolute path does not exist: the image has no chrony directory.
    assert done.returncode == 2 and "does not exist" in done.stderr
    assert (host_dir / "chrony.conf").read_text() == "pool host-only.example\n"


def test_written_file_is_what_the_traversal_reads_back(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "amzn2023")
    write_settings(root, "directives = ['maxclockerror 50']\n")
    cli_json("apply", "--root", str(root), "--ipv6", "on")
    data = conf_of(root).read_bytes()
    assert directives.is_managed(directives.decode(data))
    assert "maxclockerror 50" in live_lines(root, "/etc/chrony.conf")


def test_a_package_file_outside_etc_is_left_alone_with_a_warning(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "sles15")
    conf = root / "etc/chrony.conf"
    conf.write_text(conf.read_text() + "include /usr/etc/chrony.d/*.conf\n")
    vendor = root / "usr/etc/chrony.d/pool.conf"
    vendor.parent.mkdir(parents=True)
    vendor.write_text("pool 2.opensuse.pool.ntp.org iburst\n")
    result = cli_json("apply", "--root", str(root), "--ipv6", "on")
    assert vendor.read_text() == "pool 2.opensuse.pool.ntp.org iburst\n"
    assert any(w.startswith("/usr/etc/chrony.d/pool.conf adds pool 2.opensuse.pool.ntp.org iburst")
               and "belongs to a package" in w for w in result["warnings"])


def test_dotdot_out_of_the_image_is_refused(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "rhel9")
    conf = root / "etc/chrony.conf"
    conf.write_text(conf.read_text() + "include /../../../../../../../../etc/passwd\n")
    done = run_refused(root)
    assert "leads out of" in done.stderr and "/etc/chrony.conf:" in done.stderr


def test_dangling_symlink_in_a_sourcedir_is_skipped(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "amzn2")
    os.symlink("/usr/share/gone/x.sources", root / "etc/chrony.d/gone.sources")
    (root / "etc/chrony.d/ok.sources").write_text("server 169.254.169.123 iburst\n")
    result = cli_json("apply", "--root", str(root), "--ipv6", "on")
    assert "/etc/chrony.d/ok.sources" in result["files"]
    assert "# server 169.254.169.123 iburst" in (root / "etc/chrony.d/ok.sources").read_text()


def test_the_boot_steps_own_sources_file_is_no_conflict(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    cli_json("apply", "--root", str(root), "--ipv6", "auto")  # an image: chosen at boot
    boot = root / "run/chronyctl6/timesync.sources"
    boot.parent.mkdir(parents=True)
    boot.write_text("server fd00:ec2::123 prefer iburst minpoll 4 maxpoll 4\n")
    again = cli_json("apply", "--root", str(root), "--ipv6", "auto")
    assert again["warnings"] == [w for w in again["warnings"] if "timesync.sources" not in w]
    assert again["changed"] is False and again["dropped"] == []


def test_a_symlinked_dropin_is_replaced_never_written_through(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "amzn2")
    target = root / "usr/share/vendor/pool.sources"
    target.parent.mkdir(parents=True)
    target.write_text("pool 2.amazon.pool.ntp.org iburst\n")
    link = root / "etc/chrony.d/pool.sources"
    link.symlink_to("/usr/share/vendor/pool.sources")
    cli_json("apply", "--root", str(root), "--ipv6", "on")
    assert target.read_text() == "pool 2.amazon.pool.ntp.org iburst\n"
    assert not link.is_symlink() and "# pool 2.amazon.pool.ntp.org iburst" in link.read_text()


def test_os_release_is_read_inside_the_image(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "rhel9")
    release = root / "etc/os-release"
    (root / "usr/lib").mkdir(parents=True)
    release.rename(root / "usr/lib/os-release")
    release.symlink_to("/usr/lib/os-release")  # absolute: on the build host that is the host's file
    done = cli("render", "--root", str(root))
    assert done.returncode == 0, done.stderr
    assert done.stdout == cli("render", "--root", str(root), "--distro", "rhel").stdout
    assert done.stdout != cli("render", "--root", str(root), "--distro", "debian").stdout  # this host's
    release.unlink()
    os.mkfifo(release)
    refused = run_refused(root)
    assert "/etc/os-release is a FIFO" in refused.stderr


def test_leapseclist_is_dropped_with_its_reason_and_never_rendered() -> None:
    from chronyctl6.configure import render, settings
    from chronyctl6.configure.platforms import by_name

    stock = (FIXTURES / "stock/debian12/etc/chrony/chrony.conf").read_text()
    debian13 = stock.replace("leapsectz right/UTC", "leapseclist /usr/share/zoneinfo/leap-seconds.list")
    assert "\nleapseclist " in debian13
    choices = render.decide(settings.Settings(ipv6="on"), by_name("debian"), network=None, phc_device=None)
    rendered = render.render_config(choices, debian13)
    # The template's comment says why leapsectz and leapseclist are left out; the line itself is
    # in the text neither as a directive nor commented out.
    assert not [d for d in directives.parse(rendered.text) if d.keyword == "leapseclist"]
    assert "leap-seconds.list" not in rendered.text
    (dropped,) = [v for v in rendered.dropped if v.directive.keyword == "leapseclist"]
    assert "smears leap seconds" in dropped.reason


def test_an_edited_dropin_keeps_every_other_byte(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "amzn2")
    data = (b"# caf\xe9 \x00 after a NUL\r\n"
            b"pool 2.amazon.pool.ntp.org iburst\x00 tail\n"
            b"server time.aws.com iburst\x0c\n"
            b"server b.example")  # no final line break: chronyd does not read it from a .sources file
    dropin = root / "etc/chrony.d/mixed.sources"
    dropin.write_bytes(data)
    cli_json("apply", "--root", str(root), "--ipv6", "on")
    assert dropin.read_bytes() == (
        b"# caf\xe9 \x00 after a NUL\r\n"
        b"# disabled by chronyctl6: non-smeared time beside Time Sync's leap-smeared time\n"
        b"# pool 2.amazon.pool.ntp.org iburst\x00 tail\n"
        b"server time.aws.com iburst\x0c\n"
        b"server b.example")
