"""A change set: everything one command will do to chrony's files and units, as plain data.

Every planner (apply, restore previous/original, the boot step, package removal) returns one;
the one executor (configure/executor.py) runs it. What chronyd must do about it (restart, reload
its sources, nothing) is decided here, once, from the change set's contents (`service_action`).
Pure: no I/O, no effects imported.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from chronyctl6.chronyconf import directives
from chronyctl6.text import shown

CONFIG = "config"  # read by chronyd at start only (main file, include, confdir): a restart
SOURCES = "sources"  # a *.sources file in a sourcedir: `chronyc reload sources` is enough
OTHER = "other"  # not read by chronyd (a unit link): nothing to tell chronyd
BACKUP_SUFFIX = ".chronyctl6.bak"  # what versions before the history kept beside a file (effects.files too)


class Verify(Enum):
    """What proves the change worked once chronyd runs on it."""

    SELECTED = "selected"  # chronyd selects the Time Sync source (`wanted`), or any when wanted is None
    ANSWERS = "answers"  # chronyd runs on the files and answers chronyc
    NONE = "none"  # nothing to wait for (an image; the boot step before chronyd starts)


@dataclass(frozen=True)
class FileChange:
    """One file as the change leaves it: `new`, or with `removed` absent, or with `link` a symlink
    to `link`. mode/uid/gid None: the file keeps the mode and owner it has (0644, ours,
    when it is new). `label`: the SELinux context to give it, where known (None: as the path gets)."""

    path: Path  # the real path (under --root), resolved by the root rule
    shown: str  # the path as the instance sees it
    old: bytes | None
    new: bytes
    kind: str = CONFIG
    removed: bool = False
    mode: int | None = None
    uid: int = -1
    gid: int = -1
    label: str | None = None
    link: str | None = None
    reads: bytes | None = None  # with `link`: what chronyd reads through it (validation)

    @property
    def changed(self) -> bool:
        """The bytes differ (a planner may also include a file whose mode, owner or link differs)."""
        return self.old != (None if self.removed else self.new)

    @property
    def final(self) -> bytes | None:
        """What chronyd will read at `shown` once the change is made."""
        if self.link is not None:
            return self.reads
        return None if self.removed else self.new

    def diff(self) -> str:
        old = [f"{ln.text}\n" for ln in directives.split_lines(directives.decode(self.old or b""))]
        new = [f"{ln.text}\n" for ln in directives.split_lines(directives.decode(self.final or b""))]
        name = shown(self.shown)  # a line break in a drop-in's name must not start a diff line of its own
        fromfile = name if self.old is not None else "/dev/null"
        tofile = name if self.final is not None else "/dev/null"
        return "".join(difflib.unified_diff(old, new, fromfile, tofile))


@dataclass(frozen=True)
class UnitLink:
    """A `systemctl enable` symlink: made (enable) or removed (disable)."""

    path: Path  # real path of the link (under --root)
    shown: str  # e.g. /etc/systemd/system/multi-user.target.wants/chronyctl6-boot.service
    target: str  # the unit file it points to, as the instance sees it


@dataclass(frozen=True)
class ChangeSet:
    root: Path
    config_shown: str  # chronyd's main file, as the instance sees it
    config_path: Path  # ... and where it is (under --root)
    config_old: bytes | None  # the main file chronyd runs on now
    config_final: bytes | None  # the main file once the change is made (None: there is none)
    files: tuple[FileChange, ...] = ()  # only files that change, in the order they are written
    enable: tuple[UnitLink, ...] = ()
    disable: tuple[UnitLink, ...] = ()
    live: bool = False  # a running chronyd to move (False: an image, nothing runs)
    verify: Verify = Verify.NONE
    wanted: str | None = None  # Verify.SELECTED: the source to wait for (None: any)
    keep_originals: bool = True  # keep the distribution's file at first takeover (restore --original)
    record_history: bool = True  # a history entry with the previous versions (`restore`)

    @property
    def empty(self) -> bool:
        return not self.files and not self.enable and not self.disable

    @property
    def chrony_files(self) -> tuple[FileChange, ...]:
        return tuple(c for c in self.files if c.kind != OTHER)

    @property
    def service_action(self) -> str:
        """The one rule: nothing runs on an image and nothing changed for chronyd: none; only
        sourcedir *.sources files changed: reload (chronyd re-reads them); anything else it reads
        (main file, include, confdir): restart, since chronyd reads those only at start."""
        changed = self.chrony_files
        if not self.live or not changed:
            return "none"
        return "reload" if all(c.kind == SOURCES for c in changed) else "restart"

    def edits(self) -> dict[str, bytes | None]:
        """What chronyd will read at each changed path (validation's final tree)."""
        return {c.shown: c.final for c in self.chrony_files}

    def diff(self) -> str:
        return "".join(c.diff() for c in self.files)


def kind_of(shown: str, role: str | None) -> str:
    """chronyd's role for a file (traversal's: main, include, confdir, sourcedir) as a change kind."""
    if role is None:
        return OTHER
    return SOURCES if role == "sourcedir" and shown.endswith(".sources") else CONFIG
