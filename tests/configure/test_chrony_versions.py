"""The chrony version matrix: every golden render (every distro, every variant), and every distro's
own stock file, parsed by Debian 11's chronyd 4.0, Debian 12's 4.3 and Debian 13's 4.6, each run
chrooted into a minimal root of its release (packaging/chrony-root) with `chronyd -p` (parse only:
no daemon starts, no clock is touched).

A file must be accepted by every chronyd at least as new as the chrony its distribution ships
(CHRONY_OF). An older chronyd need not accept it; the rejections this project knows of are listed,
with their reason, in GOLDEN_REJECTED and STOCK_REJECTED, and the test checks those lists are exact.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from chronyctl6.chronyconf import directives
from chronyctl6.configure import platforms
from tests import chrony_roots
from tests.conftest import FIXTURES

STOCK = FIXTURES / "stock"
GOLDEN = FIXTURES / "golden"
INSIDE = "/chronyctl6-matrix"  # where, inside each root, a fixture's files are copied

# The chrony each fixture's distribution ships (see tests/fixtures/stock/README.md).
CHRONY_OF = {
    "debian11": "4.0", "debian12": "4.3", "debian13": "4.6.1", "ubuntu2204": "4.2", "ubuntu2404": "4.5",
    "ubuntu2510": "4.7", "rhel9": "4.3", "fedora43": "4.8", "sles15": "4.1", "amzn2": "4.0",
    "amzn2legacy": "3.5", "amzn2023": "4.3",
}
# (fixture, release whose chronyd rejects its golden renders): why
GOLDEN_REJECTED = {
    ("ubuntu2510", "debian11"): "Ubuntu 25.04+'s conf.d/ubuntu-nts.conf gives ntstrustedcerts a set ID "
                                "(chrony 4.2+); it is the distro's drop-in, kept as it is",
}
# (fixture, release whose chronyd rejects the distro's own stock file): why
STOCK_REJECTED = {
    ("debian13", "debian11"): "leapseclist (chrony 4.6+)",
    ("debian13", "debian12"): "leapseclist (chrony 4.6+)",
    ("fedora43", "debian11"): "leapseclist (chrony 4.6+)",
    ("fedora43", "debian12"): "leapseclist (chrony 4.6+)",
    ("ubuntu2510", "debian11"): "leapseclist (4.6+) and ntstrustedcerts with a set ID (4.2+)",
    ("ubuntu2510", "debian12"): "leapseclist (chrony 4.6+)",
}


def version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


@pytest.fixture
def roots(chrony_root: Callable[[str], Path]) -> dict[str, Path]:
    found = {release: chrony_root(release) for release in chrony_roots.RELEASES}
    for release, root in found.items():
        print(f"\n{release}: chronyd {chrony_roots.chronyd_version(root)}")
    return found


def parse_in(root: Path, fixture: str, text: str) -> subprocess.CompletedProcess[str]:
    """`chronyd -p` inside root on text whose included files are the fixture's, copied into the root."""
    inside = f"{INSIDE}/{fixture}"
    where = root / inside.lstrip("/")
    if not where.exists():
        shutil.copytree(STOCK / fixture, where, symlinks=True)
    (where / "candidate.conf").write_text(directives.rebase_includes(text, inside))
    return subprocess.run(["chroot", root, "/usr/sbin/chronyd", "-p", "-u", "root", "-f", f"{inside}/candidate.conf"],
                          capture_output=True, text=True, timeout=15, check=False)


def main_file(fixture: str) -> Path:
    platform = platforms.detect((STOCK / fixture / "etc/os-release").read_text())
    return STOCK / fixture / platform.config_path.lstrip("/")


@pytest.mark.root  # chroot into an unpacked Debian root
def test_each_root_has_its_releases_chrony(roots: dict[str, Path]) -> None:
    for release, root in roots.items():
        assert chrony_roots.chronyd_version(root) == chrony_roots.RELEASES[release][1]


def test_every_fixture_has_a_chrony_era() -> None:
    assert set(CHRONY_OF) == {p.name for p in STOCK.iterdir() if p.is_dir()}


@pytest.mark.root  # chroot into an unpacked Debian root
def test_golden_renders_across_chrony_versions(roots: dict[str, Path]) -> None:
    rejected: dict[tuple[str, str], str] = {}
    checked = 0
    for golden in sorted(GOLDEN.glob("*.conf")):
        fixture = golden.stem.rsplit("-", 2)[0]
        for release, root in roots.items():
            done = parse_in(root, fixture, golden.read_text())
            checked += 1
            if done.returncode != 0:
                rejected[(fixture, release)] = done.stderr.strip().splitlines()[-1]
                assert version(chrony_roots.RELEASES[release][1]) < version(CHRONY_OF[fixture]), (
                    f"{golden.name}: chronyd {chrony_roots.RELEASES[release][1]} is as new as "
                    f"{fixture}'s chrony, yet rejects it: {done.stderr}")
            else:
                # What chronyd parsed holds the Time Sync line or the boot-time sourcedir.
                assert "fd00:ec2::123" in done.stdout or "169.254.169.123" in done.stdout or \
                    f"sourcedir {INSIDE}/{fixture}/run/chronyctl6\n" in done.stdout, golden.name
    print(f"\n{checked} parses; rejected: {rejected}")
    assert set(rejected) == set(GOLDEN_REJECTED)


@pytest.mark.root  # chroot into an unpacked Debian root
def test_stock_files_across_chrony_versions(roots: dict[str, Path]) -> None:
    """The distros' own files as they ship: the matrix's control. Debian 13's and Fedora's active
    leapseclist is what chrony before 4.6 cannot read."""
    rejected: dict[tuple[str, str], str] = {}
    for fixture in sorted(CHRONY_OF):
        for release, root in roots.items():
            done = parse_in(root, fixture, main_file(fixture).read_text())
            if done.returncode != 0:
                rejected[(fixture, release)] = done.stderr.strip().splitlines()[-1]
                assert version(chrony_roots.RELEASES[release][1]) < version(CHRONY_OF[fixture]), done.stderr
    print(f"\nrejected: {rejected}")
    assert set(rejected) == set(STOCK_REJECTED)
