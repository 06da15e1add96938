"""The validate step of apply and restore: chronyd judges the final state once, before any file is
replaced: the new main file (staged beside its target, with its mode and owner) together with every
other file it reads as the change will leave them, copied to a temporary tree inside the image
(chrony_tools.validate_config), by the image's own chronyd where it runs here."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from pathlib import Path

from chronyctl6.chronyconf import directives
from chronyctl6.effects import configtree, files


def final_tree(root: Path, config_shown: str, main: bytes,
               edited: Mapping[str, bytes | None]) -> dict[str, bytes | None]:
    """The other files chronyd will read beside the new main file, as they will be once the files
    in `edited` (by path as the instance sees them; None: removed) are written. Empty when none
    but the main file is edited: the files in place are those."""
    others = {shown: data for shown, data in edited.items() if shown != config_shown}
    if not others:
        return {}
    tree = configtree.load(config_shown, root, main_data=main)
    final: dict[str, bytes | None] = {r.shown: others.get(r.shown, r.data) for r in tree.read if r.role != "main"}
    final.update(dict.fromkeys(tree.missing))
    # And a file not there yet (the boot step's sources file). A file the change removes is left
    # out (absent in the tree too); only a file the configuration names and nobody has stays, as
    # a dangling link.
    merged = {**others, **final}
    return {shown: data for shown, data in merged.items() if data is not None or shown in tree.missing}


def validate_candidate(path: Path, data: bytes, check: Callable[[Path], None]) -> None:
    """`check` on the new main file, staged beside the target with its mode and owner (chronyd
    reads it as it will read the real one), before anything is backed up or replaced."""
    staged = path.with_name(f".{path.name}{files.TEMP_MARK}candidate.tmp")
    try:
        files.atomic_write(staged, data, like=path if path.exists() else None)
        check(staged)
    finally:
        staged.unlink(missing_ok=True)


def line_before_edit(old: bytes | None, new: bytes, lineno: int) -> int:
    """Line `lineno` (1-based) of new, as a line number of old: apply only inserts a reason above
    a line it comments out, so every other line is in both."""
    before = [ln.text for ln in directives.split_lines(directives.decode(old or b""))]
    after = [ln.text for ln in directives.split_lines(directives.decode(new))]
    for tag, i1, _i2, j1, j2 in difflib.SequenceMatcher(None, before, after, autojunk=False).get_opcodes():
        if tag == "equal" and j1 < lineno <= j2:
            return i1 + lineno - j1
    return lineno
