"""The life cycle of a change: plan → validate → lock → back up → write → restart → verify,
and roll back when the restart or the verification fails."""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from chronyctl6.chronyconf import directives, traversal
from chronyctl6.configure import render
from chronyctl6.configure.plan import BOOT_UNIT, FileChange, Plan, Request, boot_unit, is_root, make_plan
from chronyctl6.effects import chrony_tools, files, service
from chronyctl6.errors import ChronyCtlError, CommandFailed, NotPermitted


class ValidationFailed(ChronyCtlError):
    pass


class RolledBack(ChronyCtlError):
    """The new configuration did not work; the previous one is back."""


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

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Options:
    dry_run: bool = False
    wait: float = 0.0
    lock_timeout: float = 10.0
    validate: bool = True


def apply(request: Request, options: Options) -> ApplyResult:
    if not request.live or options.dry_run:
        return _apply(request, options)
    if not is_root():
        raise NotPermitted(
            "apply changes the running chrony and needs root",
            hint="run it with sudo, or use --dry-run / --root DIR to only look or build an image",
        )
    return _apply(request, options)


def _apply(request: Request, options: Options) -> ApplyResult:
    if options.dry_run:
        return _result(make_plan(request), action="none", dry_run=True)
    first = make_plan(request)  # fails fast on bad input, before taking the lock
    with files.locked(first.config.path.parent, timeout=options.lock_timeout):
        for change in first.changes:
            files.remove_stale_temps(change.path.parent)
        plan = make_plan(request)  # again under the lock: another apply may have just written
        if not plan.pending:
            return _result(plan, action="none")
        chronyd = chrony_tools.validator(str(request.root)) if options.validate else None
        # Resolved before anything is written: a host we cannot restart chronyd on gets no new file.
        manager = _manager(plan, running=plan.config.old, target=plan.config.new) if request.live else None
        backup = _write_all(plan, chronyd=chronyd)
        if plan.choices.at_boot:
            _enable_boot_unit(plan)
        if manager is None:
            return _result(plan, action="none", backup=backup, chronyd=chronyd)
        action = "restart" if any(c.kind == "config" for c in plan.pending) else "reload"
        try:
            _activate(manager, action)
            selected, waited = _wait(plan, options.wait)
        except ChronyCtlError as exc:
            _roll_back(plan, _manager(plan, running=plan.config.new, target=plan.config.old or b""))
            raise RolledBack(
                f"{exc.message}; the previous configuration is restored and chronyd restarted on it",
                hint=exc.hint or "see what would change with `chronyctl6 apply --dry-run --diff`",
            ) from exc
        return _result(plan, action=action, backup=backup, chronyd=chronyd, selected=selected,
                       waited=waited)


def _validator(plan: Plan, chronyd: chrony_tools.Validator) -> Callable[[Path], None]:
    def validate(candidate: Path) -> None:
        # The main file's candidate, or the main file itself when only drop-ins change.
        main = candidate if plan.config.changed else plan.config.path
        done = chrony_tools.validate_config(str(main), root=str(plan.request.root), using=chronyd,
                                            tree=_final_tree(plan))
        if not done.ok:
            at, said = done.rejected_at(), done.reason()
            edited = next((c for c in plan.pending if at is not None and c.shown == at[0] and c is not plan.config),
                          None)
            if at is not None and edited is not None:
                # chronyd judged the drop-in as apply would leave it; nothing was written, so name
                # the line where it is in the file as it is now.
                line = _line_before_edit(edited, at[1])
                said = said.replace(f"at line {at[1]} in file {at[0]}", f"at line {line} in file {at[0]}")
                at = (at[0], line)
            message, hint = render.explain_rejection(plan.rendered, plan.platform, plan.config.shown,
                                                     chronyd.description, at, done.rejected_in_candidate)
            raise ValidationFailed(f"{message} ({said})", hint=hint)

    return validate


def _line_before_edit(change: FileChange, lineno: int) -> int:
    """Line `lineno` (1-based) of change.new, as a line number of change.old: apply only inserts a
    reason above a line it comments out, so every other line is in both."""
    old = [ln.text for ln in directives.split_lines(directives.decode(change.old or b""))]
    new = [ln.text for ln in directives.split_lines(directives.decode(change.new))]
    for tag, i1, _i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if tag == "equal" and j1 < lineno <= j2:
            return i1 + lineno - j1
    return lineno


def _final_tree(plan: Plan) -> dict[str, bytes | None]:
    """The other files chronyd will read beside the new main file, as they will be once the
    drop-ins this plan edits are written (empty when it edits none: the files in place are those)."""
    edited = {c.shown: c.new for c in plan.pending if c.path != plan.config.path}
    if not edited:
        return {}
    tree = traversal.load(plan.platform.config_path, plan.request.root, main_data=plan.config.new)
    final: dict[str, bytes | None] = {r.shown: edited.get(r.shown, r.data) for r in tree.read if r.role != "main"}
    final.update(dict.fromkeys(tree.missing))
    return {**edited, **final}  # and a file not there yet (the boot step's sources file)


def _write_all(plan: Plan, *, chronyd: chrony_tools.Validator | None) -> str | None:
    """Each file: temp beside it → validated (the main file, with every drop-in as this plan
    leaves it, before any file is replaced) → previous one backed up → replaced."""
    backups: dict[Path, Path | None] = {}
    for change in plan.pending:
        change.path.parent.mkdir(parents=True, exist_ok=True)
        first = change is plan.pending[0]  # the main file when it changes: nothing is replaced before it
        validate = _validator(plan, chronyd) if (chronyd is not None and first) else None

        def before_replace(candidate: Path, change: FileChange = change,
                           validate: Callable[[Path], None] | None = validate) -> None:
            if validate is not None:
                validate(candidate)
            if change.kind == "config":
                backups[change.path] = files.backup(change.path)

        files.atomic_write(change.path, change.new, validate=before_replace)
    saved = backups.get(plan.config.path)
    return str(saved) if saved else None


def _enable_boot_unit(plan: Plan) -> None:
    """What `systemctl enable` does for the boot step, done by hand so that it works in an image
    too: the package installs the unit but enables nothing (installing must not change how a
    host keeps time); choosing the endpoint at boot is what turns it on."""
    unit = boot_unit(plan.request)
    if unit is None:
        return  # not installed from a package; plan.warnings says what to do
    link = plan.request.under_root(f"/etc/systemd/system/multi-user.target.wants/{BOOT_UNIT}")
    if link.is_symlink() or link.exists():
        return
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{BOOT_UNIT}{files.TEMP_MARK}link.tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(unit)
    tmp.replace(link)
    files.fsync_dir(link.parent)


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


def _wait(plan: Plan, seconds: float) -> tuple[str | None, float | None]:
    """Until chronyd selects a Time Sync source (the chosen endpoint, or the PHC)."""
    if seconds <= 0:
        return None, None
    wanted = plan.expected_source
    start = time.monotonic()
    deadline = start + seconds
    last: list[chrony_tools.Source] = []
    while time.monotonic() < deadline:
        try:
            last = chrony_tools.sources()
        except CommandFailed:
            last = []  # chronyd may still be starting
        for source in last:
            if source.selected and (source.name == wanted or source.mode == "#"):
                return source.name, round(time.monotonic() - start, 3)
        time.sleep(0.25)
    seen = ", ".join(f"{s.name} state {s.state} reach {s.reach:o}" for s in last) or "no sources"
    raise CommandFailed(
        f"chronyd did not select {wanted or 'a Time Sync source'} within {seconds:g} s ({seen})",
        hint="run `chronyctl6 doctor` to see why Time Sync does not answer",
    )


def _roll_back(plan: Plan, manager: service.ServiceManager) -> None:
    for change in plan.pending:
        if change.old is None:
            change.path.unlink(missing_ok=True)
        else:
            files.atomic_write(change.path, change.old)
    action = "restart" if any(c.kind == "config" for c in plan.pending) else "reload"
    _activate(manager, action)


def _result(plan: Plan, *, action: str, dry_run: bool = False, backup: str | None = None,
            chronyd: chrony_tools.Validator | None = None, selected: str | None = None,
            waited: float | None = None) -> ApplyResult:
    return ApplyResult(
        changed=bool(plan.pending),
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
    )
