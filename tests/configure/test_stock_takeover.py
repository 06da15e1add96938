"""The distros' real stock files (tests/fixtures/stock) against the platform data and the render.

A render adds no directive the stock file did not have, except the Time Sync line (or the boot-time
sourcedir), the PTP hardware clock and the operator's settings; every stock line it keeps carries the
comment the packaged file puts above it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from chronyctl6.chronyconf import directives
from chronyctl6.configure import platforms
from chronyctl6.configure.plan import Request, make_plan
from tests.conftest import FIXTURES

STOCK = FIXTURES / "stock"
GOLDEN = FIXTURES / "golden"
DISTROS = sorted(p.name for p in STOCK.iterdir() if p.is_dir())
VARIANTS = {"ipv6-on": ("on", "off"), "ipv6-off": ("off", "off"), "phc-on": ("on", "on"), "at-boot": ("auto", "off")}
ADDED_BY_CHRONYCTL6 = {
    "server fd00:ec2::123 prefer iburst minpoll 4 maxpoll 4",
    "server 169.254.169.123 prefer iburst minpoll 4 maxpoll 4",
    "refclock PHC /dev/ptp_ena poll 0 delay 0.000010 prefer trust",
    "sourcedir /run/chronyctl6",
    "confdir /run/chronyctl6",  # the boot-time PHC (an image never carries a refclock line of ours)
    "maxclockerror 50",  # the drift allowance ClockBound's bound assumes
}


def platform_of(distro: str) -> platforms.Platform:
    return platforms.detect((STOCK / distro / "etc/os-release").read_text())


def main_file(distro: str) -> Path:
    return STOCK / distro / platform_of(distro).config_path.lstrip("/")


def comments_above(text: str) -> dict[str, str]:
    """Each directive of a chrony.conf with the comment block right above it."""
    found: dict[str, str] = {}
    block: list[str] = []
    for line in text.split("\n"):
        if not line.strip():
            block = []
        elif line[0] in directives.COMMENT_CHARS:
            block.append(line)
        else:
            found.setdefault(" ".join(line.split()), "\n".join(block))
            block = []
    return found


def kept_from_stock(distro: str) -> list[str]:
    platform = platform_of(distro)
    verdicts = [directives.judge(d, runtime_sourcedir=platform.runtime_sourcedir,
                                 replaced_sourcedirs=platform.replaced_sourcedirs)
                for d in directives.parse(main_file(distro).read_text())]
    return [v.directive.normalized for v in verdicts if v.fate is directives.Fate.KEEP]


@pytest.mark.parametrize("distro", DISTROS)
def test_every_directive_the_takeover_keeps_is_platform_stock(distro: str) -> None:
    stock = {s.normalized for s in platform_of(distro).stock}
    assert set(kept_from_stock(distro)) <= stock


@pytest.mark.parametrize("name", sorted(platforms.BY_NAME))
def test_platform_stock_lines_and_comments_come_from_a_real_file(name: str) -> None:
    """No invented stock line: each one, with its comment, is in one of the platform's fixtures."""
    platform = platforms.BY_NAME[name]
    fixtures = [d for d in DISTROS if platform_of(d).name == name]
    if name == "ubuntu":
        fixtures += [d for d in DISTROS if d.startswith("debian")]  # Ubuntu uses Debian's data
    assert fixtures, f"no stock fixture for platform {name}"
    seen = [comments_above(main_file(d).read_text()) for d in fixtures]
    for line in platform.stock:
        if name == "sles" and line.line == "sourcedir /run/chrony-dhcp":
            continue  # openSUSE Factory's addition: no fixture of it (see the stock README)
        assert any(s.get(line.normalized) == line.comment for s in seen), (name, line)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("distro", DISTROS)
def test_render_adds_only_what_is_needed(distro: str, variant: str) -> None:
    # The render of each distro x variant is its golden file (test_render_golden proves it, and
    # test_chrony_versions has chronyd read each): one matrix of renders, checked here by reading.
    text = (GOLDEN / f"{distro}-{variant}.conf").read_text()
    rendered = [d.normalized for d in directives.parse(text)]
    kept = kept_from_stock(distro)
    assert set(rendered) - ADDED_BY_CHRONYCTL6 == set(kept)
    # In the stock file's order (Debian 13 moved confdir last: it decides what overrides what).
    assert [d for d in rendered if d in kept] == list(dict.fromkeys(kept))
    # Each stock line keeps a comment: the one the stock file has above it, byte for byte (the
    # distribution's own wording), else the one the platform data holds.
    comments = comments_above(text)
    own = comments_above(main_file(distro).read_text())
    for line in platform_of(distro).stock:
        if line.normalized in rendered:
            assert comments[line.normalized] == (own.get(line.normalized) or line.comment)


def test_no_file_to_take_over_gets_the_usual_stock_lines(tmp_path: Path) -> None:
    root = tmp_path / "amzn2"
    shutil.copytree(STOCK / "amzn2", root, symlinks=True)
    (root / "etc/chrony.conf").unlink()
    text = make_plan(Request(root=root, ipv6="on", phc="off")).config.new.decode()
    rendered = {d.normalized for d in directives.parse(text)}
    usual = {s.normalized for s in platforms.BY_NAME["amzn2"].stock if s.usual}
    assert rendered - ADDED_BY_CHRONYCTL6 == usual
    assert "dumponexit" not in rendered  # older Amazon Linux 2 images only


def test_operator_value_replaces_the_stock_line_and_keeps_no_stale_comment(tmp_path: Path) -> None:
    root = tmp_path / "debian13"
    shutil.copytree(STOCK / "debian13", root, symlinks=True)
    conf = root / "etc/chrony/chrony.conf"
    conf.write_text(conf.read_text() + "makestep 0.1 -1\n")
    text = make_plan(Request(root=root, ipv6="on", phc="off")).config.new.decode()
    assert [d.line for d in directives.parse(text) if d.keyword == "makestep"] == ["makestep 0.1 -1"]
    assert "first three clock updates" not in text
