"""Which Time Sync endpoint this host uses: the one resolver that check, boot and status share.

Pure: it judges what the caller read. Two readings, in this order of trust:
- chronyd's own view (`chronyc -c -n sources`: the names of the sources it runs, selected or
  not), which already holds everything chronyd read, /run's boot file included, and nothing it
  did not read;
- the configuration chronyd reads, as chronyconf.traversal walks it (main file, include,
  confdir, then sourcedir files, in chronyd's order): its first server or pool line naming a
  Time Sync endpoint.
A stale file in a directory chronyd no longer reads (after `apply --fixed --ipv6 off`, the boot
step's /run/chronyctl6/timesync.sources) is in neither reading, so it cannot sway the answer.
"""

from __future__ import annotations

from collections.abc import Iterable

from chronyctl6.chronyconf.sources import TIMESYNC_IPV6, timesync_address

# The main configuration file of every platform chronyctl6 knows (configure.platforms'
# config_path; a test holds the two together), in the order a reader without the platform
# tries them: Debian and Ubuntu keep it in /etc/chrony/, the others in /etc/.
MAIN_CONFIGS = ("/etc/chrony/chrony.conf", "/etc/chrony.conf")
# Where nothing names an endpoint: the one chronyctl6 configures by default.
FALLBACK = TIMESYNC_IPV6
_CONFIGURED_KEYWORDS = frozenset({"server", "pool"})  # a peer is no source of time to check


def from_chronyd(sources: Iterable[tuple[str, bool]]) -> str | None:
    """The Time Sync endpoint among chronyd's sources (name or address, selected?): the selected
    one if chronyd selected a Time Sync source, else the first Time Sync source it lists."""
    found = [(address, selected) for name, selected in sources
             if (address := timesync_address(name)) is not None]
    chosen = next((address for address, selected in found if selected), None)
    return chosen or (found[0][0] if found else None)


def from_config(directives: Iterable[tuple[str, tuple[str, ...]]]) -> str | None:
    """The first Time Sync endpoint a server or pool line names, of (keyword, words) in the
    order chronyd reads them (ConfigTree.directives)."""
    for keyword, args in directives:
        if keyword in _CONFIGURED_KEYWORDS and args:
            address = timesync_address(args[0])
            if address is not None:
                return address
    return None


def timesync_endpoint(chronyd: Iterable[tuple[str, bool]] | None,
                      configured: Iterable[tuple[str, tuple[str, ...]]] | None) -> tuple[str, str]:
    """The endpoint to check, and where it came from (for people): chronyd's view, else the
    configuration chronyd reads, else the default endpoint."""
    if chronyd is not None and (address := from_chronyd(chronyd)) is not None:
        return address, "chronyd's sources"
    if configured is not None and (address := from_config(configured)) is not None:
        return address, "chrony's configuration"
    return FALLBACK, "the default: no Time Sync source is configured"
