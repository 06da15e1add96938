"""The baked-image boot step: pick this launch's Time Sync endpoint before chronyd starts.

An AMI is baked once and launched into dual-stack and IPv4-only subnets. Its chrony.conf says
`sourcedir /run/chronyctl6`; on every boot chronyctl6-boot.service runs `chronyctl6 boot`, which
writes /run/chronyctl6/timesync.sources with the one endpoint this launch can reach. /run is
empty at every boot, so no choice survives into the next launch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from chronyctl6.configure import render
from chronyctl6.configure.plan import Request, boot_sources_change, is_root, load_platform, load_settings
from chronyctl6.effects import chrony_tools, files, host, metadata
from chronyctl6.errors import CommandFailed, NotPermitted


@dataclass
class BootResult:
    endpoint: str
    reason: str
    path: str
    changed: bool
    reloaded: bool
    waited_for_ipv6: float

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def boot(request: Request, *, settle: float = 10.0) -> BootResult:
    if not is_root():
        raise NotPermitted("boot writes under /run and needs root", hint="it runs from chronyctl6-boot.service")
    chosen = load_settings(request)
    platform = load_platform(request, chosen)
    network = host.read_network()
    start = time.monotonic()
    hint = metadata.instance_hint(network) if chosen.ipv6 == "auto" else None
    # An IPv6 address (router advertisement, DHCPv6) can come up a little after IPv4. Wait for it
    # only where instance metadata says EC2 assigned one: an IPv4-only launch boots without delay.
    coming = hint is not None and hint.ipv6_assigned and not hint.xen
    while coming and not network.has_global_ipv6 and time.monotonic() - start < settle:
        time.sleep(0.2)
        network = host.read_network()
    endpoint = render.choose_endpoint(chosen.ipv6, network, hint)
    change = boot_sources_change(request, platform, endpoint, chosen.timesync_options)
    reloaded = False
    if change.changed:
        change.path.parent.mkdir(parents=True, exist_ok=True)
        files.atomic_write(change.path, change.new)
        # Run by hand on a running instance: tell chronyd. At boot chronyd is not up yet.
        if _chronyd_answers():
            chrony_tools.reload_sources()
            reloaded = True
    return BootResult(endpoint.address, endpoint.reason, change.shown, change.changed, reloaded,
                      round(time.monotonic() - start, 3))


def _chronyd_answers() -> bool:
    try:
        chrony_tools.tracking()
    except CommandFailed:
        return False
    return True
