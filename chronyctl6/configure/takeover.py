"""What a takeover does to the files chronyd reads beside the main one, and what it reports (pure).

The input is the configuration tree as chronyd would read it with the new main file in place
(`effects.configtree.load(..., main_data=...)`, read by the planner); the output is the edits to make, every
line dropped or disabled in any file (with its file and line), and warnings. Nothing here reads or
writes: plan.py turns the edits into its file changes.

A line is disabled in a drop-in when the source policy (chronyconf.sources) says it conflicts with
Time Sync, and a kept directive is disabled when it would stop chronyd from ever synchronising with
the sources left (`minsources` above their number, `authselectmode require`: Time Sync is
unauthenticated; chrony.conf(5)). Everything else stays byte for byte, comments included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from chronyctl6.chronyconf import directives, sources
from chronyctl6.chronyconf.traversal import ConfigTree, Located, ReadFile
from chronyctl6.configure import render as render_
from chronyctl6.errors import BadInput
from chronyctl6.text import shown

DISABLED_MARK = "# disabled by chronyctl6"


@dataclass(frozen=True)
class Dropped:
    """A line of a file chronyd reads that the takeover drops (main file) or disables (drop-in)."""

    file: str  # as the instance sees it
    lineno: int
    line: str  # the directive as written (no line break)
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"file": shown(self.file), "lineno": self.lineno, "line": shown(self.line), "reason": self.reason}

    def as_text(self) -> str:
        return f"{shown(self.file)}:{self.lineno}: {shown(self.line)}  ({self.reason})"


@dataclass(frozen=True)
class Edit:
    """A drop-in under /etc rewritten with its conflicting lines commented out."""

    shown: str
    old: bytes
    new: bytes
    kind: str  # "config" (a restart re-reads it) or "sources" (a reload is enough)


@dataclass(frozen=True)
class Takeover:
    edits: tuple[Edit, ...]
    dropped: tuple[Dropped, ...]  # drop-in lines only; the main file's come from the render
    warnings: tuple[str, ...]


def main_dropped(config_path: str, verdicts: Iterable[directives.Verdict]) -> tuple[Dropped, ...]:
    """The render's dropped lines of the main file, with where they were."""
    return tuple(Dropped(config_path, v.directive.lineno, v.directive.line, v.reason) for v in verdicts)


Loader = Callable[[str], ConfigTree]  # the tree chronyd would read with this text as the main file


Extra = Callable[[str, Sequence[str]], str | None]  # (keyword, words) -> why a drop-in line goes too


def render(choices: render_.Choices, old: bytes | None, load: Loader,
           extra: Extra | None = None) -> tuple[render_.Rendered, Takeover]:
    """The new main file and the takeover of the rest. A kept main-file directive that would stop
    synchronisation is dropped by a second render (with its reason); one from settings.toml stays,
    with a warning. extra: another reason a drop-in line goes (an ENA PHC line that moves to the
    boot-time file, say), asked before the source policy."""
    platform = choices.platform
    existing = directives.decode(old) if old is not None else None
    rendered = render_.render_config(choices, existing)
    tree = _checked(load(rendered.text))
    stops = stoppers(tree, platform.runtime_sourcedir)
    in_main = {d.directive.normalized: stops[(d.file, d.directive.lineno)] for d in tree.directives
               if d.file == tree.main and (d.file, d.directive.lineno) in stops}
    warnings: list[str] = []
    if in_main:
        rendered = render_.render_config(choices, existing, drop=in_main)
        tree = _checked(load(rendered.text))
        left = {d.directive.normalized for d in tree.directives if d.file == tree.main}
        warnings += [f"{shown(line)} (settings.toml): {why}" for line, why in in_main.items() if line in left]
    taken = take_over(tree, platform.runtime_sourcedir, extra)
    gone = {(d.file, d.lineno) for d in taken.dropped}
    kept = [d for d in tree.directives if (d.file, d.directive.lineno) not in gone
            and not _goes(tree, d, platform.runtime_sourcedir)]
    return rendered, Takeover(taken.edits, main_dropped(platform.config_path, rendered.dropped) + taken.dropped,
                              taken.warnings + tuple(warnings)
                              + tuple(cautions(kept, _sources_left(tree, platform.runtime_sourcedir, local=True))))


def _checked(tree: ConfigTree) -> ConfigTree:
    if tree.problems:
        raise BadInput(shown(tree.problems[0]), hint="chronyctl6 reads only regular files inside the root")
    return tree


def take_over(tree: ConfigTree, runtime_sourcedir: str, extra: Extra | None = None) -> Takeover:
    """Conflicting lines in the other files chronyd reads beside the new main file (its include,
    confdir and sourcedir files, in chronyd's order): a second Time Sync line, a non-smeared
    server/pool/peer, leapsectz/leapseclist, and directives that would stop synchronisation.
    Amazon Linux ships its sources that way, Ubuntu 24.04 its pools, SUSE its pool.

    In a file under /etc the line is commented out, with the reason, as part of the same change.
    A file under /run is written again at every boot by whoever owns it, one under /usr by its
    package: there, only a warning helps (README: "What apply does with other sources")."""
    blockers = stoppers(tree, runtime_sourcedir)
    edits: list[Edit] = []
    dropped: list[Dropped] = []
    warnings: list[str] = []
    own = runtime_sourcedir.rstrip("/") + "/"  # the boot step's Time Sync line lives there
    seen: set[str] = set()
    for read in tree.read:
        if read.role == "main" or read.shown.startswith(own) or read.shown in seen:
            continue  # a file read twice (a confdir and an `include DIR/*` both name it) is one edit
        seen.add(read.shown)
        new, found = _disable(read, blockers, extra)
        if not found:
            continue
        if not sources.takeover_edits(read.shown):
            later = ("it is rewritten at every boot, so disable whatever writes it" if read.shown.startswith("/run/")
                     else "it belongs to a package, outside /etc: `chronyctl6 doctor` gives the durable fix")
            what = "; ".join(f"{shown(d.line)} ({d.reason})" for d in found)
            warnings.append(f"{shown(read.shown)} adds {what}; {later}")
            continue
        dropped.extend(found)
        edits.append(Edit(read.shown, read.data, new, "sources" if read.role == "sourcedir" else "config"))
    return Takeover(tuple(edits), tuple(dropped), tuple(warnings))


def _disable(read: ReadFile, blockers: dict[tuple[str, int], str],
             extra: Extra | None = None) -> tuple[bytes, list[Dropped]]:
    """The file with its conflicting lines commented out, every other byte kept."""
    old = directives.decode(read.data)
    raw = old.split("\n")  # every byte kept, even past a NUL chronyd stops at
    if raw[-1] == "":
        raw.pop()
    out: list[str] = []
    found: list[Dropped] = []
    for line, kept in zip(directives.split_lines(old), raw, strict=True):
        reason = None
        if read.role != "sourcedir" or line.terminated:
            reason = blockers.get((read.shown, line.lineno)) or conflict(line.text, extra)
        if reason:
            found.append(Dropped(read.shown, line.lineno, directives.strip(line.text), reason))
            out += [f"{DISABLED_MARK}: {reason}", f"# {kept}"]
        else:
            out.append(kept)
    new = "\n".join(out) + ("\n" if old.endswith("\n") else "")
    return directives.encode(new), found


def conflict(line: str, extra: Extra | None = None) -> str | None:
    """Why a drop-in line goes (extra's reason, else the source policy's); None when it may stay."""
    parsed = directives.parse(line)
    if not parsed:
        return None
    reason = extra(parsed[0].keyword, parsed[0].args) if extra is not None else None
    return reason or sources.takeover_reason(parsed[0].keyword, parsed[0].args)


# ---- directives that would stop synchronisation with what is left -------------------------

def stoppers(tree: ConfigTree, runtime_sourcedir: str) -> dict[tuple[str, int], str]:
    """(file, line) -> reason for each kept directive under which chronyd would never update the
    clock from the sources the takeover leaves (chrony.conf(5), authselectmode and minsources).
    The main file's are found too: the render keeps them, so the planner reports them there."""
    left = _sources_left(tree, runtime_sourcedir)
    found: dict[tuple[str, int], str] = {}
    for located in tree.directives:
        d = located.directive
        if _goes(tree, located, runtime_sourcedir):
            continue
        reason = stop_reason(d.keyword, d.args, left)
        if reason:
            found[(located.file, d.lineno)] = reason
    return found


def stop_reason(keyword: str, args: Sequence[str], sources_left: int) -> str | None:
    if keyword == "authselectmode" and args and args[0].lower() == "require":
        return ("authselectmode require gives every unauthenticated source noselect, and Time Sync is "
                "unauthenticated: chronyd would never synchronise (chrony.conf(5))")
    if keyword == "minsources" and args:
        try:
            wanted = int(args[0])
        except ValueError:
            return None  # chronyd -p names it
        if wanted > sources_left:
            return (f"minsources {wanted} with {sources_left} selectable source"
                    f"{'' if sources_left == 1 else 's'} left: chronyd would never update the clock "
                    "(chrony.conf(5))")
    return None


def cautions(kept: Sequence[Located], local: int) -> list[str]:
    """Kept directives under which Time Sync may go unused without ever failing outright
    (chrony.conf(5)): warned about, not dropped, since the operator's other sources may serve.
    local: the sources that need no internet access (Time Sync, the ENA PHC)."""
    out: list[str] = []
    for d in kept:
        args = d.directive.args
        if d.directive.keyword == "minsources" and args and args[0].isdigit() and int(args[0]) > local:
            out.append(f"{_where(d)}: only {local} of the sources left need no internet access; in a subnet "
                       "without it chronyd would not update the clock (chrony.conf(5), minsources)")
    modes = [d.directive.args[0].lower() for d in kept if d.directive.keyword == "authselectmode" and d.directive.args]
    mode = modes[-1] if modes else "mix"
    sources_ = [d for d in kept if d.directive.keyword in ("server", "pool", "peer", "refclock") and d.directive.args]
    authenticated = [d for d in sources_ if {"nts", "key"} & {a.lower() for a in d.directive.args[1:]}]
    if authenticated and mode in ("prefer", "mix"):
        what = "gets noselect: the clock follows" if mode == "prefer" else "counts only while it agrees with"
        out.append(f"{_where(authenticated[0])} is authenticated and authselectmode is {mode}: Time Sync, "
                   f"unauthenticated, {what} that source alone (chrony.conf(5), authselectmode)")
    for d in sources_:
        kind = sources.classify(d.directive.keyword, d.directive.args)
        if kind is not None and not kind.timesync and "require" in (a.lower() for a in d.directive.args[1:]):
            out.append(f"{_where(d)} has the require option: chronyd updates the clock only while that "
                       "source is selectable, Time Sync or not (chrony.conf(5))")
    for d in kept:
        if d.directive.keyword in ("bindacqdevice", "bindacqaddress") and d.directive.args:
            out.append(f"{_where(d)}: chronyd reaches Time Sync only from there; it must be the interface or "
                       "address whose route leads to fd00:ec2::123 or 169.254.169.123")
    return out


def _where(d: Located) -> str:
    return f"{shown(d.directive.line)} ({shown(d.file)}:{d.directive.lineno})"


def _sources_left(tree: ConfigTree, runtime_sourcedir: str, *, local: bool = False) -> int:
    """How many sources chronyd can select after the takeover, at most: each server, peer and
    refclock once, a pool up to its maxsources (4 by default), noselect ones not at all; the boot
    step's Time Sync line when the main file takes it from the runtime directory. local: only those
    that need no internet access (Time Sync, the ENA PHC)."""
    count = 0
    for located, kind in tree.kinds():
        d = located.directive
        if _goes(tree, located, runtime_sourcedir) or (local and not (kind.timesync or kind is sources.Kind.PHC)):
            continue
        if "noselect" in (a.lower() for a in d.args):
            continue
        count += _pool_size(d.args) if d.keyword == "pool" else 1
    runtime = runtime_sourcedir.rstrip("/")
    if any(a.rstrip("/") == runtime for d in tree.keyword("sourcedir") for a in d.directive.args) and not any(
            f.startswith(runtime + "/") for f in tree.files):
        count += 1  # written at boot: one Time Sync line
    return count


def _goes(tree: ConfigTree, located: Located, runtime_sourcedir: str) -> bool:
    """Whether the takeover disables this line (in a drop-in: the main file is already the new one;
    the boot step's own file is chronyctl6's)."""
    if located.file == tree.main or located.file.startswith(runtime_sourcedir.rstrip("/") + "/"):
        return False
    return conflict(located.directive.line) is not None


def _pool_size(args: Sequence[str]) -> int:
    words = [a.lower() for a in args]
    if "maxsources" in words[:-1]:
        try:
            return max(1, int(words[words.index("maxsources") + 1]))
        except ValueError:
            return 4
    return 4
