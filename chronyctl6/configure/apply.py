"""The life cycle of a change: facts → plan → validate → lock → back up → write → enable the boot
unit → restart/reload → verify, all under one guard (transaction.guarded) that puts every file and
chronyd back on any failure or signal."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from chronyctl6.chronyconf import directives
from chronyctl6.configure import plan as planning
from chronyctl6.configure import render, validation
from chronyctl6.configure.plan import BOOT_LINK, Plan, Request, is_root
from chronyctl6.configure.transaction import RollbackFailed, RolledBack, Transaction, guarded
from chronyctl6.effects import chrony_tools, configtree, files, history, service
from chronyctl6.errors import BadInput, ChronyCtlError, CommandFailed, NotPermitted

__all__ = ["ApplyResult", "Options", "RollbackFailed", "RolledBack", "Seams", "ValidationFailed", "apply"]

DEFAULT_WAIT = 60.0
Progress = Callable[[str], None]


class ValidationFailed(ChronyCtlError):
    pass


@dataclass
class ApplyResult:
    changed: bool
    path: str
    backup: str | None
    action: str  # restart | reload | none
    diff: str
    dropped: list[dict[str, str]]
    warnings: list[str]
    dry_run: bool = False
    validated: bool = False
    validated_by: str | None = None  # "chronyd 4.6.1 from the image" / "chronyd 4.3 from this host"
    selected: str | None = None
    waited_seconds: float | None = None
    files: list[str] = field(default_factory=list)
    enabled: str | None = None  # the boot unit enabled by this run
    check: bool = False
    notes: list[str] = field(default_factory=list)  # recorded choices changed by a flag
    history: str | None = None  # the history entry holding the previous versions

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Options:
    dry_run: bool = False
    check: bool = False
    wait: float | None = None  # None: settings.toml's `wait`, else DEFAULT_WAIT (live hosts only)
    lock_timeout: float = 10.0
    validate: bool = True


@dataclass
class Seams:
    """How chronyd is moved to the new configuration and back, and how success is seen.
    None manager: an image (--root), nothing runs. Tests pass stand-ins."""

    manager: service.ServiceManager | None
    back: service.ServiceManager | None
    verify: Callable[[Plan, float], tuple[str | None, float | None]]


def check_seconds(value: float, name: str) -> float:
    if math.isnan(value) or math.isinf(value) or value < 0:
        raise BadInput(f"{name} {value}: give a finite number of seconds, 0 or more")
    return value


def apply(request: Request, options: Options, progress: Progress | None = None) -> ApplyResult:
    if options.wait is not None:
        check_seconds(options.wait, "--wait")
    check_seconds(options.lock_timeout, "--lock-timeout")
    if options.check and options.dry_run:
        options = replace(options, dry_run=False)  # --check is the stricter question
    if request.live and not options.dry_run and not is_root():
        raise NotPermitted(
            f"apply{' --check' if options.check else ''} on the running host needs root",
            hint="run it with sudo, or use --dry-run / --root DIR to only look or build an image",
        )
    basics = planning.read_basics(request)  # bad settings fail here, before the lock
    if options.dry_run:
        return _result(planning.plan(request, planning.gather(request, basics)), action="none", dry_run=True)
    chosen, _ = planning.choose_settings(request, basics)
    platform = planning.platform_of(chosen, basics)
    service.check_unit_arguments(request.root, platform.config_path)  # chronyd must read what is written
    directory = configtree.write_path(request.root, platform.config_path).parent
    if not directory.is_dir():
        planning.gather(request, basics)  # raises the error that says what is missing
    with files.locked(history.lock_directory(request.root), timeout=options.lock_timeout, create=not options.check):
        the_plan = planning.plan(request, planning.gather(request, basics))  # facts read once, under the lock
        if options.check:
            return _result(the_plan, action="none", dry_run=True, check=True)
        for change in the_plan.changes:
            files.remove_stale_temps(change.path.parent)
        wait = options.wait if options.wait is not None else planning.settings_wait(basics, chosen, DEFAULT_WAIT)
        seams = live_seams(the_plan, wait, progress) if request.live else Seams(None, None, _no_verify)
        # Which chronyd judges the final state: the image's own where it runs here, else this host's.
        chronyd = chrony_tools.validator(str(request.root)) if options.validate and the_plan.pending else None
        result = execute(the_plan, seams, chronyd=chronyd)
    _record_intent(the_plan, result)
    return result


def live_seams(plan: Plan, wait: float, progress: Progress | None) -> Seams:
    # Resolved before anything is written: a host we cannot restart chronyd on gets no new file.
    return Seams(_manager(plan, running=plan.config.old, target=plan.config.new),
                 _manager(plan, running=plan.config.new, target=plan.config.old or b""),
                 lambda p, _: wait_selected(p, wait, progress))


def execute(plan: Plan, seams: Seams, *, chronyd: chrony_tools.Validator | None) -> ApplyResult:
    """Everything that changes the host, under one guard. chronyd None: nothing validates (not
    installed, or not asked to)."""
    if plan.up_to_date:
        return _result(plan, action="none")
    tx = Transaction(plan.request.root)
    store = history.Store(plan.request.root)
    backup: Path | None = None
    action = "none"
    selected, waited = None, None
    with guarded(tx):
        for change in plan.pending:  # before anything is written anywhere, the staged candidate included
            files.inside(plan.request.root, change.path)
        if chronyd is None or not plan.pending:
            chronyd = None  # validated_by says so: nothing was judged
        elif plan.config.changed:  # the final state, once, before any file is replaced
            validation.validate_candidate(plan.config.path, plan.config.new, _validator(plan, chronyd))
        else:  # only drop-ins change: the main file in place, with them as they will be
            _validator(plan, chronyd)(plan.config.path)
        previous = [tx.remember(c.path, c.shown) for c in plan.pending]
        for saved in previous:
            if not saved.shown.startswith("/run/"):  # what /run holds is gone at the next boot
                store.keep_original(saved)
        if previous:
            tx.history_entry = store.record(previous)
        for change in plan.pending:
            if change.kind == "config" and change.old is not None:
                tx.remember(change.path.with_name(change.path.name + files.BACKUP_SUFFIX), change.shown + ".bak")
                backup = files.backup(change.path)
            tx.write(change.path, change.shown, change.new)
        if plan.enable_unit is not None:
            link = configtree.write_path(plan.request.root, BOOT_LINK)
            store.keep_original(history.capture(link, BOOT_LINK))  # absent: restore --original removes it
            tx.link(link, plan.enable_unit)
        if seams.manager is not None and plan.pending:
            # reading's rule: a pure .sources change needs only a reload, anything else a restart
            action = "restart" if any(c.kind == "config" for c in plan.pending) else "reload"
            back = seams.back or seams.manager
            tx.restore_service = lambda: _activate(back, action)
            _activate(seams.manager, action)
            selected, waited = seams.verify(plan, 0.0)
    result = _result(plan, action=action, backup=str(backup) if backup else None, chronyd=chronyd,
                     selected=selected, waited=waited)
    result.history = str(tx.history_entry) if tx.history_entry else None
    return result


def _record_intent(plan: Plan, result: ApplyResult) -> None:
    """After success only; a state file that cannot be written costs a warning, not the change."""
    try:
        history.Store(plan.request.root).save_intent(plan.intent)
    except (ChronyCtlError, OSError) as exc:
        result.warnings.append(f"could not record the choices in {history.STATE_DIR}/state.json: "
                               f"{getattr(exc, 'message', exc)}")


def _no_verify(plan: Plan, seconds: float) -> tuple[str | None, float | None]:
    return None, None


def _validator(plan: Plan, chronyd: chrony_tools.Validator) -> Callable[[Path], None]:
    """The validate step: chronyd -p on the main file (candidate) with every other file it reads as
    this plan leaves them; a rejection names where the line came from, with a hint to fit."""

    def validate(main: Path) -> None:
        edits = {c.shown: c.new for c in plan.pending}
        tree = validation.final_tree(plan.request.root, plan.config.shown, plan.config.new, edits)
        done = chrony_tools.validate_config(str(main), root=str(plan.request.root), using=chronyd, tree=tree)
        if not done.ok:
            at, said = done.rejected_at(), done.reason()
            edited = next((c for c in plan.pending if at is not None and c.shown == at[0] and c is not plan.config),
                          None)
            if at is not None and edited is not None:
                # chronyd judged the drop-in as apply would leave it; nothing was written, so name
                # the line where it is in the file as it is now.
                line = validation.line_before_edit(edited.old, edited.new, at[1])
                said = said.replace(f"at line {at[1]} in file {at[0]}", f"at line {line} in file {at[0]}")
                at = (at[0], line)
            message, hint = render.explain_rejection(plan.rendered, plan.platform, plan.config.shown,
                                                     chronyd.description, at, done.rejected_in_candidate)
            raise ValidationFailed(f"{message} ({said})", hint=hint)

    return validate


def _pidfile(config: bytes | None) -> str | None:
    found = [d.args[0] for d in directives.parse((config or b"").decode(errors="replace"))
             if d.keyword == "pidfile" and d.args]
    return found[-1] if found else None


def _manager(plan: Plan, *, running: bytes | None, target: bytes) -> service.ServiceManager:
    """The manager that moves chronyd from the `running` configuration to `target`."""
    return service.choose(plan.settings.service_manager, unit=plan.platform.unit,
                          config_path=plan.platform.config_path, pidfile=_pidfile(target),
                          previous_pidfile=_pidfile(running))


def _activate(manager: service.ServiceManager, action: str) -> None:
    if action == "restart":
        manager.restart()
    else:
        manager.reload_sources()


def wait_selected(plan: Plan, seconds: float, progress: Progress | None = None,
                  wanted: str | None = "") -> tuple[str | None, float | None]:
    """Until chronyd selects a Time Sync source (the chosen endpoint, or the PHC). wanted None:
    any selected source will do (a restored distro file has its own)."""
    if seconds <= 0:
        return None, None
    wanted = plan.expected_source if wanted == "" else wanted
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


def _result(plan: Plan, *, action: str, dry_run: bool = False, backup: str | None = None,
            chronyd: chrony_tools.Validator | None = None, selected: str | None = None,
            waited: float | None = None, check: bool = False) -> ApplyResult:
    return ApplyResult(
        changed=not plan.up_to_date,
        path=plan.config.shown,
        backup=backup,
        action=action,
        diff=plan.diff(),
        dropped=[{"line": v.directive.line, "reason": v.reason} for v in plan.rendered.dropped],
        warnings=list(plan.warnings),
        dry_run=dry_run,
        validated=chronyd is not None,
        validated_by=chronyd.description if chronyd is not None else None,
        selected=selected,
        waited_seconds=waited,
        files=[c.shown for c in plan.pending],
        enabled=plan.enable_unit,
        check=check,
        notes=list(plan.notes),
    )
