"""One guard around a change: whatever goes wrong, every file and chronyd come back.

`Transaction` remembers each file (bytes, mode, owner, or absence) before it first touches it,
each link it creates and how to bring chronyd back. `guarded` runs a block with SIGINT, SIGTERM
and SIGHUP turned into exceptions (SSM and Ansible time-outs send SIGTERM), and on ANY exception
rolls back with those signals held off. A rollback that itself fails raises `RollbackFailed`
(its own exit status), saying what is on disk now.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from chronyctl6.effects import files, history
from chronyctl6.errors import ChronyCtlError, ExitStatus

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(BaseException):
    """A signal arrived while the transaction ran (BaseException: no `except Exception` eats it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


class RolledBack(ChronyCtlError):
    """The change failed; the previous files and chronyd are back."""


class RollbackFailed(ChronyCtlError):
    """The change failed and so did putting the previous state back: a human must look."""

    status = ExitStatus.ROLLBACK_FAILED


@dataclass
class Transaction:
    root: Path
    saved: dict[Path, history.Saved] = field(default_factory=dict)
    links: list[Path] = field(default_factory=list)
    history_entry: Path | None = None
    restore_service: Callable[[], None] | None = None  # set just before chronyd is touched

    def remember(self, path: Path, shown: str) -> history.Saved:
        if path not in self.saved:
            self.saved[path] = history.capture(path, shown)
        return self.saved[path]

    def write(self, path: Path, shown: str, data: bytes, *, meta: tuple[int, int, int] | None = None,
              before_replace: Callable[[Path], None] | None = None) -> None:
        """meta (mode, uid, gid): None keeps the file's own. before_replace sees the finished temp file."""
        real = files.inside(self.root, path)  # the one rooted-path rule; checked before mkdir too
        self.remember(real, shown)
        real.parent.mkdir(parents=True, exist_ok=True)
        files.atomic_write(real, data, meta=meta, validate=before_replace)

    def remove(self, path: Path, shown: str) -> None:
        """The file or link gone (put back on rollback)."""
        real = files.inside(self.root, path)
        self.remember(real, shown)
        history.put_back(real, history.Saved(shown, None))

    def symlink(self, path: Path, shown: str, target: str) -> None:
        """A symlink to target in place of whatever is there (restore of a kept link)."""
        real = files.inside(self.root, path)
        self.remember(real, shown)
        real.parent.mkdir(parents=True, exist_ok=True)
        make_link(real, target)

    def link(self, path: Path, target: str) -> None:
        """A symlink where there is none (what `systemctl enable` makes)."""
        path = files.inside(self.root, path)
        if path.is_symlink() or path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self.links.append(path)
        make_link(path, target)

    def touched(self) -> bool:
        return bool(self.links) or self.restore_service is not None or any(
            _differs(path, saved) for path, saved in self.saved.items())

    def roll_back(self) -> list[str]:
        """Everything back, newest first; each failure noted, none stops the rest."""
        problems: list[str] = []
        for path, saved in reversed(list(self.saved.items())):
            try:
                if _differs(path, saved):
                    history.put_back(path, saved)
            except (Exception, Interrupted) as exc:
                problems.append(f"{saved.shown}: {_why(exc)}")
        for link in reversed(self.links):
            try:
                link.unlink(missing_ok=True)
            except OSError as exc:
                problems.append(f"{link}: {exc.strerror}")
        if self.restore_service is not None:
            try:
                self.restore_service()
            except (Exception, Interrupted) as exc:
                problems.append(f"chronyd: {_why(exc)}")
        return problems

    def on_disk(self) -> str:
        """What each file holds now, after a failed rollback."""
        out = []
        for path, saved in self.saved.items():
            try:
                state = "the new version or a mix" if _differs(path, saved) else "as before"
            except Exception as exc:
                state = f"unreadable ({_why(exc)})"
            out.append(f"{saved.shown}: {state}")
        out += [f"{link}: created (boot unit enabled)" for link in self.links if link.is_symlink()]
        return "; ".join(out) or "no file was changed"


def make_link(path: Path, target: str) -> None:
    tmp = path.with_name(f".{path.name}{files.TEMP_MARK}link.tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    tmp.replace(path)
    files.fsync_dir(path.parent)


def _differs(path: Path, saved: history.Saved) -> bool:
    try:
        now = history.capture(path, saved.shown)
    except files.WriteFailed:
        return True  # something not a regular file stands there now
    return now != saved


def _why(exc: BaseException) -> str:
    if isinstance(exc, ChronyCtlError):
        return exc.message
    if isinstance(exc, Interrupted):
        return f"interrupted by {exc.name}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}" + (f": {exc.filename}" if exc.filename else "")
    return repr(exc)


@contextlib.contextmanager
def _signals(handler: Callable[[int, FrameType | None], Any]) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may install handlers; callers from threads take the risk
        return
    before = {s: signal.getsignal(s) for s in SIGNALS}
    try:
        for s in SIGNALS:
            signal.signal(s, handler)
        yield
    finally:
        for s, h in before.items():
            signal.signal(s, h)


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


def _hold(signum: int, frame: FrameType | None) -> None:
    """While rolling back: a second SIGTERM (systemd, SSM) must not cut the rollback short."""


@contextlib.contextmanager
def guarded(tx: Transaction) -> Iterator[Transaction]:
    """Run the block; on any exception or signal roll back, and say how that went."""
    with _signals(_raise):
        try:
            yield tx
        except BaseException as exc:
            # Held off from here (still inside, so no signal finds the default handler) until done.
            if threading.current_thread() is threading.main_thread():
                for s in SIGNALS:
                    signal.signal(s, _hold)
            changed = tx.touched()
            problems = tx.roll_back() if changed else []
            if tx.history_entry is not None:  # the change never happened: nothing to go back to
                shutil.rmtree(tx.history_entry, ignore_errors=True)
            outcome = _outcome(exc, tx, changed, problems)
            if outcome is exc:
                raise
            raise outcome from exc


def _outcome(exc: BaseException, tx: Transaction, changed: bool, problems: list[str]) -> BaseException:
    reason = "interrupted (SIGINT)" if isinstance(exc, KeyboardInterrupt) else _why(exc)
    hint = exc.hint if isinstance(exc, ChronyCtlError) else None
    if problems:
        return RollbackFailed(
            f"{reason}; rolling back failed too ({'; '.join(problems)}); on disk now: {tx.on_disk()}",
            hint="restore by hand from /var/lib/chronyctl6/history (`chronyctl6 restore` once the cause is "
                 "fixed), then restart chronyd",
        )
    if not changed:
        if isinstance(exc, ChronyCtlError):
            return exc  # nothing was written: the original error says it all
        return RolledBack(f"{reason}; nothing was changed", hint=hint)
    service = " and chronyd restarted on it" if tx.restore_service is not None else ""
    return RolledBack(f"{reason}; the previous configuration is restored{service}",
                      hint=hint or "see what would change with `chronyctl6 apply --dry-run --diff`")
