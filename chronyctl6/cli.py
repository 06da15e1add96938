"""The command line: the only module that imports typer or prints.

Options are spelled `Optional[X]`, not `X | None`: Debian 12's typer 0.7.0 knows only the former.

Each command turns its options into a request, calls the core, renders the returned result
as text or JSON, and maps errors to exit statuses in one place (`_guard`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, List, NoReturn, Optional, TypeVar

import typer

from chronyctl6 import __version__
from chronyctl6.errors import ChronyCtlError, ExitStatus

app = typer.Typer(
    name="chronyctl6",
    help=(
        "Keep this EC2 instance's clock on the Amazon Time Sync Service over IPv6 "
        "(server fd00:ec2::123), and prove that it does."
    ),
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

T = TypeVar("T")
_debug = False


def _version(value: bool) -> None:
    if value:
        typer.echo(f"chronyctl6 {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of unexpected errors."),
) -> None:
    global _debug
    _debug = debug
    if debug:  # core modules log what they do (never a secret); --debug shows it on stderr
        import logging

        logging.basicConfig(level=logging.DEBUG, format="chronyctl6: debug: %(name)s: %(message)s")


def fail(error: ChronyCtlError) -> NoReturn:
    typer.echo(f"chronyctl6: error: {error.message}", err=True)
    if error.hint:
        typer.echo(f"chronyctl6: hint: {error.hint}", err=True)
    raise typer.Exit(int(error.status))


def _guard(call: Callable[[], T], *, json_errors: bool = False) -> T:
    """Known errors: one line and a hint. Unexpected ones say so; traceback only with --debug.
    With json_errors, a known error is also one JSON object on stdout, for fleet tooling."""
    try:
        return call()
    except ChronyCtlError as exc:
        if json_errors:
            emit_json({"ok": False, "error": exc.message, "hint": exc.hint, "exit_status": int(exc.status)})
        fail(exc)
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except Exception as exc:
        if _debug:
            raise
        typer.echo(f"chronyctl6: unexpected error: {exc!r} (run with --debug for a traceback)", err=True)
        raise typer.Exit(int(ExitStatus.FAILED)) from exc


def emit_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, sort_keys=True))


# ---- render / apply / boot -------------------------------------------------------------

_ROOT_HELP = ("Work on the image mounted at DIR (image builds): read DIR/etc/os-release, write under "
              "DIR, never restart anything, no root needed.")
_IPV6_HELP = ("Time Sync endpoint: on = fd00:ec2::123; off = 169.254.169.123; auto = IPv6 when this "
              "host has a global IPv6 address, else IPv4 (an IPv6-only host always gets IPv6). "
              "With --root, auto means: choose at every boot.")
_PHC_HELP = "ENA PTP hardware clock refclock: auto = when /dev/ptp_ena (or an ENA ptp device) exists."
_BOOT_HELP = ("Choose the endpoint at every boot (chronyctl6-boot.service writes "
              "/run/chronyctl6/timesync.sources) instead of fixing it in chrony.conf: for baked images.")
_OUTPUT_HELP = "Output format: text or json."
_DISTRO_HELP = "Override os-release detection: amzn2, amzn2023, rhel, debian, ubuntu, sles."
_SETTINGS_HELP = "Settings file (default DIR/etc/chronyctl6/settings.toml)."
_SM_HELP = ("How to restart chronyd: systemd, or direct (a plain process, for hosts without systemd). "
            "auto = systemd if it runs.")
_WAIT_HELP = ("Wait until chronyd selects a Time Sync source; if it does not in time, restore the previous "
              "configuration, restart chronyd on it and fail.")
_SETTLE_HELP = ("Where instance metadata says EC2 assigned an IPv6 address that is not up yet, wait up to this "
                "long for it before choosing IPv4.")


# The choices `render` and `apply` share, declared once (typer reads these as metadata only).
_ROOT_OPTION = typer.Option("/", "--root", metavar="DIR", help=_ROOT_HELP)
_DISTRO_OPTION = typer.Option(None, "--distro", metavar="NAME", help=_DISTRO_HELP)
_IPV6_OPTION = typer.Option(None, "--ipv6", metavar="auto|on|off", help=_IPV6_HELP)
_PHC_OPTION = typer.Option(None, "--phc", metavar="auto|on|off", help=_PHC_HELP)
_AT_BOOT_OPTION = typer.Option(None, "--at-boot/--fixed", help=_BOOT_HELP)
_SETTINGS_OPTION = typer.Option(None, "--settings", metavar="FILE", help=_SETTINGS_HELP)


def _request(root: str, distro: str | None, ipv6: str | None, phc: str | None,
             at_boot: bool | None, service_manager: str | None, settings: str | None) -> Any:
    from pathlib import Path

    from chronyctl6.configure.plan import Request

    return Request(root=Path(root), distro=distro, ipv6=ipv6, phc=phc, at_boot=at_boot,
                   service_manager=service_manager,
                   settings_path=Path(settings) if settings else None)


def _check_output(output: str) -> None:
    if output not in ("text", "json"):
        fail(ChronyCtlError(f"-o {output!r}: use text or json", hint=None))


@app.command()
def render(
    root: str = _ROOT_OPTION,
    distro: Optional[str] = _DISTRO_OPTION,
    ipv6: Optional[str] = _IPV6_OPTION,
    phc: Optional[str] = _PHC_OPTION,
    at_boot: Optional[bool] = _AT_BOOT_OPTION,
    settings: Optional[str] = _SETTINGS_OPTION,
) -> None:
    """Print the chrony.conf that `apply` would write. Reads only; needs no root.

    \b
    Examples:
      chronyctl6 render                           what apply would write here
      chronyctl6 render --root /mnt/image --distro debian --ipv6 on
    """
    from chronyctl6.configure.plan import make_plan

    plan = _guard(lambda: make_plan(_request(root, distro, ipv6, phc, at_boot, None, settings)))
    for line in plan.warnings:
        typer.echo(f"chronyctl6: warning: {line}", err=True)
    typer.echo(plan.config.new.decode(), nl=False)


@app.command()
def apply(
    root: str = _ROOT_OPTION,
    distro: Optional[str] = _DISTRO_OPTION,
    ipv6: Optional[str] = _IPV6_OPTION,
    phc: Optional[str] = _PHC_OPTION,
    at_boot: Optional[bool] = _AT_BOOT_OPTION,
    settings: Optional[str] = _SETTINGS_OPTION,
    service_manager: Optional[str] = typer.Option(None, "--service-manager", metavar="auto|systemd|direct",
                                               help=_SM_HELP),
    diff: bool = typer.Option(False, "--diff", help="Show the change as a unified diff."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Stop after planning: write nothing, restart nothing."),
    wait: Optional[float] = typer.Option(None, "--wait", metavar="SECONDS", min=0, max=3600, help=_WAIT_HELP),
    lock_timeout: float = typer.Option(10.0, "--lock-timeout", metavar="SECONDS", min=0,
                                       help="How long to wait for another apply to finish."),
    output: str = typer.Option("text", "-o", "--output", help=_OUTPUT_HELP),
) -> None:
    """Render, validate with chronyd, write atomically (with a backup), restart chronyd.

    Nothing changed: nothing written, nothing restarted. Only a .sources drop-in changed:
    `chronyc reload sources` instead of a restart. Exit 0 done (or nothing to do), 1 failed
    (nothing written, or rolled back), 2 bad input, 3 another apply holds the lock, 4 not root.

    \b
    Examples:
      sudo chronyctl6 apply --diff --wait 30      on a running instance
      sudo chronyctl6 apply --dry-run --diff      only show what would change
      chronyctl6 apply --root /mnt/image          bake an image (endpoint chosen at boot)
      sudo chronyctl6 apply -o json --wait 30     for SSM Run Command or Ansible
    """
    from chronyctl6.configure.apply import Options
    from chronyctl6.configure.apply import apply as run_apply
    from chronyctl6.configure.plan import load_settings

    _check_output(output)
    request = _request(root, distro, ipv6, phc, at_boot, service_manager, settings)
    chosen_wait = wait if wait is not None else _guard(lambda: load_settings(request)).wait
    result = _guard(lambda: run_apply(request, Options(dry_run=dry_run, wait=chosen_wait,
                                                       lock_timeout=lock_timeout)), json_errors=output == "json")
    if output == "json":
        emit_json(result.as_dict())
        return
    for line in result.warnings:
        typer.echo(f"chronyctl6: warning: {line}", err=True)
    for dropped in result.dropped:
        typer.echo(f"dropped: {dropped['line']}  ({dropped['reason']})")
    if diff and result.diff:
        typer.echo(result.diff, nl=False)
    if not result.changed:
        typer.echo(f"{result.path}: up to date, nothing to do")
    elif result.dry_run:
        typer.echo(f"{result.path}: would change (dry run, nothing written)")
    else:
        typer.echo(f"wrote {', '.join(result.files)}" + (f" (backup: {result.backup})" if result.backup else "")
                   + (f"; validated by {result.validated_by}" if result.validated_by
                      else " [not validated: chronyd is not installed]"))
        if result.action != "none":
            typer.echo(f"chronyd: {result.action}")
        if result.selected:
            typer.echo(f"chronyd selected {result.selected} after {result.waited_seconds:g} s")


@app.command()
def boot(
    settle: float = typer.Option(10.0, "--settle", metavar="SECONDS", min=0, max=120, help=_SETTLE_HELP),
    output: str = typer.Option("text", "-o", "--output", help=_OUTPUT_HELP),
) -> None:
    """The baked-image boot step: write /run/chronyctl6/timesync.sources with this launch's one
    Time Sync endpoint (IPv6 if the instance has an IPv6 address). Runs from
    chronyctl6-boot.service before chronyd; run by hand, it also reloads chronyd's sources."""
    from chronyctl6.configure.boot import boot as run_boot

    _check_output(output)
    result = _guard(lambda: run_boot(_request("/", None, None, None, None, None, None), settle=settle))
    if output == "json":
        emit_json(result.as_dict())
        return
    typer.echo(f"Time Sync endpoint for this boot: {result.endpoint} ({result.reason})")
    typer.echo(f"{result.path}: " + ("written" if result.changed else "already up to date")
               + ("; chronyd reloaded its sources" if result.reloaded else ""))

# ---- check --------------------------------------------------------------------------------

class _PluginCommand(typer.core.TyperCommand):
    """Bad arguments exit 3 (UNKNOWN), as the Nagios plugin API wants, not click's 2."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except Exception as exc:
            if getattr(exc, "exit_code", None) == 2:
                exc.exit_code = 3  # type: ignore[attr-defined]
            raise


_CHECK_OUTPUTS = ("text", "json", "nagios", "prometheus")
_SERVER_HELP = ("NTP server to ask; repeat to ask several at once (the one with the smallest "
                "distance to UTC decides). Default: the Time Sync endpoint chrony is configured with "
                "(the boot step's choice where there is one), else fd00:ec2::123; 169.254.169.123 is the "
                "IPv4 one.")
_SAMPLES_HELP = ("Requests per server, 1 to 8 (a burst Time Sync's rate limit allows); the "
                 "minimum-delay valid reply is the answer.")
_TEXTFILE_HELP = ("Also write the Prometheus metrics atomically to PATH (a .prom file in "
                  "node_exporter's textfile directory).")
_CHECK_OUTPUT_HELP = "text, json, nagios (one line with perfdata) or prometheus (text format)."


@app.command(cls=_PluginCommand)
def check(
    server: Optional[List[str]] = typer.Option(  # noqa: B008 (typer's classic style)
        None, "--server", "-s", metavar="ADDR", help=_SERVER_HELP),
    port: int = typer.Option(123, "--port", min=1, max=65535, help="The servers' UDP port."),
    samples: int = typer.Option(6, "--samples", metavar="N", help=_SAMPLES_HELP),
    timeout: float = typer.Option(2.0, "--timeout", metavar="SECONDS",
                                  help="Deadline for the whole measurement, whatever arrives."),
    warn: float = typer.Option(0.1, "--warn", metavar="SECONDS",
                               help="WARNING when |offset| + error bound reaches this."),
    crit: float = typer.Option(1.0, "--crit", metavar="SECONDS",
                               help="CRITICAL when |offset| + error bound reaches this."),
    output: str = typer.Option("text", "-o", "--output", help=_CHECK_OUTPUT_HELP),
    textfile: Optional[str] = typer.Option(None, "--textfile", metavar="PATH", help=_TEXTFILE_HELP),
    chronyd: bool = typer.Option(True, "--chronyd/--no-chronyd",
                                 help="Also ask chronyd (chronyc tracking) and compare."),
    chronyd_socket: Optional[str] = typer.Option(None, "--chronyd-socket", metavar="PATH",
                                              help="chronyd's command socket, if not the default."),
) -> None:
    """Measure this clock's offset against Time Sync directly, and what chronyd believes.

    The offset is positive when this clock is BEHIND the server (server time minus local
    time). Each request carries a random nonce; replies that do not echo it, or are not a
    synchronised server's (mode 4, stratum 1-15, leap not 3, non-zero timestamps, from the
    address and port asked), are refused and counted; a kiss-of-death (RATE, DENY, RSTR) stops
    the burst. When chronyd runs, its tracking is shown, and a disagreement beyond both error
    bounds (or chronyd not synchronised) is a WARNING.

    Exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (no valid reply, bad arguments).
    """
    from chronyctl6.measure import check as chk
    from chronyctl6.measure import report as fmt

    def measure() -> chk.CheckResult:
        if output not in _CHECK_OUTPUTS:
            raise chk.CheckUsageError(f"-o {output!r}: use {', '.join(_CHECK_OUTPUTS)}")
        if textfile is not None and not textfile.endswith(".prom"):
            raise chk.CheckUsageError(
                f"--textfile {textfile}: node_exporter reads only files ending in .prom"
            )
        thresholds = chk.Thresholds(warn, crit)
        return chk.run(server or [chk.default_server()], port=port, samples=samples,
                       timeout=timeout, thresholds=thresholds, ask_chronyd=chronyd,
                       chronyd_socket=chronyd_socket)

    try:
        result = measure()
    except ChronyCtlError as exc:
        if output == "nagios":
            typer.echo(f"NTP UNKNOWN: {exc.message}".replace("|", "/"))
        elif output == "json":
            emit_json({"status": "UNKNOWN", "exit_code": 3, "error": exc.message, "hint": exc.hint})
        typer.echo(f"chronyctl6: error: {exc.message}", err=True)
        if exc.hint:
            typer.echo(f"chronyctl6: hint: {exc.hint}", err=True)
        raise typer.Exit(int(chk.CheckStatus.UNKNOWN)) from None
    except Exception as exc:
        if _debug:
            raise
        typer.echo(f"chronyctl6: unexpected error: {exc!r} (run with --debug for a traceback)",
                   err=True)
        raise typer.Exit(int(chk.CheckStatus.UNKNOWN)) from exc
    if textfile is not None:
        from pathlib import Path

        from chronyctl6.effects.files import atomic_write

        try:
            atomic_write(Path(textfile), fmt.to_prometheus(result).encode())
        except ChronyCtlError as exc:
            typer.echo(f"chronyctl6: error: {exc.message}", err=True)
            raise typer.Exit(int(chk.CheckStatus.UNKNOWN)) from None
    if output == "json":
        emit_json(fmt.to_json(result))
    elif output == "nagios":
        typer.echo(fmt.to_nagios(result))
    elif output == "prometheus":
        typer.echo(fmt.to_prometheus(result), nl=False)
    else:
        typer.echo(fmt.to_text(result))
    raise typer.Exit(int(result.status))


# ---- doctor / status -------------------------------------------------------------------------

_MARK = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "skip": "SKIP"}


@app.command()
def doctor(
    imdsv1: bool = typer.Option(False, "--imdsv1",
                                help="Allow IMDSv1 (no token) when the IMDSv2 token request fails, where the "
                                     "instance allows it; also report whether it does."),
    output: str = typer.Option("text", "-o", "--output", help=_OUTPUT_HELP),
) -> None:
    """Find out why IPv6 time sync does not work here, and print the command that fixes each problem.

    Checks: on EC2, Nitro, IMDS over IPv6, an IPv6 address (locally and in IMDS), a route to
    fd00:ec2::123, Time Sync answering NTP over IPv6 and IPv4, chrony installed and running, the
    configuration it loaded (one Time Sync line, no smeared/non-smeared mix, leapsectz), an
    unused PTP hardware clock, other time daemons. Reads only; takes a few seconds at most.

    Exit 0 all passed, 1 a warning, 2 a failure.

    Example: chronyctl6 doctor -o json | jq '.checks[] | select(.status != "pass")'
    """
    from chronyctl6.diagnose import doctor as doc

    _check_output(output)
    report = _guard(lambda: doc.doctor(doc.Options(imdsv1=imdsv1)))
    if output == "json":
        emit_json(report.as_dict())
        raise typer.Exit(report.status)
    width = max(len(c.id) for c in report.checks)
    for c in report.checks:
        typer.echo(f"{_MARK[str(c.status)]}  {c.id:<{width}}  {c.evidence}")
        if c.fix:
            typer.echo(f"{'':6}{'':<{width}}  fix: {c.fix}")
    counts = {s: sum(1 for c in report.checks if str(c.status) == s) for s in _MARK}
    typer.echo(f"{len(report.checks)} checks: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
               + f" ({report.seconds['total']:.1f} s)")
    raise typer.Exit(report.status)


@app.command()
def status(
    output: str = typer.Option("text", "-o", "--output", help=_OUTPUT_HELP),
    chronyd_socket: Optional[str] = typer.Option(None, "--chronyd-socket", metavar="PATH",
                                                 help="chronyd's command socket, if not the default."),
) -> None:
    """chronyd at a glance: process, configuration (and drift from what chronyctl6 would render),
    sources with reachability, tracking, conflicting daemons. Exit 0 chronyd runs, 1 it does not.

    Example: chronyctl6 status -o json
    """
    from chronyctl6.diagnose import status as st

    _check_output(output)
    report = _guard(lambda: st.status(chronyc_socket=chronyd_socket))
    if output == "json":
        emit_json(report.as_dict())
        raise typer.Exit(report.exit_status)
    if not report.chronyd:
        typer.echo("chronyd: not running")
    for p in report.chronyd:
        typer.echo(f"chronyd: pid {p.pid}, user {p.user}, up {_duration(p.uptime)}")
    typer.echo(f"config: {report.config_path or '?'} ({report.config_from}); {report.drift.state}: "
               f"{report.drift.detail}")
    if report.sources:
        typer.echo("sources:")
        for s in report.sources:
            typer.echo(f"  {s.mode}{s.state} {s.name:<40} stratum {s.stratum:>2}  reach {s.reach:03o} "
                       f"({s.reachability_ratio:.0%})  offset {s.adjusted_offset:+.6f} s +/- {s.error:.6f} s"
                       + ("  <- selected" if s.selected else ""))
    t = report.tracking
    if t is not None:
        typer.echo(f"tracking: {t.ref_name or t.ref_id} stratum {t.stratum}, offset {t.system_offset:+.9f} s, "
                   f"frequency {t.frequency_ppm:+.3f} ppm, skew {t.skew_ppm:.3f} ppm, root distance "
                   f"{t.root_distance:.6f} s, leap {t.leap_status}")
    for line in report.errors:
        typer.echo(f"chronyctl6: error: {line}", err=True)
    for line in report.warnings:
        typer.echo(f"chronyctl6: warning: {line}", err=True)
    if not report.others:
        typer.echo("conflicting daemons: none")
    raise typer.Exit(report.exit_status)


def _duration(seconds: float) -> str:
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    return (f"{days}d " if days else "") + f"{hours:02d}:{minutes:02d}:{s:02d}"


def main() -> None:
    app(prog_name="chronyctl6")


if __name__ == "__main__":
    main()
