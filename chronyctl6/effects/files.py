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
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from chronyctl6.errors import Busy, ChronyCtlError

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
    """path, once its directory is sure to lie under root: an image whose /etc/chrony or
    /var/lib is a symlink (an absolute one points at the build host) is refused, not written
    through. The file itself may be a symlink: it is replaced, never followed."""
    base = root.resolve()
    if base != Path("/") and not path.parent.resolve().is_relative_to(base):
        raise WriteFailed(f"{path.parent} resolves to {path.parent.resolve()}, outside {root}: "
                          "chronyctl6 writes nothing through it",
                          hint="a symlink in the image points out of it (an absolute one points at this host)")
    return path


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


def remove_stale_temps(directory: Path) -> list[Path]:
    """Temp files a killed run left behind. Call it only while holding the lock."""
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for entry in directory.iterdir():
            if TEMP_MARK in entry.name and entry.name.startswith(".") and entry.name.endswith(".tmp"):
                with contextlib.suppress(FileNotFoundError):
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
