"""chrony's own interfaces: `chronyd -p` to validate, `chronyc -c` to read state (the reading is
chronyctl6.effects.chronyc's, re-exported here).

The few functions that run chrony are thin and go through the runner. chronyc always gets `-n`:
it must never look up a name.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from chronyctl6.effects import commands
from chronyctl6.effects.chronyc import (
    LEAP_STATUSES,
    Source,
    Tracking,
    chronyc,
    parse_sources,
    parse_tracking,
    sources,
    tracking,
)
from chronyctl6.errors import CommandFailed

# Reading chronyd's state lives in chronyctl6.effects.chronyc (light: `check` imports it every
# minute); its names stay reachable here, for every other caller, through __all__.
__all__ = ["IMAGE_CHRONYD", "LEAP_STATUSES", "PARSE_TIMEOUT", "SANDBOX", "VERSION_TIMEOUT", "Source", "Tracking",
           "Validation", "Validator", "chronyc", "chronyd_version", "parse_sources", "parse_tracking",
           "reload_sources", "sources", "tracking", "validate_config", "validator"]


def reload_sources() -> None:
    done = chronyc("reload", "sources")
    if not done.ok:
        raise CommandFailed(f"chronyc reload sources failed: {done.brief()}")


_VERSION = re.compile(r"version (\d+(?:\.\d+)*)")


def chronyd_version() -> tuple[int, ...] | None:
    """chronyd's version, or None when chrony is not installed."""
    if commands.which("chronyd") is None:
        return None
    match = _VERSION.search(commands.run(["chronyd", "--version"], timeout=5).stdout)
    return tuple(int(p) for p in match.group(1).split(".")) if match else None


IMAGE_CHRONYD = "/usr/sbin/chronyd"
# How an image's own chronyd runs (bubblewrap): in new user, mount, PID, network, IPC, UTS and
# cgroup namespaces, every capability dropped, no_new_privs, killed with us; the image bound
# read-only as its whole file system (pivot_root, not chroot: nothing of the build host is
# mounted, so there is nothing to escape to), no /proc (no host process to see). It can read the
# image and write nothing anywhere; commands.run's timeout bounds it. A plain chroot, as before,
# let a hostile or broken image run code as root on the build host.
SANDBOX = ("bwrap", "--unshare-all", "--unshare-user", "--uid", "0", "--gid", "0", "--cap-drop", "ALL",
           "--die-with-parent", "--new-session", "--clearenv", "--setenv", "PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
VERSION_TIMEOUT = 10.0  # `chronyd --version`: a chronyd that hangs is not one to validate with
PARSE_TIMEOUT = 15.0  # `chronyd -p`
_REJECTED_AT = re.compile(r"at line (\d+) in file (.+?)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Validator:
    """The chronyd that judges a candidate configuration: an image's own (run isolated in it,
    SANDBOX) or this host's."""

    argv: tuple[str, ...]  # how to run it, before its own arguments
    version: str
    root: str = "/"  # the root it reads included files from
    from_image: bool = False

    @property
    def description(self) -> str:
        return f"chronyd {self.version} from " + ("the image" if self.from_image else "this host")


@dataclass(frozen=True)
class Validation:
    completed: commands.Completed
    validator: Validator
    candidate: str  # the candidate's path as chronyd saw it
    seen_root: str = ""  # where chronyd saw the instance's "/" ("": at "/"); taken off the files it names

    @property
    def ok(self) -> bool:
        return self.completed.ok

    @property
    def returncode(self) -> int:
        return self.completed.returncode

    @property
    def stdout(self) -> str:
        return self.completed.stdout

    @property
    def stderr(self) -> str:
        return self.completed.stderr

    def brief(self) -> str:
        return self.completed.brief()

    def rejected_at(self) -> tuple[str, int] | None:
        """(file, line) chronyd stopped at, the file as chronyd named it; None when it did not say."""
        match = _REJECTED_AT.search(self.completed.stderr)
        if match is None:
            return None
        file, root = match.group(2), self.seen_root.rstrip("/")
        if root and file.startswith(root + "/"):
            file = file[len(root):]  # an image's file, as the instance will see it
        return file, int(match.group(1))

    def reason(self) -> str:
        """chronyd's own words, without its time stamp, and without the candidate's temporary name."""
        said = self.completed.brief()
        said = re.sub(r"^\S+Z\s+", "", said).removeprefix("Fatal error : ")
        said = said.replace(f" in file {self.candidate}", "")
        root = self.seen_root.rstrip("/")
        return said.replace(f" in file {root}/", " in file /") if root else said

    @property
    def rejected_in_candidate(self) -> int | None:
        match = _REJECTED_AT.search(self.completed.stderr)
        return int(match.group(1)) if match is not None and match.group(2) == self.candidate else None


def validator(root: str = "/") -> Validator | None:
    """For an image mounted at root: its own chronyd, isolated in it (SANDBOX), where that runs
    here (root privileges, bubblewrap installed, same architecture); else this host's chronyd.
    None: no chronyd at all."""
    if root != "/":
        image = _image_validator(root)
        if image is not None:
            return image
    if commands.which("chronyd") is None:
        return None
    version = chronyd_version()
    return Validator(("chronyd",), ".".join(map(str, version)) if version else "(unknown version)", root)


def _image_validator(root: str) -> Validator | None:
    if os.geteuid() != 0 or commands.which(SANDBOX[0]) is None:
        return None  # never a plain chroot: the host's chronyd will do
    # lexists: /usr/sbin/chronyd may be an absolute link, which means a path inside the image.
    if not os.path.lexists(Path(root) / IMAGE_CHRONYD.lstrip("/")):
        return None
    argv = (*SANDBOX, "--ro-bind", str(Path(root).resolve()), "/", "--chdir", "/", "--", IMAGE_CHRONYD)
    try:
        done = commands.run([*argv, "--version"], timeout=VERSION_TIMEOUT)
    except CommandFailed:
        return None
    match = _VERSION.search(done.stdout)
    if not done.ok or match is None:  # another architecture, a broken image: the host's will do
        return None
    return Validator(argv, match.group(1), root, from_image=True)


def validate_config(path: str, root: str = "/", using: Validator | None = None,
                    tree: Mapping[str, bytes | None] | None = None) -> Validation:
    """Parse a candidate config with the real chronyd (`-p` prints it and exits, starting nothing;
    `-u root` because a privilege drop could stop chronyd from reading a file it does not own).

    For an image mounted at root: with the image's own chronyd, isolated, where it runs here (the
    candidate, written beside its target, is already inside the image); else with this host's,
    the files the candidate includes taken from the image.

    tree: the other files chronyd reads (include, confdir, sourcedir), by path as the instance
    sees them, as they will be once written (None: named but absent). With it, the candidate is
    judged against those, copied to a temporary tree beside it, not against the files in place,
    which apply edits only after this check."""
    chosen = using or validator(root)
    if chosen is None:
        raise CommandFailed("chronyd is not installed: nothing can validate the configuration",
                            hint="install chrony")
    if root != "/":
        _inside(Path(path), root)  # a candidate outside the image: never read, never written beside
    if tree:
        return _validate_in_tree(Path(path), root, chosen, tree)
    if chosen.from_image:
        inside = _inside(Path(path), root)
        done = commands.run([*chosen.argv, "-p", "-u", "root", "-f", inside], timeout=PARSE_TIMEOUT)
        return Validation(done, chosen, inside)
    if root == "/":
        done = commands.run([*chosen.argv, "-p", "-u", "root", "-f", path], timeout=PARSE_TIMEOUT)
        return Validation(done, chosen, path)
    candidate = Path(path)
    fd, name = tempfile.mkstemp(dir=candidate.parent, prefix=f".{candidate.name}.chronyctl6-",
                                suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:  # bytes: a path that is not UTF-8 must reach chronyd as it is
            f.write(_rebased(candidate.read_bytes(), root))
        done = commands.run([*chosen.argv, "-p", "-u", "root", "-f", name], timeout=PARSE_TIMEOUT)
        return Validation(done, chosen, name, seen_root=root)
    finally:
        Path(name).unlink(missing_ok=True)


def _validate_in_tree(candidate: Path, root: str, chosen: Validator, tree: Mapping[str, bytes | None]) -> Validation:
    """The candidate and every file it pulls in, under a temporary directory beside it (inside the
    image, so that the image's isolated chronyd sees it too), their include/confdir/sourcedir paths taken
    there: chronyd judges the configuration as it will be, and names the instance's files."""
    base = Path(tempfile.mkdtemp(dir=candidate.parent, prefix=f".{candidate.name}.chronyctl6-tree-",
                                 suffix=".tmp"))
    try:
        seen = _inside(base, root) if chosen.from_image else str(base)
        for shown, data in tree.items():
            target = base / shown.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            if data is None:
                target.symlink_to(".chronyctl6-absent")  # absent on the instance: chronyd cannot open it either
            else:
                target.write_bytes(_rebased(data, seen))
        main = base / ".candidate"
        main.write_bytes(_rebased(candidate.read_bytes(), seen))
        shown_main = f"{seen}/.candidate"
        done = commands.run([*chosen.argv, "-p", "-u", "root", "-f", shown_main], timeout=PARSE_TIMEOUT)
        return Validation(done, chosen, shown_main, seen_root=seen)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _inside(path: Path, root: str) -> str:
    """path as the image's chronyd, with root as its "/", sees it."""
    try:
        return "/" + str(path.resolve().relative_to(Path(root).resolve()))
    except ValueError:
        raise CommandFailed(f"{path} is outside the image at {root}: its chronyd cannot read it") from None


def _rebased(data: bytes, root: str) -> bytes:
    # Imported here: only a validation that rebases an image's includes needs it.
    from chronyctl6.chronyconf import directives

    return directives.encode(directives.rebase_includes(directives.decode(data), root))
