"""The configuration chronyd actually reads: a file plus its include, confdir and sourcedir drop-ins.

Reading only, always under a root. chrony's rules (chrony.conf(5)): `include` takes a glob;
`confdir` and `sourcedir` take directories of *.conf and *.sources files, read in name order,
and when two directories hold a file of the same name only the first directory's is read.
"""

from __future__ import annotations

import glob
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chronyctl6.chronyconf import directives

MAX_DEPTH = 10  # chrony itself stops nesting includes at 10


@dataclass(frozen=True)
class Located:
    file: str  # as the instance sees it
    directive: directives.Directive


@dataclass(frozen=True)
class ConfigTree:
    main: str
    files: tuple[str, ...]  # every file read, main first
    directives: tuple[Located, ...]
    missing: tuple[str, ...] = ()  # files named but absent (a bad include)

    def sources(self) -> list[Located]:
        return [d for d in self.directives if d.directive.keyword in directives.SOURCE_KEYWORDS and d.directive.args]

    def refclocks(self) -> list[Located]:
        return [d for d in self.directives if d.directive.keyword == "refclock"]

    def keyword(self, name: str) -> list[Located]:
        return [d for d in self.directives if d.directive.keyword == name]


def load(main: str, root: Path = Path("/")) -> ConfigTree:
    files: list[str] = []
    found: list[Located] = []
    missing: list[str] = []

    def under(path: str) -> Path:
        return root / path.lstrip("/")

    def read(shown: str, depth: int) -> None:
        if depth > MAX_DEPTH or shown in files:
            return
        try:
            text = under(shown).read_text(errors="replace")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError):
            missing.append(shown)
            return
        files.append(shown)
        for d in directives.parse(text):
            found.append(Located(shown, d))
            if d.keyword == "include" and d.args:
                for match in sorted(glob.glob(str(under(d.args[0])))):
                    read("/" + str(Path(match).relative_to(root)), depth + 1)
            elif d.keyword in ("confdir", "sourcedir"):
                suffix = ".conf" if d.keyword == "confdir" else ".sources"
                for path in _dropins(d.args, suffix, under):
                    read(path, depth + 1)

    read(main, 0)
    return ConfigTree(main, tuple(files), tuple(found), tuple(missing))


def _dropins(directories: tuple[str, ...], suffix: str, under: Callable[[str], Path]) -> list[str]:
    chosen: dict[str, str] = {}
    for directory in directories:
        real = under(directory)
        if not real.is_dir():
            continue
        for entry in real.iterdir():
            if entry.name.endswith(suffix) and entry.name not in chosen:
                chosen[entry.name] = directory.rstrip("/") + "/" + entry.name
    return [chosen[name] for name in sorted(chosen)]
