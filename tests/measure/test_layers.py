"""The measure package's layers, read from the source (every import statement, at module level or
inside a function, except those only a type checker runs): the exchange, the verdict, its
renderings, the ranges and the resolver of the Time Sync endpoint touch no effects and no
command; the I/O is measure.gather's and measure.command's."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "chronyctl6"
PURE = {
    "measure/exchange.py": ("chronyctl6.effects",),
    "measure/check.py": ("chronyctl6.effects", "chronyctl6.measure.gather", "chronyctl6.measure.command"),
    "measure/report.py": ("chronyctl6.effects", "chronyctl6.measure.gather", "chronyctl6.measure.command"),
    "measure/ranges.py": ("chronyctl6",),
    "chronyconf/servers.py": ("chronyctl6.effects", "chronyctl6.measure", "chronyctl6.configure"),
    # The plugin: the measurement and the shared status type, nothing of the CLI or the effects.
    "measure/check_timesync.py": ("chronyctl6.effects", "chronyctl6.cli", "typer", "click",
                                  "chronyctl6.measure.command", "chronyctl6.configure", "argparse"),
}


def runtime_imports(path: Path) -> list[str]:
    """Every module an import statement names, leaving out `if TYPE_CHECKING:` blocks."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for branch in node.orelse:
                visit(branch)
            return
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.extend([node.module, *(f"{node.module}.{alias.name}" for alias in node.names)])
        for inner in ast.iter_child_nodes(node):
            visit(inner)

    visit(tree)
    return found


@pytest.mark.parametrize(("module", "forbidden"), PURE.items(), ids=PURE.keys())
def test_pure_layers_import_nothing_above_them(module: str, forbidden: tuple[str, ...]) -> None:
    imports = runtime_imports(PACKAGE / module)
    assert imports, module  # the reader found the module's imports at all
    bad = [name for name in imports if any(name == f or name.startswith(f + ".") for f in forbidden)]
    assert not bad, f"{module} imports {bad}"


def test_the_reader_sees_imports_inside_functions_and_skips_type_checking_blocks(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import hidden\n"
                      "def f():\n    from chronyctl6.effects import files\n")
    assert runtime_imports(sample) == ["typing", "typing.TYPE_CHECKING", "chronyctl6.effects",
                                       "chronyctl6.effects.files"]
