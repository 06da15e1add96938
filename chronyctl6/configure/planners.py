"""The pure planners besides apply's (configure/plan.py): restore (previous or original), the boot
step and package removal. Each takes facts gathered by its command and returns one ChangeSet for
the one executor. Plain data in, plain data out: no I/O, no effects imported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from chronyctl6.configure.changeset import CONFIG, OTHER, SOURCES, ChangeSet, FileChange, Verify


@dataclass(frozen=True)
class FileState:
    """A file as it is or as it was kept: data None when absent (or, with link, a symlink)."""

    shown: str
    data: bytes | None
    mode: int = 0o644
    uid: int = -1
    gid: int = -1
    link: str | None = None


# ---- restore -------------------------------------------------------------------------------

@dataclass(frozen=True)
class RestoreFacts:
    root: Path
    config_shown: str
    config_path: Path
    config_now: bytes | None  # the main file chronyd runs on now
    kept: tuple[FileState, ...]  # what to put back (history entry or originals)
    now: dict[str, FileState]  # each kept path as it is now
    paths: dict[str, Path]  # each kept path, resolved under the root
    link_reads: dict[str, bytes | None] = field(default_factory=dict)  # what a kept link leads to
    live: bool = False


def restore_kind(shown: str) -> str:
    """How chronyd reads a restored file: a unit link it does not; a *.sources file from a
    sourcedir (a reload); anything else at start (a restart)."""
    if shown.startswith("/etc/systemd/"):
        return OTHER
    return SOURCES if shown.endswith(".sources") else CONFIG


def plan_restore(facts: RestoreFacts) -> ChangeSet:
    """Every kept file that differs from what is there now (bytes, mode, owner, link or absence)
    put back as kept. Verified by chronyd answering: a restored file may name its own sources."""
    changes = []
    for kept in facts.kept:
        if facts.now.get(kept.shown) == kept:
            continue
        now = facts.now.get(kept.shown)
        present = kept.data is not None
        changes.append(FileChange(
            facts.paths[kept.shown], kept.shown, now.data if now else None, kept.data or b"",
            restore_kind(kept.shown), removed=not present and kept.link is None,
            mode=kept.mode if present else None, uid=kept.uid, gid=kept.gid,
            link=kept.link, reads=facts.link_reads.get(kept.shown)))
    main = next((c for c in changes if c.shown == facts.config_shown), None)
    final = main.final if main is not None else facts.config_now
    return ChangeSet(facts.root, facts.config_shown, facts.config_path, facts.config_now, final,
                     files=tuple(changes), live=facts.live,
                     verify=Verify.ANSWERS if facts.live else Verify.NONE, keep_originals=False)
