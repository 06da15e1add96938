"""The baked-image boot step: pick this launch's Time Sync endpoint before chronyd starts.

An AMI is baked once and launched into dual-stack and IPv4-only subnets. Its chrony.conf says
`sourcedir /run/chronyctl6`; on every boot chronyctl6-boot.service runs `chronyctl6 boot`, which
writes /run/chronyctl6/timesync.sources with the one endpoint this launch can reach. /run is
empty at every boot, so no choice survives into the next launch.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from chronyctl6.chronyconf import directives
from chronyctl6.configure import phc as phc_policy
from chronyctl6.configure import render, settings
from chronyctl6.configure.plan import FileChange, Request, is_root, load_platform, load_settings
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


def boot(request: Request, *, settle: float = 10.0) -> BootResult:
    """Never leaves chronyd without a source: whatever fails (settings.toml, os-release, instance
    metadata, the network), it writes the last endpoint a boot chose, else the IPv4 one, says why
    in `warnings` and succeeds. Only not being root and a file that cannot be written fail."""
    if not is_root():
        raise NotPermitted("boot writes under /run and needs root", hint="it runs from chronyctl6-boot.service")
    start = time.monotonic()
    store = history.Store(request.root)
    warnings: list[str] = []
    options = settings.Settings().timesync_options
    sourcedir = BOOT_SOURCEDIR
    settings_path = str(request.settings_path or request.under_root(settings.SETTINGS_PATH))
    phc_mode = "auto"
    try:
        chosen = load_settings(request)
        options = chosen.timesync_options
        phc_mode = chosen.phc
        with contextlib.suppress(ChronyCtlError):  # an unknown distro: the default directory
            sourcedir = load_platform(request, chosen).runtime_sourcedir
        endpoint, start = _choose(chosen, settle)
    except Exception as exc:  # any failure: the fallback below, with the reason
        why = exc.message if isinstance(exc, ChronyCtlError) else repr(exc)
        if settings_path not in why:
            why = f"{why} (settings: {settings_path})"
        last = _last_good(store)
        endpoint = last or render.Endpoint(directives.TIMESYNC_IPV4, "fallback: every instance reaches IPv4")
        warnings.append(f"{why}; using {endpoint.address} ({'the last good choice' if last else 'fallback'})")
    shown = f"{sourcedir}/{render.BOOT_SOURCES_NAME}"
    change = FileChange(request.under_root(shown), shown, _current(request.under_root(shown)),
                        render.render_boot_sources(endpoint, options).encode(), "sources")
    reloaded = False
    if change.changed:
        change.path.parent.mkdir(parents=True, exist_ok=True)
        files.atomic_write(change.path, change.new)
        # Run by hand on a running instance: tell chronyd. At boot chronyd is not up yet.
        if _chronyd_answers():
            chrony_tools.reload_sources()
            reloaded = True
    fallback = bool(warnings)
    phc = _boot_phc(request, sourcedir, phc_mode, store, warnings)
    if not fallback:
        try:
            store.save_last_boot({"address": endpoint.address, "reason": endpoint.reason})
        except (ChronyCtlError, OSError) as exc:  # a read-only /var at boot costs nothing
            warnings.append(f"could not record this boot's choice: {getattr(exc, 'message', exc)}")
    return BootResult(endpoint.address, endpoint.reason, change.shown, change.changed, reloaded,
                      round(time.monotonic() - start, 3), warnings, fallback=fallback, phc=phc)


def _boot_phc(request: Request, runtime_dir: str, mode: str, store: history.Store,
              warnings: list[str]) -> dict[str, object] | None:
    """This launch's PTP hardware clock, decided from sysfs and the options apply recorded
    (configure/phc.py): phc.conf written where the launch has the clock, removed where it has
    not. Never fails the boot step: chronyd without the PHC still has Time Sync."""
    try:
        intent, _ = store.intent()
        options, warning = phc_policy.options_from(mode, intent)
        decision = phc_policy.decide(runtime_dir, options, phc_effects.discover(request.root))
        changed = _write_phc(configtree.write_path(request.root, decision.path), decision)
    except (ChronyCtlError, OSError) as exc:
        warnings.append(f"the PTP hardware clock was not set up: {getattr(exc, 'message', exc)}")
        return None
    if warning:
        warnings.append(warning)
    if changed and _chronyd_answers():  # run by hand: a confdir is read at start only
        warnings.append(f"{decision.path} changed while chronyd runs: restart chronyd to apply it "
                        "(`chronyc reload sources` does not read a confdir)")
    return {**decision.as_dict(), "changed": changed}


def _write_phc(path: Path, decision: phc_policy.PhcBoot) -> bool:
    current = _current(path)
    if current is None and os.path.lexists(path):
        current = b""  # not a regular file (a FIFO chronyd would block on): replaced or removed
    if decision.content is None:
        if current is not None:
            path.unlink()
        return current is not None
    new = decision.content.encode()
    if current == new:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    files.atomic_write(path, new)
    return True


def _choose(chosen: settings.Settings, settle: float) -> tuple[render.Endpoint, float]:
    network = host.read_network()
    start = time.monotonic()
    hint = metadata.instance_hint(network) if chosen.ipv6 == "auto" else None
    # An IPv6 address (router advertisement, DHCPv6) can come up a little after IPv4. Wait for it
    # only where instance metadata says EC2 assigned one: an IPv4-only launch boots without delay.
    coming = hint is not None and hint.ipv6_assigned and not hint.xen
    while coming and not network.has_global_ipv6 and time.monotonic() - start < settle:
        time.sleep(0.2)
        network = host.read_network()
    return render.choose_endpoint(chosen.ipv6, network, hint), start


def _last_good(store: history.Store) -> render.Endpoint | None:
    last = store.last_boot()
    address = last.get("address")
    if address in (directives.TIMESYNC_IPV4, directives.TIMESYNC_IPV6):
        return render.Endpoint(str(address), f"the last good choice ({last.get('reason', 'an earlier boot')})")
    return None


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
