"""Process identity (issue 18 item 7): chronyd is known by its executable, owner and PID namespace,
never by its name; chronyd's arguments are parsed as chronyd's getopt parses them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import psutil
import pytest

from chronyctl6.effects import daemons
from chronyctl6.effects.commands import which
from tests.conftest import require
from tests.helpers import wait_for

ROOT_NS = daemons.Identity(True, 0, 1)


@pytest.mark.parametrize(("args", "expected"), [
    (("-f", "/etc/x.conf", "-x"), "/etc/x.conf"), (("-f/etc/y.conf",), "/etc/y.conf"),
    (("-d", "-x"), None), (("-xdf", "/etc/z.conf"), "/etc/z.conf"), (("-u", "-f"), None),
    (("-f", "/a", "-f", "/b"), "/b"), (("-f", "/a", "--", "-f", "/b"), "/a"), (("server x", "-f", "/b"), "/b"),
], ids=["-f FILE", "-fFILE", "none", "clustered", "-u takes -f as its user", "last wins", "--",
        "directive (getopt permutes)"])
def test_config_file_follows_chronyds_getopt(args: tuple[str, ...], expected: str | None) -> None:
    assert daemons.config_file(args) == expected


def test_f_without_a_file_is_an_error() -> None:
    with pytest.raises(daemons.BadArguments, match="-f needs an argument"):
        daemons.config_file(["-x", "-f"])


@pytest.mark.parametrize(("who", "expected"), [
    (ROOT_NS, True),
    (daemons.Identity(True, 108, 1), True),  # dropped to _chrony
    (daemons.Identity(None, 0, 1), True),  # exe hidden from a non-root caller: owner and namespace decide
    (daemons.Identity(True, 1000, 1), False),  # an unprivileged user's process
    (daemons.Identity(None, 1000, 1), False),
    (daemons.Identity(False, 0, 1), False),  # named chronyd, is something else
    (daemons.Identity(True, 0, 2), False),  # a container's chronyd (a PID namespace below ours)
])
def test_identity_rules(who: daemons.Identity, expected: bool) -> None:
    assert daemons.is_chronyd(who, owners={0, 108}, ns_depth=1) is expected


def _pids(scan: daemons.Scan) -> set[int]:
    return {p.pid for p in scan.chronyd}


def test_a_process_merely_named_chronyd_is_not_chronyd(tmp_path: Path) -> None:
    fake = tmp_path / "chronyd"
    shutil.copy2("/bin/sleep", fake)
    proc = subprocess.Popen([str(fake), "60"])
    try:
        wait_for(lambda: psutil.Process(proc.pid).name(), lambda name: name == "chronyd", what="the copy exec'd",
                 every=0.01, alive=lambda: proc.poll() is None)
        assert not daemons.is_chronyd_pid(proc.pid)
        assert proc.pid not in _pids(daemons.scan())
        who = daemons.identity(proc.pid)  # our own child: its executable is readable to us
        assert who is not None and who.chronyd_exe is False
    finally:
        proc.kill()
        proc.wait()


def _chronyd_config(tmp_path: Path) -> Path:
    tmp_path.chmod(0o700)  # chronyd refuses a command socket in a world-accessible directory
    config = tmp_path / "chrony.conf"
    config.write_text(f"port 0\ncmdport 0\nbindcmdaddress {tmp_path}/chronyd.sock\npidfile {tmp_path}/pid\n")
    return config


@pytest.mark.root
def test_chronyd_in_another_pid_namespace_is_not_counted_and_ours_is(tmp_path: Path) -> None:
    require(which("chronyd") is not None, "chronyd is not installed (apt-get install chrony)")
    if os.geteuid() != 0:
        pytest.fail("needs root (marked root)")
    config = _chronyd_config(tmp_path)
    chronyd = which("chronyd")
    assert chronyd is not None
    outer = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", "--", chronyd, "-x", "-d", "-u", "root",
                              "-f", str(config)], stderr=subprocess.DEVNULL)
    try:
        inner = wait_for(lambda: [c for c in psutil.Process(outer.pid).children() if c.name() == "chronyd"],
                         what="chronyd in its PID namespace", every=0.01, alive=lambda: outer.poll() is None)
        who = daemons.identity(inner[0].pid)
        assert who is not None and who.chronyd_exe is True
        assert who.ns_depth == daemons.own_ns_depth() + 1
        assert inner[0].pid not in _pids(daemons.scan())
    finally:
        outer.kill()
        outer.wait()
    ours = subprocess.Popen([chronyd, "-x", "-d", "-u", "root", "-f", str(config)], stderr=subprocess.DEVNULL)
    try:
        # The positive control: the same binary in our namespace.
        wait_for(lambda: _pids(daemons.scan()), lambda pids: ours.pid in pids, what=f"chronyd {ours.pid} in the scan",
                 every=0.02, alive=lambda: ours.poll() is None)
        assert daemons.is_chronyd_pid(ours.pid)
    finally:
        ours.terminate()
        ours.wait()


@pytest.mark.root
def test_a_chronyd_chrooted_into_a_distributions_root_is_chronyd(tmp_path: Path) -> None:
    """As the sandbox runs a distribution's own chrony: the binary at chronyd's path in the
    process's own root (/proc/PID/root) is chronyd there, the same file whatever its path seen from
    here; the same file run from outside that root is a copy somewhere, not chronyd."""
    busybox = which("busybox")
    require(busybox is not None, "busybox is not installed (apt-get install busybox-static)")
    if os.geteuid() != 0:
        pytest.fail("needs root (marked root)")
    assert busybox is not None
    root = tmp_path / "distro"
    (root / "usr/sbin").mkdir(parents=True)
    (root / "bin").mkdir()
    binary = root / "usr/sbin/chronyd"  # stands for that root's chronyd (busybox, static)
    shutil.copy2(busybox, binary)
    shutil.copy2(busybox, root / "bin/sh")
    inside = subprocess.Popen(["chroot", str(root), "/bin/sh", "-c", "exec -a sleep /usr/sbin/chronyd 60"])
    outside = subprocess.Popen([busybox, "sh", "-c", f"exec -a sleep {binary} 60"])
    try:
        wait_for(lambda: {psutil.Process(p.pid).name() for p in (inside, outside)}, lambda names: names == {"chronyd"},
                 what="both copies exec'd", every=0.01)
        assert daemons.is_chronyd_pid(inside.pid)
        assert inside.pid in _pids(daemons.scan())
        assert not daemons.is_chronyd_pid(outside.pid)
    finally:
        for p in (inside, outside):
            p.kill()
            p.wait()
