"""Which time daemons run here, read with psutil: chronyd itself and anything that fights it."""

from __future__ import annotations

import time
from dataclasses import dataclass

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
        args = self.cmdline[1:]
        for i, arg in enumerate(args):
            if arg == "-f" and i + 1 < len(args):
                return args[i + 1]
            if arg.startswith("-f") and len(arg) > 2:
                return arg[2:]
        return None

    def as_dict(self) -> dict[str, object]:
        return {"pid": self.pid, "name": self.name, "user": self.user, "started": self.started,
                "uptime_seconds": round(self.uptime, 1), "cmdline": list(self.cmdline)}


@dataclass(frozen=True)
class Scan:
    chronyd: tuple[Proc, ...]
    others: tuple[Proc, ...]  # conflicting time daemons


def scan() -> Scan:
    import psutil  # here: `check` must not pay for it at start-up

    chronyd: list[Proc] = []
    others: list[Proc] = []
    for p in psutil.process_iter(["pid", "name", "username", "create_time", "cmdline"]):
        info = p.info
        name = info.get("name") or ""
        if name != "chronyd" and name not in CONFLICTING:
            continue
        proc = Proc(int(info["pid"]), name, info.get("username"), float(info.get("create_time") or 0.0),
                    tuple(info.get("cmdline") or ()))
        (chronyd if name == "chronyd" else others).append(proc)
    return Scan(tuple(sorted(chronyd, key=lambda x: x.pid)), tuple(sorted(others, key=lambda x: x.pid)))
