"""`chronyctl6 restore`: put back the previous version of the files an apply changed (the newest
history entry), or with `original` the distribution's files as kept at first takeover, byte for
byte with their mode and owner. The same transaction as apply: validate → lock → back up (a
restore is itself undoable: `restore` twice goes back and forth) → write → restart or reload →
verify that chronyd answers; any failure or signal puts everything back."""

from __future__ import annotations

import posixpath
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from chronyctl6.configure import plan as planning
from chronyctl6.configure import validation
from chronyctl6.configure.apply import (
    DEFAULT_WAIT,
    Progress,
    ValidationFailed,
    _activate,
    _pidfile,
    check_seconds,
)
from chronyctl6.configure.plan import Request, is_root
from chronyctl6.configure.platforms import Platform
from chronyctl6.configure.transaction import Transaction, guarded
from chronyctl6.effects import chrony_tools, configtree, files, history, service
from chronyctl6.errors import ChronyCtlError, CommandFailed, NotPermitted


@dataclass
class RestoreResult:
    changed: bool
    source: str  # original | previous
    files: list[str] = field(default_factory=list)
    action: str = "none"
    history: str | None = None
    answered_after: float | None = None
    message: str = ""

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def restore(request: Request, *, original: bool, wait: float | None, lock_timeout: float = 10.0,
            progress: Progress | None = None) -> RestoreResult:
    """wait None: settings.toml's wait, else DEFAULT_WAIT; a restore under --root never waits."""
    if wait is not None:
        check_seconds(wait, "--wait")
    check_seconds(lock_timeout, "--lock-timeout")
    if request.live and not is_root():
        raise NotPermitted("restore changes the running chrony and needs root", hint="run it with sudo")
    source = "original" if original else "previous"
    basics = planning.read_basics(request)
    chosen, _ = planning.choose_settings(request, basics)
    platform = planning.platform_of(chosen, basics)
    service.check_unit_arguments(request.root, platform.config_path)  # chronyd must read what is put back
    if not request.live:
        wait = 0.0
    elif wait is None:
        wait = planning.settings_wait(basics, chosen, DEFAULT_WAIT)
    store = history.Store(request.root)
    directory = configtree.write_path(request.root, platform.config_path).parent
    if not directory.is_dir():
        raise ChronyCtlError(f"{directory} does not exist: is chrony installed?")
    with files.locked(history.lock_directory(request.root), timeout=lock_timeout):
        targets = store.originals() if original else store.previous()
        if not targets:
            if original:  # never changed this host (the package's removal script must not fail)
                return RestoreResult(False, source, message="chronyctl6 never changed a file here: nothing to restore")
            raise ChronyCtlError(f"no earlier version is kept under {store.base}/history",
                                 hint="`chronyctl6 restore --original` puts back the distribution's files")
        tx = Transaction(request.root)
        pending = [(configtree.write_path(request.root, t.shown), t) for t in targets]
        pending = [(p, t) for p, t in pending if history.capture(p, t.shown) != t]
        if not pending:
            return RestoreResult(False, source, message="the files are already as kept")
        config = configtree.write_path(request.root, platform.config_path)
        config_target = next((t for p, t in pending if p == config), None)
        manager = back = None
        if request.live:
            current = history.capture(config, platform.config_path).data
            target_bytes = config_target.data if config_target else current
            manager = _choose(chosen.service_manager, platform, running=current, target=target_bytes)
            back = _choose(chosen.service_manager, platform, running=target_bytes, target=current)
        action = "none"
        answered = None
        with guarded(tx):
            _validate(request.root, platform.config_path, config, config_target, pending)
            previous = [tx.remember(p, t.shown) for p, t in pending]
            tx.history_entry = store.record(previous)
            for path, target in pending:
                history.put_back(path, target)
            if manager is not None and back is not None:
                # as apply: a pure .sources change needs only a reload, anything else a restart
                action = "restart" if any(not t.shown.endswith(".sources") for _, t in pending) else "reload"
                restore_back = back
                tx.restore_service = lambda: _activate(restore_back, action)
                _activate(manager, action)
                answered = _wait_answers(wait, progress)
    return RestoreResult(True, source, [t.shown for _, t in pending], action,
                         str(tx.history_entry) if tx.history_entry else None, answered)


def _validate(root: Path, config_shown: str, config: Path, config_target: history.Saved | None,
              pending: list[tuple[Path, history.Saved]]) -> None:
    """apply's validate step: the final state, once, before any file is put back."""
    main = config_target.data if config_target is not None else history.capture(config, config_shown).data
    chronyd = chrony_tools.validator(str(root)) if main is not None else None
    if main is None or chronyd is None:  # no main file (chronyd would read none) or no chronyd
        return
    check = _validator(root, config_shown, main, pending, chronyd)
    if config_target is not None:
        validation.validate_candidate(config, main, check)
    else:  # only drop-ins come back: the main file in place, with them as they will be
        check(config)


def _validator(root: Path, config_shown: str, main: bytes, pending: list[tuple[Path, history.Saved]],
               chronyd: chrony_tools.Validator) -> Callable[[Path], None]:
    """chronyd -p on the restored main file with every other file as the restore leaves them."""

    def validate(candidate: Path) -> None:
        edits = {t.shown: _final_bytes(root, t) for _, t in pending}
        tree = validation.final_tree(root, config_shown, main, edits)
        done = chrony_tools.validate_config(str(candidate), root=str(root), using=chronyd, tree=tree)
        if not done.ok:
            at = done.rejected_at()
            if done.rejected_in_candidate is not None:
                at = (config_shown, done.rejected_in_candidate)  # the main file, not its staged copy
            where = f" (line {at[1]} of {at[0]})" if at is not None else ""
            raise ValidationFailed(
                f"{chronyd.description} rejects the configuration the restore would put back{where}: "
                f"{done.reason()}",
                hint="nothing was changed; `chronyctl6 restore --original` puts back the distribution's files")

    return validate


def _final_bytes(root: Path, saved: history.Saved) -> bytes | None:
    """What chronyd will read at saved.shown once it is put back (a kept link: what it points to)."""
    if saved.link is None:
        return saved.data
    try:
        return configtree.read_one(root, posixpath.join(posixpath.dirname(saved.shown), saved.link))
    except ChronyCtlError:
        return None


def _choose(name: str, platform: Platform, *, running: bytes | None,
            target: bytes | None) -> service.ServiceManager:
    return service.choose(name, unit=platform.unit, config_path=platform.config_path,
                          pidfile=_pidfile(target), previous_pidfile=_pidfile(running))


def _wait_answers(seconds: float, progress: Progress | None) -> float | None:
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
                raise CommandFailed(f"chronyd does not answer after the restore within {seconds:g} s: "
                                    f"{exc.message}") from exc
            if progress is not None and not said:
                said = True
                progress(f"waiting up to {seconds:g} s for chronyd to answer")
        time.sleep(0.25)
