"""The command line: the only module that imports typer or prints.

Options are spelled `Optional[X]`, not `X | None`: Debian 12's typer 0.7.0 knows only the former.
Choices are `str` Enums (click Choices in typer 0.7.0 and current typer alike), so help lists them
and shell completion offers them.

Each command turns its options into a request, calls the core, and hands the result to `_Run`,
which renders it (text, or chronyctl6.output's one JSON envelope) and maps errors to exit statuses
(chronyctl6.errors is the one table; each command's --help lists its exit statuses from it).
Usage errors go the same way (`_Command`): with `-o json` they are an envelope on stdout too,
with `check -o nagios` an UNKNOWN line.
`check` is the exception that shares its body: chronyctl6.measure.command.run, which its fast path
(no typer) calls too, returns what to print, the envelope included; this module only prints it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from enum import Enum
from typing import Any, List, NoReturn, Optional, TypeVar

import typer

from chronyctl6 import __version__, defaults
from chronyctl6 import output as out
from chronyctl6.errors import ChronyCtlError, monitoring_status
from chronyctl6.text import shown, shown_lines

CONTEXT = {"help_option_names": ["-h", "--help"]}

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
    context_settings=CONTEXT,
)

T = TypeVar("T")
_debug = False


class Output(str, Enum):
    TEXT = "text"
    JSON = "json"


class CheckOutput(str, Enum):
    TEXT = "text"
    JSON = "json"
    NAGIOS = "nagios"
    PROMETHEUS = "prometheus"


class Mode(str, Enum):
    AUTO = "auto"
    ON = "on"
    OFF = "off"


class ServiceManager(str, Enum):
    AUTO = "auto"
    SYSTEMD = "systemd"
    DIRECT = "direct"


class Distro(str, Enum):
    """configure.platforms.BY_NAME's keys (a test keeps them equal)."""

    AMZN2 = "amzn2"
    AMZN2023 = "amzn2023"
    RHEL = "rhel"
    DEBIAN = "debian"
    UBUNTU = "ubuntu"
    SLES = "sles"


def _value(choice: Enum | None) -> str | None:
    return None if choice is None else str(choice.value)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"chronyctl6 {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "-V", "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of unexpected errors."),
) -> None:
    global _debug
    _debug = debug
    if debug:  # core modules log what they do (never a secret); --debug shows it on stderr
        import logging

        logging.basicConfig(level=logging.DEBUG, format="chronyctl6: debug: %(name)s: %(message)s")


# Each command's line in `chronyctl6 --help`: whole sentences that fit one 80-column line (click
# would cut a docstring's first sentence mid-word to fit); the docstring says the rest. A test
# holds every command to having one.
SUMMARIES = {
    "render": "Print the chrony.conf that apply would write. Reads only.",
    "apply": "Validate, write, restart chronyd and verify; roll back on failure.",
    "restore": "Put back the files the last apply replaced, or the distro's.",
    "boot": "The baked-image boot step: choose this launch's Time Sync endpoint.",
    "release": "What removing the package does: chrony kept on Time Sync.",
    "check": "Measure the offset against Time Sync, and what chronyd believes.",
    "doctor": "Find out why IPv6 time sync does not work here, and how to fix it.",
    "status": "chronyd at a glance: process, config drift, sources, tracking.",
    "wait": "Wait until chronyd keeps the clock on Time Sync within a bound.",
}


def _meta(command: str) -> dict[str, Any]:
    """The command's @app.command arguments: its usage-error handling, summary and exit statuses."""
    return {"cls": _Command, "short_help": SUMMARIES[command], "epilog": _exits(command)}


def _exits(command: str) -> str:
    """The command's exit statuses for its --help (and so the man page): chronyctl6.errors' one table."""
    from chronyctl6.errors import MEANINGS

    rows = "\n".join(f"  {code}  {meaning.replace('`', '')}" for code, meaning in MEANINGS[command])
    return f"\b\nExit statuses:\n{rows}"


def _say_error(message: str, hint: str | None) -> None:
    typer.echo(f"chronyctl6: error: {shown(message)}", err=True)
    if hint:
        typer.echo(f"chronyctl6: hint: {shown(hint)}", err=True)


class _Run:
    """One command's run: how it prints (-o, -q) and how it ends (status word -> exit code)."""

    def __init__(self, command: str, output: str, quiet: bool = False) -> None:
        self.command, self.output, self.quiet = command, output, quiet

    @property
    def json(self) -> bool:
        return self.output == "json"

    def echo(self, text: str, *, essential: bool = True, err: bool = False, nl: bool = True) -> None:
        """Text output; --quiet drops what is not essential. Nothing in text form under -o json.
        Every line passes the one sanitiser (text.shown_lines); a name or value from outside that
        is meant to stay on one line goes through text.shown where the line is made."""
        if self.json or (self.quiet and not essential):
            return
        typer.echo(shown_lines(text), err=err, nl=nl)

    def warn(self, text: str) -> None:
        self.echo(f"chronyctl6: warning: {shown(text)}", essential=False, err=True)

    def finish(self, status: out.Status, data: dict[str, Any], messages: list[out.Message] | None = None) -> NoReturn:
        if self.json:
            typer.echo(out.dumps(out.envelope(self.command, status, data, messages)))
        raise typer.Exit(out.exit_code(self.command, status))

    def fail(self, status: out.Status, message: str, hint: str | None = None) -> NoReturn:
        if self.output == "nagios":  # only check has it: its one UNKNOWN line
            from chronyctl6.measure.report import nagios_unknown

            typer.echo(nagios_unknown(message + (f" ({hint})" if hint else "")))
        elif self.json:
            error = ChronyCtlError(message, hint)
            typer.echo(out.dumps(out.envelope(self.command, status, {}, out.error_messages(error))))
        _say_error(message, hint)
        raise typer.Exit(out.exit_code(self.command, status))

    def guard(self, call: Callable[[], T]) -> T:
        """Known errors: one line and a hint. Unexpected ones say so; traceback only with --debug."""
        try:
            return call()
        except ChronyCtlError as exc:
            self.fail(out.error_status(exc), exc.message, exc.hint)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            if _debug:
                raise
            self.fail(out.Status.UNKNOWN, f"unexpected error: {exc!r}", "run with --debug for a traceback")


def _output_in(args: list[str]) -> str:
    """The -o value among raw arguments, for a usage error found before options are parsed."""
    found = "text"
    for i, arg in enumerate(args):
        if arg in ("-o", "--output") and i + 1 < len(args):
            found = args[i + 1]
        elif arg.startswith("--output="):
            found = arg.partition("=")[2]
        elif arg.startswith("-o") and not arg.startswith("--") and len(arg) > 2:
            found = arg[2:]
    return found


class _Command(typer.core.TyperCommand):
    """Usage errors (bad flag, bad choice) end like any other error: the command's own exit code
    (2 for the change commands, 3 UNKNOWN for check, doctor and status), a JSON envelope with
    -o json, an UNKNOWN line with -o nagios."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        raw = list(args)  # click's parser consumes the list it is given
        try:
            return super().parse_args(ctx, args)
        except Exception as exc:
            if getattr(exc, "exit_code", None) != 2 or not hasattr(exc, "format_message"):
                raise
            wanted = _output_in(raw)
            run = _Run(str(self.name), wanted if wanted in ("json", "nagios") else "text")
            usage = ctx.get_usage() if hasattr(ctx, "get_usage") else ""
            run.fail(out.Status.USAGE, str(exc.format_message()),
                     f"{usage.strip()}; see: chronyctl6 {self.name} --help" if usage else None)


# ---- render / apply / boot -------------------------------------------------------------

_ROOT_HELP = ("Work on the image mounted at DIR (image builds): read DIR/etc/os-release, write under "
              "DIR, never restart anything, no root needed.")
_IPV6_HELP = ("Time Sync endpoint: on = fd00:ec2::123; off = 169.254.169.123; auto = IPv6 when this "
              "host has a global IPv6 address, else IPv4 (an IPv6-only host always gets IPv6). "
              "With --root, auto means: choose at every boot.")
_PHC_HELP = "ENA PTP hardware clock refclock: auto = when /dev/ptp_ena (or an ENA ptp device) exists."
_BOOT_HELP = ("Choose the endpoint at every boot (chronyctl6-boot.service writes "
              "/run/chronyctl6/timesync.sources) instead of fixing it in chrony.conf: for baked images.")
_OUTPUT_HELP = "Output format: text, or json (the chronyctl6/v1 envelope, also on errors)."
_DISTRO_HELP = "Override os-release detection."
_SETTINGS_HELP = "Settings file (default DIR/etc/chronyctl6/settings.toml)."
_SM_HELP = ("How to restart chronyd: systemd, or direct (a plain process, for hosts without systemd). "
            "auto = systemd if it runs.")
_WAIT_HELP = ("Wait until chronyd selects a Time Sync source; if it does not in time, restore the previous "
              "configuration, restart chronyd on it and fail. Default: settings.toml's wait, else "
              f"{defaults.APPLY_WAIT:g} on a live host.")
_SETTLE_HELP = ("Where instance metadata says EC2 assigned an IPv6 address that is not up yet, wait up to this "
                "long for it before choosing IPv4.")
_QUIET_HELP = "Print only what matters: no warnings, notes or passing checks in text output."


# The choices the commands share, declared once (typer reads these as metadata only).
_ROOT_OPTION = typer.Option("/", "--root", metavar="DIR", help=_ROOT_HELP)
_DISTRO_OPTION = typer.Option(None, "--distro", help=_DISTRO_HELP, case_sensitive=False)
_IPV6_OPTION = typer.Option(None, "--ipv6", help=_IPV6_HELP, case_sensitive=False)
_PHC_OPTION = typer.Option(None, "--phc", help=_PHC_HELP, case_sensitive=False)
_AT_BOOT_OPTION = typer.Option(None, "--at-boot/--fixed", help=_BOOT_HELP)
_SETTINGS_OPTION = typer.Option(None, "--settings", metavar="FILE", help=_SETTINGS_HELP)
_OUTPUT_OPTION = typer.Option(Output.TEXT.value, "-o", "--output", help=_OUTPUT_HELP)
_QUIET_OPTION = typer.Option(False, "-q", "--quiet", help=_QUIET_HELP)
_SM_OPTION = typer.Option(None, "--service-manager", help=_SM_HELP, case_sensitive=False)


def _request(root: str, distro: Distro | None, ipv6: Mode | None, phc: Mode | None,
             at_boot: bool | None, service_manager: ServiceManager | None, settings: str | None) -> Any:
    from pathlib import Path

    from chronyctl6.configure.plan import Request

    return Request(root=Path(root), distro=_value(distro), ipv6=_value(ipv6), phc=_value(phc), at_boot=at_boot,
                   service_manager=_value(service_manager),
                   settings_path=Path(settings) if settings else None)


def _names(items: Any) -> str:
    """File names (or any values from outside) as one line: each through the one sanitiser, so a
    line break or an escape sequence in a drop-in's name never reaches the terminal raw."""
    return ", ".join(shown(str(item)) for item in items)


def _warnings(lines: Any) -> list[out.Message]:
    return [out.Message(out.Level.WARNING, str(line)) for line in lines]


@app.command(**_meta("render"))
def render(
    root: str = _ROOT_OPTION,
    distro: Optional[Distro] = _DISTRO_OPTION,
    ipv6: Optional[Mode] = _IPV6_OPTION,
    phc: Optional[Mode] = _PHC_OPTION,
    at_boot: Optional[bool] = _AT_BOOT_OPTION,
    settings: Optional[str] = _SETTINGS_OPTION,
    output: Output = _OUTPUT_OPTION,
    quiet: bool = _QUIET_OPTION,
) -> None:
    """Print the chrony.conf that `apply` would write. Reads only; needs no root.

    Without --root, where IPv6 is `auto` (no --ipv6 on|off, none in settings.toml or
    recorded by an earlier apply), it asks this instance's metadata service (IMDS)
    whether it has IPv6, as apply does.

    \b
    Examples:
      chronyctl6 render                           what apply would write here
      chronyctl6 render --root /mnt/image --distro debian --ipv6 on
      chronyctl6 render -o json | jq -r .data.config
    """
    from chronyctl6.configure.plan import make_plan

    run = _Run("render", output.value, quiet)
    plan = run.guard(lambda: make_plan(_request(root, distro, ipv6, phc, at_boot, None, settings)))
    for line in plan.warnings:
        run.warn(line)
    for dropped in plan.dropped:  # stderr: stdout is the file itself
        run.echo(f"chronyctl6: dropped: {dropped.as_text()}", essential=False, err=True)
    # Bytes that are not UTF-8 (a carried directive's) are written as they are; shown, they are escaped.
    config = plan.config.new.decode("utf-8", "surrogateescape")
    run.echo(config, nl=False)
    run.finish(out.Status.OK, {
        "path": plan.config.shown, "config": config, "warnings": list(plan.warnings),
        "dropped": [d.as_dict() for d in plan.dropped],
    }, _warnings(plan.warnings))


_NO_WAIT_HELP = "Do not verify (= --wait 0); --root never waits."
_LOCK_HELP = "How long to wait for another apply to finish."


def _progress(run: _Run) -> Any:
    """A line of progress on stderr while waiting, when a person watches it (not with -q)."""
    import sys

    if run.quiet or not sys.stderr.isatty():
        return None
    return lambda line: typer.echo(f"chronyctl6: {shown(line)}", err=True)


def _wait_for(run: _Run, wait: float | None, no_wait: bool) -> float | None:
    """--no-wait is --wait 0; None leaves it to settings.toml's wait, else 60 s (live hosts only).
    NaN, inf and negative seconds are refused by the core's one check (exit 2)."""
    from chronyctl6.configure.apply import check_seconds

    if wait is not None:
        run.guard(lambda: check_seconds(wait, "--wait"))
    return 0.0 if no_wait else wait


@app.command(**_meta("apply"))
def apply(
    root: str = _ROOT_OPTION,
    distro: Optional[Distro] = _DISTRO_OPTION,
    ipv6: Optional[Mode] = _IPV6_OPTION,
    phc: Optional[Mode] = _PHC_OPTION,
    at_boot: Optional[bool] = _AT_BOOT_OPTION,
    settings: Optional[str] = _SETTINGS_OPTION,
    service_manager: Optional[ServiceManager] = _SM_OPTION,
    diff: bool = typer.Option(False, "--diff", help="Show the change as a unified diff."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Stop after planning: write nothing, restart nothing."),
    check: bool = typer.Option(False, "--check", help="Change nothing; exit 5 if apply would change anything "
                                                      "(files or state such as the boot unit), 0 if not."),
    wait: Optional[float] = typer.Option(None, "--wait", metavar="SECONDS", max=defaults.WAIT_MAX, help=_WAIT_HELP),
    no_wait: bool = typer.Option(False, "--no-wait", help=_NO_WAIT_HELP),
    lock_timeout: float = typer.Option(defaults.LOCK_TIMEOUT, "--lock-timeout", metavar="SECONDS", help=_LOCK_HELP),
    output: Output = _OUTPUT_OPTION,
    quiet: bool = _QUIET_OPTION,
) -> None:
    """Render, validate with chronyd, write atomically (with a backup), restart chronyd, and wait
    (60 s by default) for chronyd to select Time Sync; any failure or signal rolls it all back.

    Nothing changed: nothing written, nothing restarted. Only a .sources drop-in changed:
    `chronyc reload sources` instead of a restart.

    \b
    Examples:
      sudo chronyctl6 apply --diff                on a running instance (waits up to 60 s)
      sudo chronyctl6 apply --check --diff        exit 5 and show it if anything would change
      chronyctl6 apply --root /mnt/image          bake an image (endpoint chosen at boot)
      sudo chronyctl6 apply -o json --wait 30     for SSM Run Command or Ansible
    """
    from chronyctl6.configure.apply import Options, check_seconds
    from chronyctl6.configure.apply import apply as run_apply

    run = _Run("apply", output.value, quiet)
    run.guard(lambda: check_seconds(lock_timeout, "--lock-timeout"))
    request = _request(root, distro, ipv6, phc, at_boot, service_manager, settings)
    chosen_wait = _wait_for(run, wait, no_wait)
    result = run.guard(lambda: run_apply(request, Options(dry_run=dry_run, check=check, wait=chosen_wait,
                                                          lock_timeout=lock_timeout), _progress(run)))
    pending = check and result.changed
    for line in result.warnings:
        run.warn(line)
    for line in result.notes:
        run.echo(f"chronyctl6: note: {shown(line)}", essential=False, err=True)
    for dropped in result.dropped:
        run.echo(f"dropped: {shown(str(dropped['file']))}:{dropped['lineno']}: {shown(str(dropped['line']))}  "
                 f"({shown(str(dropped['reason']))})", essential=False)
    if diff and result.diff:
        run.echo(result.diff, nl=False)
    if not result.changed:
        run.echo(f"{shown(result.path)}: up to date, nothing to do")
    elif result.dry_run:
        what = _names(result.files + ([f"enable {result.enabled}"] if result.enabled else []))
        run.echo(f"would change: {what} ({'--check' if check else 'dry run'}, nothing written)")
    else:
        if result.files:
            run.echo(f"wrote {_names(result.files)}" + (f" (backup: {shown(result.backup)})" if result.backup else "")
                     + (f"; validated by {result.validated_by}" if result.validated_by
                        else " [not validated: chronyd is not installed]"))
        if result.enabled:
            run.echo(f"enabled {result.enabled}")
        if result.action != "none":
            run.echo(f"chronyd: {result.action}")
        if result.selected:
            run.echo(f"chronyd selected {result.selected} after {result.waited_seconds:g} s")
    notes = [out.Message(out.Level.INFO, line) for line in result.notes]
    run.finish(out.Status.PENDING if pending else out.Status.OK, result.as_dict(),
               _warnings(result.warnings) + notes)


@app.command(**_meta("restore"))
def restore(
    original: bool = typer.Option(False, "--original", help="The distribution's files, as kept at first takeover "
                                                            "(byte for byte), instead of the previous version."),
    root: str = _ROOT_OPTION,
    distro: Optional[Distro] = _DISTRO_OPTION,
    settings: Optional[str] = _SETTINGS_OPTION,
    service_manager: Optional[ServiceManager] = _SM_OPTION,
    wait: Optional[float] = typer.Option(None, "--wait", metavar="SECONDS", max=defaults.WAIT_MAX,
                                         help="Wait until chronyd answers on the restored files; else roll back. "
                                              f"Default: settings.toml's wait, else {defaults.APPLY_WAIT:g} on a "
                                              "live host."),
    no_wait: bool = typer.Option(False, "--no-wait", help=_NO_WAIT_HELP),
    lock_timeout: float = typer.Option(defaults.LOCK_TIMEOUT, "--lock-timeout", metavar="SECONDS", help=_LOCK_HELP),
    output: Output = _OUTPUT_OPTION,
    quiet: bool = _QUIET_OPTION,
) -> None:
    """Put back the files the last apply (or restore) replaced, or with --original the
    distribution's own, through the same transaction as apply (lock, history, restart, verify,
    roll back on failure).

    \b
    Examples:
      sudo chronyctl6 restore                     undo the last change
      sudo chronyctl6 restore --original          the distribution's file (e.g. before removing chronyctl6)
      chronyctl6 restore --root /mnt/image -o json    undo the last bake of an image
    """
    from chronyctl6.configure.apply import check_seconds
    from chronyctl6.configure.restore import restore as run_restore

    run = _Run("restore", output.value, quiet)
    run.guard(lambda: check_seconds(lock_timeout, "--lock-timeout"))
    request = _request(root, distro, None, None, None, service_manager, settings)
    chosen_wait = _wait_for(run, wait, no_wait)
    result = run.guard(lambda: run_restore(request, original=original, wait=chosen_wait, lock_timeout=lock_timeout,
                                           progress=_progress(run)))
    for line in result.warnings:
        run.warn(line)
    if not result.changed:
        run.echo(result.message)
    else:
        run.echo(f"restored ({result.source}): {', '.join(result.files)}")
        if result.action != "none":
            run.echo(f"chronyd: {result.action}")
        if result.answered_after is not None:
            run.echo(f"chronyd answers after {result.answered_after:g} s")
    run.finish(out.Status.OK, out.with_units(result.as_dict(), {"answered_after": "answered_after_seconds"}),
               _warnings(result.warnings))


@app.command(**_meta("boot"))
def boot(
    settle: float = typer.Option(defaults.SETTLE, "--settle", metavar="SECONDS", min=0, max=defaults.SETTLE_MAX,
                                help=_SETTLE_HELP),
    output: Output = _OUTPUT_OPTION,
    quiet: bool = _QUIET_OPTION,
) -> None:
    """The baked-image boot step: write /run/chronyctl6/timesync.sources with this launch's one
    Time Sync endpoint (IPv6 if the instance has an IPv6 address), and /run/chronyctl6/phc.conf
    with the PTP hardware clock's refclock line only when this launch has the ENA clock. Runs from
    chronyctl6-boot.service before chronyd; run by hand, it also reloads chronyd's sources (a
    changed phc.conf needs a restart: chronyd reads a confdir at start only).

    \b
    Examples:
      sudo chronyctl6 boot                        choose again now, and reload chronyd's sources
      sudo chronyctl6 boot --settle 0 -o json     do not wait for an IPv6 address to come up
    """
    from chronyctl6.configure.boot import boot as run_boot

    run = _Run("boot", output.value, quiet)
    result = run.guard(lambda: run_boot(_request("/", None, None, None, None, None, None), settle=settle))
    for line in result.warnings:  # always on stderr (-o json and -q too): it reaches the journal from the unit
        typer.echo(f"chronyctl6: warning: {shown(line)}", err=True)
    run.echo(f"Time Sync endpoint for this boot: {result.endpoint} ({result.reason})")
    run.echo(f"{result.path}: " + ("written" if result.changed else "already up to date")
             + ("; chronyd reloaded its sources" if result.reloaded else ""))
    if result.phc is not None:
        run.echo(f"PTP hardware clock: {result.phc['path']} "
                 + (f"written for {result.phc['device']}" if result.phc["written"] else "not written")
                 + f" ({shown(str(result.phc['reason']))})")
    run.finish(out.Status.OK, out.with_units(result.as_dict(), {"waited_for_ipv6": "waited_for_ipv6_seconds"}),
               _warnings(result.warnings))


@app.command(**_meta("release"))
def release(
    root: str = _ROOT_OPTION,
    wait: Optional[float] = typer.Option(None, "--wait", metavar="SECONDS", max=defaults.WAIT_MAX,
                                         help="Wait until chronyd answers after the restart "
                                              f"(default {defaults.RELEASE_WAIT:g})."),
    lock_timeout: float = typer.Option(defaults.LOCK_TIMEOUT, "--lock-timeout", metavar="SECONDS", help=_LOCK_HELP),
    output: Output = _OUTPUT_OPTION,
    quiet: bool = _QUIET_OPTION,
) -> None:
    """What removing the package does to chrony (the package's prerm runs it): a `sourcedir
    /run/chronyctl6` that nothing fills once the boot step is gone becomes this launch's Time Sync
    line, the boot unit is disabled; the rest of chrony.conf stays.

    \b
    Examples:
      sudo chronyctl6 release                     what the package's removal runs
      chronyctl6 release --root /mnt/image        an image that will not have chronyctl6
    """
    from chronyctl6.configure.release import release as run_release

    run = _Run("release", output.value, quiet)
    request = _request(root, None, None, None, None, None, None)
    result = run.guard(lambda: run_release(request, wait=wait, lock_timeout=lock_timeout, progress=_progress(run)))
    for line in result.said:
        run.echo(f"chronyctl6: {line}")
    if result.action != "none":
        run.echo(f"chronyctl6: chronyd: {result.action}")
    run.finish(out.Status.OK, result.as_dict())

# ---- check --------------------------------------------------------------------------------

_SERVER_HELP = ("NTP server to ask; repeat to ask several at once (the one with the smallest "
                "distance to UTC decides). Default: the Time Sync endpoint chronyd uses (its sources, "
                "else the configuration it reads), else fd00:ec2::123; 169.254.169.123 is the "
                "IPv4 one.")
_SAMPLES_HELP = ("Requests per server, 1 to 8 (a burst Time Sync's rate limit allows); the "
                 "minimum-delay valid reply is the answer.")
_TEXTFILE_HELP = ("Also write the Prometheus metrics atomically to PATH (a .prom file in "
                  "node_exporter's textfile directory).")
_CHECK_OUTPUT_HELP = ("text, json (the chronyctl6/v1 envelope), nagios (one line with perfdata) or "
                      "prometheus (text format).")
_CHECK_OUTPUT_OPTION = typer.Option(CheckOutput.TEXT.value, "-o", "--output", help=_CHECK_OUTPUT_HELP)
_WARN_HELP = "WARNING when max error (|offset| + path bound + root distance) reaches this."
_CRIT_HELP = "CRITICAL when max error (|offset| + path bound + root distance) reaches this."
TEXTFILE_DIR_ENV = "CHRONYCTL6_TEXTFILE_DIR"  # as chronyctl6.measure.command's
TEXTFILE_NAME = "chronyctl6.prom"
_TEXTFILE_DIR_HELP = (f"Also write the metrics atomically to DIR/{TEXTFILE_NAME} (node_exporter's "
                      f"textfile directory; chronyctl6-check.service sets {TEXTFILE_DIR_ENV}). "
                      "--textfile wins.")


@app.command(**_meta("check"))
def check(
    server: Optional[List[str]] = typer.Option(  # noqa: B008 (typer's classic style)
        None, "--server", "-s", "-H", metavar="ADDR", help=_SERVER_HELP),
    port: int = typer.Option(123, "--port", min=1, max=65535, help="The servers' UDP port."),
    samples: int = typer.Option(6, "--samples", metavar="N", help=_SAMPLES_HELP),
    timeout: float = typer.Option(2.0, "--timeout", "-t", metavar="SECONDS",
                                  help="Deadline for the whole measurement, whatever arrives."),
    warn: float = typer.Option(0.1, "--warn", "-w", metavar="SECONDS", help=_WARN_HELP),
    crit: float = typer.Option(1.0, "--crit", "-c", metavar="SECONDS", help=_CRIT_HELP),
    output: CheckOutput = _CHECK_OUTPUT_OPTION,
    textfile: Optional[str] = typer.Option(None, "--textfile", metavar="PATH", help=_TEXTFILE_HELP),
    textfile_dir: Optional[str] = typer.Option(None, "--textfile-dir", metavar="DIR",
                                               envvar=TEXTFILE_DIR_ENV, help=_TEXTFILE_DIR_HELP),
    chronyd: bool = typer.Option(True, "--chronyd/--no-chronyd",
                                 help="Also ask chronyd (chronyc tracking) and compare."),
    chronyd_socket: Optional[str] = typer.Option(None, "--chronyd-socket", metavar="PATH",
                                              help="chronyd's command socket, if not the default."),
    quiet: bool = _QUIET_OPTION,
) -> None:
    """Measure this clock's offset against Time Sync directly, and what chronyd believes.

    The offset is positive when this clock is BEHIND the server (server time minus local
    time). The verdict judges max error = |offset| + path bound + root distance (root delay/2 +
    root dispersion): the most this clock can be off UTC. Each request carries a random nonce;
    replies that do not echo it, or are not a synchronised server's (mode 4, stratum 1-15, leap
    not 3, non-zero timestamps, a reference time not after the transmit time, root distance at
    most 3 s, from the address and port asked), are refused and counted; a kiss-of-death (RATE,
    DENY, RSTR) stops the burst. When chronyd runs, its tracking is shown; a disagreement
    beyond both error bounds is a WARNING, chronyd not synchronised is CRITICAL (as in status).

    \b
    Examples:
      chronyctl6 check                            the Time Sync endpoint in use; text
      chronyctl6 check -s 169.254.169.123 -o nagios
      chronyctl6 check -o json --warn 0.01 --crit 0.1
      chronyctl6 check --textfile /var/lib/node_exporter/textfile/chronyctl6.prom -q
    """
    from chronyctl6.measure.command import run

    outcome = run(dict(server=server, port=port, samples=samples, timeout=timeout, warn=warn,
                       crit=crit, output=output.value, textfile=textfile, textfile_dir=textfile_dir,
                       chronyd=chronyd, chronyd_socket=chronyd_socket, quiet=quiet), debug=_debug)
    if outcome.stdout is not None:
        typer.echo(outcome.stdout)
    if outcome.stdout_raw is not None:
        typer.echo(outcome.stdout_raw, nl=False)
    for line in outcome.stderr:
        typer.echo(line, err=True)
    raise typer.Exit(outcome.exit_code)


# ---- doctor / status -------------------------------------------------------------------------

_INSPECT_HELP = ("Inspect the image mounted at DIR offline: its configuration (symlinks resolved inside DIR), "
                 "chronyctl6's state file and its units. Asks nothing of this host: no chronyc, no process "
                 "table, no network.")
_INSPECT_OPTION = typer.Option("/", "--root", metavar="DIR", help=_INSPECT_HELP)


_MARK = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "skip": "SKIP"}


@app.command(**_meta("doctor"))
def doctor(
    imdsv1: bool = typer.Option(False, "--imdsv1",
                                help="Allow IMDSv1 (no token) when the IMDSv2 token request fails, where the "
                                     "instance allows it; also report whether it does."),
    root: str = _INSPECT_OPTION,
    output: Output = _OUTPUT_OPTION,
    quiet: bool = _QUIET_OPTION,
) -> None:
    """Find out why IPv6 time sync does not work here, and print the command that fixes each problem.

    Checks: on EC2, Nitro, IMDS over IPv6, an IPv6 address (locally and in IMDS), a route to
    fd00:ec2::123, Time Sync answering NTP over IPv6 and IPv4, chrony installed and running, the
    configuration it loaded (one Time Sync line, no smeared/non-smeared mix, leapsectz), an
    unused PTP hardware clock, other time daemons. Judged against this instance's intent: an
    instance set to IPv4 (settings ipv6 = "off", or auto on an instance EC2 gave no IPv6) passes
    with a note; the intent is settings.toml's, else the one `apply` kept (apply --ipv6 off), and
    doctor says which. Each fix is a few numbered steps. Reads only; takes a few seconds at most.
    With --root, an image offline: its configuration, kept intent and units; the checks that
    need a running instance say they are not applicable.

    \b
    Examples:
      sudo chronyctl6 doctor
      sudo chronyctl6 doctor -q                   only what is not a pass
      chronyctl6 doctor -o json | jq '.data.checks[] | select(.status != "pass")'
      chronyctl6 doctor --root /mnt/image         an image, offline
    """
    from pathlib import Path

    from chronyctl6.diagnose import doctor as doc
    from chronyctl6.diagnose import offline

    run = _Run("doctor", output.value, quiet)
    report = run.guard(lambda: doc.doctor(doc.Options(imdsv1=imdsv1, root=Path(root),
                                                               offline=os.path.abspath(root) != "/")))
    width = max(len(c.id) for c in report.checks)
    indent = " " * (6 + width + 2)
    for c in report.checks:
        # Offline, what only a running instance says is expected to be skipped: not worth -q's attention.
        notable = str(c.status) != "pass" and not (report.offline and c.id in offline.NOT_OFFLINE)
        run.echo(f"{_MARK[str(c.status)]}  {c.id:<{width}}  {shown(c.evidence)}", essential=notable)
        if c.fix:
            _steps(run, indent, "fix:", c.steps, c.note)
        elif c.same_fix_as:
            run.echo(f"{indent}fix: the one shown for {c.same_fix_as}")
    for note in report.notes:
        run.echo(f"note: {shown(note)}")
    if report.ipv6_steps:
        _steps(run, "      ", "to IPv6:", report.ipv6_steps, None)
    counts = report.counts
    run.echo(f"{len(report.checks)} checks: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
             + f" ({report.seconds['total']:.1f} s)")
    messages = [out.Message(out.Level.INFO, note) for note in report.notes]
    run.finish(monitoring_status(report.status), report.as_dict(), messages)


def _steps(run: _Run, indent: str, label: str, steps: Any, note: str | None) -> None:
    """A fix as short numbered steps, each a command that pastes as printed (no 900-character line)."""
    if len(steps) == 1:
        run.echo(f"{indent}{label} {shown(steps[0])}")
    else:
        run.echo(f"{indent}{label}")
        for number, step in enumerate(steps, 1):
            run.echo(f"{indent}  {number}. {shown(step)}")
    if note:
        run.echo(f"{indent}  ({shown(note)})")


@app.command(**_meta("status"))
def status(
    root: str = _INSPECT_OPTION,
    output: Output = _OUTPUT_OPTION,
    chronyd_socket: Optional[str] = typer.Option(None, "--chronyd-socket", metavar="PATH",
                                                 help="chronyd's command socket, if not the default."),
    warn: float = typer.Option(0.1, "--warn", "-w", metavar="SECONDS",
                               help="WARNING when chronyd's error bound (as ClockBound computes it) reaches this."),
    crit: float = typer.Option(1.0, "--crit", "-c", metavar="SECONDS",
                               help="CRITICAL when chronyd's error bound reaches this."),
    quiet: bool = _QUIET_OPTION,
) -> None:
    """chronyd at a glance: process, configuration (and drift from what chronyctl6 would render),
    sources with reachability, tracking, conflicting daemons, and the seconds from boot to
    synchronisation that `chronyctl6 wait` kept this boot.

    As a non-root user, what could not be read (chronyctl6's state, a configuration file) is
    named and drift is left unjudged. With --root, an image: its configuration, state and units.

    \b
    Examples:
      chronyctl6 status
      chronyctl6 status -o json | jq .data.tracking
      chronyctl6 status --root /mnt/image         an image, offline
    """
    from pathlib import Path

    from chronyctl6.diagnose import status as st

    run = _Run("status", output.value, quiet)
    report = run.guard(lambda: st.status(Path(root), chronyc_socket=chronyd_socket, warn=warn, crit=crit))
    if report.offline is not None:
        _status_offline(run, report)
    data = report.as_dict()
    verdict = out.Status(report.verdict)
    t = report.tracking
    if not report.chronyd:
        summary = "chronyd is not running: nothing keeps this clock"
    elif t is None:
        summary = "chronyd runs, but its tracking cannot be read"
    elif not t.synchronised:
        summary = "chronyd is not synchronised"
    elif not report.on_timesync:
        summary = f"chronyd is synchronised to {report.selected or t.ref_name or t.ref_id}, not to Time Sync"
    else:
        summary = f"chronyd is synchronised to Time Sync ({report.selected})"
    if report.bound is not None and report.bound.seconds is not None and report.bound_status != "ok":
        limit = warn if report.bound_status == "warning" else crit
        summary += f"; its clock could be {report.bound.seconds:.6f} s off (limit {limit:g} s)"
    run.echo(f"status: {verdict.value.upper()}: {shown(summary)}")
    for p in report.chronyd:
        run.echo(f"chronyd: pid {p.pid}, user {shown(p.user or '?')}, up {_duration(p.uptime)}", essential=False)
    run.echo(f"config: {shown(report.config_path or '?')} ({shown(report.config_from)}); {report.drift.state}: "
             f"{shown(report.drift.detail)}", essential=report.drift.state == "drift" or bool(report.drift.unread))
    if report.sources:
        run.echo("sources:", essential=False)
        for s in report.sources:
            run.echo(f"  {s.mode}{s.state} {shown(s.name):<40} stratum {s.stratum:>2}  reach {s.reach:03o} "
                     f"({s.reachability_ratio:.0%})  offset {s.adjusted_offset:+.6f} s +/- {s.error:.6f} s"
                     + ("  <- selected" if s.selected else ""), essential=False)
    if t is not None:
        run.echo(f"tracking: {shown(t.ref_name or t.ref_id)} stratum {t.stratum}, offset {t.system_offset:+.9f} s, "
                 f"frequency {t.frequency_ppm:+.3f} ppm, skew {t.skew_ppm:.3f} ppm, root distance "
                 f"{t.root_distance:.6f} s, leap {t.leap_status}", essential=False)
    b = report.bound
    if b is not None:
        phc = f" + PHC {b.phc_error_bound:.9f}" if b.phc_error_bound is not None else ""
        run.echo((f"bound: {b.seconds:.6f} s ({report.bound_status}; warning at {warn:g} s, critical at {crit:g} s) "
                  f"= |offset| {b.offset:.9f} + root dispersion {b.root_dispersion:.9f} + root delay/2 "
                  f"{b.half_root_delay:.9f}{phc} + growth {b.growth:.9f} (maxclockerror {b.maxclockerror_ppm:g} ppm); "
                  "as ClockBound computes it") if b.seconds is not None else f"bound: none ({shown(b.problem or '')})",
                 essential=report.bound_status != "ok")
    others = ", ".join(f"{shown(p.name)} (pid {p.pid})" for p in report.others)
    run.echo(f"conflicting daemons: {others or 'none'}", essential=bool(others))
    run.echo(_synchronised_line(report.synchronised), essential=False)
    for line in report.errors:
        run.echo(f"chronyctl6: error: {shown(line)}", err=True)
    for line in report.warnings:
        run.warn(line)
    messages = [out.Message(out.Level.INFO if verdict is out.Status.OK else out.Level.WARNING, summary)]
    messages += [out.Message(out.Level.ERROR, line) for line in report.errors]
    messages += _warnings(report.warnings)
    run.finish(verdict, data, messages)


def _synchronised_line(kept: Any) -> str:
    """This boot's seconds to synchronisation (chronyctl6 wait's record), or that there is none."""
    if kept is None:
        return "synchronised at boot: not recorded (chronyctl6 wait has not found the clock synchronised this boot)"
    more = [f"to {shown(kept.source)}"] if kept.source else []
    more += [f"within {kept.bound_seconds:.6f} s"] if kept.bound_seconds is not None else []
    more += [f"{kept.since_init_seconds:g} s after init"] if kept.since_init_seconds is not None else []
    return f"synchronised at boot: {kept.since_boot_seconds:g} s after boot ({', '.join(more)}; chronyctl6 wait)"


def _status_offline(run: _Run, report: Any) -> NoReturn:
    """`status --root`: the image's configuration, state and units; what only a running system says."""
    view = report.offline
    verdict = out.Status(report.verdict)
    problems = [*view.problems] + ([report.drift.detail] if report.drift.state != "in-sync" else [])
    summary = (f"the image at {view.root}: " + ("; ".join(problems) if problems
                                                 else "configuration as chronyctl6 renders it, chrony enabled"))
    run.echo(f"status: {verdict.value.upper()}: {shown(summary)}")
    run.echo(f"config: {shown(report.config_path or '?')} ({shown(report.config_from)}); {report.drift.state}: "
             f"{shown(report.drift.detail)}", essential=report.drift.state == "drift")
    kept = ", ".join(f"{key} {value}" for key, value in view.kept.items())
    run.echo(f"kept intent (/var/lib/chronyctl6/state.json): {shown(kept) if kept else 'none (apply has not run)'}",
             essential=False)
    for unit in ([view.chrony] if view.chrony else []) + list(view.units) + list(view.rivals):
        where = f" ({shown(unit.where)})" if unit.where else ""
        run.echo(f"unit: {shown(unit.unit)}: {unit.state}{where}", essential=unit in view.rivals)
    run.echo(f"not applicable offline: {'; '.join(view.not_applicable)}", essential=False)
    for line in report.warnings:
        run.warn(line)
    level = out.Level.INFO if verdict is out.Status.OK else out.Level.WARNING
    messages = [out.Message(level, summary), *_warnings(report.warnings)]
    messages.append(out.Message(out.Level.INFO, "not applicable offline: " + "; ".join(view.not_applicable)))
    run.finish(verdict, report.as_dict(), messages)


@app.command(**_meta("wait"))
def wait(
    timeout: float = typer.Option(180.0, "--timeout", metavar="SECONDS",
                                  help="Give up after this long (180 s, as chrony-wait.service)."),
    max_error: float = typer.Option(0.1, "--max-error", metavar="SECONDS",
                                    help="Ready only once chronyd's bound on the clock's error, as status "
                                         "reports it (ClockBound's), is within this, and stays so "
                                         "until chronyd's next update: it grows by (skew + residual "
                                         "frequency + maxclockerror) over a poll of the selected "
                                         "source, about 0.9 ms with chronyctl6's configuration."),
    any_source: bool = typer.Option(False, "--any-source",
                                    help="Any selected source will do, not only Time Sync or the ENA PTP clock."),
    chronyd_socket: Optional[str] = typer.Option(None, "--chronyd-socket", metavar="PATH",
                                                 help="chronyd's command socket, if not the default."),
    output: Output = _OUTPUT_OPTION,
    quiet: bool = _QUIET_OPTION,
) -> None:
    """Wait until chronyd keeps this clock on Time Sync within a bound, saying why not yet.

    For services that need synchronised time at boot: chronyctl6-wait.service runs it before
    time-sync.target (in place of chrony-wait.service). When synchronised, the seconds since boot
    are kept in /run/chronyctl6/synchronised.json (`status` reports them).

    \b
    Examples:
      chronyctl6 wait
      chronyctl6 wait --timeout 30 --max-error 0.001 -o json
    """
    from chronyctl6.configure.apply import check_seconds
    from chronyctl6.diagnose import wait as waiting

    run = _Run("wait", output.value, quiet)
    run.guard(lambda: (check_seconds(timeout, "--timeout"), check_seconds(max_error, "--max-error")))
    result = run.guard(lambda: waiting.wait(
        lambda: waiting.ask_chronyd(chronyd_socket), timeout=timeout, max_error=max_error,
        any_source=any_source, progress=lambda line: run.echo(f"waiting: {shown(line)}", essential=False, err=True)))
    warnings: list[str] = []
    if result.ready and os.geteuid() == 0:
        problem = waiting.record(result)
        warnings += [problem] if problem else []
    verdict = out.Status.OK if result.ready else out.Status.CRITICAL
    after = f" after {result.waited_seconds:g} s" + (
        f" ({result.since_boot_seconds:g} s since boot)" if result.since_boot_seconds is not None else "")
    summary = (f"{result.reason}{after}" if result.ready
               else f"not synchronised within {timeout:g} s: {result.reason}")
    run.echo(f"wait: {verdict.value.upper()}: {shown(summary)}")
    for line in warnings:
        run.warn(line)
    said = out.Message(out.Level.INFO if result.ready else out.Level.ERROR, summary)
    run.finish(verdict, result.as_dict(), [said, *_warnings(warnings)])


def _duration(seconds: float) -> str:
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    return (f"{days}d " if days else "") + f"{hours:02d}:{minutes:02d}:{s:02d}"


def main() -> None:
    """The typer CLI. The program's entry is chronyctl6.__main__.main, which offers `check` to its
    fast path first, before typer is imported at all."""
    app(prog_name="chronyctl6")


if __name__ == "__main__":
    main()
