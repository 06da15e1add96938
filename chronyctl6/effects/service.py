"""The service-manager seam: how chronyd is restarted, reloaded and asked after.

`systemd` is what runs on instances. `direct` manages chronyd as a plain process (a container
without systemd, and the simulated instance the tests run): it stops the chronyd named by the
pid file and starts `chronyd -f CONFIG` again, with extra arguments from CHRONYCTL6_CHRONYD_ARGS
(the sandbox passes `-x` so that no test ever touches the host clock).

The configuration chronyctl6 validates, writes and reports must be the one chronyd reads. chronyd's
arguments, from that variable and from the distributions' unit environment files, are parsed as
chronyd parses them (daemons.config_file); a `-f` naming another file is refused with an error
that says where it is, rather than followed: chronyctl6 renders the distribution's configuration
file, and a file elsewhere is someone else's layout, which a takeover must not guess at.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from chronyctl6.effects import chrony_tools, commands, daemons, files
from chronyctl6.errors import BadInput, CommandFailed, Unavailable
from chronyctl6.text import shown

DEFAULT_PIDFILE = "/run/chrony/chronyd.pid"
CHRONYD_ARGS_ENV = "CHRONYCTL6_CHRONYD_ARGS"
# The units' EnvironmentFile and the variable their ExecStart expands, unquoted (split at blanks):
# Debian/Ubuntu chrony.service `ExecStart=/usr/sbin/chronyd $DAEMON_OPTS`, RHEL/Amazon Linux/SUSE
# chronyd.service `ExecStart=/usr/sbin/chronyd $OPTIONS`.
UNIT_ARGUMENTS = (("/etc/default/chrony", "DAEMON_OPTS"), ("/etc/sysconfig/chronyd", "OPTIONS"))


class ServiceManager(Protocol):
    name: str

    def restart(self) -> None: ...

    def reload_sources(self) -> None: ...

    def is_active(self) -> bool: ...

    def main_pid(self) -> int | None: ...


@dataclass
class Systemd:
    unit: str
    name: str = "systemd"

    def argv(self, verb: str, *extra: str) -> list[str]:
        return ["systemctl", verb, *extra, f"{self.unit}.service"]

    def restart(self) -> None:
        done = commands.run(self.argv("restart"), timeout=60)
        if not done.ok:
            raise CommandFailed(
                f"systemctl restart {self.unit} failed: {done.brief()}",
                hint=f"journalctl -u {self.unit} -n 50",
            )

    def reload_sources(self) -> None:
        chrony_tools.reload_sources()

    def is_active(self) -> bool:
        return commands.run(self.argv("is-active", "--quiet"), timeout=15).ok

    def main_pid(self) -> int | None:
        done = commands.run(self.argv("show", "--property=MainPID", "--value"), timeout=15)
        pid = done.stdout.strip()
        return int(pid) if done.ok and pid.isdigit() and pid != "0" else None


@dataclass
class Direct:
    config_path: str
    pidfile: str = DEFAULT_PIDFILE
    extra_args: list[str] = field(default_factory=list)
    # Where the chronyd now running may have written its pid: a new configuration can move the
    # pidfile, and stopping must find the old chronyd all the same.
    previous_pidfiles: list[str] = field(default_factory=list)
    name: str = "direct"
    stop_timeout: float = 10.0
    start_timeout: float = 10.0

    def restart(self) -> None:
        self.stop()
        self.start()

    def start(self) -> None:
        argv = ["chronyd", "-f", self.config_path, *self.extra_args]
        done = commands.run(argv, timeout=self.start_timeout)
        if not done.ok:
            raise CommandFailed(f"chronyd did not start: {done.brief()}")
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.main_pid() is not None:
                return
            time.sleep(0.05)
        raise CommandFailed(f"chronyd did not write {self.pidfile} within {self.start_timeout:g} s")

    def stop(self) -> None:
        for pidfile in dict.fromkeys([self.pidfile, *self.previous_pidfiles]):
            pid = _pid_from(pidfile)
            if pid is None:
                continue
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + self.stop_timeout
            while _alive(pid):
                if time.monotonic() >= deadline:
                    raise CommandFailed(f"chronyd (pid {pid}) did not stop within {self.stop_timeout:g} s")
                time.sleep(0.05)

    def reload_sources(self) -> None:
        chrony_tools.reload_sources()

    def is_active(self) -> bool:
        return self.main_pid() is not None

    def main_pid(self) -> int | None:
        return _pid_from(self.pidfile)


def _pid_from(pidfile: str) -> int | None:
    """The pid of the chronyd that wrote pidfile, if it still runs."""
    try:
        pid = int(Path(pidfile).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) and _is_chronyd(pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (our own child not yet reaped) is not a running chronyd.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _is_chronyd(pid: int) -> bool:
    # By executable, owner and PID namespace (daemons' rules), not by name: a pid file that names
    # some other process must not make a restart signal it.
    return daemons.is_chronyd_pid(pid)


def systemd_running() -> bool:
    """sd_booted(): systemd is PID 1 on this host."""
    return Path("/run/systemd/system").is_dir()


def choose(name: str, *, unit: str, config_path: str, pidfile: str | None,
           previous_pidfile: str | None = None) -> ServiceManager:
    """`auto` takes systemd where it runs; it never falls back to starting chronyd by hand."""
    if name == "auto":
        if not systemd_running():
            raise Unavailable(
                "systemd is not running here (no /run/systemd/system), so chronyctl6 cannot restart chronyd "
                "through it: nothing was changed",
                hint="pass --service-manager direct (or service_manager = \"direct\" in settings.toml) to manage "
                     "chronyd as a plain process",
            )
        name = "systemd"
    if name == "systemd":
        return Systemd(unit=unit)
    if name == "direct":
        extra = chronyd_args_from_env(config_path)
        return Direct(config_path=config_path, pidfile=pidfile or DEFAULT_PIDFILE, extra_args=extra,
                      previous_pidfiles=[previous_pidfile or DEFAULT_PIDFILE])
    raise BadInput(f"unknown service manager {name!r}", hint="use auto, systemd or direct")


def chronyd_args_from_env(config_path: str) -> list[str]:
    """CHRONYCTL6_CHRONYD_ARGS, parsed; refused when it makes chronyd read another file."""
    where = f"${CHRONYD_ARGS_ENV}"
    try:
        args = shlex.split(os.environ.get(CHRONYD_ARGS_ENV, ""))
    except ValueError as exc:
        raise BadInput(f"{where}: {exc}", hint="quote it as a shell would") from None
    same_file(args, config_path, where)
    return args


def same_file(args: list[str], config_path: str, where: str) -> None:
    """Refuse arguments with which chronyd reads a file other than config_path."""
    try:
        other = daemons.config_file(args)
    except daemons.BadArguments as exc:
        raise BadInput(f"{where}: {exc}") from None
    if other is not None and os.path.normpath(other) != os.path.normpath(config_path):
        raise BadInput(
            f"{where} makes chronyd read {shown(other)}, not {config_path}: chronyctl6 would validate, "
            f"write and report a file chronyd does not read",
            hint=f"remove -f from {where} (chronyctl6 manages {config_path}), then run it again",
        )


def unit_arguments(root: Path) -> list[tuple[str, list[str]]]:
    """(where, arguments) the distributions' chronyd units pass, from their environment files
    (bounded reads, resolved inside root). The last assignment of the variable counts, as in
    systemd's EnvironmentFile."""
    found = []
    for shown_path, variable in UNIT_ARGUMENTS:
        data = files.read_bounded(files.resolve_in_root(root, shown_path), shown_path)
        if data is None:
            continue
        value = None
        for number, line in enumerate(data.decode("utf-8", "surrogateescape").splitlines(), 1):
            try:
                words = shlex.split(line, comments=True)
            except ValueError as exc:
                raise BadInput(f"{shown_path}:{number}: {exc}", hint="chronyd's unit cannot read it either") from None
            for word in words:
                if word.startswith(f"{variable}="):
                    value = word.split("=", 1)[1]
        if value is not None:
            found.append((f"{variable} in {shown_path}", value.split()))
    return found


# systemd's unit search path for system units, highest priority first (systemd.unit(5)); /lib for
# distributions whose /usr is not merged. chrony's unit is chrony.service on Debian/Ubuntu (alias
# chronyd.service), chronyd.service elsewhere.
UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system",
             "/usr/lib/systemd/system", "/lib/systemd/system")
UNIT_NAMES = ("chrony.service", "chronyd.service")


def check_unit_arguments(root: Path, config_path: str) -> None:
    """Refuse chronyd arguments, in a unit environment file or in the unit's ExecStart (drop-ins
    included), that name another configuration file."""
    variables: dict[str, list[str]] = {}
    for where, assigned in unit_arguments(root):
        same_file(assigned, config_path, where)
        variables[where.split()[0]] = assigned
    for unit in UNIT_NAMES:
        found = exec_start(root, unit)
        if found is None:
            continue
        where, words = found
        args: list[str] = []
        for word in words[1:]:  # $VAR: its words; ${VAR}: one word (systemd.service(5), "Command lines")
            if word.startswith("${") and word.endswith("}"):
                args.append(" ".join(variables.get(word[2:-1], [])))
            elif word.startswith("$"):
                args.extend(variables.get(word[1:], []))
            else:
                args.append(word)
        if os.path.basename(words[0]) == "chronyd":
            same_file(args, config_path, f"ExecStart in {where}")


def exec_start(root: Path, unit: str) -> tuple[str, list[str]] | None:
    """The unit's effective ExecStart (the unit file first found on the search path, then its
    drop-ins in name order; an empty ExecStart= resets), split into words; None without one."""
    main = next((d for d in UNIT_DIRS if _unit_file(root, f"{d}/{unit}") is not None), None)
    if main is None:
        return None
    dropins: dict[str, str] = {}
    for directory in UNIT_DIRS:
        real = files.resolve_in_root(root, f"{directory}/{unit}.d")
        with contextlib.suppress(OSError):
            for name in os.listdir(real):
                if name.endswith(".conf"):
                    dropins.setdefault(name, f"{directory}/{unit}.d/{name}")  # a higher directory wins
    value: tuple[str, str] | None = None
    for shown_path in [f"{main}/{unit}", *(dropins[n] for n in sorted(dropins))]:
        for section, key, text in _unit_lines(_unit_file(root, shown_path) or b""):
            if section == "Service" and key == "ExecStart":
                value = (shown_path, text) if text else None
    if value is None:
        return None
    where, text = value
    try:
        words = shlex.split(text.lstrip("@-:+!"))
    except ValueError as exc:
        raise BadInput(f"ExecStart in {where}: {exc}") from None
    return (where, words) if words else None


def _unit_file(root: Path, shown_path: str) -> bytes | None:
    return files.read_bounded(files.resolve_in_root(root, shown_path), shown_path)


def _unit_lines(data: bytes) -> list[tuple[str, str, str]]:
    """(section, key, value) of a unit file; continuation lines joined."""
    out = []
    section = ""
    pending = ""
    for raw in data.decode("utf-8", "surrogateescape").splitlines():
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif "=" in line:
            key, value = line.split("=", 1)
            out.append((section, key.strip(), value.strip()))
    return out


# Other time daemons' units, and the target each is enabled for: enabled beside chrony, they fight it.
RIVAL_UNITS = (("systemd-timesyncd.service", "sysinit.target"), ("ntp.service", "multi-user.target"),
               ("ntpd.service", "multi-user.target"), ("ntpsec.service", "multi-user.target"),
               ("openntpd.service", "multi-user.target"))


@dataclass(frozen=True)
class UnitState:
    """A unit as a system at a root has it installed, read from its files (no systemctl: an
    image's systemd does not run, and this host's must not be asked about the image)."""

    unit: str
    state: str  # enabled | disabled | masked | not installed | unreadable
    where: str | None = None  # the unit file, as the system sees it

    def as_dict(self) -> dict[str, str | None]:
        return {"unit": self.unit, "state": self.state, "path": self.where}


def unit_state(root: Path, unit: str, wanted_by: str) -> UnitState:
    """Masked (a link to /dev/null in /etc or /run), enabled (a link in TARGET.wants/ of
    /etc/systemd/system), disabled, or not installed; every path resolved inside root (an
    absolute link in an image is the image's, never the build host's), nothing opened but
    directories."""
    try:
        for directory in ("/etc/systemd/system", "/run/systemd/system"):
            link = files.resolve_in_root(root, directory) / unit
            if link.is_symlink() and os.readlink(link) == "/dev/null":
                return UnitState(unit, "masked", f"{directory}/{unit}")
        where = next((f"{d}/{unit}" for d in UNIT_DIRS if os.path.lexists(files.resolve_in_root(root, d) / unit)),
                     None)
        if where is None:
            return UnitState(unit, "not installed")
        wants = files.resolve_in_root(root, f"/etc/systemd/system/{wanted_by}.wants") / unit
        return UnitState(unit, "enabled" if os.path.lexists(wants) else "disabled", where)
    except (OSError, files.Unreadable) as exc:
        return UnitState(unit, "unreadable", getattr(exc, "message", None) or str(exc))


def enabled_rivals(root: Path) -> tuple[UnitState, ...]:
    """The other time daemons' units enabled in the system at root (RIVAL_UNITS): each would
    fight chronyd over the clock at boot."""
    return tuple(u for u in (unit_state(root, unit, target) for unit, target in RIVAL_UNITS) if u.state == "enabled")
