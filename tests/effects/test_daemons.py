"""Process identity (issue 18 item 7): chronyd is known by its executable, owner and PID namespace,
never by its name; chronyd's arguments are parsed as chronyd's getopt parses them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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


@pytest.mark.parametrize(("who", "expected"), [
    (daemons.Identity(True, 0, 1, pid_ns=4026531836), True),  # our namespace
    (daemons.Identity(True, 0, 1, pid_ns=4026532999), False),  # another namespace at our depth: not ours
    (daemons.Identity(True, 0, 2, pid_ns=4026531836), True),  # the namespace decides where both are known
    (daemons.Identity(None, 0, 1), True),  # hidden from a non-root caller: the depth decides
    (daemons.Identity(None, 0, 2), False),
])
def test_the_pid_namespace_is_compared_where_the_kernel_shows_it(who: daemons.Identity, expected: bool) -> None:
    assert daemons.is_chronyd(who, owners={0}, ns_depth=1, pid_ns=4026531836) is expected


def test_our_own_namespace_is_known() -> None:
    me = daemons.identity(os.getpid(), host=set())
    assert me is not None and me.pid_ns is not None and me.pid_ns == daemons.own_pid_ns()


@pytest.mark.parametrize(("state", "threads", "counted"), [
    ("R (running)", 1, True), ("S (sleeping)", 1, True), ("D (disk sleep)", 1, True), ("T (stopped)", 1, True),
    ("Z (zombie)", 1, False), ("X (dead)", 1, False),
    # A live process whose main thread called pthread_exit shows Z while its other threads run.
    ("Z (zombie)", 2, True),
])
def test_a_process_that_has_exited_is_no_daemon(tmp_path: Path, state: str, threads: int, counted: bool) -> None:
    """Root's chronyd seen by a non-root caller (its exe unreadable), in each state /proc shows."""
    (tmp_path / "105").mkdir()
    (tmp_path / "105/status").write_text(f"Name:\tchronyd\nState:\t{state}\nPid:\t105\nUid:\t0\t0\t0\t0\n"
                                         f"Threads:\t{threads}\nNSpid:\t105\n")
    who = daemons.identity(105, proc=tmp_path, host=set())
    assert (who is not None and daemons.is_chronyd(who, owners={0}, ns_depth=1)) is counted


def test_our_own_exited_child_is_not_identified() -> None:
    child = subprocess.Popen(["cat"], stdin=subprocess.PIPE)
    try:
        assert daemons.identity(child.pid) is not None  # the control: running, it is there
        assert child.stdin is not None
        child.stdin.close()
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # it has exited; left unreaped
        assert psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE
        assert daemons.identity(child.pid) is None
    finally:
        child.kill()
        child.wait()


def test_a_live_process_whose_main_thread_ended_is_still_identified() -> None:
    """/proc shows such a process as a zombie; its other thread still runs, so it is no zombie."""
    # The thread writes with os.write: the last thread's pthread_exit ends the process without
    # flushing Python's buffers.
    script = ("import ctypes, os, sys, threading\n"
              "threading.Thread(target=lambda: (sys.stdin.read(), os.write(1, b'bye')), daemon=False).start()\n"
              "ctypes.CDLL(None).pthread_exit(None)\n")
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        status = wait_for(lambda: Path(f"/proc/{child.pid}/status").read_text(),
                          lambda text: "State:\tZ" in text, what="the main thread ended", timeout=30)
        assert "Threads:\t2" in status
        assert daemons.identity(child.pid) is not None
        assert child.stdin is not None
        child.stdin.close()
        assert child.wait(30) == 0 and child.stdout is not None and child.stdout.read() == "bye"  # it was alive
    finally:
        child.kill()
        child.wait()


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


def _chronyd_config(directory: Path) -> Path:
    """A chronyd of its own in `directory`: its socket and its pidfile there, so two chronyds in two
    directories never see each other's (a pidfile left behind makes chronyd refuse to start)."""
    directory.mkdir(exist_ok=True)
    directory.chmod(0o700)  # chronyd refuses a command socket in a world-accessible directory
    config = directory / "chrony.conf"
    config.write_text(f"port 0\ncmdport 0\nbindcmdaddress {directory}/chronyd.sock\npidfile {directory}/pid\n")
    return config


def _start_chronyd(config: Path, *options: str) -> subprocess.Popen[bytes]:
    chronyd = which("chronyd")
    assert chronyd is not None
    return subprocess.Popen([chronyd, "-x", "-d", "-u", "root", *options, "-f", str(config)],
                            stderr=subprocess.DEVNULL)


def _running(proc: subprocess.Popen[bytes], config: Path) -> None:
    """Wait until chronyd runs: it writes its pidfile after its start-up checks (another chronyd
    named in the pidfile makes it exit instead)."""
    pidfile = config.parent / "pid"
    wait_for(lambda: pidfile.read_text().strip() if pidfile.exists() else None, lambda pid: pid == str(proc.pid),
             what=f"chronyd {proc.pid} writing its pidfile", every=0.02, alive=lambda: proc.poll() is None)
    assert proc.poll() is None


@pytest.mark.root
def test_chronyd_in_another_pid_namespace_is_not_counted_and_ours_is(tmp_path: Path) -> None:
    require(which("chronyd") is not None, "chronyd is not installed (apt-get install chrony)")
    if os.geteuid() != 0:
        pytest.fail("needs root (marked root)")
    chronyd = which("chronyd")
    assert chronyd is not None
    outer = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", "--", chronyd, "-x", "-d", "-u", "root",
                              "-f", str(_chronyd_config(tmp_path / "namespaced"))], stderr=subprocess.DEVNULL)
    try:
        inner = wait_for(lambda: [c for c in psutil.Process(outer.pid).children() if c.name() == "chronyd"],
                         what="chronyd in its PID namespace", every=0.01, alive=lambda: outer.poll() is None)
        who = daemons.identity(inner[0].pid)
        assert who is not None and who.chronyd_exe is True
        assert who.ns_depth == daemons.own_ns_depth() + 1
        assert who.pid_ns is not None and who.pid_ns != daemons.own_pid_ns()
        assert inner[0].pid not in _pids(daemons.scan())
    finally:
        outer.kill()
        outer.wait()
    config = _chronyd_config(tmp_path / "ours")
    ours = _start_chronyd(config)
    try:
        # The positive control: the same binary in our namespace, running (not an exited one).
        _running(ours, config)
        assert ours.pid in _pids(daemons.scan())
        assert daemons.is_chronyd_pid(ours.pid)
        assert ours.poll() is None  # alive all through: what was counted is a running chronyd
    finally:
        ours.terminate()
        ours.wait()


@pytest.mark.root
def test_an_exited_chronyd_its_parent_has_not_reaped_is_not_counted(tmp_path: Path) -> None:
    """A zombie's executable can no longer be read: owner and namespace alone took it for chronyd."""
    require(which("chronyd") is not None, "chronyd is not installed (apt-get install chrony)")
    if os.geteuid() != 0:
        pytest.fail("needs root (marked root)")
    config = _chronyd_config(tmp_path)
    ours = _start_chronyd(config)
    try:
        _running(ours, config)
        assert ours.pid in _pids(daemons.scan())  # the control: running, it counts
        ours.kill()
        os.waitid(os.P_PID, ours.pid, os.WEXITED | os.WNOWAIT)  # it has exited; left unreaped
        assert psutil.Process(ours.pid).status() == psutil.STATUS_ZOMBIE
        assert ours.pid not in _pids(daemons.scan())
        assert not daemons.is_chronyd_pid(ours.pid)
    finally:
        ours.kill()
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


def _proc(pid: int) -> daemons.Proc:
    return daemons.Proc(pid, "chronyd", "_chrony", 0.0, ("/usr/sbin/chronyd", "-F", "1"))


@pytest.mark.parametrize(("parents", "expected"), [
    ({105: 1, 106: 105}, [105]),  # Debian 12 under systemd: chronyd -F 1 and its helper
    ({105: 1, 106: 1}, [105, 106]),  # two daemons, both started by init: both count
    ({105: 40, 106: 41}, [105, 106]),  # started by hand from two shells
    ({106: 105}, [106]),  # the parent is not a counted chronyd (another namespace's): the child counts
], ids=["helper", "two under init", "two by hand", "parent not counted"])
def test_chronyds_own_helper_is_not_a_second_chronyd(parents: dict[int, int], expected: list[int]) -> None:
    assert [p.pid for p in daemons.without_helpers(map(_proc, sorted(parents)), parents)] == expected


@pytest.mark.root
def test_chronyd_with_its_seccomp_filter_counts_once(tmp_path: Path) -> None:
    """chronyd -F 1 (Debian's DAEMON_OPTS) forks a helper process: status and doctor saw two."""
    require(which("chronyd") is not None, "chronyd is not installed (apt-get install chrony)")
    if os.geteuid() != 0:
        pytest.fail("needs root (marked root)")
    ours = _start_chronyd(_chronyd_config(tmp_path), "-F", "1")
    try:
        # The helper, forked at start-up: waited on, not raced.
        helper = wait_for(lambda: psutil.Process(ours.pid).children(), what="chronyd -F 1 forking its helper",
                          every=0.02, alive=lambda: ours.poll() is None)[0]
        assert helper.name() == "chronyd" and daemons.is_chronyd_pid(helper.pid)
        found = _pids(daemons.scan())  # other chronyds may run here (other tests): ours, once
        assert ours.pid in found and helper.pid not in found, found
    finally:
        ours.terminate()
        ours.wait()
