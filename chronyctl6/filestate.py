"""A file as it is, or as it was kept: the one record the state store (effects/history.py) saves
and puts back and the pure planners (configure/planners.py) compare. Plain data, no I/O, at the
bottom of the layers so that both may name it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FileState:
    """A file's bytes (None when absent, or, with `link`, a symlink to that), mode and owner."""

    shown: str  # the path as the instance sees it
    data: bytes | None
    mode: int = 0o644
    uid: int = -1
    gid: int = -1
    link: str | None = None
