"""The configuration chronyd actually reads: a file plus its include, confdir and sourcedir files,
in chronyd's own order. apply (its plan), doctor and status all read it through `load`.

Reading only. chrony's rules, from conf.c and chrony.conf(5):
- lines are handled in order; `include PATTERN` reads the glob(3) matches there and then, sorted
  in byte order (chronyd never sets a locale); a pattern without wildcards is read as named;
- `confdir DIR...` reads DIR/*.conf there and then: up to 10 directories, files sorted by name,
  and for a name found in several directories only the first directory's file;
- `sourcedir DIR...` the same with *.sources, read only after the whole configuration (when the
  sources are added), and only server/pool/peer lines count;
- nesting stops at 10 files deep (chronyd exits: "Maximum include level reached");
- a dangling symlink in a sourcedir is skipped; in a confdir (or a named include) chronyd 4.3
  exits ("Could not open"): it is listed in `missing`.
Pure: every file is reached through a `Reader` the caller injects (chronyctl6.effects.configtree
reads inside an image root, bounded, regular files only); nothing here touches the filesystem.
Non-regular files, escapes out of the root and oversized files are refused by the reader: they are listed
in `problems`, one line each naming the file and how it was reached. chronyd caps neither the
number of files nor their size; so that a hostile tree (an include that fans out ten levels deep)
cannot make us read for ever, the whole configuration is bounded far above any real one
(MAX_FILES files, MAX_TOTAL bytes).
"""

from __future__ import annotations

import fnmatch
import glob

from chronyctl6.chronyconf import directives
from chronyctl6.chronyconf.sources import Kind, classify
from chronyctl6.errors import ChronyCtlError
from chronyctl6.plain import Frozen

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: check's start-up (mypy reads it so)
if TYPE_CHECKING:
    from typing import Final, Protocol

MAX_DEPTH = 10  # chronyd's MAX_INCLUDE_LEVEL, the main file counting as one
MAX_DIRS = 10  # chronyd's MAX_CONF_DIRS per confdir/sourcedir line
# chronyd has no cap of its own: these only stop a hostile tree, far above any real one (a real
# one holds a handful of files; a cluster builder's a few thousand drop-ins).
MAX_FILES = 65536
MAX_TOTAL = 256 << 20  # bytes, all files together

if TYPE_CHECKING:  # a type only (no typing at run time: `check` reads chronyd's configuration)
    class Reader(Protocol):
        """How the traversal reaches files, by the path the instance sees (`/etc/chrony.conf`)."""

        def read(self, shown: str, how: str) -> bytes | None:
            """The file's bytes; None where there is none (a dangling symlink included). A file that
            must not be read raises a ChronyCtlError whose message names it (and `how` it was reached)."""

        def listdir(self, directory: str) -> list[str]:
            """The names in a directory, in any order; [] where there is no such directory."""

        def exists(self, shown: str) -> bool:
            """Whether the name exists at all (a dangling symlink does): what glob(3) matches."""


class Located(Frozen):
    __slots__ = ("directive", "file", "via")
    file: Final[str]  # as the instance sees it
    directive: Final[directives.Directive]
    via: Final[str]  # how the file was reached ("" for the main file)

    def __init__(self, file: str, directive: directives.Directive, via: str = "") -> None:
        self.file = file
        self.directive = directive
        self.via = via


class ReadFile(Frozen):
    __slots__ = ("data", "role", "shown", "via")
    shown: Final[str]  # as the instance sees it
    role: Final[str]  # main | include | confdir | sourcedir
    via: Final[str]
    data: Final[bytes]

    def __init__(self, shown: str, role: str, via: str, data: bytes) -> None:
        self.shown = shown
        self.role = role
        self.via = via
        self.data = data


class ConfigTree(Frozen):
    __slots__ = ("directives", "files", "main", "missing", "problems", "read")
    main: Final[str]
    files: Final[tuple[str, ...]]  # every file read, in chronyd's order, main first
    directives: Final[tuple[Located, ...]]
    missing: Final[tuple[str, ...]]  # files named but absent (a bad include, a dangling symlink)
    problems: Final[tuple[str, ...]]  # files refused, one line each
    read: Final[tuple[ReadFile, ...]]

    def __init__(self, main: str, files: tuple[str, ...], directives: tuple[Located, ...],
                 missing: tuple[str, ...] = (), problems: tuple[str, ...] = (),
                 read: tuple[ReadFile, ...] = ()) -> None:
        self.main = main
        self.files = files
        self.directives = directives
        self.missing = missing
        self.problems = problems
        self.read = read

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


def load(main: str, reader: Reader, *, main_data: bytes | None = None, max_files: int = MAX_FILES,
         max_total: int = MAX_TOTAL) -> ConfigTree:
    """Read main (or take main_data as its bytes: the file apply is about to write) and all it
    pulls in, as chronyd would, through `reader`. Past max_files files or max_total bytes the
    rest is not read, and `problems` says so once."""
    read: list[ReadFile] = []
    total = [0]
    bounded = [False]
    found: list[Located] = []
    missing: list[str] = []
    problems: list[str] = []
    sourcedirs: list[tuple[tuple[str, ...], str]] = []
    stack: list[str] = []

    def visit(shown: str, role: str, via: str) -> None:
        how = f" ({via})" if via else ""
        if len(read) >= max_files or total[0] > max_total:
            if not bounded[0]:  # said once: a fan-out would repeat it for every file left
                bounded[0] = True
                problems.append(f"{shown}{how} and what follows it: not read, the configuration already holds "
                                f"{len(read)} files, {total[0]} bytes (chronyctl6 reads up to {max_files} files, "
                                f"{max_total} bytes: an include that fans out?)")
            return
        if shown in stack:
            problems.append(f"{shown}{how} includes itself (a loop): chronyd stops at {MAX_DEPTH} levels")
            return
        if len(stack) >= MAX_DEPTH:
            problems.append(f"{shown}{how}: included more than {MAX_DEPTH} levels deep: chronyd stops there")
            return
        try:
            data = main_data if role == "main" and main_data is not None else reader.read(shown, how)
        except ChronyCtlError as exc:
            problems.append(exc.message)
            return
        if data is None:
            if role != "sourcedir":
                missing.append(shown)
            return
        total[0] += len(data)
        read.append(ReadFile(shown, role, via, data))
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
                for match in _glob(reader, d.args[0]):
                    visit(match, "include", where)
            elif d.keyword == "confdir":
                for path in _dropins(reader, d.args, ".conf", where, problems):
                    visit(path, "confdir", where)
            elif d.keyword == "sourcedir":
                sourcedirs.append((d.args, where))
        stack.pop()

    visit(main, "main", "")
    for dirs, where in sourcedirs:  # chronyd reads them once the whole configuration is in
        for path in _dropins(reader, dirs, ".sources", where, problems):
            visit(path, "sourcedir", where)
    return ConfigTree(main, tuple(r.shown for r in read), tuple(found), tuple(missing), tuple(problems),
                      tuple(read))


def _sort_key(name: str) -> bytes:
    return directives.encode(name)  # strcmp order, as glob(3) and chronyd sort in the C locale


def _glob(reader: Reader, pattern: str) -> list[str]:
    """glob(3) through the reader: matches in byte order; a pattern without wildcards is itself."""
    if not glob.has_magic(pattern):
        return [pattern]
    current = [""]
    for part in [p for p in pattern.split("/") if p]:
        nxt = []
        for prefix in current:
            if not glob.has_magic(part):
                nxt.append(f"{prefix}/{part}")
                continue
            names = reader.listdir(prefix or "/")
            nxt += [f"{prefix}/{n}" for n in names
                    if fnmatch.fnmatchcase(n, part) and (part.startswith(".") or not n.startswith("."))]
        current = nxt
    return sorted((p for p in current if reader.exists(p)), key=_sort_key)


def _dropins(reader: Reader, dirs: tuple[str, ...], suffix: str, where: str, problems: list[str]) -> list[str]:
    """chronyd's search_dirs: *suffix files of up to 10 directories, by name; the first
    directory's file wins a name."""
    if len(dirs) > MAX_DIRS:
        problems.append(f"{where}: more than {MAX_DIRS} directories: chronyd refuses the line")
        return []
    chosen: dict[str, str] = {}
    for directory in dirs:
        for name in reader.listdir(directory):
            if name.endswith(suffix) and not name.startswith(".") and name not in chosen:
                chosen[name] = f"{directory.rstrip('/')}/{name}"
    return [chosen[name] for name in sorted(chosen, key=_sort_key)]
