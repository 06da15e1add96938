"""The packages depend on exactly what the program imports at run time, plus chrony.

The third-party modules are found by reading chronyctl6/ with ast (imports under
`if TYPE_CHECKING:` are not run; an import in the `else` of `if sys.version_info >= (3, N)` is
needed only below 3.N), mapped to their distribution package, and compared with the runtime
Depends of both Debian controls and the Requires of the RPM spec (either way it is built). A
module a variant bundles (the jammy .deb's typer, the vendored RPM's wheels) is not a dependency.
Pure file reading: runs as any user, in process.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGING = REPO / "packaging"
# Module -> Debian (and Fedora/EPEL) package name. An import missing here fails the test: name it.
PACKAGE_OF = {
    "jinja2": "python3-jinja2",
    "ntplib": "python3-ntplib",
    "psutil": "python3-psutil",
    "tomli": "python3-tomli",
    "typer": "python3-typer",
}
# What every package needs beyond Python modules: chronyd and chronyc are run, not imported.
NON_PYTHON = {"chrony"}
INTERPRETERS = {"python3", "python3.11"}
NO_FLOOR = (99, 0)  # an import needed on every Python


@dataclass(frozen=True)
class Use:
    module: str
    below: tuple[int, int]  # needed only on Pythons older than this


def _version_floor(test: ast.expr) -> tuple[int, int] | None:
    """(3, 11) for `sys.version_info >= (3, 11)`, else None."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.GtE)):
        return None
    left, right = test.left, test.comparators[0]
    if ast.unparse(left) != "sys.version_info" or not isinstance(right, ast.Tuple):
        return None
    parts = [e.value for e in right.elts if isinstance(e, ast.Constant) and isinstance(e.value, int)]
    return (parts[0], parts[1]) if len(parts) >= 2 else None


def _uses(nodes: list[ast.stmt], below: tuple[int, int]) -> Iterator[Use]:
    for node in nodes:
        if isinstance(node, ast.If):
            if ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
                yield from _uses(node.orelse, below)  # the body is never run
                continue
            floor = _version_floor(node.test)
            yield from _uses(node.body, below)
            yield from _uses(node.orelse, min(floor, below) if floor else below)
            continue
        if isinstance(node, ast.Import):
            yield from (Use(a.name.partition(".")[0], below) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield Use(node.module.partition(".")[0], below)
        for field in ("body", "orelse", "finalbody"):  # functions, classes, try, with, loops
            inner = getattr(node, field, None)
            if isinstance(inner, list):
                yield from _uses([n for n in inner if isinstance(n, ast.stmt)], below)
        for handler in getattr(node, "handlers", []):
            yield from _uses(handler.body, below)


def third_party_uses(source: str) -> set[Use]:
    tree = ast.parse(source)
    ours = {"chronyctl6", *sys.stdlib_module_names}
    return {u for u in _uses(tree.body, NO_FLOOR) if u.module not in ours}


def program_uses() -> set[Use]:
    found: set[Use] = set()
    for path in sorted((REPO / "chronyctl6").rglob("*.py")):
        found |= third_party_uses(path.read_text(encoding="utf-8"))
    return found


def needed(python_floor: tuple[int, int], bundled: frozenset[str] | set[str] = frozenset()) -> set[str]:
    """The packages a build for Pythons >= python_floor must depend on."""
    uses = program_uses()
    unknown = sorted({u.module for u in uses} - PACKAGE_OF.keys())
    assert not unknown, f"chronyctl6 imports {unknown}: add their packages to PACKAGE_OF and the packaging"
    return NON_PYTHON | {PACKAGE_OF[u.module] for u in uses if python_floor < u.below and u.module not in bundled}


def _version(text: str) -> tuple[int, int]:
    major, minor = text.split(".")[:2]
    return int(major), int(minor)


def control_paragraph(path: Path, package: str) -> dict[str, str]:
    text = "\n".join(line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#"))
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for m in re.finditer(r"^([A-Za-z0-9-]+):(.*(?:\n[ \t].*)*)", block, re.M):
            fields[m.group(1)] = m.group(2)
        if fields.get("Package", "").strip() == package or (package == "" and "Source" in fields):
            return fields
    raise AssertionError(f"{path}: no paragraph for {package or 'the source'}")


def relation_names(field: str) -> tuple[set[str], list[list[tuple[str, str]]]]:
    """The first alternative's name of every relation (substvars dropped), and all groups parsed."""
    groups = []
    for rel in field.split(","):
        rel = " ".join(rel.split())
        if not rel or rel.startswith("${"):
            continue
        alts = []
        for alt in rel.split("|"):
            m = re.fullmatch(r"\s*([a-z0-9][a-z0-9+.-]+)\s*(?:\(([^)]*)\))?\s*", alt)
            assert m, f"cannot parse the relation {alt!r}"
            alts.append((m.group(1), m.group(2) or ""))
        groups.append(alts)
    return {g[0][0] for g in groups}, groups


def test_the_scan_reads_type_checking_and_version_branches() -> None:
    source = (
        "import os, sys\nfrom typing import TYPE_CHECKING\nfrom . import sibling\nimport jinja2.sandbox\n"
        "if TYPE_CHECKING:\n    import psutil\n"
        "if sys.version_info >= (3, 11):\n    import tomllib\nelse:\n    import tomli as tomllib\n"
        "def f():\n    try:\n        from ntplib import NTPPacket\n    except ImportError:\n        import typer\n"
    )
    assert third_party_uses(source) == {
        Use("jinja2", NO_FLOOR), Use("tomli", (3, 11)), Use("ntplib", NO_FLOOR), Use("typer", NO_FLOOR),
    }


def test_the_program_imports_what_the_packages_are_checked_against() -> None:
    # The exact set keeps this test honest: a new import must be packaged (the tests below) and listed here.
    assert {u.module for u in program_uses()} == set(PACKAGE_OF)


def test_debian12_depends_name_exactly_the_imports_and_chrony() -> None:
    control = PACKAGING / "debian" / "control"
    source = control_paragraph(control, "")
    floor = re.fullmatch(r"\s*>=\s*([0-9.]+)\s*", source["X-Python3-Version"])
    assert floor, source["X-Python3-Version"]
    depends = control_paragraph(control, "chronyctl6")["Depends"]
    names, _ = relation_names(depends)
    # dh_python3 writes ${python3:Depends}: the interpreter, and the modules again from the metadata.
    assert "${python3:Depends}" in depends
    assert names - INTERPRETERS == needed(_version(floor.group(1)))


def test_jammy_depends_name_the_imports_not_bundled_and_chrony() -> None:
    base = PACKAGING / "debian-jammy"
    names, groups = relation_names(control_paragraph(base / "control", "chronyctl6")["Depends"])
    python = [v for g in groups for n, v in g[:1] if n == "python3"]
    assert len(python) == 1 and python[0].startswith(">="), groups
    bundled = set(re.findall(r"debian/vendor-wheels/([a-z0-9_]+)-[0-9]", (base / "rules").read_text(encoding="utf-8")))
    assert "typer" in bundled  # Ubuntu 22.04's typer 0.4 is too old: bundled
    assert names - INTERPRETERS == needed(_version(python[0][2:].strip()), bundled)
    # tomli only where the Python lacks tomllib: the alternative is a newer python3.
    tomli = [g for g in groups if g[0][0] == "python3-tomli"]
    assert tomli == [[("python3-tomli", ">= 1.1"), ("python3", ">= 3.11")]]


def rpm_requires(vendor: bool) -> set[str]:
    """The Requires of the spec with or without `--with vendor`, %{py3} read as python3."""
    active = [True]
    found: set[str] = set()
    for line in (PACKAGING / "rpm" / "chronyctl6.spec").read_text(encoding="utf-8").splitlines():
        words = line.split()
        if line.startswith("%if"):
            cond = vendor if "%{with vendor}" in line else not vendor if "%{without vendor}" in line else True
            active.append(active[-1] and cond)
        elif line.startswith("%else"):
            parent = active[-2]
            active[-1] = parent and not active[-1]
        elif line.startswith("%endif"):
            active.pop()
        elif line.startswith("%description"):
            break
        elif active[-1] and line.startswith("Requires:"):
            found.add(words[1].replace("%{py3}", "python3"))
    return found


@pytest.mark.parametrize("vendor", [False, True], ids=["distribution", "vendor"])
def test_rpm_requires_name_the_imports_and_chrony(vendor: bool) -> None:
    spec = (PACKAGING / "rpm" / "chronyctl6.spec").read_text(encoding="utf-8")
    floor = re.search(r"^Requires:\s+%\{py3\}\s+>=\s+([0-9.]+)", spec, re.M)
    assert floor, "the spec names no python3 floor"
    # --with vendor unpacks the wheels packaging/fetch-wheels fetches: those are not required.
    fetched = set(re.findall(r"\b([a-z0-9_]+)==[0-9]", (PACKAGING / "fetch-wheels").read_text(encoding="utf-8")))
    assert not vendor or "typer" in fetched, fetched
    bundled = fetched if vendor else set()
    assert rpm_requires(vendor) - INTERPRETERS == needed(_version(floor.group(1)), bundled)
