"""Minimal Debian roots with each release's own chrony (packaging/chrony-root builds and caches
them, outside the tests' network namespace), unpacked once per test session (the `chrony_root`
fixture; a test that changes a root takes `copy_of` it). Only ever used with chroot to run
`chronyd -p` or `chronyd --version`: nothing in them is started as a daemon."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

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


@pytest.fixture(scope="session")
def chrony_root(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """chrony_root("debian13"): that release's root, unpacked at its first use in the session and
    shared from then on. Tests add files of their own under a directory of their own in it; a test
    that changes the root's own files works on copy_of(it)."""
    unpacked: dict[str, Path] = {}

    def get(release: str) -> Path:
        if release not in unpacked:
            unpacked[release] = unpack(release, tmp_path_factory.mktemp(f"chrony-root-{release}"))
        return unpacked[release]

    return get


# What a test of an image may change in place (chrony's files, chronyctl6's state, the chronyd
# binary): copied for real; the rest of the root is hard links, which nothing writes through.
PRIVATE = ("etc", "var", "run", "usr/sbin")


def copy_of(root: Path, into: Path) -> Path:
    """A copy of an unpacked root that a test may change: hard links but for PRIVATE."""
    copy = into / root.name
    subprocess.run(["cp", "-al", str(root), str(copy)], check=True, timeout=120)
    for sub in PRIVATE:
        if (root / sub).is_dir() and not (root / sub).is_symlink():
            shutil.rmtree(copy / sub)
            subprocess.run(["cp", "-a", str(root / sub), str(copy / sub)], check=True, timeout=120)
    return copy


def chronyd_version(root: Path) -> str:
    out = subprocess.run(["chroot", root, "/usr/sbin/chronyd", "--version"], capture_output=True, text=True,
                         check=True, timeout=10).stdout
    match = re.search(r"version (\S+)", out)
    assert match, out
    return match.group(1)
