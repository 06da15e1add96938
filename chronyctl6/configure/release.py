"""`chronyctl6 release`: what removing the package does to chrony, run by the package's prerm
(and the RPM's %preun) while chronyctl6 is still installed. Under the one lock: facts →
planners.plan_release → the one executor. Never leaves chrony without a source: the boot step's
`sourcedir /run/chronyctl6` (nothing fills it once the package is gone) becomes this launch's
Time Sync line, the boot unit is disabled; the rest of chrony.conf stays as chronyctl6 wrote it.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field

from chronyctl6 import defaults
from chronyctl6.configure import executor, planners, settings
from chronyctl6.configure import plan as planning
from chronyctl6.configure.apply import check_seconds
from chronyctl6.configure.boot import BOOT_SOURCEDIR
from chronyctl6.configure.changeset import UnitLink
from chronyctl6.configure.executor import Progress
from chronyctl6.configure.plan import BOOT_LINK, Request, is_root
from chronyctl6.configure.platforms import Platform
from chronyctl6.effects import chrony_tools, configtree, history, host, service
from chronyctl6.errors import ChronyCtlError, NotPermitted
from chronyctl6.filestate import FileState

CONFIG_PATHS = ("/etc/chrony/chrony.conf", "/etc/chrony.conf")  # where no platform is known
DEFAULT_WAIT = defaults.RELEASE_WAIT  # dpkg waits on it: chronyd answering is enough


@dataclass
class ReleaseResult:
    changed: bool
    files: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)
    action: str = "none"
    endpoint: str | None = None
    said: list[str] = field(default_factory=list)
    history: str | None = None

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def release(request: Request, *, wait: float | None = None, lock_timeout: float = defaults.LOCK_TIMEOUT,
            progress: Progress | None = None) -> ReleaseResult:
    check_seconds(lock_timeout, "--lock-timeout")
    if wait is not None:
        check_seconds(wait, "--wait")
    if request.live and not is_root():
        raise NotPermitted("release changes the running chrony and needs root", hint="the package's prerm runs it")
    chosen, platform = _settings(request)
    config_shown = platform.config_path if platform else next(
        (p for p in CONFIG_PATHS if configtree.write_path(request.root, p).is_file()), None)
    if config_shown is None:
        return ReleaseResult(False, said=["chrony's configuration is not here: nothing to do"])
    with executor.locked(request.root, timeout=lock_timeout):
        facts = _facts(request, chosen, platform, config_shown)
        decided = planners.plan_release(facts)
        changes = decided.changes
        chronyd = chrony_tools.validator(str(request.root)) if changes.chrony_files else None
        seams = executor.Seams(chronyd=chronyd)
        if changes.live:
            unit = platform.unit if platform else ("chrony" if config_shown.startswith("/etc/chrony/") else "chronyd")
            seams = executor.live_seams(changes, service_manager=chosen.service_manager, unit=unit,
                                        wait=DEFAULT_WAIT if wait is None else wait, progress=progress, chronyd=chronyd)
        done = executor.execute(changes, seams)
    return ReleaseResult(not changes.empty, [c.shown for c in changes.files], [u.shown for u in changes.disable],
                         done.action, decided.endpoint, list(decided.said), done.history)


def _settings(request: Request) -> tuple[settings.Settings, Platform | None]:
    """Removal never fails for a broken settings file or an unknown distribution: the defaults."""
    try:
        basics = planning.read_basics(request)
        chosen, _ = planning.choose_settings(request, basics)
    except ChronyCtlError:
        return settings.Settings(), None
    try:
        return chosen, planning.platform_of(chosen, basics)
    except ChronyCtlError:
        return chosen, None


def _facts(request: Request, chosen: settings.Settings, platform: Platform | None,
           config_shown: str) -> planners.ReleaseFacts:
    config = configtree.write_path(request.root, config_shown)
    sourcedir = platform.runtime_sourcedir if platform else BOOT_SOURCEDIR
    runtime_shown = f"{sourcedir}/timesync.sources"
    runtime_path = configtree.write_path(request.root, runtime_shown)
    runtime = history.capture(runtime_path, runtime_shown)
    link = configtree.write_path(request.root, BOOT_LINK)
    boot_link = UnitLink(link, BOOT_LINK, os.readlink(link)) if link.is_symlink() else None
    network = None
    if request.live:
        with contextlib.suppress(Exception):  # unreadable: the IPv4 endpoint, never a guess
            network = host.read_network()
    # An image (--root), or a host without systemd where the service manager is `auto`: nothing
    # to restart; chronyd reads the change when it next starts.
    live = request.live and (chosen.service_manager != "auto" or service.systemd_running())
    return planners.ReleaseFacts(
        request.root, config_shown, config, history.capture(config, config_shown).data, sourcedir,
        FileState(runtime.shown, runtime.data, link=runtime.link), runtime_path, boot_link,
        chosen.timesync_options, history.Store(request.root).last_boot(), network, live)
