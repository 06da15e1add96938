"""The simulated instance: its own network, /etc, /var, /run and /tmp, and commands run on it.

One holder owns the instance's namespaces. Its mount namespace gets one overlay on /etc (the
host's /etc below, this instance's files above), one on /var (so /var/lib/chrony starts empty
and belongs to the instance), a private /run (chronyd's pid file and command socket) and a tmpfs
/tmp. Every command is `nsenter` into all of it, so chronyctl6, chronyd and chronyc use their
real paths with no --root: exactly what they do on a live instance.
"""

from __future__ import annotations

import json
import os
import pwd
import shlex
import stat
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from chronyctl6.effects import chrony_tools
from sandbox.distros import Distro
from sandbox.namespaces import REPO_ROOT, Holder, SandboxError
from sandbox.probe import Probes

SETTINGS_PATH = "/etc/chronyctl6/settings.toml"
DEFAULT_SETTINGS = 'service_manager = "direct"\n'
CHRONYD_PIDFILE = "/run/chrony/chronyd.pid"


class Instance(Probes):
    def __init__(
        self,
        holder: Holder,
        workdir: Path,
        distro: Distro,
        *,
        mac: str,
        ipv4: str | None,
        ipv6: str | None,
        settings: str = DEFAULT_SETTINGS,
    ) -> None:
        self.holder = holder
        self.workdir = workdir
        self.distro = distro
        self.mac = mac
        self.ipv4 = ipv4
        self.ipv6 = ipv6
        self.settings = settings
        # How `chronyctl6` is run on the instance: this checkout's by default; a test of an
        # installed package sets e.g. ["/usr/bin/chronyctl6"].
        self.cli: list[str] = [sys.executable, "-m", "chronyctl6"]

    # ------------------------------------------------------------ building

    @property
    def netns_path(self) -> str:
        return self.holder.netns_path

    @property
    def hostname(self) -> str:
        return "ip-" + self.ipv4.replace(".", "-") if self.ipv4 else "ipv6-only"

    @property
    def layers(self) -> str:
        """Where the instance's own layers live: a tmpfs in its mount namespace only, so they
        need no particular filesystem under /tmp (an overlay upper cannot be on overlayfs) and
        vanish with the instance."""
        return f"{self.workdir}/layers"

    def build(self) -> None:
        self.holder.run(["sh", "-ec", f"mkdir -p {self.layers}\n"
                         f"mount -t tmpfs -o mode=0755,size=64m sandbox-layers {self.layers}"],
                        timeout=20, check=True)
        self._prepare(self.path(self.layers))
        self._mount()

    def _prepare(self, w: Path) -> None:
        """Lay out the overlay upper directories (reached from outside through /proc/PID/root)."""
        for d in ("etc-upper", "etc-work", "var-upper", "var-work", "run"):
            (w / d).mkdir(mode=0o755)
        etc = w / "etc-upper"
        for name in self.distro.hide_etc:
            _whiteout(etc / name)
        files = {**self.distro.etc_files, SETTINGS_PATH.removeprefix("/etc/"): self.settings}
        for name in self.distro.etc_dirs:
            (etc / name).mkdir(parents=True, exist_ok=True, mode=0o755)
        for name, text in files.items():
            target = etc / name
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            target.write_text(text)
            target.chmod(0o644)
        try:
            user = pwd.getpwnam(self.distro.chrony_user)
            owner = (user.pw_uid, user.pw_gid)
        except KeyError:
            owner = (0, 0)
        # A fresh instance: nothing of the host's chrony state shows through.
        for rel in ("lib/chrony", "log/chrony"):
            state = w / "var-upper" / rel
            state.mkdir(parents=True, mode=0o755)
            os.chown(state, *owner)
            state.chmod(0o750 if rel == "lib/chrony" else 0o755)
            os.setxattr(state, "trusted.overlay.opaque", b"y")
        for rel, text in self.distro.run_files.items():
            target = w / "run" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)

    def _mount(self) -> None:
        w = self.layers
        repo = shlex.quote(str(REPO_ROOT))
        script = f"""set -e
hostname {self.hostname}
mount -t overlay overlay -o lowerdir=/etc,upperdir={w}/etc-upper,workdir={w}/etc-work /etc
mount -t overlay overlay -o lowerdir=/var,upperdir={w}/var-upper,workdir={w}/var-work /var
mount --bind {w}/run /run
# A private /tmp, but the checkout whose chronyctl6 runs here stays visible even when it lives
# under /tmp (CI clones anywhere): the shell's working directory keeps hold of it across the mount.
cd {repo}
mount -t tmpfs -o mode=1777,size=64m tmpfs /tmp
if [ ! -e {repo}/pyproject.toml ]; then mkdir -p {repo} && mount --no-canonicalize --bind /proc/self/cwd {repo}; fi
""" + self._own_chrony_script()
        self.holder.run(["sh", "-c", script], timeout=20, check=True)

    def _own_chrony_script(self) -> str:
        """The distribution's own chronyd and chronyc (another glibc than this host's): chrooted
        into its root, over this instance's /etc, /run, /var, /dev and /proc, behind the usual
        paths; `exec` keeps their pid, name and command line."""
        if self.distro.chrony_root is None:
            return ""
        root = shlex.quote(self.distro.chrony_root)
        lines = [f"mount --bind /{d} {root}/{d}" for d in ("etc", "run", "var", "dev", "proc")]
        lines.append("mkdir -p /run/sandbox-chrony")  # the instance's own /run (/tmp is a fresh tmpfs)
        for tool in ("/usr/sbin/chronyd", "/usr/bin/chronyc"):
            wrapper = f"/run/sandbox-chrony/{tool.rsplit('/', 1)[1]}"
            lines += [f"printf '#!/bin/sh\\nexec chroot {root} {tool} \"$@\"\\n' > {wrapper}",
                      f"chmod 755 {wrapper}", f"mount --bind {wrapper} {tool}"]
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------ using

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 60.0,
        check: bool = False,
        env: Mapping[str, str] | None = None,
        input_text: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run argv on the instance as root. `chronyctl6` means `self.cli` (this checkout's)."""
        argv = list(argv)
        if argv and argv[0] == "chronyctl6":
            argv = [*self.cli, *argv[1:]]
        full_env = {"CHRONYCTL6_CHRONYD_ARGS": "-x", **(env or {})}
        done = self.holder.run(argv, timeout=timeout, env=full_env, input_text=input_text)
        if check and done.returncode != 0:
            raise SandboxError(
                f"{' '.join(argv)} failed on the instance ({done.returncode}):\n"
                f"{done.stdout[-2000:]}{done.stderr[-2000:]}"
            )
        return done

    def path(self, path: str) -> Path:
        """A path inside the instance, reachable from outside through its holder's root."""
        return Path(f"/proc/{self.holder.pid}/root") / path.lstrip("/")

    def read_text(self, path: str) -> str:
        return self.path(path).read_text()

    def write_text(self, path: str, text: str) -> None:
        target = self.path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def chronyc(self, *args: str, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
        return self.run(["chronyc", "-n", "-c", *args], timeout=timeout)

    def sources(self) -> list[chrony_tools.Source]:
        done = self.chronyc("sources")
        if done.returncode != 0:
            raise SandboxError(f"chronyc sources failed on the instance: {done.stderr.strip()}")
        return chrony_tools.parse_sources(done.stdout)

    def tracking(self) -> chrony_tools.Tracking:
        done = self.chronyc("tracking")
        if done.returncode != 0:
            raise SandboxError(f"chronyc tracking failed on the instance: {done.stderr.strip()}")
        return chrony_tools.parse_tracking(done.stdout)

    def selected(self) -> str | None:
        """The address of chronyd's selected source, or None (no chronyd, or nothing selected)."""
        done = self.chronyc("sources")
        if done.returncode != 0:
            return None
        return next((s.name for s in chrony_tools.parse_sources(done.stdout) if s.selected), None)

    def wait_selected(self, address: str | None = None, timeout: float = 30.0) -> float:
        """Seconds until chronyd selects `address` (any source if None); SandboxError at the deadline."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            name = self.selected()
            if name is not None and (address is None or name == address):
                return time.monotonic() - started
            time.sleep(0.1)
        raise SandboxError(
            f"chronyd on the instance did not select {address or 'a source'} within {timeout:g} s; "
            f"sources:\n{self.chronyc('sources').stdout}"
        )

    def wait_synchronised(self, max_error: float = 0.05, timeout: float = 120.0) -> dict[str, Any]:
        """Until chronyd keeps the instance's clock on Time Sync within `max_error` s (`chronyctl6
        wait`, what a service ordered after time-sync.target waits on); its JSON data. Selected is
        not yet within a bound: right after its first updates chronyd's bound can still be 0.66 s,
        so a status or check read then races them. SandboxError at the (generous) deadline."""
        done = self.run(["chronyctl6", "wait", "--timeout", f"{timeout:g}", "--max-error", f"{max_error:g}",
                         "-o", "json"], timeout=timeout + 30)
        if done.returncode != 0:
            raise SandboxError(f"chronyd on the instance not on Time Sync within {max_error:g} s after "
                               f"{timeout:g} s ({done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}\n"
                               f"sources:\n{self.chronyc('sources').stdout}")
        data: dict[str, Any] = json.loads(done.stdout)["data"]
        return data

    def chronyd_pid(self) -> int | None:
        """chronyd's pid as seen from the instance (its own PID namespace)."""
        try:
            return int(self.read_text(CHRONYD_PIDFILE).strip())
        except (OSError, ValueError):
            return None

    def start_decoy(self, name: str) -> int:
        """A do-nothing process whose name (comm) is `name`, e.g. systemd-timesyncd, for checks
        that look for a conflicting time daemon: the real one must never run here."""
        decoy = f"/run/sandbox-decoys/{name}"
        self.run(["sh", "-c", f"mkdir -p /run/sandbox-decoys && cp /bin/sleep {decoy}"], check=True)
        done = self.run(["sh", "-c", f"{decoy} infinity </dev/null >/dev/null 2>&1 & echo $!"], check=True)
        return int(done.stdout.strip())

    def start_chronyd(self, config: str | None = None, *extra: str) -> None:
        """Start the instance's chronyd by hand (-x), after writing `config` to the distro's path."""
        if config is not None:
            self.write_text(self.distro.chrony_conf_path, config)
        self.run(["chronyd", "-x", "-f", self.distro.chrony_conf_path, *extra], timeout=20, check=True)


def _whiteout(path: Path) -> None:
    """An overlayfs whiteout: the lower layer's entry of this name does not exist above."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))
