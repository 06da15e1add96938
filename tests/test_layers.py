"""The layer contract (pyproject's [tool.importlinter]): imports point down and the pure cores never
import effects. Run here so the test command enforces it; `lint-imports` prints the same report."""

from __future__ import annotations

import os
import subprocess
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
    # In a process of its own: import-linter's command configures logging (dictConfig), which
    # would silence every other test's loggers.
    # no_logo: only import-linter >= 2.7 has it (.venv keeps an older one beside Debian's typer).
    probe = ("import inspect, sys\nfrom importlinter.cli import lint_imports\n"
             "extra = {'no_logo': True} if 'no_logo' in inspect.signature(lint_imports).parameters else {}\n"
             "sys.exit(lint_imports(config_filename=sys.argv[1], limit_to_contracts=(sys.argv[2],), no_cache=True, "
             "**extra))")
    done = subprocess.run([sys.executable, "-c", probe, str(ROOT / "pyproject.toml"), contract], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "KEPT" in done.stdout
