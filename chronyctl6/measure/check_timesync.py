"""`check_timesync`: a drop-in for monitoring-plugins' check_ntp_time, measured the chronyctl6 way.

Same options with the same meanings (`-H -p -4 -6 -w -c -o -q -t -v -V -h`, long forms as
getopt_long reads them, abbreviations included), the same defaults (warning 60 s, critical
120 s on |offset|, timeout 10 s, of which half is spent measuring), the same threshold language
(chronyctl6.measure.ranges) and the same exit status for the same situation:

    replies, offset judged by -w/-c          OK / WARNING / CRITICAL (as ranges say)
    replies, none usable (kiss-of-death...)  CRITICAL, or UNKNOWN with -q ("Offset unknown")
    no reply at all (silent, port closed)    CRITICAL ("No response from NTP server"), -q or not
    bad arguments, unknown name, bad range   UNKNOWN

The measurement is chronyctl6's (chronyctl6.measure.exchange: nonce-checked replies, the
minimum-delay estimate, one deadline), so it refuses replies check_ntp_time takes (a stratum 16,
a zero reference time, a root distance over 3 s): those are "Offset unknown" here. Beyond
check_ntp_time: thresholds on the stratum (`-W/--swarn`, `-C/--scrit`, as check_ntp_peer names
them) and on the bound (`--bound-warning`, `--bound-critical`: max error = |offset| + path bound
(at most the minimum delay) + root distance, the most this clock can be off UTC), and their perfdata.

Parsed with the standard library's getopt (GNU mode: options after arguments, as glibc's
getopt_long); imports at start only what a measurement needs (no typer, no JSON, no psutil).
"""

from __future__ import annotations

import sys

from chronyctl6.measure import ranges
from chronyctl6.output import Status, exit_code
from chronyctl6.plain import Frozen

TYPE_CHECKING = False  # typing's, without importing typing (mypy reads it so): start-up time
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Final, NoReturn

    from chronyctl6.measure.exchange import Measurement, Sample

PROG = "check_timesync"
DEFAULT_TIMEOUT = 10  # check_ntp_time's DEFAULT_SOCKET_TIMEOUT
DEFAULT_PORT = "123"
DEFAULT_WARNING = "60"
DEFAULT_CRITICAL = "120"
# The one status vocabulary and its exit codes (chronyctl6.output; `check`'s family: Nagios').
OK, WARNING, CRITICAL, UNKNOWN = Status.OK, Status.WARNING, Status.CRITICAL, Status.UNKNOWN
_BY_SEVERITY = (OK, WARNING, CRITICAL)  # what ranges.status' 0, 1, 2 mean
SHORT = "Vhv46qw:c:t:H:p:o:W:C:"
LONG = ["version", "help", "verbose", "use-ipv4", "use-ipv6", "quiet", "warning=", "critical=",
        "timeout=", "hostname=", "port=", "time-offset=", "time_offset=", "swarn=", "scrit=",
        "bound-warning=", "bound-critical="]
USAGE = (f"Usage:\n {PROG} -H <host> [-4|-6] [-p <port>] [-w <warn>] [-c <crit>] [-W <warn>] "
         "[-C <crit>]\n  [--bound-warning <warn>] [--bound-critical <crit>] [-o <time offset>] "
         "[-t <timeout>] [-q] [-v]")


class Options(Frozen):
    __slots__ = ("bound_critical", "bound_warning", "critical", "family", "host", "port", "quiet",
                 "stratum_critical", "stratum_warning", "time_offset", "timeout", "verbose", "warning")
    host: Final[str]
    port: Final[str]
    family: Final[int]  # socket.AF_UNSPEC (0); AF_INET with -4, AF_INET6 with -6
    warning: Final[ranges.Range | None]
    critical: Final[ranges.Range | None]
    stratum_warning: Final[ranges.Range | None]
    stratum_critical: Final[ranges.Range | None]
    bound_warning: Final[ranges.Range | None]
    bound_critical: Final[ranges.Range | None]
    time_offset: Final[int]
    timeout: Final[int]
    quiet: Final[bool]
    verbose: Final[int]

    def __init__(self, host: str, port: str = DEFAULT_PORT, family: int = 0, *,
                 warning: ranges.Range | None = None, critical: ranges.Range | None = None,
                 stratum_warning: ranges.Range | None = None, stratum_critical: ranges.Range | None = None,
                 bound_warning: ranges.Range | None = None, bound_critical: ranges.Range | None = None,
                 time_offset: int = 0, timeout: int = DEFAULT_TIMEOUT, quiet: bool = False,
                 verbose: int = 0) -> None:
        self.host = host
        self.port = port
        self.family = family
        self.warning = warning
        self.critical = critical
        self.stratum_warning = stratum_warning
        self.stratum_critical = stratum_critical
        self.bound_warning = bound_warning
        self.bound_critical = bound_critical
        self.time_offset = time_offset
        self.timeout = timeout
        self.quiet = quiet
        self.verbose = verbose


class Stop(Exception):
    """Print `text` (stdout, or stderr too for `error`) and exit with `code`."""

    def __init__(self, status: Status, text: str, error: str | None = None) -> None:
        super().__init__(text)
        self.status, self.text, self.error = status, text, error


def atoi(text: str) -> int:
    """C's atoi, as check_ntp_time reads -t and -o: the leading integer, else 0."""
    import re

    match = re.match(r"\s*([+-]?\d+)", text)
    return int(match.group(1)) if match else 0


def _range(text: str) -> ranges.Range:
    try:
        return ranges.parse(text)
    except ranges.RangeError:
        raise Stop(UNKNOWN, "Range format incorrect") from None


def parse_args(argv: Sequence[str]) -> Options:
    """check_ntp_time's process_arguments, with the stratum and bound thresholds added."""
    import getopt
    import socket

    from chronyctl6.text import shown

    if not argv:
        raise Stop(UNKNOWN, USAGE)
    try:
        pairs, _rest = getopt.gnu_getopt(list(argv), SHORT, LONG)
    except getopt.GetoptError as exc:
        raise Stop(UNKNOWN, USAGE, f"{PROG}: {shown(exc.msg)}") from None
    found: dict[str, str] = {}
    verbose, quiet, family = 0, False, 0
    for opt, value in pairs:
        # monitoring-plugins 2.3 exits UNKNOWN after help and version too.
        if opt in ("-h", "--help"):
            raise Stop(UNKNOWN, help_text())
        if opt in ("-V", "--version"):
            from chronyctl6 import __version__

            raise Stop(UNKNOWN, f"{PROG} v{__version__} (chronyctl6 {__version__})")
        if opt in ("-v", "--verbose"):
            verbose += 1
        elif opt in ("-q", "--quiet"):
            quiet = True
        elif opt in ("-4", "--use-ipv4"):
            family = socket.AF_INET
        elif opt in ("-6", "--use-ipv6"):
            family = socket.AF_INET6
        else:
            found[_NAMES.get(opt, opt.lstrip("-"))] = value  # the last one wins, as in C
    host = found.get("hostname")
    if host is None:
        raise Stop(UNKNOWN, f"{PROG}: Hostname was not supplied\n{USAGE}")
    from chronyctl6.measure.exchange import NtpError, check_server

    try:
        check_server(host)
    except NtpError:
        raise Stop(UNKNOWN, f"{PROG}: Invalid hostname/address - {shown(host, 64)}\n{USAGE}") from None
    thresholds = {key: _range(found[key]) for key in ("swarn", "scrit", "bound-warning", "bound-critical")
                  if key in found}
    return Options(
        host=host, port=found.get("port", DEFAULT_PORT), family=family,
        warning=_range(found.get("warning", DEFAULT_WARNING)),
        critical=_range(found.get("critical", DEFAULT_CRITICAL)),
        stratum_warning=thresholds.get("swarn"), stratum_critical=thresholds.get("scrit"),
        bound_warning=thresholds.get("bound-warning"), bound_critical=thresholds.get("bound-critical"),
        time_offset=atoi(found.get("time-offset", found.get("time_offset", "0"))),
        timeout=atoi(found.get("timeout", str(DEFAULT_TIMEOUT))), quiet=quiet, verbose=verbose)


_NAMES = {"-w": "warning", "-c": "critical", "-t": "timeout", "-H": "hostname", "-p": "port",
          "-o": "time-offset", "--time_offset": "time-offset", "-W": "swarn", "-C": "scrit"}


def help_text() -> str:
    from chronyctl6 import __version__

    return f"""{PROG} v{__version__} (chronyctl6 {__version__})
A drop-in for check_ntp_time: this clock's offset against an NTP server (Amazon Time Sync),
measured with nonce-checked requests; plus stratum and error-bound thresholds.

{USAGE}

Options:
 -h, --help             Print this help
 -V, --version          Print version information
 -4, --use-ipv4         Use IPv4 connection
 -6, --use-ipv6         Use IPv6 connection
 -H, --hostname=ADDRESS Host name or IP address (Time Sync: fd00:ec2::123 or 169.254.169.123)
 -p, --port=INTEGER     Port number (default: 123)
 -q, --quiet            Returns UNKNOWN instead of CRITICAL if offset cannot be found
 -w, --warning=THRESHOLD   Offset to result in warning status (seconds; default {DEFAULT_WARNING})
 -c, --critical=THRESHOLD  Offset to result in critical status (seconds; default {DEFAULT_CRITICAL})
 -W, --swarn=THRESHOLD     Stratum to result in warning status
 -C, --scrit=THRESHOLD     Stratum to result in critical status
     --bound-warning=THRESHOLD   Max error (|offset| + path bound + root distance, s) to
     --bound-critical=THRESHOLD  result in warning / critical status
 -o, --time-offset=INTEGER Expected offset of the ntp server relative to local server (seconds),
                        added to the measured offset as check_ntp_time does
 -t, --timeout=INTEGER  Seconds before the plugin gives up (default: {DEFAULT_TIMEOUT}); it measures
                        for half of it at most
 -v, --verbose          Show details for command-line debugging

THRESHOLD is a Nagios range, [@]start:end: 10 alerts outside 0..10, 10: below 10, ~:10 above 10,
@10:20 inside 10..20 (https://www.monitoring-plugins.org/doc/guidelines.html#THRESHOLDFORMAT).
The offset (after -o) is judged by its absolute value, as check_ntp_time does.

{_exit_paragraph()}"""


# What each status means here (the codes are the one table's, chronyctl6.errors: `check`'s family):
# the help's Exit paragraph and check_timesync(1)'s EXIT STATUS.
EXIT_MEANINGS = (
    (OK, "OK"),
    (WARNING, "WARNING"),
    (CRITICAL, "CRITICAL (also: no response at all; no usable reply unless -q)"),
    (UNKNOWN, "UNKNOWN (bad arguments, an unknown host name, a bad range; -h and -V, as monitoring-plugins 2.3)"),
)


def _exit_paragraph() -> str:
    import textwrap

    said = ", ".join(f"{exit_code('check', status)} {meaning}" for status, meaning in EXIT_MEANINGS)
    return textwrap.fill(f"Exit: {said}.", width=100, break_on_hyphens=False)


def _answered(m: Measurement) -> bool:
    """The server sent anything at all from its address (a reply we refused included): ICMP
    errors and packets from elsewhere are no response, as on check_ntp_time's connected socket."""
    from chronyctl6.measure.exchange import Reject

    silent = {Reject.UNREACHABLE, Reject.WRONG_SOURCE}
    return bool(m.samples) or any(n for reason, n in m.rejected.items() if reason not in silent)


class Verdict(Frozen):
    __slots__ = ("details", "line", "status")
    status: Final[Status]
    line: Final[str]
    details: Final[list[str]]

    def __init__(self, status: Status, line: str, details: list[str]) -> None:
        self.status = status
        self.line = line
        self.details = details


def judge(measurements: list[Measurement], o: Options) -> Verdict:
    """The exit status and the plugin line for one measurement (pure)."""
    from chronyctl6.text import shown

    details = [_describe(m) for m in measurements]
    if not any(_answered(m) for m in measurements):
        return Verdict(CRITICAL, "NTP CRITICAL: No response from NTP server", details)
    usable = [(m, m.best) for m in measurements if m.best is not None]
    if not usable:
        status = UNKNOWN if o.quiet else CRITICAL
        return Verdict(status, f"NTP {status.name}: Offset unknown|", details)
    chosen, best = min(usable, key=lambda pair: pair[1].error_bound)
    offset = best.offset + o.time_offset
    status = _BY_SEVERITY[max(ranges.status(abs(offset), o.warning, o.critical),
                              ranges.status(best.stratum, o.stratum_warning, o.stratum_critical),
                              ranges.status(best.max_error, o.bound_warning, o.bound_critical))]
    line = f"NTP {status.name}: Offset {offset:.10g} secs"
    extra = _beyond_offset(best, o)
    if extra:
        line += ", " + extra
    perf = [
        ranges.fperfdata("offset", offset, "s", o.warning, o.critical),
        ranges.fperfdata("max_error", best.max_error, "s", o.bound_warning, o.bound_critical, 0.0),
        ranges.fperfdata("stratum", best.stratum, "", o.stratum_warning, o.stratum_critical, 0, 16),
        ranges.fperfdata("delay", best.delay, "s", minimum=0.0),
    ]
    details.insert(0, f"selected {chosen.target.address} port {chosen.target.port}")
    return Verdict(status, shown(line).replace("|", "/") + "|" + " ".join(perf), details)


def _beyond_offset(best: Sample, o: Options) -> str:
    """The thresholds check_ntp_time lacks, in words, when they were given."""
    parts = []
    if o.stratum_warning or o.stratum_critical:
        parts.append(f"stratum {best.stratum}")
    if o.bound_warning or o.bound_critical:
        parts.append(f"max error {best.max_error:.10g} secs")
    return ", ".join(parts)


def _describe(m: Measurement) -> str:
    from chronyctl6.text import shown

    why = ", ".join(f"{reason} x{n}" for reason, n in sorted(m.rejected.items()))
    best = m.best
    said = (f"offset {best.offset:.10g} delay {best.delay:.10g} stratum {best.stratum}"
            if best else (m.error or "no valid reply"))
    return shown(f"{m.target.address} port {m.target.port}: {m.sent} sent, {len(m.samples)} valid"
                    + (f", rejected {why}" if why else "") + f"; {said}")


def measure(o: Options) -> list[Measurement]:
    """Resolve (as check_ntp_time: a bad name or a family it lacks is UNKNOWN) and measure
    every address for half the timeout at most."""
    import socket

    from chronyctl6.measure import exchange
    from chronyctl6.text import shown

    try:
        port = int(o.port) if o.port.isdigit() else socket.getservbyname(o.port, "udp")
        if not 0 < port < 65536:
            raise OSError("Servname not supported for ai_socktype")
        targets = exchange.resolve(o.host, port)
    except (OSError, exchange.NtpError) as exc:
        why = exc.message if isinstance(exc, exchange.NtpError) else str(exc)
        raise Stop(UNKNOWN, f"error getting address for {shown(o.host, 64)}: {shown(why)}") from None
    if o.family:
        targets = [t for t in targets if t.family == o.family]
        if not targets:
            raise Stop(UNKNOWN, f"error getting address for {shown(o.host, 64)}: "
                                "Address family for hostname not supported")
    # check_ntp_time stops measuring at timeout/2 (whole seconds, at least within the second).
    deadline = max(o.timeout, 1) / 2
    return exchange.measure(targets, samples=exchange.DEFAULT_SAMPLES, timeout=deadline)


def run(argv: Sequence[str]) -> tuple[int, str, str | None]:
    """(exit status, stdout, stderr) for these arguments; never raises for expected failures."""
    import signal

    try:
        options = parse_args(argv)
        _arm_alarm(options.timeout)
        verdict = judge(measure(options), options)
    except Stop as stop:
        return exit_code("check", stop.status), stop.text, stop.error
    finally:
        signal.alarm(0)  # any thread may cancel it
    details = verdict.details if options.verbose else []
    return exit_code("check", verdict.status), "\n".join([*details, verdict.line]), None


def _arm_alarm(timeout: int) -> None:
    """check_ntp_time's backstop: whatever hangs (a name lookup), the plugin ends at the timeout
    with CRITICAL, as its socket_timeout_alarm_handler does."""
    import signal

    def expired(_signum: int, _frame: object) -> NoReturn:
        sys.stdout.write(f"CRITICAL - Socket timeout after {timeout} seconds\n")
        sys.stdout.flush()
        raise SystemExit(exit_code("check", CRITICAL))

    if timeout > 0:
        try:
            signal.signal(signal.SIGALRM, expired)
        except ValueError:  # not the main thread (run() called in process): no backstop there
            return
        signal.alarm(timeout)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    code, out, err = run(sys.argv[1:] if argv is None else argv)
    if err:
        sys.stderr.write(err + "\n")
    sys.stdout.write(out + "\n")
    sys.stdout.flush()
    raise SystemExit(code)


if __name__ == "__main__":
    main()
