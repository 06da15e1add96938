"""The configuration chronyd actually reads: a file plus its include, confdir and sourcedir files,
in chronyd's own order. apply (its plan), doctor and status all read it through `load`.

Reading only, always under a root. chrony's rules, from conf.c and chrony.conf(5):
- lines are handled in order; `include PATTERN` reads the glob(3) matches there and then, sorted
  in byte order (chronyd never sets a locale); a pattern without wildcards is read as named;
- `confdir DIR...` reads DIR/*.conf there and then: up to 10 directories, files sorted by name,
  and for a name found in several directories only the first directory's file;
- `sourcedir DIR...` the same with *.sources, read only after the whole configuration (when the
  sources are added), and only server/pool/peer lines count;
- nesting stops at 10 files deep (chronyd exits: "Maximum include level reached");
- a dangling symlink in a sourcedir is skipped; in a confdir (or a named include) chronyd 4.3
  exits ("Could not open"): it is listed in `missing`.
Under an image root, every path is resolved inside the root (effects.files.resolve_in_root).
Non-regular files, escapes, loops and oversized files are not read: they are listed in
`problems`, one line each naming the file and how it was reached.
"""

from __future__ import annotations

import fnmatch
import glob
import os
from dataclasses import dataclass
from pathlib import Path

from chronyctl6.chronyconf import directives
from chronyctl6.chronyconf.sources import Kind, classify
from chronyctl6.effects import files

MAX_DEPTH = 10  # chronyd's MAX_INCLUDE_LEVEL, the main file counting as one
MAX_DIRS = 10  # chronyd's MAX_CONF_DIRS per confdir/sourcedir line
MAX_FILES = 256  # a bound on a hostile tree; real ones hold a handful


@dataclass(frozen=True)
class Located:
    file: str  # as the instance sees it
    directive: directives.Directive
    via: str = ""  # how the file was reached ("" for the main file)


@dataclass(frozen=True)
class ReadFile:
    shown: str  # as the instance sees it
    real: Path  # where it is on this machine (its directory resolved inside the root)
    role: str  # main | include | confdir | sourcedir
    via: str
    data: bytes


@dataclass(frozen=True)
class ConfigTree:
    main: str
    files: tuple[str, ...]  # every file read, in chronyd's order, main first
    directives: tuple[Located, ...]
    missing: tuple[str, ...] = ()  # files named but absent (a bad include, a dangling symlink)
    problems: tuple[str, ...] = ()  # files refused, one line each
    read: tuple[ReadFile, ...] = ()

    def sources(self) -> list[Located]:
        return [d for d in self.directives if d.directive.keyword in directives.SOURCE_KEYWORDS and d.directive.args]

    def refclocks(self) -> list[Located]:
        return [d for d in self.directives if d.directive.keyword == "refclock"]

    def keyword(self, *names: str) -> list[Located]:
        return [d for d in self.directives if d.directive.keyword in names]

    def kinds(self) -> list[tuple[Located, Kind]]:
        """Every source line with what the source policy makes of it."""
        out = []
        for d in self.directives:
            kind = classify(d.directive.keyword, d.directive.args)
            if kind is not None:
                out.append((d, kind))
        return out


def load(main: str, root: Path = Path("/"), *, main_data: bytes | None = None) -> ConfigTree:
    """Read main (or take main_data as its bytes: the file apply is about to write) and all it
    pulls in, as chronyd would."""
    read: list[ReadFile] = []
    found: list[Located] = []
    missing: list[str] = []
    problems: list[str] = []
    sourcedirs: list[tuple[tuple[str, ...], str]] = []
    stack: list[str] = []

    def visit(shown: str, role: str, via: str) -> None:
        how = f" ({via})" if via else ""
        if len(read) >= MAX_FILES:
            problems.append(f"{shown}{how}: more than {MAX_FILES} files in one configuration: not read")
            return
        if shown in stack:
            problems.append(f"{shown}{how} includes itself (a loop): chronyd stops at {MAX_DEPTH} levels")
            return
        if len(stack) >= MAX_DEPTH:
            problems.append(f"{shown}{how}: included more than {MAX_DEPTH} levels deep: chronyd stops there")
            return
        try:
            real = _real(root, shown, how)
            data = main_data if role == "main" and main_data is not None else files.read_bounded(
                real, shown, how=how)
        except files.Unreadable as exc:
            problems.append(exc.message)
            return
        if data is None:
            if role != "sourcedir":
                missing.append(shown)
            return
        read.append(ReadFile(shown, real, role, via, data))
        text = directives.decode(data)
        if role != "sourcedir":
            long = next((ln for ln in directives.split_lines(text) if ln.too_long), None)
            if long is not None:
                problems.append(f"{shown}{how}: line {long.lineno} is over {directives.MAX_LINE_BYTES - 1} "
                                "bytes: chronyd refuses it (String too long)")
        stack.append(shown)
        for d in directives.parse(text, sources_file=role == "sourcedir"):
            if role == "sourcedir" and d.keyword not in directives.SOURCE_KEYWORDS:
                continue
            found.append(Located(shown, d, via))
            if role == "sourcedir" or not d.args:
                continue
            where = f"{d.keyword} {' '.join(d.args)} in {shown}:{d.lineno}"
            if d.keyword == "include":
                for match in _glob(root, d.args[0]):
                    visit(match, "include", where)
            elif d.keyword == "confdir":
                for path in _dropins(root, d.args, ".conf", where, problems):
                    visit(path, "confdir", where)
            elif d.keyword == "sourcedir":
                sourcedirs.append((d.args, where))
        stack.pop()

    visit(main, "main", "")
    for dirs, where in sourcedirs:  # chronyd reads them once the whole configuration is in
        for path in _dropins(root, dirs, ".sources", where, problems):
            visit(path, "sourcedir", where)
    return ConfigTree(main, tuple(r.shown for r in read), tuple(found), tuple(missing), tuple(problems),
                      tuple(read))


def _real(root: Path, shown: str, how: str = "") -> Path:
    """The file's own name is kept (so a symlink is seen as one); its directory is resolved."""
    parent, _, name = shown.rstrip("/").rpartition("/")
    base = files.resolve_in_root(root, parent or "/", how=how, shown=shown)
    if Path(os.path.abspath(root)) == Path("/"):
        return base / name
    real = base / name
    if os.path.islink(real):  # follow it inside the root, never through the host
        return files.resolve_in_root(root, shown, how=how)
    return real


def write_path(root: Path, shown: str) -> Path:
    """Where to replace `shown`: its directory resolved inside root, its own name kept (a
    symlink is replaced, never written through)."""
    parent, _, name = shown.rstrip("/").rpartition("/")
    return files.resolve_in_root(root, parent or "/") / name


def read_one(root: Path, shown: str, how: str = "") -> bytes | None:
    """One file's bytes as chronyd at root would read it, or None if there is none."""
    return files.read_bounded(_real(root, shown, how), shown, how=how)


def _sort_key(name: str) -> bytes:
    return directives.encode(name)  # strcmp order, as glob(3) and chronyd sort in the C locale


def _glob(root: Path, pattern: str) -> list[str]:
    """glob(3) inside root: matches in byte order; a pattern without wildcards is itself."""
    if not glob.has_magic(pattern):
        return [pattern]
    current = [""]
    for part in [p for p in pattern.split("/") if p]:
        nxt = []
        for prefix in current:
            if not glob.has_magic(part):
                nxt.append(f"{prefix}/{part}")
                continue
            names = _listdir(root, prefix or "/")
            nxt += [f"{prefix}/{n}" for n in names
                    if fnmatch.fnmatchcase(n, part) and (part.startswith(".") or not n.startswith("."))]
        current = nxt
    return sorted((p for p in current if os.path.lexists(_real_quiet(root, p))), key=_sort_key)


def _real_quiet(root: Path, shown: str) -> Path:
    try:
        return _real(root, shown)
    except files.Unreadable:
        return Path(os.path.abspath(root), *shown.split("/"))


def _listdir(root: Path, directory: str) -> list[str]:
    try:
        real = files.resolve_in_root(root, directory)
        return os.listdir(real) if os.path.isdir(real) else []
    except (OSError, files.Unreadable):
        return []


def _dropins(root: Path, dirs: tuple[str, ...], suffix: str, where: str, problems: list[str]) -> list[str]:
    """chronyd's search_dirs: *suffix files of up to 10 directories, by name; the first
    directory's file wins a name."""
    if len(dirs) > MAX_DIRS:
        problems.append(f"{where}: more than {MAX_DIRS} directories: chronyd refuses the line")
        return []
    chosen: dict[str, str] = {}
    for directory in dirs:
        for name in _listdir(root, directory):
            if name.endswith(suffix) and not name.startswith(".") and name not in chosen:
                chosen[name] = f"{directory.rstrip('/')}/{name}"
    return [chosen[name] for name in sorted(chosen, key=_sort_key)]
