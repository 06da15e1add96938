"""A booted instance: a Debian root of its own, booted with systemd as init by systemd-nspawn,
joined to a simulated EC2 instance's network namespace.

    with BootedInstance(rootfs_tarball, workdir) as vm:
        vm.boot(ec2.instance.netns_path)
        vm.run(["systemctl", "is-active", "chrony"])
        vm.poweroff()
        vm.boot(other_ec2.instance.netns_path)   # the same disk, launched into another subnet

Only the root file system built for the purpose (mmdebstrap, see packaging/test-root) is ever
booted, never this machine's own: booting that would empty the shared /tmp and start every
enabled service. The container may not set the clock, so its chrony.service gets `-x` and a
drop-in that resets `ConditionCapability=CAP_SYS_TIME`. Every wait has a deadline, and a
container that does not power off in time is killed. Never by a bare process id once its process
may be gone: the number is free then, and with pid_max at 32768 and the root test set's workers
starting processes all along it soon names another worker's process. systemd-nspawn is our child
(Popen signals it only while unreaped), the container's init is held by a pidfd opened while
nspawn, its parent, still ran.

A root whose systemd is 256 or newer (Debian 13's 257) boots with the unified cgroup hierarchy
(cgroup v2) even where this machine mounts the hybrid one: systemd 256 declared cgroup v1
obsolete (it boots under it tainted "cgroupsv1", and 258 not at all), and an EC2 instance of
that release runs cgroup v2. An older systemd (Debian 12's 252) gets what systemd-nspawn picks.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from sandbox.namespaces import SandboxError, alive, hold_child, parent_and_name

BOOT_TIMEOUT = 90.0
POWEROFF_TIMEOUT = 30.0
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# From this version on, systemd deprecates cgroup v1 (NEWS for systemd 256; 258 removed it).
UNIFIED_CGROUP_SINCE = 256

CHRONY_DROPIN = """\
# chronyctl6's booted test instance: a container may not set the clock. chronyd runs with -x
# (see /etc/default/chrony), so it has no need of CAP_SYS_TIME.
[Unit]
ConditionCapability=
"""


class BootedInstance:
    def __init__(self, rootfs_tarball: Path, workdir: Path, *, hostname: str = "booted-instance") -> None:
        self.tarball = rootfs_tarball
        self.workdir = workdir
        self.root = workdir / "root"
        self.hostname = hostname
        self._nspawn: subprocess.Popen[bytes] | None = None
        self._init_pid: int | None = None  # for nsenter, checked through _init_fd before each use
        self._init_fd: int | None = None  # a pidfd: signals reach that process or none
        self.boots = 0

    # ---- the disk ---------------------------------------------------------------------------

    def prepare(self) -> None:
        """Unpack the cached root and make it bootable here. Call once, before the first boot."""
        self.root.mkdir(parents=True)
        subprocess.run(["tar", "-C", str(self.root), "-xf", str(self.tarball)], check=True, timeout=180)
        dropin = self.root / "etc/systemd/system/chrony.service.d/chronyctl6-sandbox.conf"
        dropin.parent.mkdir(parents=True, exist_ok=True)
        dropin.write_text(CHRONY_DROPIN)
        (self.root / "etc/default/chrony").write_text('# chronyctl6 sandbox: never touch the clock\n'
                                                      'DAEMON_OPTS="-F 1 -x"\n')
        (self.root / "etc/hostname").write_text(self.hostname + "\n")
        # An empty machine-id: systemd makes one at first boot, as on a freshly launched image.
        (self.root / "etc/machine-id").write_text("")

    def copy_in(self, source: Path, target: str) -> None:
        destination = self.root / target.lstrip("/")
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)

    def path(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def systemd_version(self) -> int | None:
        """The root's own systemd version, from its libsystemd-shared-NNN.so (as nspawn tells)."""
        for pattern in ("usr/lib/*/systemd/libsystemd-shared-*.so", "usr/lib/systemd/libsystemd-shared-*.so",
                        "lib/systemd/libsystemd-shared-*.so"):
            for lib in self.root.glob(pattern):
                if found := re.fullmatch(r"libsystemd-shared-(\d+)\.so", lib.name):
                    return int(found.group(1))
        return None

    # ---- power ------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._nspawn is not None and self._nspawn.poll() is None

    def boot(self, netns_path: str, *, timeout: float = BOOT_TIMEOUT) -> float:
        """Boot into the given network namespace; returns seconds until systemd said running."""
        if self.running:
            raise SandboxError("the instance is already running")
        self.boots += 1
        log = (self.workdir / f"boot-{self.boots}.log").open("wb")
        argv = [
            "systemd-nspawn", "--boot", "--register=no", "--keep-unit", "--quiet",
            "--directory", str(self.root), "--machine", self.hostname,
            f"--network-namespace-path={netns_path}", "--resolv-conf=off", "--timezone=off",
            "--console=passive",
        ]
        env = dict(os.environ)
        if (version := self.systemd_version()) is not None and version >= UNIFIED_CGROUP_SINCE:
            env["SYSTEMD_NSPAWN_UNIFIED_HIERARCHY"] = "1"
        start = time.monotonic()
        self._nspawn = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                        start_new_session=True, env=env)
        log.close()
        deadline = start + timeout
        self._forget_init()
        state = ""
        while time.monotonic() < deadline:
            if not self.running:
                self._forget_init()
                raise SandboxError(f"systemd-nspawn exited during boot: {self.boot_log()[-2000:]}")
            if self._init_pid is None:
                self._hold_init()
            elif (state := self.run(["systemctl", "is-system-running"], timeout=10).stdout.strip()) in (
                    "running", "degraded"):
                return round(time.monotonic() - start, 2)
            time.sleep(0.2)
        self.kill()
        raise SandboxError(f"the instance did not finish booting within {timeout:g} s (state {state!r})")

    def _hold_init(self) -> int | None:
        """Find the container's init (nspawn's child named systemd) and hold it by a pidfd. The
        pidfd is opened after the number was found, so the number is checked again: still a child
        of nspawn named systemd (nspawn is ours and unreaped, so its number is still its own).
        Returns the init's number, None while it is not there."""
        assert self._nspawn is not None
        pid = _child_named(self._nspawn.pid, "systemd")
        fd = hold_child(pid, self._nspawn.pid, "systemd") if pid is not None else None
        if fd is None:
            return None
        self._init_pid, self._init_fd = pid, fd
        return pid

    def _forget_init(self) -> None:
        if self._init_fd is not None:
            os.close(self._init_fd)
        self._init_pid = self._init_fd = None

    def poweroff(self, *, timeout: float = POWEROFF_TIMEOUT) -> None:
        if not self.running:
            self._forget_init()
            return
        if self._init_pid is None:  # nspawn runs, its init was not seen yet: nothing to ask
            self.kill()
            return
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            self.run(["systemctl", "poweroff"], timeout=10)
        assert self._nspawn is not None
        try:
            self._nspawn.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._forget_init()

    def kill(self) -> None:
        """The container's own init first (nspawn then exits), then nspawn itself; each only while
        it is still that process: the init through its pidfd, nspawn through Popen, which does not
        signal a child it has reaped (after poweroff's wait, the number may be another's)."""
        if self._init_fd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._init_fd, signal.SIGKILL)
        if self._nspawn is not None:
            self._nspawn.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._nspawn.wait(timeout=10)
        self._forget_init()

    def boot_log(self) -> str:
        return (self.workdir / f"boot-{self.boots}.log").read_text(errors="replace")

    # ---- inside -----------------------------------------------------------------------------

    def run(self, argv: Sequence[str], *, timeout: float = 120.0, check: bool = False,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run a program inside the booted instance: all of its namespaces, its root."""
        if self._init_pid is None or self._init_fd is None:
            raise SandboxError("the instance is not running")
        if not alive(self._init_fd):  # nsenter takes a number: reaped, the init's may be another's
            self._forget_init()
            raise SandboxError("the instance's init has ended")
        full_env = {"PATH": PATH, "LANG": "C.UTF-8", "HOME": "/root", **(env or {})}
        done = subprocess.run(["nsenter", "--target", str(self._init_pid), "--all", "--", "env", "-i",
                               *(f"{k}={v}" for k, v in full_env.items()), *argv],
                              capture_output=True, text=True, timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise SandboxError(f"{' '.join(argv)} failed in the instance: {done.stderr.strip()[-1000:]}")
        return done

    def systemctl_show(self, unit: str, prop: str) -> str:
        return self.run(["systemctl", "show", f"--property={prop}", "--value", unit], check=True).stdout.strip()

    def main_pid(self, unit: str) -> int:
        return int(self.systemctl_show(unit, "MainPID"))

    # ---- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        try:
            self.poweroff()
        finally:
            self.kill()
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> BootedInstance:
        self.prepare()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _child_named(parent: int, name: str) -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and parent_and_name(int(entry.name)) == (parent, name):
            return int(entry.name)
    return None
