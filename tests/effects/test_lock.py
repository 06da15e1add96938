"""The apply/restore lock (files.locked): a 0600 file in a 0700 directory of chronyctl6's own,
a bounded wait, a message that names the holder. In process; the flock conflicts are between
open file descriptions, so no second process and no timer race is needed."""

from __future__ import annotations

import fcntl
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from chronyctl6.effects import files, history
from chronyctl6.errors import Busy, ExitStatus


def test_the_lock_is_private_and_names_its_holder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "state"
    monkeypatch.setattr(sys, "argv", ["chronyctl6", "apply", "--ipv6", "on\x1b[2J"])
    with files.locked(directory, timeout=1.0):
        assert stat.S_IMODE(os.lstat(directory).st_mode) == 0o700
        assert stat.S_IMODE(os.lstat(directory / "lock").st_mode) == 0o600
        with pytest.raises(Busy) as caught, files.locked(directory, timeout=0.1):
            pass
    message = caught.value.message
    assert f"is held by pid {os.getpid()} (chronyctl6 apply --ipv6 on\\e[2J)" in message
    assert "\x1b" not in message and "another chronyctl6 apply" not in message
    assert caught.value.status == ExitStatus.BUSY
    assert not directory.exists()  # released: nothing left behind (it made the directory)
    with files.locked(directory, timeout=0.0):  # free again
        pass


def test_a_holder_that_wrote_nothing_is_unknown(tmp_path: Path) -> None:
    directory = tmp_path / "state"
    directory.mkdir(mode=0o700)
    fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.write(fd, b"999999999 chronyctl6 apply\n")  # a pid that cannot run
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(Busy, match="held by an unknown process"), files.locked(directory, timeout=0.05):
            pass
    finally:
        os.close(fd)


def test_an_open_directory_is_tightened_and_a_link_refused(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    loose.chmod(0o777)
    with files.locked(loose, timeout=0.0):
        assert stat.S_IMODE(os.lstat(loose).st_mode) == 0o700
    assert loose.is_dir() and not (loose / "lock").exists()  # not made by it: kept; its lock file gone
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (tmp_path / "linked").symlink_to(elsewhere)
    with pytest.raises(files.WriteFailed, match="not a directory"), files.locked(tmp_path / "linked", timeout=0.0):
        pass
    assert not (elsewhere / "lock").exists()
    (tmp_path / "state").mkdir(mode=0o700)
    (tmp_path / "state/lock").symlink_to(elsewhere / "target")
    with pytest.raises(files.WriteFailed, match="cannot take the lock"), files.locked(tmp_path / "state", timeout=0.0):
        pass
    assert not (elsewhere / "target").exists()


def test_an_image_locks_in_its_own_state_directory(tmp_path: Path) -> None:
    root = tmp_path / "image"
    (root / "var/lib").mkdir(parents=True)
    (root / "var/lib/chronyctl6").symlink_to("/srv/state")  # absolute: inside the image
    assert history.lock_directory(root) == root / "srv/state"
    assert history.lock_directory(Path("/")) == Path(history.STATE_DIR)


@pytest.mark.root
def test_another_user_can_neither_open_the_lock_nor_stop_apply(tmp_path: Path) -> None:
    """An unprivileged user (nobody) could flock the configuration directory and block every apply;
    the lock file is now out of their reach. A directory someone else owns is refused."""
    if os.geteuid() != 0:
        pytest.fail("needs root (marked root)")
    tmp_path.chmod(0o755)
    directory = tmp_path / "state"
    with files.locked(directory, timeout=0.0):
        probe_path = directory / "lock"
    directory.mkdir(mode=0o700)
    probe_path.touch(mode=0o600)
    probe = ("import fcntl, os, sys\n"
             "try:\n    fd = os.open(sys.argv[1], os.O_RDONLY)\nexcept PermissionError:\n    sys.exit(13)\n"
             "fcntl.flock(fd, fcntl.LOCK_EX)\n")
    done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", probe,
                           str(probe_path)], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 13, done.stderr
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 65534, 65534)
    with pytest.raises(files.WriteFailed, match="belongs to uid 65534"), files.locked(theirs, timeout=0.0):
        pass


def test_a_check_creates_nothing_where_no_run_has_locked(tmp_path: Path) -> None:
    directory = tmp_path / "image/var/lib/chronyctl6"
    with files.locked(directory, timeout=0.0, create=False):
        assert not directory.exists()
    with files.locked(directory, timeout=0.0), pytest.raises(Busy), files.locked(directory, timeout=0.0,
                                                                                 create=False):
        pass


def test_a_waiter_whose_file_was_removed_starts_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The holder removes the lock file before it lets go; a waiter that had opened that file and
    then wins the flock must start over on the file at the path, or a third run could create and
    lock a new file while it holds the old one (two holders). The removal is injected at the seam
    between the waiter's flock and its check, not raced."""
    directory = tmp_path / "state"
    real = files._flock
    removed: list[int] = []

    def flock_then_removed(fd: int, path: Path, deadline: float) -> None:
        real(fd, path, deadline)
        if not removed:
            removed.append(fd)
            path.unlink()  # what the holder we waited for did as it let go

    monkeypatch.setattr(files, "_flock", flock_then_removed)
    with files.locked(directory, timeout=1.0):
        assert len(removed) == 1
        probe = os.open(directory / "lock", os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the file at the path is the one held
        finally:
            os.close(probe)


def test_a_killed_holders_note_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "state"
    directory.mkdir(mode=0o700)
    (directory / "lock").write_bytes(b"1 chronyctl6 apply --a-much-longer-command-line-than-ours\n")  # kill -9
    (directory / "lock").chmod(0o600)
    monkeypatch.setattr(sys, "argv", ["chronyctl6", "restore"])
    with files.locked(directory, timeout=0.0):
        assert (directory / "lock").read_bytes() == f"{os.getpid()} chronyctl6 restore\n".encode()
