"""chrony's configuration files as the system at a root sees them: the reader that
chronyctl6.chronyconf.traversal (pure) is given, and the paths to write them back to.

Under an image root every path is resolved inside the root (files.resolve_in_root: an absolute
symlink is taken under the root again, `..` out of it is refused); every file is read by the one
bounded reader (files.read_bounded: regular files only, opened non-blocking, size-capped).
"""

from __future__ import annotations

import os
from pathlib import Path

from chronyctl6.chronyconf import traversal
from chronyctl6.effects import files


class RootReader:
    """traversal.Reader for the system installed at `root` ("/" for this host)."""

    def __init__(self, root: Path = Path("/")) -> None:
        self.root = root

    def read(self, shown: str, how: str = "") -> bytes | None:
        return files.read_bounded(real_path(self.root, shown, how), shown, how=how)

    def listdir(self, directory: str) -> list[str]:
        try:
            real = files.resolve_in_root(self.root, directory)
            return os.listdir(real) if os.path.isdir(real) else []
        except (OSError, files.Unreadable):
            return []

    def exists(self, shown: str) -> bool:
        try:
            return os.path.lexists(real_path(self.root, shown))
        except files.Unreadable:
            return False


def load(main: str, root: Path = Path("/"), *, main_data: bytes | None = None) -> traversal.ConfigTree:
    """The configuration chronyd at root reads, main file first (main_data: its bytes to be)."""
    return traversal.load(main, RootReader(root), main_data=main_data)


def real_path(root: Path, shown: str, how: str = "") -> Path:
    """Where `shown` is on this machine: its directory resolved inside root, its own name kept
    (so a symlink is seen as one); under an image root a symlink is followed inside the root,
    never through the host."""
    parent, _, name = shown.rstrip("/").rpartition("/")
    base = files.resolve_in_root(root, parent or "/", how=how, shown=shown)
    if Path(os.path.abspath(root)) == Path("/"):
        return base / name
    real = base / name
    if os.path.islink(real):
        return files.resolve_in_root(root, shown, how=how)
    return real


def write_path(root: Path, shown: str) -> Path:
    """Where to replace `shown`: its directory resolved inside root, its own name kept (a
    symlink is replaced, never written through)."""
    parent, _, name = shown.rstrip("/").rpartition("/")
    return files.resolve_in_root(root, parent or "/") / name


def read_one(root: Path, shown: str, how: str = "") -> bytes | None:
    """One file's bytes as chronyd at root would read it, or None if there is none."""
    return files.read_bounded(real_path(root, shown, how), shown, how=how)
