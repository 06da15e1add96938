"""The layer contract (pyproject's [tool.importlinter]): imports point down and the pure cores never
import effects. Run here so the test command enforces it; `lint-imports` prints the same report."""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import pytest

import chronyctl6

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def contracts() -> list[dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    found: list[dict[str, object]] = config["tool"]["importlinter"]["contracts"]
    return found


def test_the_contract_is_checked_against_this_tree() -> None:
    assert Path(chronyctl6.__file__).resolve().parent == ROOT / "chronyctl6"
    ids = {c["id"] for c in contracts()}
    assert {"layers", "pure-cores"} <= ids


@pytest.mark.parametrize("contract", [c["id"] for c in contracts()])
def test_imports_keep_the_contract(contract: str) -> None:
    from importlinter.cli import lint_imports

    report = io.StringIO()
    with contextlib.redirect_stdout(report):
        code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), limit_to_contracts=(contract,),
                            no_cache=True, no_logo=True)
    assert code == 0, report.getvalue()
