"""What `check` reads from the world, for the pure verdict (chronyctl6.measure.check): the server
to ask, the NTP burst (chronyctl6.measure.exchange), chronyd's tracking and sources (chronyc),
and, on IPv6 failures only, the host's addresses.

Imports are made where used: `check` runs every minute, and start-up is most of its time.
"""

from __future__ import annotations

import os

from chronyctl6.measure import check as chk
from chronyctl6.measure import exchange

TYPE_CHECKING = False  # typing's, without importing typing (mypy reads it so)
if TYPE_CHECKING:
    from pathlib import Path

    from chronyctl6.effects.chronyc import Source, Tracking
    from chronyctl6.measure import clockbound, synced


def chronyd_view(socket: str | None = None, timeout: float = 2.0
                 ) -> tuple[Tracking | None, tuple[Source, ...], str | None]:
    """chronyd's tracking and sources, or why there are none. Never fails the check: a chronyd
    that answers tracking but not sources still gives its tracking."""
    from chronyctl6.effects import chronyc
    from chronyctl6.errors import ChronyCtlError
    from chronyctl6.text import shown

    try:
        done = chronyc.chronyc("tracking", timeout=timeout, socket=socket)
    except ChronyCtlError as exc:  # chronyc missing or hung
        return None, (), exc.message
    if not done.ok:
        return None, (), f"chronyd is not answering ({shown(done.brief())})"
    try:
        tracking = chronyc.parse_tracking(done.stdout)
    except ChronyCtlError as exc:
        return None, (), exc.message
    try:
        listed = chronyc.chronyc("sources", timeout=timeout, socket=socket)
        sources = tuple(chronyc.parse_sources(listed.stdout)) if listed.ok else ()
    except ChronyCtlError:
        sources = ()
    return tracking, sources, None


def configured(root: str = "/") -> list[tuple[str, tuple[str, ...]]] | None:
    """The directives chronyd reads at root, in its order (chronyconf.traversal, the one walk
    of main file, include, confdir and sourcedir files; every file through the bounded reader,
    so a FIFO or a device where a file should be is refused, never waited on); None when no
    platform's main file is there."""
    from pathlib import Path

    from chronyctl6.chronyconf import servers
    from chronyctl6.effects import configtree
    from chronyctl6.errors import ChronyCtlError

    for main in servers.MAIN_CONFIGS:
        if os.path.lexists(os.path.join(root, main.lstrip("/"))):
            try:
                tree = configtree.load(main, Path(root))
            except (ChronyCtlError, OSError):  # no reading of the files may fail the check
                return None
            return [(d.directive.keyword, d.directive.args) for d in tree.directives]
    return None


def default_server(root: str = "/", chronyd_sources: tuple[Source, ...] = ()) -> tuple[str, str]:
    """The Time Sync endpoint this host uses (chronyconf.servers, the one resolver), and
    where that came from: chronyd's own sources when it answered, else its configuration."""
    from chronyctl6.chronyconf import servers

    view = [(s.name, s.selected) for s in chronyd_sources] if chronyd_sources else None
    found = servers.from_chronyd(view) if view else None
    if found is not None:
        return found, "chronyd's sources"
    return servers.timesync_endpoint(None, configured(root))


def synchronised_record(path: str | None = None) -> tuple[synced.Synchronised | None, str | None]:
    """The seconds from boot to synchronisation `chronyctl6 wait` kept this boot, or None; and
    a note when a record is there but ignored. Only a small regular file owned by root (or by
    whoever runs this) is read: a link, a FIFO, a stranger's file or garbage is noted, never
    trusted; none at all (wait has not run, or not yet found the clock synchronised) is None, None."""
    import stat
    from pathlib import Path

    from chronyctl6.effects import files
    from chronyctl6.measure import synced  # with JSON: only when chronyd is asked

    where = path or synced.RECORD
    try:
        st = os.lstat(where)
    except (FileNotFoundError, NotADirectoryError):
        return None, None
    except OSError as exc:
        return None, f"{where}: cannot read it ({exc.strerror}): ignored"
    if stat.S_ISLNK(st.st_mode):
        return None, f"{where} is a symbolic link: ignored"
    if st.st_uid not in (0, os.geteuid()):
        return None, f"{where} belongs to uid {st.st_uid}, not root: ignored"
    try:
        data = files.read_bounded(Path(where), limit=synced.MAX_BYTES, follow=False)
    except files.Unreadable as exc:
        return None, f"{exc.message}: ignored"
    if data is None:
        return None, None
    record, why = synced.parse(data)
    return record, None if record is not None else f"{where}: {why}: ignored"


def has_global_ipv6() -> bool:
    """Asked only for a hint after IPv6 failed; a host whose addresses cannot be read (psutil's
    ioctls refused: a sandbox, a simulator) counts as having one, so no hint claims otherwise
    and the measurement's own verdict stands."""
    from chronyctl6.effects.host import read_network  # psutil: only on an IPv6 failure

    try:
        return read_network().has_global_ipv6
    except OSError:
        return True


def run(
    servers: list[str] | None,
    *,
    port: int = exchange.NTP_PORT,
    samples: int = exchange.DEFAULT_SAMPLES,
    timeout: float = chk.DEFAULT_TIMEOUT,
    thresholds: chk.Thresholds | None = None,
    ask_chronyd: bool = True,
    chronyd_socket: str | None = None,
    root: str = "/",
) -> chk.CheckResult:
    """Gather, then judge. No --server: the endpoint chronyd uses (default_server)."""
    thresholds = thresholds or chk.Thresholds()
    if not 1 <= samples <= exchange.MAX_SAMPLES:
        raise chk.CheckUsageError(
            f"--samples {samples}: use 1 to {exchange.MAX_SAMPLES}",
            hint="Time Sync, like chronyd, rate-limits a client to a burst of 8",
        )
    if not 0 < timeout <= 60:
        raise chk.CheckUsageError(f"--timeout {timeout:g}: use more than 0 and at most 60 seconds")
    import time

    read_at = time.monotonic()
    tracking, sources, problem = chronyd_view(chronyd_socket) if ask_chronyd else (None, (), None)
    server_from = "--server"
    if not servers:
        chosen, server_from = default_server(root, sources)
        servers = [chosen]
    targets: list[exchange.Target] = []
    unresolved: list[exchange.Measurement] = []
    for server in servers:
        try:
            targets += exchange.resolve(server, port)
        except exchange.NtpError as exc:  # one bad name must not hide the other servers' answers
            # Kept in its printable form: it goes into text, metrics labels and Nagios lines.
            unresolved.append(exchange.unresolved(exchange.shown(server, 64), port, exc.message))
    measurements = exchange.measure(targets, samples=samples, timeout=timeout) + unresolved
    hint = chk.ipv6_route_hint(measurements, has_global_ipv6)
    if hint is None and unresolved and not any(m.best for m in measurements):
        hint = "give an IP address: --server fd00:ec2::123 (or --server 169.254.169.123)"
    bound = chronyd_clockbound(tracking, read_at) if tracking is not None else None
    result = chk.evaluate(measurements, thresholds, tracking, problem, hint, sources, bound)
    result.server_from = server_from
    if ask_chronyd:  # --no-chronyd: nothing of chronyd's, this boot's synchronisation included
        result.synchronised, note = synchronised_record()
        result.notes += [note] if note else []
    return result


def chronyd_clockbound(tracking: Tracking, read_at: float, config_path: str | None = None,
                       root: Path | None = None) -> clockbound.Bound:
    """chronyd's bound against UTC as ClockBound computes it (measure/clockbound.py, pure): the
    maxclockerror in force in the configuration chronyd reads and, with the ENA PHC as the
    reference, its sysfs error bound (effects/bound_facts.py); tracking read at monotonic
    `read_at`, so the bound grows by maxclockerror from then to now. config_path/root: the
    configuration chronyd loaded, where the caller knows it (status), else the default one."""
    import time
    from pathlib import Path

    from chronyctl6.effects import bound_facts

    facts = bound_facts.gather(tracking.ref_id, tracking.ref_name, config_path, root or Path("/"))
    return bound_from_tracking(tracking, maxclockerror_ppm=facts.maxclockerror_ppm, now=time.time(),
                               age=time.monotonic() - read_at, phc_reference=facts.phc_reference,
                               phc_error_bound=facts.phc_error_bound)


def bound_from_tracking(tracking: Tracking, *, maxclockerror_ppm: float, now: float, age: float,
                        phc_reference: bool = False, phc_error_bound: float | None = None) -> clockbound.Bound:
    """The pure core of chronyd_clockbound, the one place a tracking reading becomes ClockBound's
    bound (status, check's chronyd section, wait, the clknetsim benchmark): `now` is the wall
    clock (against tracking's reference time: the time since chronyd's last update), `age` the
    seconds from the reading to now."""
    from chronyctl6.measure import clockbound

    return clockbound.compute(
        system_offset=tracking.system_offset, root_delay=tracking.root_delay,
        root_dispersion=tracking.root_dispersion, synchronised=tracking.synchronised,
        maxclockerror_ppm=maxclockerror_ppm,
        since_update=now - tracking.ref_time if tracking.ref_time > 0 else None,
        age=age, phc_reference=phc_reference, phc_error_bound=phc_error_bound)
