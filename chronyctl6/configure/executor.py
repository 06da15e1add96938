"""The one executor: every change to chrony's files and units (apply, restore, the boot step,
package removal) runs here, and nowhere else:

    validate → (lock: `locked`, taken by the caller around facts + plan + execute) → back up
    (original at first takeover, history) → write → enable/disable units → restart or reload
    chronyd → verify

all under one guard (transaction.guarded) that puts every file, link and chronyd back on any
failure or signal. Commands differ only in the change set their planner makes and the seams
(service manager, verification, validating chronyd) they pass.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from chronyctl6.chronyconf import directives
from chronyctl6.configure import validation
from chronyctl6.configure.changeset import ChangeSet, Verify
from chronyctl6.configure.transaction import Transaction, guarded
from chronyctl6.effects import chrony_tools, files, history, service
from chronyctl6.errors import ChronyCtlError, CommandFailed

Progress = Callable[[str], None]
Verifier = Callable[[ChangeSet], tuple[str | None, float | None]]


class ValidationFailed(ChronyCtlError):
    pass


@dataclass(frozen=True)
class Rejection:
    """chronyd refused the final state: who, why, and where (as the instance sees the file)."""

    chronyd: str
    reason: str
    at: tuple[str, int] | None
    in_candidate: int | None  # the line in the staged main file, when that is where it is


# The error to raise for a rejection, or None: accepted all the same (the caller says why).
Explain = Callable[[Rejection], ChronyCtlError | None]


@dataclass
class Seams:
    """How chronyd is moved to the change and back, how success is seen, and which chronyd judges
    the final state. manager None: nothing runs (an image). Tests pass stand-ins."""

    manager: service.ServiceManager | None = None
    back: service.ServiceManager | None = None
    verify: Verifier | None = None
    chronyd: chrony_tools.Validator | None = None


@dataclass
class Executed:
    action: str = "none"  # restart | reload | none
    validated_by: str | None = None
    history: str | None = None  # the entry holding the previous versions
    selected: str | None = None
    waited: float | None = None
    backup: str | None = None  # the history entry's copy of the main file it replaced
    unjudged: Rejection | None = None  # a rejection the caller's explain accepted


# ---- lock ----------------------------------------------------------------------------------

@contextlib.contextmanager
def locked(root: Path, *, timeout: float, create: bool = True) -> Iterator[None]:
    """The one lock every writer takes (the root's state directory's, history.lock_directory),
    bounded by `timeout`: facts are read, the change planned and executed under it. create False:
    a read-only `apply --check` creates nothing where no run ever wrote."""
    with files.locked(history.lock_directory(root), timeout=timeout, create=create):
        yield


# ---- execute -------------------------------------------------------------------------------

def execute(cs: ChangeSet, seams: Seams, *, explain: Explain | None = None) -> Executed:
    """Run the change set under the one guard (the caller holds `locked`)."""
    done = Executed()
    if cs.config_path.parent.is_dir():  # a killed run's temp files, even when nothing else is to do
        files.remove_stale_temps(files.inside(cs.root, cs.config_path).parent)
    if cs.empty:
        return done
    tx = Transaction(cs.root)
    with guarded(tx):
        real = {c.shown: files.inside(cs.root, c.path) for c in cs.files}  # the root rule, before anything
        for unit in (*cs.enable, *cs.disable):
            files.inside(cs.root, unit.path)
        for directory in dict.fromkeys(p.parent for p in real.values()):
            files.remove_stale_temps(directory)
        done.validated_by, done.unjudged = validate(cs, seams.chronyd, explain or _rejected)
        _back_up(cs, tx, real, done)
        _write(cs, tx, real)
        _activate_and_verify(cs, seams, tx, done)
    return done


def _back_up(cs: ChangeSet, tx: Transaction, real: dict[str, Path], done: Executed) -> None:
    """The distribution's file at first takeover, and the previous versions in a history entry: in
    the state directory, never beside the file (where chronyd may read a copy)."""
    store = history.Store(cs.root)
    previous = [tx.remember(real[c.shown], c.shown) for c in cs.files]
    previous += [tx.remember(u.path, u.shown) for u in cs.disable]
    if cs.keep_originals:
        for saved in previous:
            if not saved.shown.startswith("/run/"):  # what /run holds is gone at the next boot
                store.keep_original(saved)
        for unit in cs.enable:  # absent now: restore --original removes it
            store.keep_original(history.capture(unit.path, unit.shown))
    if cs.record_history and previous:
        tx.history_entry = store.record(previous)
        done.history = str(tx.history_entry)
        if any(c.shown == cs.config_shown and c.old is not None for c in cs.files):
            done.backup = str(tx.history_entry / cs.config_shown.lstrip("/"))


def _write(cs: ChangeSet, tx: Transaction, real: dict[str, Path]) -> None:
    """Every file, then the unit links, each remembered first so the guard can put it back."""
    for change in cs.files:
        path = real[change.shown]
        if change.link is not None:
            tx.symlink(path, change.shown, change.link)
        elif change.removed:
            tx.remove(path, change.shown)
        else:
            meta = (change.mode, change.uid, change.gid) if change.mode is not None else None
            tx.write(path, change.shown, change.new, meta=meta, before_replace=_labeller(change.label))
    for unit in cs.enable:
        tx.link(unit.path, unit.target)
    for unit in cs.disable:
        tx.remove(unit.path, unit.shown)


def _activate_and_verify(cs: ChangeSet, seams: Seams, tx: Transaction, done: Executed) -> None:
    """The one rule's action (ChangeSet.service_action), then the change set's verification; the
    way back is registered before chronyd is touched."""
    manager = seams.manager
    done.action = cs.service_action if manager is not None else "none"
    if manager is None or done.action == "none":
        return
    back, action = seams.back or manager, done.action
    tx.restore_service = lambda: _activate(back, action)
    _activate(manager, action)
    if seams.verify is not None and cs.verify is not Verify.NONE:
        done.selected, done.waited = seams.verify(cs)


def validate(cs: ChangeSet, chronyd: chrony_tools.Validator | None,
             explain: Explain) -> tuple[str | None, Rejection | None]:
    """chronyd -p on the final state, once, before any file is replaced: the main file as the change
    leaves it (staged beside its target) with every other file it reads as they will be. Returns
    who judged it (None when nothing did: no chronyd, nothing chronyd reads changes, no main file)
    and a rejection `explain` chose to accept."""
    if chronyd is None or not cs.chrony_files or cs.config_final is None:
        return None, None
    final = cs.config_final
    accepted: list[Rejection] = []

    def check(main: Path) -> None:
        tree = validation.final_tree(cs.root, cs.config_shown, final, cs.edits())
        result = chrony_tools.validate_config(str(main), root=str(cs.root), using=chronyd, tree=tree)
        if not result.ok:
            rejected = Rejection(chronyd.description, result.reason(), result.rejected_at(),
                                 result.rejected_in_candidate)
            error = explain(rejected)
            if error is not None:
                raise error
            accepted.append(rejected)

    if any(c.shown == cs.config_shown for c in cs.chrony_files):
        validation.validate_candidate(cs.config_path, final, check)
    else:  # only other files change: the main file in place, with them as they will be
        check(cs.config_path)
    return chronyd.description, (accepted[0] if accepted else None)


def _rejected(r: Rejection) -> ChronyCtlError:
    at = r.at
    return ValidationFailed(
        f"{r.chronyd} rejects the configuration this change would leave"
        + (f" (line {at[1]} of {at[0]})" if at is not None else "") + f": {r.reason}")


def _labeller(label: str | None) -> Callable[[Path], None] | None:
    """The SELinux context a planner knows the file needs, given to the finished temp file before
    it replaces the target (chronyd never sees it unlabelled). A small effect of our own until
    effects/files applies labels itself; no SELinux here: nothing to do."""
    if label is None:
        return None

    def apply_label(tmp: Path) -> None:
        try:
            os.setxattr(tmp, "security.selinux", label.encode() + b"\0", follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
                raise

    return apply_label


def _activate(manager: service.ServiceManager, action: str) -> None:
    if action == "restart":
        manager.restart()
    else:
        manager.reload_sources()


class Chronyc:
    """The service seam where only a reload can be asked (the boot step run by hand): chronyc."""

    name = "chronyc"

    def restart(self) -> None:
        raise CommandFailed("chronyctl6 does not restart chronyd here: only its sources are reloaded")

    def reload_sources(self) -> None:
        chrony_tools.reload_sources()

    def is_active(self) -> bool:
        return True

    def main_pid(self) -> int | None:
        return None


# ---- live seams ----------------------------------------------------------------------------

def pidfile(config: bytes | None) -> str | None:
    found = [d.args[0] for d in directives.parse((config or b"").decode(errors="replace"))
             if d.keyword == "pidfile" and d.args]
    return found[-1] if found else None


def manager(name: str, *, unit: str, config_shown: str, running: bytes | None,
            target: bytes | None) -> service.ServiceManager:
    """The manager that moves chronyd from the `running` configuration to `target`."""
    return service.choose(name, unit=unit, config_path=config_shown, pidfile=pidfile(target),
                          previous_pidfile=pidfile(running))


def live_seams(cs: ChangeSet, *, service_manager: str, unit: str, wait: float,
               progress: Progress | None, chronyd: chrony_tools.Validator | None = None) -> Seams:
    """Resolved before anything is written: a host whose chronyd cannot be restarted gets no new file."""
    return Seams(manager(service_manager, unit=unit, config_shown=cs.config_shown, running=cs.config_old,
                         target=cs.config_final),
                 manager(service_manager, unit=unit, config_shown=cs.config_shown, running=cs.config_final,
                         target=cs.config_old or b""),
                 lambda c: verify(c, wait, progress), chronyd)


def verify(cs: ChangeSet, seconds: float, progress: Progress | None) -> tuple[str | None, float | None]:
    if cs.verify is Verify.SELECTED:
        return wait_selected(cs.wanted, seconds, progress)
    if cs.verify is Verify.ANSWERS:
        return None, wait_answers(seconds, progress)
    return None, None


def wait_selected(wanted: str | None, seconds: float,
                  progress: Progress | None = None) -> tuple[str | None, float | None]:
    """Until chronyd selects `wanted` (or a reference clock); wanted None: any selected source."""
    if seconds <= 0:
        return None, None
    start = time.monotonic()
    deadline = start + seconds
    last: list[chrony_tools.Source] = []
    said = -1
    while time.monotonic() < deadline:
        try:
            last = chrony_tools.sources()
        except CommandFailed:
            last = []  # chronyd may still be starting
        for source in last:
            if source.selected and (wanted is None or source.name == wanted or source.mode == "#"):
                return source.name, round(time.monotonic() - start, 3)
        elapsed = int(time.monotonic() - start)
        if progress is not None and elapsed != said and elapsed % 5 == 0:
            said = elapsed
            seen = ", ".join(f"{s.name} reach {s.reach:o}" for s in last) or "no sources yet"
            progress(f"waiting for chronyd to select {wanted or 'a source'}: {elapsed} of {seconds:g} s ({seen})")
        time.sleep(0.25)
    seen = ", ".join(f"{s.name} state {s.state} reach {s.reach:o}" for s in last) or "no sources"
    raise CommandFailed(
        f"chronyd did not select {wanted or 'a source'} within {seconds:g} s ({seen})",
        hint="run `chronyctl6 doctor` to see why Time Sync does not answer",
    )


def wait_answers(seconds: float, progress: Progress | None) -> float | None:
    """A restored file may name sources of its own (the distro's pools): verified is chronyd
    running on it and answering, not a particular source."""
    if seconds <= 0:
        return None
    start = time.monotonic()
    said = False
    while True:
        try:
            chrony_tools.tracking()
            return round(time.monotonic() - start, 3)
        except CommandFailed as exc:
            if time.monotonic() - start >= seconds:
                raise CommandFailed(f"chronyd does not answer within {seconds:g} s after the change: "
                                    f"{exc.message}") from exc
            if progress is not None and not said:
                said = True
                progress(f"waiting up to {seconds:g} s for chronyd to answer")
        time.sleep(0.25)
