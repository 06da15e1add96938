"""The Ubuntu 22.04 (jammy) .deb, checked statically against jammy's package versions.

No jammy root and no Python 3.10 interpreter can be had on this Debian 12 machine (its mirrors
are Debian's), so the jammy package is checked by what can be read and run here: its Depends
compared with jammy's versions (and the Debian 12 .deb's with bookworm's, which is why the jammy
variant exists: typer 0.4.0 is below what the CLI needs), its payload (typer 0.7.0 and click
8.1.3 bundled, every module parsed as Python 3.10), lintian, and the package installed with dpkg
into the Debian 12 root with Debian's typer and click purged, so that only the bundle can serve.

Jammy's versions, from packages.ubuntu.com (jammy release pocket): python3-typer 0.4.0-1
(universe), python3-click 8.0.3-1, python3-psutil 5.9.0-1build1, python3-ntplib 0.3.3-2
(universe), python3-tomli 1.2.2-2 (universe); python3-jinja2 3.0.3-1, python3 3.10.4-0ubuntu2
and chrony 4.2-2ubuntu2 as the issue states them (not re-checked there).
"""

from __future__ import annotations

import ast
import functools
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.packaging_support import (
    PACKAGING,
    TIMINGS,
    built_deb,
    chroot,
    fresh_root,
    require_tools,
    run,
    scratch,
    wheelhouse,
)

# Packages installed into chroots of cached roots: root.
pytestmark = pytest.mark.root

JAMMY = {
    "python3": "3.10.4-0ubuntu2", "chrony": "4.2-2ubuntu2", "python3-jinja2": "3.0.3-1",
    "python3-psutil": "5.9.0-1build1", "python3-ntplib": "0.3.3-2", "python3-tomli": "1.2.2-2",
    "python3-typer": "0.4.0-1", "python3-click": "8.0.3-1",
}
BOOKWORM = {
    "python3": "3.11.2-1+b1", "chrony": "4.3-2+deb12u1", "python3-jinja2": "3.1.2-1",
    "python3-psutil": "5.9.4-1+b1", "python3-ntplib": "0.3.3-1", "python3-typer": "0.7.0-1",
    "python3-click": "8.1.3-2",
}
# dpkg's own virtual and :any forms resolve to the real package.
RELATION = re.compile(r"^([a-z0-9][a-z0-9+.-]*)(?::any)?(?:\s*\((<<|<=|=|>=|>>)\s*([^)]+)\))?$")


@functools.cache
def built_jammy_deb() -> Path:
    require_tools("dpkg-buildpackage", "dh")
    wheels = wheelhouse()
    started = time.monotonic()
    env = {**os.environ, "CHRONYCTL6_WHEELHOUSE": str(wheels)}
    proc = run([PACKAGING / "build-deb", "--jammy", scratch() / "jammy"], timeout=600, env=env)
    TIMINGS["build-deb --jammy"] = time.monotonic() - started
    deb = Path(proc.stdout.strip().splitlines()[-1])
    assert deb.is_file(), proc.stdout
    return deb


def satisfied(relation: str, versions: dict[str, str]) -> bool:
    """One Depends entry (alternatives with |) against one release's package versions."""
    for alternative in relation.split("|"):
        found = RELATION.match(alternative.strip())
        assert found is not None, f"cannot read the relation {alternative!r}"
        name, op, wanted = found.groups()
        have = versions.get(name)
        if have is None:
            continue
        if op is None:
            return True
        if run(["dpkg", "--compare-versions", have, {"<<": "lt", "<=": "le", "=": "eq", ">=": "ge",
                                                     ">>": "gt"}[op], wanted.strip()],
               check=False).returncode == 0:
            return True
    return False


def depends(deb: Path) -> list[str]:
    field = run(["dpkg-deb", "-f", deb, "Depends"]).stdout
    return [d.strip() for d in field.replace("\n", " ").split(",") if d.strip()]


def test_relation_reader_tells_met_from_unmet() -> None:
    require_tools("dpkg")
    assert satisfied("python3-typer (>= 0.7)", BOOKWORM)
    assert not satisfied("python3-typer (>= 0.7)", JAMMY)
    assert satisfied("python3-tomli (>= 1.1) | python3 (>= 3.11)", BOOKWORM)
    assert not satisfied("python3-tomli (>= 1.1) | python3 (>= 3.11)", BOOKWORM | {"python3": "3.10.4"})
    assert not satisfied("python3-absent", JAMMY)


def test_jammy_depends_are_met_by_jammys_packages() -> None:
    relations = depends(built_jammy_deb())
    unmet = [r for r in relations if not satisfied(r, JAMMY)]
    assert unmet == [], unmet
    names = {RELATION.match(alt.strip()).group(1) for r in relations for alt in r.split("|")}  # type: ignore[union-attr]
    # Bundled, not taken from jammy (typer 0.4.0 is too old; click goes with the typer it is tested with).
    assert not names & {"python3-typer", "python3-click"}, relations
    assert {"chrony", "python3-jinja2", "python3-psutil", "python3-ntplib", "python3-tomli"} <= names


def test_debian12_depends_are_met_by_bookworm_and_not_by_jammy() -> None:
    relations = depends(built_deb())
    assert [r for r in relations if not satisfied(r, BOOKWORM)] == []
    assert [r for r in relations if not satisfied(r, JAMMY)], "the Debian 12 .deb would not need a jammy variant"


@pytest.fixture(scope="module")
def payload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("jammy-payload")
    run(["dpkg-deb", "-x", built_jammy_deb(), target])
    return target


def test_payload_bundles_typer_070_and_click_813(payload: Path) -> None:
    private = payload / "usr/lib/chronyctl6"
    assert sorted(p.name for p in private.glob("*.dist-info")) == [
        "chronyctl6-0.1.0.dist-info", "click-8.1.3.dist-info", "typer-0.7.0.dist-info"]
    assert (private / "chronyctl6" / "cli.py").is_file()
    assert not (payload / "usr/lib/python3").exists(), "nothing in the system's dist-packages"
    wrapper = (payload / "usr/bin/chronyctl6").read_text(encoding="utf-8").splitlines()
    # -I: neither PYTHONPATH nor a user's site-packages can replace a bundled module.
    assert wrapper[0] == "#!/usr/bin/python3 -I"
    assert 'sys.path.insert(0, "/usr/lib/chronyctl6")' in wrapper
    assert "from chronyctl6.__main__ import main" in wrapper  # check's fast path, before typer
    plugin = (payload / "usr/bin/check_timesync").read_text(encoding="utf-8").splitlines()
    assert plugin[0] == "#!/usr/bin/python3 -I" and 'sys.path.insert(0, "/usr/lib/chronyctl6")' in plugin
    assert os.readlink(payload / "usr/lib/nagios/plugins/check_timesync") == "../../../bin/check_timesync"


def test_every_module_parses_as_python_310(payload: Path) -> None:
    """Ubuntu 22.04's python3 is 3.10: no syntax newer than that anywhere in what runs."""
    modules = sorted((payload / "usr/lib/chronyctl6").rglob("*.py"))
    assert len(modules) > 40
    for module in modules:
        ast.parse(module.read_bytes(), str(module), feature_version=(3, 10))
    with pytest.raises(SyntaxError):  # the check itself can fail: PEP 695 is 3.12
        ast.parse("type Alias = int\n", feature_version=(3, 10))


def test_jammy_deb_lintian_clean() -> None:
    require_tools("lintian")
    proc = run(["lintian", "--pedantic", "--display-info", "--fail-on", "error,warning",
                built_jammy_deb()], check=False, timeout=300)
    tags = [line for line in proc.stdout.splitlines() if re.match(r"^[EWIPX]: ", line)]
    assert proc.returncode == 0 and not tags, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with fresh_root(tmp_path_factory.mktemp("jammyroot")) as target:
        yield target


def test_installed_runs_on_the_bundle_alone(root: Path) -> None:
    """dpkg installs it (its Depends hold on Debian 12 too); with Debian's typer and click purged,
    only the bundled ones can serve: --version, render, and the postinst's byte-compilation."""
    deb = built_jammy_deb()
    shutil.copy(deb, root / "root" / deb.name)
    chroot(root, "dpkg", "-i", f"/root/{deb.name}")
    chroot(root, "dpkg", "--purge", "--force-depends", "python3-typer", "python3-click")
    assert chroot(root, "python3", "-c", "import typer", check=False).returncode != 0
    assert chroot(root, "chronyctl6", "--version").stdout.strip() == "chronyctl6 0.1.0"
    plugin = chroot(root, "/usr/lib/nagios/plugins/check_timesync", "-V", check=False)
    assert plugin.returncode == 3 and plugin.stdout.startswith("check_timesync v0.1.0"), plugin
    # The installed wrapper runs check without typer (no reply from a closed port: UNKNOWN).
    fast = chroot(root, "python3", "-I", "-X", "importtime", "/usr/bin/chronyctl6", "check", "--no-chronyd",
                  "-s", "::1", "--port", "9", "-t", "0.2", "-o", "nagios", check=False)
    assert fast.returncode == 3 and fast.stdout.startswith("NTP UNKNOWN"), fast
    assert "chronyctl6.measure.exchange" in fast.stderr and "typer" not in fast.stderr
    rendered = chroot(root, "chronyctl6", "render", "--root", "/", "--ipv6", "on", "--phc", "off").stdout
    assert rendered.count("server fd00:ec2::123 prefer iburst minpoll 4 maxpoll 4") == 1
    assert list((root / "usr/lib/chronyctl6/typer").glob("__pycache__/*.pyc"))
    chroot(root, "dpkg", "--purge", "chronyctl6")
    assert not (root / "usr/lib/chronyctl6").exists(), "py3clean and dpkg leave nothing behind"
