"""`chronyctl6 restore`: put back the previous version of the files an apply changed (the newest
history entry), or with `original` the distribution's files as kept at first takeover, byte for
byte with their mode and owner. Under the one lock: facts → planners.plan_restore → the one
executor (validate → back up: a restore is itself undoable, `restore` twice goes back and forth →
write → restart or reload → verify that chronyd answers); any failure or signal puts everything
back."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from pathlib import Path

from chronyctl6 import defaults
from chronyctl6.configure import executor, planners, platforms, render, settings
from chronyctl6.configure import plan as planning
from chronyctl6.configure.apply import DEFAULT_WAIT, check_seconds
from chronyctl6.configure.executor import Progress, ValidationFailed
from chronyctl6.configure.plan import Request, is_root
from chronyctl6.configure.platforms import Platform
from chronyctl6.effects import chrony_tools, configtree, history, service
from chronyctl6.errors import ChronyCtlError, NotPermitted


@dataclass
class RestoreResult:
    changed: bool
    source: str  # original | previous
    files: list[str] = field(default_factory=list)
    action: str = "none"
    history: str | None = None
    answered_after: float | None = None
    message: str = ""
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def restore(request: Request, *, original: bool, wait: float | None, lock_timeout: float = defaults.LOCK_TIMEOUT,
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
    platform = _platform(chosen, basics)
    service.check_unit_arguments(request.root, platform.config_path)  # chronyd must read what is put back
    if not request.live:
        wait = 0.0
    elif wait is None:
        wait = planning.settings_wait(basics, chosen, DEFAULT_WAIT)
    store = history.Store(request.root)
    directory = configtree.write_path(request.root, platform.config_path).parent
    if not directory.is_dir():
        raise ChronyCtlError(f"{directory} does not exist: is chrony installed?")
    with executor.locked(request.root, timeout=lock_timeout):
        targets = store.originals() if original else store.previous()
        if not targets:
            if original:  # never changed this host (the package's removal script must not fail)
                return RestoreResult(False, source, message="chronyctl6 never changed a file here: nothing to restore")
            raise ChronyCtlError(f"no earlier version is kept under {store.base}/history",
                                 hint="`chronyctl6 restore --original` puts back the distribution's files")
        changes = planners.plan_restore(_facts(request, platform, targets, original=original))
        if changes.empty:
            return RestoreResult(False, source, message="the files are already as kept")
        chronyd = chrony_tools.validator(str(request.root)) if changes.config_final is not None else None
        seams = (executor.live_seams(changes, service_manager=chosen.service_manager, unit=platform.unit,
                                     wait=wait, progress=progress, chronyd=chronyd)
                 if request.live else executor.Seams(chronyd=chronyd))
        # The image's own chronyd is there but cannot run here: an older host chronyd's "Invalid
        # directive" in the distribution's own files is its age, not the files' fault.
        older_judge = (original and not request.live and chronyd is not None and not chronyd.from_image
                       and configtree.write_path(request.root, "/usr/sbin/chronyd").exists())
        done = executor.execute(changes, seams, explain=_explainer(platform.config_path, original, older_judge))
    result = RestoreResult(True, source, [c.shown for c in changes.files], done.action, done.history, done.waited)
    if done.unjudged is not None:
        at = done.unjudged.at
        result.warnings.append(
            f"{done.unjudged.chronyd} does not know a directive of the distribution's files"
            + (f" (line {at[1]} of {at[0]})" if at else "") + f": {done.unjudged.reason}; restored as kept, "
            "unjudged: the image's own chronyd, which could not run here, is newer")
    return result


def _platform(chosen: settings.Settings, basics: planning.Basics) -> Platform:
    """As apply: --distro, else os-release; an image that apply took over with --distro (os-release
    names no known distribution) is restored with the distribution apply recorded."""
    try:
        return planning.platform_of(chosen, basics)
    except ChronyCtlError:
        recorded = basics.intent.get("distro")
        if chosen.distro is None and isinstance(recorded, str) and recorded in platforms.BY_NAME:
            return platforms.by_name(recorded)
        raise


def _facts(request: Request, platform: Platform, targets: list[history.Saved], *,
           original: bool) -> planners.RestoreFacts:
    """Each kept file as it is now, where it is under the root, and what a kept link leads to."""
    paths = {t.shown: configtree.write_path(request.root, t.shown) for t in targets}
    config = configtree.write_path(request.root, platform.config_path)
    runtime_shown = f"{platform.runtime_sourcedir}/{render.BOOT_SOURCES_NAME}"
    runtime_path = configtree.write_path(request.root, runtime_shown)
    runtime = None
    if original:
        try:
            runtime = history.capture(runtime_path, runtime_shown)
        except ChronyCtlError:
            runtime = None  # not a regular file: not ours to remove
    return planners.RestoreFacts(
        request.root, platform.config_path, config, history.capture(config, platform.config_path).data,
        tuple(targets),
        {t.shown: history.capture(paths[t.shown], t.shown) for t in targets}, paths,
        {t.shown: _final_bytes(request.root, t) for t in targets if t.link is not None}, request.live,
        runtime, runtime_path)


def _explainer(config_shown: str, original: bool, older_judge: bool) -> executor.Explain:
    def explain(rejected: executor.Rejection) -> ChronyCtlError | None:
        at = rejected.at
        if rejected.in_candidate is not None:
            at = (config_shown, rejected.in_candidate)  # the main file, not its staged copy
            rejected = executor.Rejection(rejected.chronyd, rejected.reason, at, rejected.in_candidate)
        if older_judge and "Invalid directive" in rejected.reason:
            return None  # accepted; the result says so
        where = f" (line {at[1]} of {at[0]})" if at is not None else ""
        if original:  # never send the operator back to the command that just failed
            hint = ("nothing was changed; the kept files are the distribution's own: if this chronyd is older than "
                    "the image's, run the restore where the image's own chronyd runs (on the instance)")
        else:
            hint = "nothing was changed; `chronyctl6 restore --original` puts back the distribution's files"
        return ValidationFailed(
            f"{rejected.chronyd} rejects the configuration the restore would put back{where}: {rejected.reason}",
            hint=hint)

    return explain


def _final_bytes(root: Path, saved: history.Saved) -> bytes | None:
    """What chronyd will read at saved.shown once it is put back (a kept link: what it points to)."""
    if saved.link is None:
        return saved.data
    try:
        return configtree.read_one(root, posixpath.join(posixpath.dirname(saved.shown), saved.link))
    except ChronyCtlError:
        return None
