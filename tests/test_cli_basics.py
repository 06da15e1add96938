"""The command line's surface: version, help that teaches, render to stdout, bad flags."""

from __future__ import annotations

from pathlib import Path

from chronyctl6 import __version__
from tests.helpers import cli, stock_root


def test_version() -> None:
    done = cli("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"chronyctl6 {__version__}"


def test_help_lists_every_command() -> None:
    done = cli("--help")
    assert done.returncode == 0
    for command in ("render", "apply", "boot", "check"):
        assert command in done.stdout


def test_apply_help_teaches_exit_statuses_and_choices() -> None:
    text = cli("apply", "--help").stdout
    for needle in ("--root", "--ipv6", "--wait", "--dry-run", "fd00:ec2::123", "169.254.169.123", "Exit 0"):
        assert needle in text, needle


def test_render_prints_the_file_apply_would_write(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "ubuntu2204")
    before = (root / "etc/chrony/chrony.conf").read_bytes()
    done = cli("render", "--root", str(root), "--ipv6", "on")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# This file is managed by chronyctl6.")
    assert "\nserver fd00:ec2::123 prefer iburst minpoll 4 maxpoll 4\n" in done.stdout
    assert (root / "etc/chrony/chrony.conf").read_bytes() == before


def test_bad_flag_value_is_bad_input(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    done = cli("render", "--root", str(root), "--ipv6", "maybe")
    assert done.returncode == 2
    assert "--ipv6" in done.stderr and "Traceback" not in done.stderr


def test_missing_root_is_bad_input(tmp_path: Path) -> None:
    done = cli("render", "--root", str(tmp_path / "nope"))
    assert done.returncode == 2 and "not a directory" in done.stderr


def test_root_without_chrony_says_so(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "rhel9")
    (root / "etc/chrony.conf").unlink()
    # /etc exists, so this is a root where chrony's file is simply missing: render from the template.
    done = cli("render", "--root", str(root), "--ipv6", "off")
    assert done.returncode == 0 and "server 169.254.169.123" in done.stdout
    done = cli("render", "--root", str(root), "--distro", "debian")
    assert done.returncode == 2 and "is chrony installed" in done.stderr
