"""BootedInstance.kill() after the container has ended: the numbers its systemd-nspawn and init had
are free then, and in the root test set (pid_max 32768, four workers starting processes all along)
soon another process's. kill() must signal neither.

The numbers are handed on for real: in a PID namespace of the test's own, whose counter
(/proc/sys/kernel/ns_last_pid) gives the next process the number wanted. nspawn and its init are
played by two Python processes (no systemd boots here); everything else is BootedInstance's own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from sandbox.booted import BootedInstance
from sandbox.namespaces import REPO_ROOT, SandboxError, python_env
from tests.helpers import wait_for

# A PID namespace of its own, its counter set: root.
pytestmark = [pytest.mark.root]

# systemd-nspawn's part: one child, the container's init, named systemd; nspawn ends when it does.
NSPAWN = """
import os, sys
init = os.fork()
if init == 0:
    with open("/proc/self/comm", "w") as comm:
        comm.write("systemd")
    sys.stdin.read()  # runs until its stdin closes: the container powering off
    os._exit(0)
os.waitpid(init, 0)
"""


class StandIn(BootedInstance):
    """Nothing runs inside: `systemctl poweroff`, the one command poweroff() sends, ends the init."""

    def run(self, argv: Sequence[str], *, timeout: float = 120.0, check: bool = False,
            env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        assert list(argv) == ["systemctl", "poweroff"], argv
        assert self._nspawn is not None and self._nspawn.stdin is not None
        self._nspawn.stdin.close()
        return subprocess.CompletedProcess(list(argv), 0, "", "")


def started(workdir: str) -> tuple[StandIn, subprocess.Popen[bytes], int]:
    """The stand-in instance running: its nspawn, and its init's number, held by the instance."""
    vm = StandIn(Path("/dev/null"), Path(workdir))
    vm._nspawn = nspawn = subprocess.Popen([sys.executable, "-c", NSPAWN], stdin=subprocess.PIPE)
    init_pid = wait_for(vm._hold_init, lambda pid: pid is not None, what="the init stand-in", every=0.01,
                        alive=lambda: vm.running)
    assert init_pid is not None
    return vm, nspawn, init_pid


def _take_number(pid: int) -> subprocess.Popen[bytes]:
    """A process of no concern to the instance, started with the freed number."""
    Path("/proc/sys/kernel/ns_last_pid").write_text(str(pid - 1))
    other = subprocess.Popen(["sleep", "600"])
    assert other.pid == pid, (other.pid, pid)
    return other


def scenario(ending: str, workdir: str) -> None:
    """Run as PID 1 of a fresh PID namespace (the test below)."""
    vm, nspawn, init_pid = started(workdir)
    if ending == "poweroff":
        vm.poweroff()  # asks, then waits for nspawn: reaped
    else:  # nspawn ended by itself, as when a boot fails: boot() sees it not running (reaped)
        assert nspawn.stdin is not None
        nspawn.stdin.close()
        wait_for(lambda: vm.running, lambda running: not running, what="the nspawn stand-in ending", every=0.01)
    assert nspawn.returncode == 0
    others = [_take_number(init_pid), _take_number(nspawn.pid)]
    try:
        vm.close()  # poweroff(), then kill(), as every user of BootedInstance ends
    finally:
        for other in others:
            other.terminate()
    # A process SIGKILLed before it is sent SIGTERM ends by SIGKILL: the kernel drops later signals.
    ends = [other.wait() for other in others]
    assert ends == [-signal.SIGTERM] * 2, f"ended by signals {ends} (-9: kill() SIGKILLed it)"


def run_after_the_init_ended(workdir: str) -> None:
    """Run as PID 1 of a fresh PID namespace: run() after the init has ended (and nspawn reaped it)
    must refuse, not nsenter whatever process has the init's number now."""
    vm, nspawn, init_pid = started(workdir)
    assert nspawn.stdin is not None
    nspawn.stdin.close()  # the init ends by itself; nspawn reaps it and ends
    nspawn.wait(30)
    other = _take_number(init_pid)
    try:
        BootedInstance.run(vm, ["true"])
    except SandboxError as exc:
        assert "ended" in str(exc)
    else:
        raise AssertionError(f"run() entered process {init_pid}, which is no longer the init")
    finally:
        other.kill()
        other.wait()


def in_own_pid_namespace(call: str) -> None:
    """CALL (one of this module's functions, with its arguments) as PID 1 of a fresh PID namespace."""
    if os.geteuid() != 0:
        pytest.fail("needs root (marked root)")
    done = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", "--", sys.executable, "-c",
         f"from tests.e2e.test_booted_kill import *; {call}"],
        env=python_env(), cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_run_after_the_init_ended_enters_no_process_given_its_number(tmp_path: Path) -> None:
    in_own_pid_namespace(f"run_after_the_init_ended({str(tmp_path / 'vm')!r})")


@pytest.mark.parametrize("ending", ["poweroff", "nspawn ended"])
def test_kill_after_the_container_ended_signals_no_process_given_its_numbers(ending: str, tmp_path: Path) -> None:
    in_own_pid_namespace(f"scenario({ending!r}, {str(tmp_path / 'vm')!r})")
