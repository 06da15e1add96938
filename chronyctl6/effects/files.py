"""Files that are never half-written: atomic replace, backups that keep mode and owner, a lock.

A crash at any point leaves a target either as it was or as it should become. The temp file
sits beside its target (same filesystem, so the rename is atomic) and its name ends in
neither .conf nor .sources, so chronyd never reads it from a confdir or sourcedir.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from chronyctl6.errors import Busy, ChronyCtlError, ExitStatus

TEMP_MARK = ".chronyctl6-"
BACKUP_SUFFIX = ".chronyctl6.bak"


class WriteFailed(ChronyCtlError):
    pass


def atomic_write(
    path: Path,
    data: bytes,
    *,
    like: Path | None = None,
    mode: int = 0o644,
    validate: Callable[[Path], None] | None = None,
    meta: tuple[int, int, int] | None = None,
) -> None:
    """Replace path with data. Mode and owner come from `meta` (mode, uid, gid; -1 keeps
    ours), else from `like` (default: path itself, if it exists). `validate` sees the finished
    temp file and may raise to stop the replace."""
    directory = path.parent
    template = like if like is not None else path
    st: os.stat_result | None = None
    if meta is None:
        with contextlib.suppress(FileNotFoundError):
            st = template.stat()
    try:
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{path.name}{TEMP_MARK}", suffix=".tmp")
    except OSError as exc:
        raise WriteFailed(f"cannot write in {directory}: {exc.strerror}") from exc
    tmp = Path(tmp_name)
    try:
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
                if meta is not None:
                    if os.geteuid() == 0 and (meta[1], meta[2]) != (-1, -1):
                        os.fchown(f.fileno(), meta[1], meta[2])
                    os.fchmod(f.fileno(), meta[0])  # after chown, which clears set-id bits
                else:
                    if st is not None and os.geteuid() == 0:
                        os.fchown(f.fileno(), st.st_uid, st.st_gid)
                    os.fchmod(f.fileno(), (st.st_mode & 0o7777) if st else mode)
        except OSError as exc:
            reason = "the disk is full" if exc.errno == errno.ENOSPC else exc.strerror
            raise WriteFailed(f"cannot write {path}: {reason}") from exc
        if validate is not None:
            validate(tmp)
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise WriteFailed(f"cannot replace {path}: {exc.strerror}") from exc
        fsync_dir(directory)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def inside(root: Path, path: Path) -> Path:
    """Where to replace `path` (root joined with a path as the image sees it): the one rooted-path
    rule, `resolve_in_root`'s, applied to its directory (an absolute symlink in an image is taken
    under the root again, never followed to the build host; `..` out of the root is refused). The
    file itself may be a symlink: it is replaced, never followed. Write to what this returns."""
    base = Path(os.path.abspath(root))
    if base == Path("/"):
        return path
    full = Path(os.path.abspath(path))
    if not full.is_relative_to(base):
        raise WriteFailed(f"{path} is outside {root}: chronyctl6 writes nothing through it")
    shown = "/" + str(full.parent.relative_to(base))  # "/." for the root itself: resolves to it
    return resolve_in_root(base, shown) / full.name


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backup(path: Path) -> Path | None:
    """Keep the previous file beside it, with its mode and owner. None if there was none."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    target = path.with_name(path.name + BACKUP_SUFFIX)
    atomic_write(target, data, like=path)
    return target


def remove_tree(path: Path, *, below: Path) -> None:
    """Delete the directory tree at path, which lies below `below`, never through a link: no part
    of path below `below` may be a symlink (shutil.rmtree then works on directory descriptors
    and never follows a link inside the tree). A path that does not pass is refused, not skipped
    quietly: a link where chronyctl6 keeps its own directories is someone else's doing."""
    try:
        rest = Path(os.path.abspath(path)).relative_to(os.path.abspath(below))
    except ValueError:
        raise WriteFailed(f"{path} is not below {below}: chronyctl6 will not delete it") from None
    here = Path(os.path.abspath(below))
    for part in rest.parts:
        here = here / part
        try:
            mode = os.lstat(here).st_mode
        except FileNotFoundError:
            return
        if stat.S_ISLNK(mode):
            raise WriteFailed(f"{here} is a symbolic link: chronyctl6 deletes nothing through it",
                              hint="remove the link by hand; chronyctl6 keeps its own files in real directories")
    if not stat.S_ISDIR(os.lstat(path).st_mode):
        raise WriteFailed(f"{path} is not a directory: chronyctl6 will not delete it")
    shutil.rmtree(path)


def remove_stale_temps(directory: Path) -> list[Path]:
    """Temp files a killed run left behind. Call it only while holding the lock."""
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for entry in directory.iterdir():
            if TEMP_MARK in entry.name and entry.name.startswith(".") and entry.name.endswith(".tmp"):
                with contextlib.suppress(FileNotFoundError):
                    if entry.is_dir() and not entry.is_symlink():  # a validation tree (chrony_tools)
                        shutil.rmtree(entry)
                    else:
                        entry.unlink()
                    removed.append(entry)
    return removed


@contextlib.contextmanager
def locked(directory: Path, *, timeout: float) -> Iterator[None]:
    """An exclusive flock on the directory itself: nothing extra is left in /etc or in an
    image, and the kernel drops the lock when a killed process goes."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise WriteFailed(f"cannot open {directory}: {exc.strerror}") from exc
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise Busy(
                        f"another chronyctl6 apply is changing {directory}",
                        hint="wait for it to finish, or raise --lock-timeout",
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


# ---------------------------------------------------------------- reading what chronyd reads

MAX_READ = 1 << 20  # a chrony configuration file is a few KiB; refuse anything near this
MAX_SYMLINKS = 40  # as the kernel's MAXSYMLINKS


class Unreadable(ChronyCtlError):
    """A file chronyctl6 must not or cannot read (not a regular file, outside the root, too big)."""

    status = ExitStatus.BAD_INPUT


def _split(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


def resolve_in_root(root: Path, path: str, *, how: str = "", shown: str | None = None) -> Path:
    """Where `path`, as the system installed at `root` sees it, is on this machine: every symlink
    followed inside root (an absolute target is taken under root again), never out of it.
    A `..` above root and symlink loops are refused; a missing part ends the walk (reading
    the result then finds nothing)."""
    base = Path(os.path.abspath(root))
    if base == Path("/"):
        return Path("/", *_split(path))  # the live host: the kernel resolves as chronyd will
    name = f"{shown or path}{how}"
    todo = _split(path)
    done: list[str] = []
    links = 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            if not done:
                raise Unreadable(f"{name}: leads out of {base} through '..'",
                                 hint="an image's configuration must stay inside the image")
            done.pop()
            continue
        here = base.joinpath(*done, part)
        try:
            st = os.lstat(here)
        except OSError:
            return base.joinpath(*done, part, *(p for p in todo if p != ".."))
        if not stat.S_ISLNK(st.st_mode):
            done.append(part)
            continue
        links += 1
        if links > MAX_SYMLINKS:
            raise Unreadable(f"{name}: more than {MAX_SYMLINKS} symbolic links (a loop?)")
        target = os.readlink(here)
        if target.startswith("/"):
            done = []
        todo = _split(target) + todo
    return base.joinpath(*done)


_KINDS = {stat.S_IFIFO: "FIFO", stat.S_IFCHR: "character device", stat.S_IFBLK: "block device",
          stat.S_IFDIR: "directory", stat.S_IFSOCK: "socket"}


def read_bounded(path: Path, shown: str | None = None, *, how: str = "", limit: int = MAX_READ,
                 follow: bool = True) -> bytes | None:
    """A regular file's bytes, or None where there is none (a dangling symlink included).

    Never hangs and never opens a device: the file is looked at through an O_PATH descriptor
    first and opened only once it is known to be a regular file. More than `limit` bytes,
    anything else (FIFO, device, directory, socket) and unreadable files raise Unreadable,
    one line naming the file and how it was reached (`how`, e.g. " (include in /etc/chrony.conf:3)")."""
    name = f"{shown or path}{how}"
    nofollow = 0 if follow else os.O_NOFOLLOW
    try:
        probe = os.open(path, os.O_PATH | os.O_CLOEXEC | nofollow)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise Unreadable(f"{name}: cannot read it: {exc.strerror}") from None
    try:
        st = os.fstat(probe)
    finally:
        os.close(probe)
    if not stat.S_ISREG(st.st_mode):
        kind = _KINDS.get(stat.S_IFMT(st.st_mode), "special file")
        raise Unreadable(f"{name} is a {kind}, not a regular file: refused")
    if st.st_size > limit:
        raise Unreadable(f"{name} is {st.st_size} bytes, over the {limit} chronyctl6 reads")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC | nofollow)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise Unreadable(f"{name}: cannot read it: {exc.strerror}") from None
    try:
        again = os.fstat(fd)
        if not stat.S_ISREG(again.st_mode) or (again.st_dev, again.st_ino) != (st.st_dev, st.st_ino):
            raise Unreadable(f"{name} changed while it was read: refused")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(65536, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise Unreadable(f"{name}: cannot read it: {exc.strerror}") from None
    finally:
        os.close(fd)
    if size > limit:
        raise Unreadable(f"{name} is over the {limit} bytes chronyctl6 reads")
    return b"".join(chunks)
