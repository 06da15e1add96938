"""The baked-image boot step: pick this launch's Time Sync endpoint before chronyd starts.

An AMI is baked once and launched into dual-stack and IPv4-only subnets. Its chrony.conf says
`sourcedir /run/chronyctl6`; on every boot chronyctl6-boot.service runs `chronyctl6 boot`, which
writes /run/chronyctl6/timesync.sources with the one endpoint this launch can reach. /run is
empty at every boot, so no choice survives into the next launch.

Facts (settings, platform, this launch's network and instance metadata, the last boot's choice) are
gathered under the one lock apply takes; planners.plan_boot decides, the one executor writes (and,
run by hand on a running instance, reloads chronyd's sources). Its own policy: never fail for lack
of facts, fall back instead; no history entry (a boot's choice is no change to undo).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from chronyctl6 import defaults
from chronyctl6.configure import executor, planners, render, settings
from chronyctl6.configure import phc as phc_policy
from chronyctl6.configure.plan import Request, is_root, load_platform, load_settings
from chronyctl6.effects import chrony_tools, configtree, files, history, host, metadata
from chronyctl6.effects import phc as phc_effects
from chronyctl6.errors import ChronyCtlError, CommandFailed, NotPermitted

BOOT_SOURCEDIR = "/run/chronyctl6"  # Platform.runtime_sourcedir, where no platform is known


@dataclass
class BootResult:
    endpoint: str
    reason: str
    path: str
    changed: bool
    reloaded: bool
    waited_for_ipv6: float
    warnings: list[str] = field(default_factory=list)
    fallback: bool = False  # something failed: the endpoint is the last good one, or IPv4
    phc: dict[str, object] | None = None  # the boot-time PHC file (configure/phc.py)

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def boot(request: Request, *, settle: float = defaults.SETTLE,
         lock_timeout: float = defaults.LOCK_TIMEOUT) -> BootResult:
    """Never leaves chronyd without a source: whatever fails (settings.toml, os-release, instance
    metadata, the network), it writes the last endpoint a boot chose (IPv6 only where this launch
    has a usable IPv6 address), else the IPv4 one, says why in `warnings` and succeeds. Only not
    being root, a lock held too long and a file that cannot be written fail."""
    if not is_root():
        raise NotPermitted("boot writes under /run and needs root", hint="it runs from chronyctl6-boot.service")
    start = time.monotonic()
    store = history.Store(request.root)
    basics = _settings(request)
    unlocked: list[str] = []
    with _lock(request, lock_timeout, unlocked):
        facts, start = _gather(request, basics, settle, store)
        decided = planners.plan_boot(facts)
        seams = executor.Seams(executor.Chronyc(), executor.Chronyc()) if facts.chronyd_running else executor.Seams()
        done = executor.execute(decided.changes, seams)
    warnings = list(decided.warnings) + unlocked
    if not decided.fallback:
        try:
            store.save_last_boot({"address": decided.endpoint.address, "reason": decided.endpoint.reason})
        except (ChronyCtlError, OSError) as exc:  # a read-only /var at boot costs nothing
            warnings.append(f"could not record this boot's choice: {getattr(exc, 'message', exc)}")
    changed = {c.shown for c in decided.changes.files}
    phc = None if facts.phc is None else {**facts.phc.as_dict(), "changed": facts.phc.path in changed}
    return BootResult(decided.endpoint.address, decided.endpoint.reason, facts.shown, facts.shown in changed,
                      done.action == "reload", round(time.monotonic() - start, 3), warnings,
                      fallback=decided.fallback, phc=phc)


def _lock(request: Request, timeout: float, warnings: list[str]) -> contextlib.ExitStack:
    """apply's lock, bounded. Another run holding it past the timeout fails the step (Busy); a
    state directory the lock cannot be made in (a read-only or broken /var at boot) does not:
    the boot step goes on without it, /run being its only file, and says so."""
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(executor.locked(request.root, timeout=timeout))
    except files.WriteFailed as exc:
        warnings.append(f"ran without the lock: {exc.message}")
    return stack


@dataclass(frozen=True)
class _Basics:
    chosen: settings.Settings | None
    sourcedir: str
    problem: str | None


def _settings(request: Request) -> _Basics:
    """settings.toml and the platform; a failure is kept as the reason for the fallback."""
    settings_path = str(request.settings_path or request.under_root(settings.SETTINGS_PATH))
    try:
        chosen = load_settings(request)
    except Exception as exc:  # any failure: the fallback, with the reason
        return _Basics(None, BOOT_SOURCEDIR, _why(exc, settings_path))
    with contextlib.suppress(ChronyCtlError):  # an unknown distro: the default directory
        return _Basics(chosen, load_platform(request, chosen).runtime_sourcedir, None)
    return _Basics(chosen, BOOT_SOURCEDIR, None)


def _why(exc: BaseException, settings_path: str) -> str:
    why = exc.message if isinstance(exc, ChronyCtlError) else repr(exc)
    return why if settings_path in why else f"{why} (settings: {settings_path})"


def _gather(request: Request, basics: _Basics, settle: float,
            store: history.Store) -> tuple[planners.BootFacts, float]:
    chosen = basics.chosen
    problem = basics.problem
    network: host.HostNetwork | None = None
    hint: host.InstanceHint | None = None
    start = time.monotonic()
    try:
        if chosen is not None and problem is None:
            network, hint, start = _network(chosen, settle)
    except Exception as exc:  # the network's facts, not the settings: say so
        why = exc.message if isinstance(exc, ChronyCtlError) else repr(exc)
        problem = f"this launch's network could not be read: {why}"
    if network is None:  # this launch's network all the same: the fallback must not trust a last IPv6
        with contextlib.suppress(Exception):
            network = host.read_network()
    shown = f"{basics.sourcedir}/{render.BOOT_SOURCES_NAME}"
    path = configtree.write_path(request.root, shown)
    options = chosen.timesync_options if chosen is not None else settings.Settings().timesync_options
    phc, phc_path, phc_current = _phc(request, basics, store)
    facts = planners.BootFacts(request.root, path, shown, _current(path), options,
                               chosen.ipv6 if chosen is not None else None, network, hint,
                               store.last_boot(), problem, _chronyd_answers(),
                               phc=phc, phc_path=phc_path, phc_current=phc_current)
    return facts, start


def _phc(request: Request, basics: _Basics,
         store: history.Store) -> tuple[phc_policy.PhcBoot | None, Path | None, bytes | None]:
    """This launch's PTP hardware clock, decided from sysfs and the options apply recorded
    (configure/phc.py). Never fails the boot step: chronyd without the PHC still has Time Sync."""
    try:
        intent, _ = store.intent()
        options, warning = phc_policy.options_from(basics.chosen.phc if basics.chosen else "auto", intent)
        decision = phc_policy.decide(basics.sourcedir, options, phc_effects.discover(request.root))
        if warning:
            decision = replace(decision, warning=warning)
        path = configtree.write_path(request.root, decision.path)
    except (ChronyCtlError, OSError):
        return None, None, None
    current = _current(path)
    if current is None and os.path.lexists(path):
        current = b""  # not a regular file (a FIFO chronyd would block on): replaced or removed
    return decision, path, current


def _network(chosen: settings.Settings, settle: float) -> tuple[host.HostNetwork, host.InstanceHint | None, float]:
    network = host.read_network()
    start = time.monotonic()
    hint = metadata.instance_hint(network) if chosen.ipv6 == "auto" else None
    # An IPv6 address (router advertisement, DHCPv6) can come up a little after IPv4. Wait for it
    # only where instance metadata says EC2 assigned one: an IPv4-only launch boots without delay.
    coming = hint is not None and hint.ipv6_assigned and not hint.xen
    while coming and not network.has_global_ipv6 and time.monotonic() - start < settle:
        time.sleep(0.2)
        network = host.read_network()
    return network, hint, start


def _current(path: Path) -> bytes | None:
    try:
        return history.capture(path, str(path)).data
    except ChronyCtlError:
        return None  # not a regular file: replaced


def _chronyd_answers() -> bool:
    try:
        chrony_tools.tracking()
    except CommandFailed:
        return False
    return True
