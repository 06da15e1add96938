"""Files that are never half-written: atomic replace, backups that keep mode and owner, a lock.

A crash at any point leaves a target either as it was or as it should become. The temp file
sits beside its target (same filesystem, so the rename is atomic) and its name ends in
neither .conf nor .sources, so chronyd never reads it from a confdir or sourcedir.

shutil and tempfile are imported where used: `check` reads the boot's synchronisation record
through read_bounded every minute and writes nothing.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from chronyctl6.errors import Busy, ChronyCtlError, ExitStatus
from chronyctl6.text import shown

TEMP_MARK = ".chronyctl6-"
BACKUP_SUFFIX = ".chronyctl6.bak"


class WriteFailed(ChronyCtlError):
    pass


# What chronyd needs to read a replaced file is kept: mode, owner and, on SELinux systems, the
# security label. RHEL's, Fedora's and Amazon Linux's policy (fedora-selinux/selinux-policy,
# policy/modules/contrib/chronyd.fc) gives /etc/chrony.keys* chronyd_keys_t, /var/lib/chrony
# chronyd_var_lib_t, /run/chrony chronyd_var_run_t, and names no /etc/chrony.conf or /etc/chrony.d:
# those are etc_t, /etc's default. The old file's label is copied onto the temp file before the
# rename (a label an operator or the policy gave it survives). A new file is created in its own
# directory, so it gets the label the policy gives files created there, as restorecon would;
# matchpathcon is not asked, because under --root it would answer for the image's path as the
# build host sees it (e.g. /mnt/image/etc/chrony.conf), not as the instance will.
# A seam: tests name a `user.` attribute where `security.` cannot be set.
LABEL_XATTR = "security.selinux"
# No label to carry: none set, a file system without them, or one we may not read (then the
# kernel's default for the directory, as for a new file).
_NO_LABEL = {errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOENT, errno.EACCES, errno.EPERM}


def label_of(path: Path) -> bytes | None:
    """path's security label (of the file itself, not through a link), None where it has none."""
    try:
        return os.getxattr(path, LABEL_XATTR, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in _NO_LABEL:
            return None
        raise WriteFailed(f"cannot read the security label of {path}: {exc.strerror}") from exc


def _keep_label(fd: int, label: bytes | None, path: Path) -> None:
    if label is None:
        return
    try:
        os.setxattr(fd, LABEL_XATTR, label)
    except OSError as exc:
        raise WriteFailed(f"cannot give the new {path} its security label "
                          f"{label.rstrip(bytes(1)).decode(errors='replace')}: {exc.strerror}",
                          hint="chronyd may not be allowed to read a file without it; nothing was replaced") from exc


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
    # The label the replaced file has (the one its path was given), else that of `like`.
    label = next((label_of(p) for p in (path, template) if os.path.lexists(p)), None)
    import tempfile

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
                _keep_label(f.fileno(), label, path)
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
    import shutil

    shutil.rmtree(path)


def remove_stale_temps(directory: Path) -> list[Path]:
    """Temp files a killed run left behind. Call it only while holding the lock."""
    import shutil

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


LOCK_FILE = "lock"
_LOCK_NOTE = 256  # "PID COMMAND" of the holder, for the message a waiter prints


def private_directory(path: Path) -> Path:
    """path as a directory only its owner (the user running chronyctl6, root on a host) can
    enter: created 0700, or checked to be a real directory of ours and tightened to 0700. Another
    owner or a link is refused: a lock or state another user can open is not ours."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise WriteFailed(f"{path} is not a directory (a link?): chronyctl6 keeps its state and lock only "
                          "in a directory of its own", hint=f"remove {path}")
    if st.st_uid != os.geteuid():
        raise WriteFailed(f"{path} belongs to uid {st.st_uid}, not to uid {os.geteuid()} that runs chronyctl6",
                          hint=f"remove {path}, or run chronyctl6 as its owner")
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


@contextlib.contextmanager
def locked(directory: Path, *, timeout: float, create: bool = True) -> Iterator[None]:
    """An exclusive flock on `directory`/lock, the directory made private first (0700, ours):
    no other local user can open the file, so none can hold the lock and stop apply or restore.
    The kernel drops the lock when a killed process goes. The holder writes its pid and command
    into the file; a waiter that gives up after `timeout` seconds names it (or says "unknown").
    The holder removes the file (and the directory, if it made it and it stayed empty) before it
    lets go, so a run that changed nothing leaves nothing; a waiter that then wins checks that
    the file it locked is still the one at the path, else it starts over.
    create False (a read-only `apply --check`): where there is no lock file yet, nothing is
    created and nothing is locked (no run has written here; a check only reads)."""
    path = directory / LOCK_FILE
    if not create and not os.path.lexists(path):
        yield
        return
    deadline = time.monotonic() + timeout
    while True:
        made = not os.path.lexists(directory)
        fd = _open_lock(directory, path)
        try:
            _flock(fd, path, deadline)
            if _same_file(fd, path):
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # removed by the holder we waited for: lock the file at the path now
    try:
        note = f"{os.getpid()} chronyctl6 {' '.join(sys.argv[1:])}".encode(errors="replace")[:_LOCK_NOTE]
        os.ftruncate(fd, 0)  # a killed holder's note may still be there
        os.pwrite(fd, note + b"\n", 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)  # still holding it: nobody can be between their lock and their check
            if made:
                os.rmdir(directory)  # only if empty: never recursive
        os.close(fd)


def _open_lock(directory: Path, path: Path) -> int:
    try:
        private_directory(directory)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise WriteFailed(f"cannot take the lock in {directory}: {exc.strerror}") from exc
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
        os.close(fd)
        raise WriteFailed(f"{path} is not a lock file of ours: refused", hint=f"remove {path}")
    if st.st_mode & 0o077:
        os.fchmod(fd, 0o600)
    return fd


def _flock(fd: int, path: Path, deadline: float) -> None:
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise Busy(f"{path} is held by {_holder(fd)}: it is changing chrony's files now",
                           hint="wait for it to finish, or raise --lock-timeout") from None
            time.sleep(0.05)


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def _holder(fd: int) -> str:
    """Who holds the lock, from what it wrote: "pid N (command)", or "an unknown process"
    (it has not written yet, or what is there names no live process)."""
    try:
        note = os.pread(fd, _LOCK_NOTE + 1, 0).decode("utf-8", "replace").strip()
    except OSError:
        note = ""
    pid, _, command = note.partition(" ")
    if not pid.isdigit() or not Path(f"/proc/{int(pid)}").exists():
        return "an unknown process"
    return f"pid {int(pid)} ({shown(command, 120) or 'command unknown'})"


# ---------------------------------------------------------------- reading what chronyd reads

MAX_READ = 1 << 20  # a chrony configuration file is a few KiB; refuse anything near this
MAX_SYMLINKS = 40  # as the kernel's MAXSYMLINKS


class Unreadable(ChronyCtlError):
    """A file chronyctl6 must not or cannot read (not a regular file, outside the root, too big)."""

    status = ExitStatus.BAD_INPUT
    denied = False  # the kernel refused this user (EACCES, EPERM): root could read it


def _cannot_read(name: str, exc: OSError) -> Unreadable:
    error = Unreadable(f"{name}: cannot read it: {exc.strerror}")
    error.denied = exc.errno in (errno.EACCES, errno.EPERM)
    return error


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
        raise _cannot_read(name, exc) from None
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
        raise _cannot_read(name, exc) from None
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
        raise _cannot_read(name, exc) from None
    finally:
        os.close(fd)
    if size > limit:
        raise Unreadable(f"{name} is over the {limit} bytes chronyctl6 reads")
    return b"".join(chunks)
