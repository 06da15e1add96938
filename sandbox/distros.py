"""What a fresh instance of each distribution has in /etc and /run before chronyctl6 runs.

/etc comes from the stock fixtures, tests/fixtures/stock/<distro>/etc/ (os-release and chrony's
files as the distribution ships them), laid over this host's /etc. The chronyd binary is this
host's, so a distribution whose chrony lives in /etc/chrony.conf gets this host's /etc/chrony
hidden. Amazon Linux 2023 keeps its sources in /run/chrony.d, put there at boot: the sandbox
writes them into the instance's /run.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path

from sandbox.namespaces import REPO_ROOT, SandboxError

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "stock"
ALIASES = {"debian": "debian12", "ubuntu": "ubuntu2204", "amzn": "amzn2023", "rhel": "rhel9",
           "sles": "sles15"}

# As Amazon Linux 2023 links them into /run/chrony.d from /usr/share/amazon-chrony-config.
AMZN2023_RUN_FILES = {
    "chrony.d/link-local.sources": "server 169.254.169.123 prefer iburst minpoll 4 maxpoll 4\n",
    "chrony.d/amazon-pool.sources": "pool time.aws.com iburst\n",
}


@dataclass(frozen=True)
class Distro:
    name: str  # the fixture's name: debian12, amzn2023, ...
    chrony_conf_path: str  # /etc/chrony/chrony.conf or /etc/chrony.conf
    etc_files: dict[str, str]  # path relative to /etc -> text
    etc_dirs: tuple[str, ...] = ()  # empty directories the distribution ships (chrony.d)
    run_files: dict[str, str] = field(default_factory=dict)  # path relative to /run -> text
    hide_etc: tuple[str, ...] = ()  # this host's /etc entries the distribution does not have
    # A root holding the distribution's own chrony (packaging/chrony-root): the instance's chronyd
    # and chronyc are that root's, run chrooted into it over the instance's /etc, /run and /var.
    chrony_root: str | None = None

    @property
    def chrony_conf(self) -> str:
        return self.etc_files[self.chrony_conf_path.removeprefix("/etc/")]

    @property
    def os_id(self) -> str:
        for line in self.etc_files.get("os-release", "").splitlines():
            if line.startswith("ID="):
                return line[3:].strip().strip('"')
        return ""

    @property
    def chrony_user(self) -> str:
        # The chronyd binary is this host's (Debian's): its compiled-in user is _chrony.
        return "_chrony"


# name: (stock fixture, Debian suite whose own chrony the instance runs)
OWN_CHRONY = {"debian13-chrony46": ("debian13", "trixie")}
# Under /var (the instance sees this host's /var below its own), in the root-owned test cache.
UNPACKED = Path(os.environ.get("CHRONYCTL6_TEST_CACHE", "/var/cache/chronyctl6-test")) / "unpacked"


def unpacked_chrony_root(suite: str) -> Path:
    """The cached root of that suite (packaging/chrony-root), unpacked once beside it."""
    tarball = Path(subprocess.run([REPO_ROOT / "packaging/chrony-root", suite, "--path"], capture_output=True,
                                  text=True, check=True, timeout=30).stdout.strip())
    if not tarball.is_file():
        raise SandboxError(f"no cached chrony root for {suite}: run `packaging/chrony-root {suite}` outside the "
                           "tests' network namespace")
    UNPACKED.mkdir(mode=0o755, exist_ok=True)
    root = UNPACKED / tarball.stem
    with (UNPACKED / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "usr/sbin/chronyd").exists():
            partial = UNPACKED / f"{tarball.stem}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir()
            subprocess.run(["tar", "-C", partial, "-xf", tarball, "--exclude=./usr/share/doc"], check=True,
                           timeout=300)
            partial.rename(root)
    return root


def available() -> list[str]:
    return sorted(p.name for p in FIXTURES.iterdir() if (p / "etc").is_dir()) if FIXTURES.is_dir() else []


def load(name: str) -> Distro:
    if name in OWN_CHRONY:
        fixture, suite = OWN_CHRONY[name]
        return replace(load(fixture), chrony_root=str(unpacked_chrony_root(suite)))
    key = ALIASES.get(name, name)
    etc = FIXTURES / key / "etc"
    if not etc.is_dir():
        raise SandboxError(f"unknown distro {name!r}: no {etc} (known: {', '.join(available())})")
    files: dict[str, str] = {}
    dirs: list[str] = []
    for path in sorted(etc.rglob("*")):
        rel = str(path.relative_to(etc))
        if path.name == ".keep":
            dirs.append(str(path.parent.relative_to(etc)))
        elif path.is_file():
            files[rel] = path.read_text()
    hide: tuple[str, ...]
    if "chrony/chrony.conf" in files:
        conf_path, hide = "/etc/chrony/chrony.conf", ()
    elif "chrony.conf" in files:
        conf_path, hide = "/etc/chrony.conf", ("chrony", "default/chrony")
    else:
        raise SandboxError(f"{etc} has no chrony.conf")
    if "keyfile /etc/chrony.keys" in files.get("chrony.conf", "") and "chrony.keys" not in files:
        files["chrony.keys"] = ""
    return Distro(
        name=key,
        chrony_conf_path=conf_path,
        etc_files=files,
        etc_dirs=tuple(dirs),
        run_files=dict(AMZN2023_RUN_FILES) if key == "amzn2023" else {},
        hide_etc=hide,
    )
