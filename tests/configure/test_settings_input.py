"""settings.toml as hostile input: directives that read files, scope ids, NaN/inf, bytes, FIFOs, size."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from chronyctl6.configure import settings
from chronyctl6.errors import BadInput
from tests.helpers import cli, stock_root, write_settings


@pytest.mark.parametrize("line", ["include /etc/chrony.d/*.conf", "confdir /etc/chrony.d",
                                  "sourcedir /etc/extra", "INCLUDE /x", "leapseclist /usr/share/zoneinfo/x"])
def test_directives_that_would_undo_the_takeover_are_refused(line: str) -> None:
    with pytest.raises(BadInput, match=r"directives\[0\]"):
        settings.parse(f"directives = [{line!r}]\n")


@pytest.mark.parametrize("host", ["fe80::1%eth0", "fe80::1%ens5", "fe80::1%enp0s31f6", "fe80::1%eth0.100"])
def test_scope_ids_that_are_interface_names(host: str) -> None:
    (source,) = settings.parse(f"[[servers]]\nhost = {host!r}\n").extra_sources
    assert source.host == host


@pytest.mark.parametrize("host", ["fe80::1%x maxpoll 99", "fe80::1%eth0 iburst", "fe80::1%a\tb",
                                  "fe80::1%" + "e" * 16, "fe80::1%..", "fe80::1%a:b", "fe80::1%é"])
def test_scope_ids_that_are_not_interface_names(host: str) -> None:
    with pytest.raises(BadInput, match="servers"):
        settings.parse(f"[[servers]]\nhost = {host!r}\n")


@pytest.mark.parametrize(
    "text",
    [
        "wait = nan\n", "wait = inf\n", "wait = -inf\n",
        "[timesync]\nminpoll = nan\n", "[timesync]\nmaxpoll = inf\n",
        "[[servers]]\nhost = 'a.example'\noptions = ['maxdelay nan']\n",
        "[[pools]]\nhost = 'a.example'\noptions = ['minpoll inf']\n",
        "[[pools]]\nhost = 'a.example'\noptions = ['offset -infinity']\n",
        "directives = ['maxclockerror nan']\n", "directives = ['makestep inf -1']\n",
    ],
)
def test_nan_and_inf_anywhere_are_bad_input(text: str) -> None:
    with pytest.raises(BadInput, match="not a finite number"):
        settings.parse(text)


def test_nan_in_a_file_exits_2_with_one_line(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    write_settings(root, "[timesync]\nminpoll = nan\n")
    done = cli("render", "--root", str(root))
    assert done.returncode == 2
    assert done.stderr.startswith("chronyctl6: error: timesync.minpoll: nan is not a finite number")


def test_non_utf8_settings_give_one_line_naming_the_file(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    path = write_settings(root, "")
    path.write_bytes(b"ipv6 = 'on'\n# caf\xe9\n")
    done = cli("render", "--root", str(root))
    assert done.returncode == 2, done.stderr
    first = done.stderr.splitlines()[0]
    assert first == (f"chronyctl6: error: {path}: not UTF-8 text (byte 0xe9 at offset 17)")
    assert "Traceback" not in done.stderr and "UnicodeDecodeError" not in done.stderr


@pytest.mark.parametrize("kind", ["fifo", "directory", "device"])
def test_special_settings_files_are_refused_without_hanging(tmp_path: Path, kind: str) -> None:
    root = stock_root(tmp_path, "debian12")
    path = root / "etc/chronyctl6/settings.toml"
    path.parent.mkdir(parents=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    started = time.monotonic()
    if kind == "device":
        done = cli("render", "--root", str(root), "--settings", "/dev/zero", timeout=30)
    else:
        done = cli("render", "--root", str(root), timeout=30)
    assert time.monotonic() - started < 20
    assert done.returncode == 2, done.stderr
    named = "/dev/zero" if kind == "device" else "/etc/chronyctl6/settings.toml"
    assert f"{named} is a " in done.stderr and "not a regular file: refused" in done.stderr
    assert "Traceback" not in done.stderr


def test_huge_settings_file_is_refused(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    write_settings(root, "# " + "x" * (settings.MAX_BYTES + 10) + "\n")
    done = cli("render", "--root", str(root))
    assert done.returncode == 2 and "over the" in done.stderr


def test_settings_symlink_is_read_inside_the_image(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    host_file = tmp_path / "host-settings.toml"
    host_file.write_text("ipv6 = 'off'\n")
    (root / "etc/chronyctl6").mkdir(parents=True)
    (root / "etc/chronyctl6/settings.toml").symlink_to(host_file)  # absolute: the host's path
    done = cli("render", "--root", str(root), "--ipv6", "on")
    assert done.returncode == 0, done.stderr
    assert "server fd00:ec2::123" in done.stdout  # the host's file was not read
