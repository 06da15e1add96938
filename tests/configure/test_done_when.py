"""Done when, for every supported distro's real files, drop-ins included (tests/fixtures/stock):
`apply --root` leaves, among everything chronyd would read (effects.configtree.load), exactly the
chosen Time Sync line and no active leapsectz/leapseclist; keeps every stock and operator
directive; is accepted by that era's chrony; a second apply changes nothing and drops nothing; and
`--ipv6 off` then switches to exactly the IPv4 line.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from chronyctl6.chronyconf import directives, traversal
from chronyctl6.configure import platforms
from chronyctl6.effects import configtree
from tests.conftest import FIXTURES
from tests.helpers import cli_json

STOCK = FIXTURES / "stock"
DISTROS = sorted(p.name for p in STOCK.iterdir() if p.is_dir())
V6 = "server fd00:ec2::123 prefer iburst minpoll 4 maxpoll 4"
V4 = "server 169.254.169.123 prefer iburst minpoll 4 maxpoll 4"
# Lines of an operator's own, added to every stock file before the takeover.
OPERATOR = ("allow 198.51.100.0/24", "hwtimestamp *", "maxclockerror 50", "log rawmeasurements")
# The chrony of each distro's era among the version matrix's roots: the newest no newer than the
# distro's (Amazon Linux 2's older images had chrony 3.5: the oldest root, 4.0, stands in).
ERA = {
    "debian11": "debian11", "debian12": "debian12", "debian13": "debian13", "ubuntu2204": "debian11",
    "ubuntu2404": "debian12", "ubuntu2510": "debian13", "rhel9": "debian12", "fedora43": "debian13",
    "sles15": "debian11", "amzn2": "debian11", "amzn2legacy": "debian11", "amzn2023": "debian12",
}
INSIDE = "/chronyctl6-done"


def platform_of(root: Path) -> platforms.Platform:
    return platforms.detect((root / "etc/os-release").read_text())


def active(root: Path) -> traversal.ConfigTree:
    return configtree.load(platform_of(root).config_path, root)


def timesync_lines(tree: traversal.ConfigTree) -> list[str]:
    return [loc.directive.normalized for loc in tree.sources() if directives.is_timesync(loc.directive.args[0])]


def kept_lines(root: Path) -> dict[str, list[str]]:
    """Per file chronyd reads: the directives a takeover must keep (everything but sources and
    leap-second files it must drop, and the boot-filled directories it replaces)."""
    platform = platform_of(root)
    tree = active(root)
    kept: dict[str, list[str]] = {}
    replaced = tuple(f"{directory}/" for directory, _ in platform.replaced_sourcedirs)
    for loc in tree.directives:
        if loc.file.startswith(replaced):
            continue  # the whole directory goes (Amazon Linux 2023's /run/chrony.d, time.aws.com included)
        verdict = directives.judge(loc.directive, runtime_sourcedir=platform.runtime_sourcedir,
                                   replaced_sourcedirs=platform.replaced_sourcedirs)
        if verdict.fate is directives.Fate.KEEP:
            kept.setdefault(loc.file, []).append(loc.directive.normalized)
    return kept


@pytest.fixture
def era_roots(chrony_root: Callable[[str], Path]) -> dict[str, Path]:
    return {release: chrony_root(release) for release in sorted(set(ERA.values()))}


def image(tmp_path: Path, distro: str) -> Path:
    root = tmp_path / distro
    shutil.copytree(STOCK / distro, root, symlinks=True)
    conf = root / platform_of(root).config_path.lstrip("/")
    conf.write_text(conf.read_text() + "\n# the operator's\n" + "\n".join(OPERATOR) + "\n")
    return root


def accepted_by(era_root: Path, root: Path, distro: str) -> subprocess.CompletedProcess[str]:
    """The applied image's configuration, drop-ins included, parsed by the era's chronyd."""
    where = era_root / INSIDE.lstrip("/") / distro
    shutil.rmtree(where, ignore_errors=True)
    shutil.copytree(root, where, symlinks=True)
    main = where / platform_of(root).config_path.lstrip("/")
    main.write_text(directives.rebase_includes(main.read_text(), f"{INSIDE}/{distro}"))
    return subprocess.run(["chroot", era_root, "/usr/sbin/chronyd", "-p", "-u", "root", "-f",
                           f"{INSIDE}/{distro}{platform_of(root).config_path}"],
                          capture_output=True, text=True, timeout=15, check=False)


def test_every_fixture_has_an_era() -> None:
    assert set(ERA) == set(DISTROS)


@pytest.mark.root  # chroot into an unpacked Debian root
@pytest.mark.parametrize("distro", DISTROS)
def test_done_when(tmp_path: Path, era_roots: dict[str, Path], distro: str) -> None:
    root = image(tmp_path, distro)
    before = kept_lines(root)

    first = cli_json("apply", "--root", str(root), "--ipv6", "on")
    assert first["changed"] is True
    tree = active(root)
    # Exactly the chosen Time Sync line among everything chronyd reads.
    assert timesync_lines(tree) == [V6], tree.files
    # No non-smeared source beside it, no leap-second file applied on top of smeared time.
    assert [loc.directive.line for loc in tree.sources()] == [V6]
    assert not tree.keyword("leapsectz") and not tree.keyword("leapseclist")
    # Every stock and operator directive is still read, from the same file.
    after = kept_lines(root)
    for file, lines in before.items():
        for line in lines:
            assert line in after.get(file, []), (file, line)
    for line in OPERATOR:
        assert line in after[platform_of(root).config_path]

    # The era's chrony reads it.
    done = accepted_by(era_roots[ERA[distro]], root, distro)
    assert done.returncode == 0, done.stderr
    assert "fd00:ec2::123" in done.stdout

    # A second apply: nothing to do, nothing dropped.
    second = cli_json("apply", "--root", str(root), "--ipv6", "on")
    assert (second["changed"], second["dropped"], second["diff"]) == (False, [], "")

    # --ipv6 off: exactly the IPv4 line.
    third = cli_json("apply", "--root", str(root), "--ipv6", "off")
    assert third["changed"] is True
    assert timesync_lines(active(root)) == [V4]
    assert [loc.directive.line for loc in active(root).sources()] == [V4]
    assert accepted_by(era_roots[ERA[distro]], root, distro).returncode == 0
