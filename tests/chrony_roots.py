"""Minimal Debian roots with each release's own chrony (packaging/chrony-root builds and caches
them, outside the tests' network namespace), unpacked for a test run. Only ever used with chroot
to run `chronyd -p` or `chronyd --version`: nothing in them is started as a daemon."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.conftest import REPO, require

# Debian release: (suite, the chrony version it ships, as `chronyd --version` prints it)
RELEASES = {
    "debian11": ("bullseye", "4.0"),
    "debian12": ("bookworm", "4.3"),
    "debian13": ("trixie", "4.6.1"),
}


def tarball(suite: str) -> Path:
    out = subprocess.run([REPO / "packaging/chrony-root", suite, "--path"], capture_output=True, text=True,
                         check=True, timeout=30).stdout.strip()
    path = Path(out)
    require(path.is_file(), f"no cached chrony root for {suite} at {path}: run `packaging/chrony-root --all` "
                            "once outside the tests' network namespace (it needs Debian's mirror)")
    return path


def unpack(release: str, into: Path) -> Path:
    """The release's root, unpacked under `into` (documentation and apt's lists left out)."""
    require(os.geteuid() == 0, "chroot needs root")
    suite, _ = RELEASES[release]
    root = into / release
    root.mkdir(parents=True)
    subprocess.run(["tar", "-C", root, "-xf", tarball(suite), "--exclude=./usr/share/doc",
                    "--exclude=./var/lib/apt", "--exclude=./var/cache"], check=True, timeout=300)
    return root


def chronyd_version(root: Path) -> str:
    out = subprocess.run(["chroot", root, "/usr/sbin/chronyd", "--version"], capture_output=True, text=True,
                         check=True, timeout=10).stdout
    match = re.search(r"version (\S+)", out)
    assert match, out
    return match.group(1)
