"""Namespace holders: a PID 1 that owns fresh net, mount, UTS and PID namespaces.

Every process the sandbox starts on either side is entered into a holder's namespaces with
`nsenter`, so killing the holder's PID 1 makes the kernel kill all of them, and the network
namespace (with its veth end) and the mount namespace (with its overlays) go away with the last
process. `unshare --kill-child` plus a parent-death signal on unshare itself means that even a
SIGKILLed pytest leaves nothing running behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PR_SET_PDEATHSIG = 1


class SandboxError(RuntimeError):
    """The sandbox could not be built, or refused to be."""


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: if pytest dies, unshare gets SIGKILL, and
    # --kill-child passes that on to the namespace's PID 1.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def python_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for programs the sandbox runs: sbin on PATH, this checkout importable."""
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
        "HOME": "/root",
        "PYTHONPATH": str(REPO_ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    bindir = str(Path(sys.executable).parent)
    if bindir not in env["PATH"].split(":"):
        env["PATH"] = f"{bindir}:{env['PATH']}"
    env.update(extra or {})
    return env


def _reaper_running(pid: int) -> bool:
    """The reaper's main() blocks SIGCHLD, then sleeps in sigtimedwait (which shows as an empty
    SigBlk while it waits): either means Python has found and imported it. Until then the
    namespace must not change under it: a mount over /tmp would hide a checkout under /tmp from
    the very import that starts it."""
    if Path(f"/proc/{pid}/wchan").read_text().startswith("do_sigtimedwait"):
        return True
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigBlk:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGCHLD - 1)))
    return False


def veth_pair(a: Holder, a_name: str, b: Holder, b_name: str, *, mac: str | None = None,
              what: str = "veth pair") -> None:
    """A veth pair with one end in each holder's network namespace (`mac` for a's end)."""
    done = subprocess.run(
        ["ip", "link", "add", a_name, "netns", str(a.pid), *(["address", mac] if mac else []),
         "type", "veth", "peer", "name", b_name, "netns", str(b.pid)],
        capture_output=True, text=True, timeout=10, check=False,
    )
    if done.returncode != 0:
        raise SandboxError(f"could not create the {what}: {done.stderr.strip()}")


def parent_and_name(pid: int) -> tuple[int, str] | None:
    """A process's parent and name (comm), from /proc/PID/stat; None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = stat[stat.index("(") + 1:stat.rindex(")")]
    return int(stat[stat.rindex(")") + 2:].split()[1]), comm


def hold_child(pid: int, parent: int, name: str | None = None) -> int | None:
    """A pidfd on the process numbered pid, if, once it is open, that number is still a child of
    parent (named `name`, if given): found by number, the process may have ended and its number
    gone to another before the pidfd was opened. The pidfd then stays on that very process, and
    a signal through it reaches that process or none. None: not (or no longer) there."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return None
    found = parent_and_name(pid)
    if found is None or found[0] != parent or (name is not None and found[1] != name):
        os.close(fd)
        return None
    return fd


def alive(pidfd: int) -> bool:
    """Whether the pidfd's process is not yet reaped, so its number is still its own."""
    try:
        signal.pidfd_send_signal(pidfd, 0)
    except ProcessLookupError:
        return False
    return True


def processes_in(inodes: set[int]) -> list[str]:
    """Every process whose network or mount namespace has one of these inode numbers.

    The kernel hands a freed namespace's number to the next namespace made, so the answer only
    means "in this sandbox" while the caller holds the namespaces open (Holder pins them)."""
    found: list[str] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            mine = {os.stat(entry / "ns" / k).st_ino for k in ("net", "mnt")}
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if mine & inodes:
            found.append(f"process {entry.name} ({comm}) in a sandbox namespace")
    return found


class Holder:
    """PID 1 (sandbox.reaper) of new net+mount+UTS+PID namespaces, with a private /proc."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.log: Path | None = None  # where unshare's own complaints go
        self._unshare: subprocess.Popen[bytes] | None = None
        self.pid = 0  # PID 1 of the new namespaces, as seen from here
        self.net_inode = 0
        self.mnt_inode = 0
        self._entered: list[subprocess.Popen[bytes]] = []  # popen()'s nsenter, outside the PID namespace
        self._pidfd: int | None = None  # PID 1, held: a signal reaches it or nothing
        self._pins: list[int] = []  # open namespace files: their inode numbers stay ours
        self.left_behind: list[str] = []  # processes still in the namespaces when stop() ended

    def start(self, log: Path, timeout: float = 10.0) -> None:
        argv = [
            "unshare", "--net", "--mount", "--uts", "--pid", "--fork", "--kill-child",
            "--mount-proc", "--propagation", "private",
            "--", sys.executable, "-m", "sandbox.reaper",
        ]
        self.log = log
        with open(log, "ab") as out:
            self._unshare = subprocess.Popen(
                argv, env=python_env(), cwd=REPO_ROOT, preexec_fn=_die_with_parent,  # noqa: PLW1509
                stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            )
        outer = self._unshare.pid
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._unshare.poll() is not None:
                raise SandboxError(f"unshare for the {self.name} namespaces exited with {self._unshare.returncode}")
            try:
                children = Path(f"/proc/{outer}/task/{outer}/children").read_text().split()
                # Once the reaper runs, --mount-proc has been done and the namespaces are final.
                if children and b"sandbox.reaper" in Path(f"/proc/{children[0]}/cmdline").read_bytes() \
                        and _reaper_running(int(children[0])) and self._hold(int(children[0]), outer):
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.005)
        raise SandboxError(f"the {self.name} namespaces were not ready within {timeout:g} s")

    def _hold(self, pid: int, parent: int) -> bool:
        """Hold the reaper by a pidfd and its namespaces by open files. Each is opened by number, so
        each is checked after: still unshare's child (the pidfd's process), still not reaped (so
        the number, and the namespace files opened by it, were its own). False: look again."""
        pidfd = hold_child(pid, parent)
        if pidfd is None:
            return False
        fds = [pidfd]
        try:
            fds += [os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY) for kind in ("net", "mnt")]
            if not alive(pidfd):
                raise ProcessLookupError(pid)
        except OSError:
            for fd in fds:
                os.close(fd)
            return False
        self.pid, self._pidfd, self._pins = pid, fds[0], fds[1:]
        self.net_inode, self.mnt_inode = (os.fstat(fd).st_ino for fd in self._pins)
        return True

    def _require_running(self) -> None:
        if self._pidfd is None or not alive(self._pidfd):
            raise SandboxError(f"the {self.name} namespaces are not running")

    @property
    def netns_path(self) -> str:
        """What `systemd-nspawn --network-namespace-path=` and `nsenter --net=` take."""
        return f"/proc/{self.pid}/ns/net"

    def enter(self, argv: Sequence[str], *, wd: str = "/", mount: bool = True, pid: bool = True) -> list[str]:
        self._require_running()  # nsenter takes a number: it must still be PID 1's
        flags = ["--net", "--uts"] + (["--pid"] if pid else []) + (["--mount"] if mount else [])
        return ["nsenter", f"--target={self.pid}", *flags, f"--wd={wd}", "--", *argv]

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
        wd: str = "/",
        input_text: str | None = None,
        check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            self.enter(argv, wd=wd), env=python_env(env), capture_output=True, text=True,
            timeout=timeout, input=input_text, check=False,
        )
        if check and done.returncode != 0:
            raise SandboxError(
                f"{' '.join(argv)} in the {self.name} namespace failed ({done.returncode}): "
                f"{done.stderr.strip()[-500:]}"
            )
        return done

    def popen(self, argv: Sequence[str], *, log: Path, env: Mapping[str, str] | None = None,
              pid: bool = True) -> subprocess.Popen[bytes]:
        """ARGV in the holder's namespaces, in the background. Outside its PID namespace (pid=False)
        nothing kills it at stop(), which waits for it (as for the nsenter that waits for the rest)."""
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                self.enter(argv, wd=str(REPO_ROOT), pid=pid), env=python_env(env), stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT,
            )
        self._entered.append(proc)
        return proc

    def proc_net(self, table: str) -> str:
        """/proc/net/TABLE as seen inside the namespace (no process needed)."""
        try:
            return Path(f"/proc/{self.pid}/net/{table}").read_text()
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        """Kill PID 1; the kernel kills everything else in the PID namespace. Then count what is
        left in the namespaces while they are still pinned, and let them go."""
        try:
            if self._pidfd is not None:
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            if self._unshare is not None:
                try:
                    self._unshare.wait(timeout)
                except subprocess.TimeoutExpired:
                    self._unshare.kill()
                    self._unshare.wait(timeout)
            # nsenter joined the network and mount namespaces itself and waits outside the PID
            # namespace for what it started: it exits once the kernel has killed that, not before.
            for proc in self._entered:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout)
            # Still pinned, the namespaces' numbers cannot have been handed to another sandbox yet.
            if self._pins:
                self.left_behind = processes_in({self.net_inode, self.mnt_inode})
        finally:
            for fd in [*self._pins, *([self._pidfd] if self._pidfd is not None else [])]:
                os.close(fd)
            self._pins, self._pidfd = [], None
            for proc in self._entered:  # counted above if it outlived its wait; gone now either way
                if proc.poll() is None:
                    proc.kill()
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout)

    def processes(self) -> list[str]:
        """Processes in this holder's namespaces: live while it runs, as stop() left them after."""
        return processes_in({self.net_inode, self.mnt_inode}) if self._pins else self.left_behind


def bound_ports(holder: Holder, table: str) -> set[int]:
    """Local ports with a socket (udp, udp6) or a listener (tcp, tcp6) in the holder's netns."""
    ports: set[int] = set()
    for line in holder.proc_net(table).splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4:
            continue
        if table.startswith("tcp") and fields[3] != "0A":  # 0A = LISTEN
            continue
        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def refuse_real_network() -> None:
    """Refuse to build a sandbox in a network namespace that could reach a real network.

    The sandbox's own namespaces reach nothing, but a bug in it must never send a packet to
    fd00:ec2::/32 or 169.254.0.0/16 from the host's namespace; tests run under `unshare -n`.
    """
    addrs = json.loads(_ip("-j", "addr", "show"))
    for link in addrs:
        if "LOOPBACK" in link.get("flags", []):
            continue
        if link.get("addr_info"):
            raise SandboxError(
                f"this network namespace has an address on {link['ifname']}: the sandbox runs only "
                "in an isolated namespace",
                )
    for family in ("-4", "-6"):
        if json.loads(_ip(family, "-j", "route", "show", "default") or "[]"):
            raise SandboxError(
                "this network namespace has a default route: run the sandbox inside `unshare -n`"
            )


def _ip(*args: str) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)
    if done.returncode != 0:
        raise SandboxError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout
