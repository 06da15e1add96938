"""Takeover of real configurations written by others (tests/fixtures/realworld, with provenance):
`apply --root` on a stock distribution root with each as the operator's configuration.

After it, among everything chronyd reads (the project's own traversal): exactly one Time Sync line
and no non-smeared source; chronyd itself (`chronyd -p`, this host's) accepts the result; every
dropped or disabled line is reported with its file and line; a second apply changes nothing
(`apply --check` exits 0)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from chronyctl6.chronyconf import directives
from chronyctl6.chronyconf.sources import Kind
from chronyctl6.configure import platforms
from chronyctl6.effects import chrony_tools, configtree
from tests.conftest import FIXTURES, require
from tests.helpers import apply_root, cli_json

REALWORLD = FIXTURES / "realworld"
CASES = sorted(p.name for p in REALWORLD.iterdir() if (p / "base").is_file())


def realworld_root(tmp_path: Path, case: str) -> Path:
    base = (REALWORLD / case / "base").read_text().strip()
    root = tmp_path / case
    shutil.copytree(FIXTURES / "stock" / base, root, symlinks=True)
    shutil.copytree(REALWORLD / case / "root", root, symlinks=True, dirs_exist_ok=True)
    return root


def live_kinds(root: Path, main: str) -> list[tuple[str, Kind]]:
    """Every source line chronyd reads at root, with the source policy's kind of it."""
    tree = configtree.load(main, root)
    assert not tree.problems and not tree.missing, (tree.problems, tree.missing)
    return [(located.directive.normalized, kind) for located, kind in tree.kinds()]


def originals(root: Path) -> dict[str, bytes]:
    return {"/" + str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_there_are_more_real_configurations_than_before() -> None:
    assert len(CASES) >= 11


@pytest.mark.parametrize("case", CASES)
def test_realworld_configuration_is_taken_over(tmp_path: Path, case: str) -> None:
    require(shutil.which("chronyd") is not None, "chronyd (apt-get install chrony)")
    root = realworld_root(tmp_path, case)
    platform = platforms.detect((root / "etc/os-release").read_text())
    before = originals(root)

    result = cli_json("apply", "--root", str(root), "--ipv6", "on")
    assert result["validated"] is True, result  # chronyd -p judged the candidate before writing

    kinds = live_kinds(root, platform.config_path)
    timesync = [line for line, kind in kinds if kind.timesync]
    assert timesync == ["server fd00:ec2::123 prefer iburst minpoll 4 maxpoll 4"], kinds
    assert not [line for line, kind in kinds if kind is Kind.NON_SMEARED], kinds

    for dropped in result["dropped"]:  # where it was, as it was
        original = directives.decode(before[dropped["file"]]).split("\n")[dropped["lineno"] - 1]
        assert directives.strip(original) == dropped["line"], dropped
    edited = [f for f in result["files"] if f != platform.config_path]
    for shown in edited:  # a drop-in keeps every line it had, comments byte for byte
        after = (root / shown.lstrip("/")).read_bytes().split(b"\n")
        assert all(line in after or b"# " + line in after for line in before[shown].split(b"\n")), shown

    checked = chrony_tools.validate_config(str(root / platform.config_path.lstrip("/")), root=str(root))
    assert checked.ok, checked

    apply_root(root, "--ipv6", "on", "--check")
