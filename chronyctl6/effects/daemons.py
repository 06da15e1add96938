"""Which time daemons run here: chronyd itself and anything that fights it.

A process is taken for chronyd by what it is, not by what it is called (any user can name a
process `chronyd`): its executable (/proc/PID/exe) must be a chronyd binary (this host's, or the
one at chronyd's path in the process's own root, for a chronyd chrooted into a distribution's
root), compared as the same file (device and inode), not by name; its owner must be
root or chrony's own user (chronyd starts as root and drops to it), and it must run in this PID
namespace (a container's chronyd, seen from the host, is not this host's): /proc/PID/ns/pid is
compared with our own where the kernel shows it, else the namespace's depth (NSpid) decides. Where the executable
cannot be read (a non-root `doctor` looking at root's processes: the kernel refuses), the owner
and the namespace decide; an unprivileged user cannot fake either. A process that has exited and
waits to be reaped (a zombie) is no daemon at all, whatever it was: its executable can no longer be
read, so owner and namespace alone would still take it for one.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from chronyctl6.effects import commands

# Process names of other daemons that set the clock. OpenNTPD's and ntpsec's binaries are
# also called ntpd; psutil gives systemd-timesyncd's full name (the kernel's comm cuts it at 15).
CONFLICTING = {
    "ntpd": "ntpd (ntp, ntpsec or OpenNTPD)",
    "openntpd": "OpenNTPD",
    "systemd-timesyncd": "systemd-timesyncd",
    "systemd-timesyn": "systemd-timesyncd",
}
# How each is stopped for good on a systemd host.
STOP_UNITS = {
    "ntpd": "ntp ntpd ntpsec openntpd",
    "openntpd": "openntpd",
    "systemd-timesyncd": "systemd-timesyncd",
    "systemd-timesyn": "systemd-timesyncd",
}


@dataclass(frozen=True)
class Proc:
    pid: int
    name: str
    user: str | None
    started: float  # epoch seconds
    cmdline: tuple[str, ...]

    @property
    def uptime(self) -> float:
        return max(0.0, time.time() - self.started)

    @property
    def config_path(self) -> str | None:
        """chronyd's `-f FILE` (or `-fFILE`), if it was given one."""
        try:
            return config_file(self.cmdline[1:])
        except BadArguments:  # it runs, so chronyd took it some way: not ours to guess
            return None

    def as_dict(self) -> dict[str, object]:
        return {"pid": self.pid, "name": self.name, "user": self.user, "started": self.started,
                "uptime_seconds": round(self.uptime, 1), "cmdline": list(self.cmdline)}


@dataclass(frozen=True)
class Scan:
    chronyd: tuple[Proc, ...]
    others: tuple[Proc, ...]  # conflicting time daemons


# chronyd's options (chronyd(8), main.c's getopt string): those that take an argument.
_WITH_ARGUMENT = set("fFlLPtu")
CHRONY_USERS = ("_chrony", "chrony")  # Debian/Ubuntu, RHEL/Amazon Linux/SUSE
CHRONYD_PATHS = ("/usr/sbin/chronyd", "/sbin/chronyd", "/usr/local/sbin/chronyd", "/usr/bin/chronyd")
SYSTEM_UID_MAX = 999  # login.defs' SYS_UID_MAX: a time daemon is started by root or runs as a system user
EXITED_STATES = ("Z", "X")  # /proc/PID/status State: zombie, dead; exited, its parent has not reaped it yet


class BadArguments(ValueError):
    pass


def config_file(args: Iterable[str]) -> str | None:
    """The configuration file chronyd reads with these arguments (glibc getopt's rules, as chronyd:
    clustered flags `-df FILE`, `-fFILE`, the last `-f` wins, directives between options are
    skipped (getopt permutes), `--` ends the options), None for its default. BadArguments when
    `-f` has no file."""
    found: str | None = None
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if arg == "--":
            break
        if not arg.startswith("-") or arg == "-":
            continue  # a directive on the command line
        for i, flag in enumerate(arg[1:], start=1):
            if flag in _WITH_ARGUMENT:
                value = arg[i + 1:] or (rest.pop(0) if rest else None)
                if value is None:
                    raise BadArguments(f"chronyd's -{flag} needs an argument")
                if flag == "f":
                    found = value
                break
    return found


@dataclass(frozen=True)
class Identity:
    """What /proc says of one process: enough to tell chronyd from something named like it."""

    chronyd_exe: bool | None  # its executable is a chronyd binary; None when the kernel does not say
    uid: int  # real uid
    ns_depth: int  # entries of NSpid: how deep its PID namespace lies below the root one
    exe: str | None = None  # where /proc/PID/exe leads, as shown to us
    pid_ns: int | None = None  # its PID namespace (/proc/PID/ns/pid's inode); None when the kernel does not say


FileId = tuple[int, int]  # (st_dev, st_ino)


def _threads(fields: dict[str, str]) -> int:
    """/proc/PID/status' Threads (1 where the line is missing or unreadable)."""
    try:
        return int(fields.get("Threads", "1").strip())
    except ValueError:
        return 1


def identity(pid: int, proc: Path = Path("/proc"), host: set[FileId] | None = None) -> Identity | None:
    """The executable counts as chronyd when it is the very file (device and inode) this host's
    chronyd binary is, or the one at chronyd's path under the process's own root (/proc/PID/root:
    a chronyd chrooted into a distribution's root is that root's chronyd). A copy elsewhere, a
    script or an interpreter is not. None when the process is gone or has exited (a zombie)."""
    here = proc / str(pid)
    try:
        status = (here / "status").read_text(errors="replace")
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    if fields.get("State", "").strip()[:1] in EXITED_STATES and _threads(fields) <= 1:
        return None  # (a live process whose main thread alone has ended shows Z too, with threads left)
    try:
        uid = int(fields.get("Uid", "").split()[0])
    except (IndexError, ValueError):
        return None
    depth = len(fields.get("NSpid", "").split()) or 1  # no NSpid line: a kernel without PID namespaces
    namespace = pid_namespace(here)
    try:
        exe: str | None = os.readlink(here / "exe").removesuffix(" (deleted)")
        running = _file_id(here / "exe")
    except OSError:  # not ours to look at (a non-root caller), or gone
        return Identity(None, uid, depth, pid_ns=namespace)
    own = {i for p in CHRONYD_PATHS if (i := _file_id(Path(f"{here}/root{p}"))) is not None}
    binaries = (chronyd_binaries() if host is None else host) | own
    return Identity(running is not None and running in binaries, uid, depth, exe, namespace)


def pid_namespace(proc_pid: Path) -> int | None:
    """The PID namespace a process lives in: the inode /proc/PID/ns/pid stands for (the kernel lets
    only root, or the process's owner, look; None otherwise)."""
    try:
        return os.stat(proc_pid / "ns" / "pid").st_ino
    except OSError:
        return None


def _file_id(path: Path) -> FileId | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def same_namespace(who: Identity, *, ns_depth: int, pid_ns: int | None = None) -> bool:
    """In our own PID namespace: the namespaces compared where the kernel shows both (exact: a
    container's chronyd is another namespace, at any depth); else, for a non-root caller, by depth
    (the processes we can see live in our namespace or below it, so the same depth is ours)."""
    if who.pid_ns is not None and pid_ns is not None:
        return who.pid_ns == pid_ns
    return who.ns_depth == ns_depth


def is_chronyd(who: Identity, *, owners: set[int], ns_depth: int, pid_ns: int | None = None) -> bool:
    """Pure: the rules of the module's docstring."""
    if not same_namespace(who, ns_depth=ns_depth, pid_ns=pid_ns) or who.uid not in owners:
        return False
    return who.chronyd_exe is not False


def chronyd_binaries() -> set[FileId]:
    found = commands.which("chronyd")
    return {i for p in (*CHRONYD_PATHS, *((found,) if found else ())) if (i := _file_id(Path(p))) is not None}


def chronyd_owners() -> set[int]:
    owners = {0}
    for user in CHRONY_USERS:
        with contextlib.suppress(KeyError):
            owners.add(pwd.getpwnam(user).pw_uid)
    return owners


def own_ns_depth() -> int:
    me = identity(os.getpid(), host=set())
    return me.ns_depth if me is not None else 1


def own_pid_ns() -> int | None:
    return pid_namespace(Path("/proc/self"))


def is_chronyd_pid(pid: int) -> bool:
    """pid is this host's chronyd (the module's rules)."""
    who = identity(pid)
    return who is not None and is_chronyd(who, owners=chronyd_owners(), ns_depth=own_ns_depth(),
                                          pid_ns=own_pid_ns())


def _is_other_daemon(who: Identity | None, name: str, ns_depth: int, pid_ns: int | None = None) -> bool:
    if who is None or not same_namespace(who, ns_depth=ns_depth, pid_ns=pid_ns) or who.uid > SYSTEM_UID_MAX:
        return False
    return who.exe is None or os.path.basename(who.exe) in CONFLICTING or os.path.basename(who.exe) == name


def without_helpers(chronyd: Iterable[Proc], parents: dict[int, int]) -> list[Proc]:
    """Pure: one chronyd per daemon. chronyd forks a helper of its own (with a seccomp filter,
    `-F 1`, Debian's default: a child process with its parent's name, owner and arguments), so a
    chronyd whose parent is a chronyd counted here is part of that one, not a second daemon.
    Two daemons started apart (by systemd, by hand) are never each other's parent."""
    found = list(chronyd)
    pids = {p.pid for p in found}
    return [p for p in found if parents.get(p.pid) not in pids]


def scan() -> Scan:
    import psutil  # here: `check` must not pay for it at start-up

    chronyd: list[Proc] = []
    others: list[Proc] = []
    parents: dict[int, int] = {}
    binaries, owners, depth, namespace = chronyd_binaries(), chronyd_owners(), own_ns_depth(), own_pid_ns()
    for p in psutil.process_iter(["pid", "name", "username", "create_time", "cmdline", "ppid"]):
        info = p.info
        name = info.get("name") or ""
        if name != "chronyd" and name not in CONFLICTING:
            continue
        who = identity(int(info["pid"]), host=binaries)
        if name == "chronyd":
            if who is None or not is_chronyd(who, owners=owners, ns_depth=depth, pid_ns=namespace):
                continue
        elif not _is_other_daemon(who, name, depth, namespace):
            continue
        proc = Proc(int(info["pid"]), name, info.get("username"), float(info.get("create_time") or 0.0),
                    tuple(info.get("cmdline") or ()))
        (chronyd if name == "chronyd" else others).append(proc)
        parents[proc.pid] = int(info.get("ppid") or 0)
    chronyd = without_helpers(chronyd, parents)
    return Scan(tuple(sorted(chronyd, key=lambda x: x.pid)), tuple(sorted(others, key=lambda x: x.pid)))
