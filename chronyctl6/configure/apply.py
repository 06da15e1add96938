"""`chronyctl6 apply`: under the one lock, facts → plan (configure/plan.py) → change set → the one
executor (configure/executor.py: validate → back up → write → enable the boot unit →
restart/reload → verify, under one guard that puts every file and chronyd back on any failure or
signal); then the choices are recorded for later runs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from chronyctl6 import defaults
from chronyctl6.configure import executor, render, validation
from chronyctl6.configure import plan as planning
from chronyctl6.configure.executor import Progress, ValidationFailed
from chronyctl6.configure.plan import Plan, Request, is_root
from chronyctl6.configure.transaction import RollbackFailed, RolledBack
from chronyctl6.effects import chrony_tools, configtree, history, service
from chronyctl6.errors import BadInput, ChronyCtlError, NotPermitted

__all__ = ["ApplyResult", "Options", "Progress", "RollbackFailed", "RolledBack", "ValidationFailed", "apply",
           "check_seconds"]

DEFAULT_WAIT = defaults.APPLY_WAIT


@dataclass
class ApplyResult:
    changed: bool
    path: str
    backup: str | None
    action: str  # restart | reload | none
    diff: str
    dropped: list[dict[str, object]]  # file, lineno, line, reason: every line dropped or disabled
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
    lock_timeout: float = defaults.LOCK_TIMEOUT
    validate: bool = True


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
    with executor.locked(request.root, timeout=options.lock_timeout, create=not options.check):
        the_plan = planning.plan(request, planning.gather(request, basics))  # facts read once, under the lock
        if options.check:
            return _result(the_plan, action="none", dry_run=True, check=True)
        changes = planning.change_set(the_plan)
        wait = options.wait if options.wait is not None else planning.settings_wait(basics, chosen, DEFAULT_WAIT)
        # Which chronyd judges the final state: the image's own where it runs here, else this host's.
        chronyd = chrony_tools.validator(str(request.root)) if options.validate and changes.chrony_files else None
        seams = (executor.live_seams(changes, service_manager=the_plan.settings.service_manager,
                                     unit=the_plan.platform.unit, wait=wait, progress=progress, chronyd=chronyd)
                 if request.live else executor.Seams(chronyd=chronyd))
        done = executor.execute(changes, seams, explain=_explainer(the_plan))
    result = _result(the_plan, action=done.action, backup=done.backup, validated_by=done.validated_by,
                     selected=done.selected, waited=done.waited)
    result.history = done.history
    _record_intent(the_plan, result)
    return result


def _record_intent(plan: Plan, result: ApplyResult) -> None:
    """After success only; a state file that cannot be written costs a warning, not the change."""
    try:
        history.Store(plan.request.root).save_intent(plan.intent)
    except (ChronyCtlError, OSError) as exc:
        result.warnings.append(f"could not record the choices in {history.STATE_DIR}/state.json: "
                               f"{getattr(exc, 'message', exc)}")


def _explainer(plan: Plan) -> executor.Explain:
    """A rejection said in apply's terms: which rendered line or carried line chronyd refused, with
    a hint to fit; a line in an edited drop-in named where it is in the file as it is now."""

    def explain(rejected: executor.Rejection) -> ChronyCtlError:
        at, said = rejected.at, rejected.reason
        edited = next((c for c in plan.pending if at is not None and c.shown == at[0]
                       and c.shown != plan.config.shown), None)
        if at is not None and edited is not None:
            # chronyd judged the drop-in as apply would leave it; nothing was written.
            line = validation.line_before_edit(edited.old, edited.new, at[1])
            said = said.replace(f"at line {at[1]} in file {at[0]}", f"at line {line} in file {at[0]}")
            at = (at[0], line)
        message, hint = render.explain_rejection(plan.rendered, plan.platform, plan.config.shown,
                                                 rejected.chronyd, at, rejected.in_candidate)
        return ValidationFailed(f"{message} ({said})", hint=hint)

    return explain


def _result(plan: Plan, *, action: str, dry_run: bool = False, backup: str | None = None,
            validated_by: str | None = None, selected: str | None = None,
            waited: float | None = None, check: bool = False) -> ApplyResult:
    return ApplyResult(
        changed=not plan.up_to_date,
        path=plan.config.shown,
        backup=backup,
        action=action,
        diff=plan.diff(),
        dropped=[d.as_dict() for d in plan.dropped],
        warnings=list(plan.warnings),
        dry_run=dry_run,
        validated=validated_by is not None,
        validated_by=validated_by,
        selected=selected,
        waited_seconds=waited,
        files=[c.shown for c in plan.pending],
        enabled=plan.enable_unit,
        check=check,
        notes=list(plan.notes),
    )
