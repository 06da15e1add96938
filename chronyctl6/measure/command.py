"""The `check` command's body, shared by the typer CLI and the fast path.

`chronyctl6 check` runs every minute on every instance (the timer, Nagios): most of its wall time
was start-up, and typer with click is the larger part of it. So `chronyctl6 check ...` is first
offered to `fast_parse`, a small parser of the very same options; it takes only argument lists
it reads as click does (a test runs both parsers on one table of arguments), and hands
everything else (help, errors) to the typer CLI, so help, error messages and exit statuses stay
click's.

No typer here; `run` returns what to print rather than printing it, and is where `-o json` becomes
the chronyctl6/v1 envelope (chronyctl6.output), so both ways print the same document.
"""

from __future__ import annotations

import os
import sys

from chronyctl6.plain import Record

TYPE_CHECKING = False  # typing's, without importing typing (mypy reads it so)
if TYPE_CHECKING:  # imported where used: start-up is most of check's time
    from collections.abc import Mapping
    from typing import Any, NoReturn

    from chronyctl6.measure.check import CheckResult
    from chronyctl6.output import Message

DEFAULTS: dict[str, Any] = {
    "server": None, "port": 123, "samples": 6, "timeout": 2.0, "warn": 0.1, "crit": 1.0,
    "output": "text", "textfile": None, "textfile_dir": None, "chronyd": True,
    "chronyd_socket": None, "quiet": False,
}
OUTPUTS = ("text", "json", "nagios", "prometheus")
TEXTFILE_DIR_ENV = "CHRONYCTL6_TEXTFILE_DIR"
TEXTFILE_NAME = "chronyctl6.prom"


class Outcome(Record):
    __slots__ = ("data", "exit_code", "stderr", "stdout", "stdout_raw")
    exit_code: int
    stdout: str | None  # one line or document, printed with a newline
    stdout_raw: str | None  # printed as is (Prometheus text ends in its own newline)
    stderr: list[str]
    data: dict[str, Any] | None  # -o json: the chronyctl6/v1 envelope as a dict (stdout is its text)

    def __init__(self, exit_code: int, stdout: str | None = None, stdout_raw: str | None = None,
                 stderr: list[str] | None = None, data: dict[str, Any] | None = None) -> None:
        self.exit_code = exit_code
        self.stdout = stdout
        self.stdout_raw = stdout_raw
        self.stderr = [] if stderr is None else stderr
        self.data = data


class _Stop(Exception):
    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome


def run(params: Mapping[str, Any], *, debug: bool = False) -> Outcome:
    """The check, from options as typer (or fast_parse) gives them, to what to print: the one
    place both print from, so `-o json` is the same chronyctl6/v1 envelope either way."""
    from chronyctl6 import output as out
    from chronyctl6.errors import ChronyCtlError
    from chronyctl6.measure import check as chk
    from chronyctl6.measure import gather
    from chronyctl6.measure import report as fmt
    from chronyctl6.text import shown

    p = {**DEFAULTS, **params}
    output = p["output"]

    def stop(status: out.Status, message: str, hint: str | None,
             result: CheckResult | None = None) -> NoReturn:
        """Every outcome prints its one line (Nagios) or envelope (JSON) on stdout; an outcome
        with a measurement (the textfile could not be written) keeps it in the envelope."""
        text, document = None, None
        if output == "nagios":
            text = fmt.nagios_unknown(message)
        elif output == "json":
            messages = [out.Message(out.Level.ERROR, message)]
            messages += [out.Message(out.Level.HINT, hint)] if hint else []
            data = fmt.to_data(result) if result is not None else {}
            messages += _messages(result) if result is not None else []
            document = out.envelope("check", status, data, messages)
            text = out.dumps(document)
        err = [f"chronyctl6: error: {shown(message)}"]
        if hint:
            err.append(f"chronyctl6: hint: {shown(hint)}")
        raise _Stop(Outcome(out.exit_code("check", status), text, None, err, document))

    def destination() -> str | None:
        textfile, textfile_dir = p["textfile"], p["textfile_dir"]
        if textfile is not None:
            if not textfile.endswith(".prom"):
                raise chk.CheckUsageError(f"--textfile {shown(textfile)}: node_exporter "
                                          "reads only files ending in .prom")
            return str(textfile)
        if textfile_dir:
            return os.path.join(textfile_dir, TEXTFILE_NAME)
        return None

    try:
        try:
            if output not in OUTPUTS:
                raise chk.CheckUsageError(f"-o {shown(output)!r}: use {', '.join(OUTPUTS)}")
            where = destination()
            thresholds = chk.Thresholds(p["warn"], p["crit"])
            result = gather.run(list(p["server"] or []), port=p["port"], samples=p["samples"],
                                timeout=p["timeout"], thresholds=thresholds,
                                ask_chronyd=p["chronyd"], chronyd_socket=p["chronyd_socket"])
        except ChronyCtlError as exc:  # CheckUsageError: "usage"
            stop(out.error_status(exc), exc.message, exc.hint)
        except Exception as exc:
            if debug:
                raise
            stop(out.Status.UNKNOWN, f"unexpected error: {exc!r} (run with --debug for a traceback)",
                 None)
        why = write_textfile(where, fmt.to_prometheus(result)) if where is not None else None
        if why is not None:
            message = (f"cannot write the metrics to {shown(str(where))}: {why}; the "
                       f"measurement: {result.status.name}: {result.summary}")
            # JSON keeps the measurement, and says why the exit status is UNKNOWN anyway.
            stop(out.Status.UNKNOWN, message, None, result)
    except _Stop as stopped:
        return stopped.outcome
    return _render(result, output, quiet=p["quiet"])


def _render(result: CheckResult, output: str, *, quiet: bool) -> Outcome:
    """A measurement's outcome in the format asked for; its exit status is the verdict's."""
    from chronyctl6 import output as out
    from chronyctl6.measure import report as fmt
    from chronyctl6.text import shown

    status = out.Status(result.status.name.lower())
    code = out.exit_code("check", status)  # int(result.status): Nagios' codes
    if output == "json":
        document = out.envelope("check", status, fmt.to_data(result), _messages(result))
        return Outcome(code, out.dumps(document), data=document)
    if output == "nagios":
        return Outcome(code, fmt.to_nagios(result))
    if output == "prometheus":
        return Outcome(code, None, fmt.to_prometheus(result))
    if quiet:
        return Outcome(code, f"{result.status.name}: {shown(result.summary)}")
    return Outcome(code, fmt.to_text(result))


def _messages(result: CheckResult) -> list[Message]:
    """The envelope's messages for a measurement: its summary, notes and hint."""
    from chronyctl6 import output as out

    messages = [out.Message(out.Level.INFO, result.summary)]
    messages += [out.Message(out.Level.INFO, note) for note in result.notes]
    messages += [out.Message(out.Level.HINT, result.hint)] if result.hint else []
    return messages


def write_textfile(where: str, text: str) -> str | None:
    """Write the metrics atomically; None when done, else why not (never raises for I/O)."""
    from pathlib import Path

    from chronyctl6.effects.files import atomic_write
    from chronyctl6.errors import ChronyCtlError

    try:
        atomic_write(Path(where), text.encode())
    except ChronyCtlError as exc:
        return exc.message
    except OSError as exc:
        return exc.strerror or str(exc)
    return None



# ---- the fast path ----------------------------------------------------------------------------


# `check`'s options as the typer CLI declares them (tests/measure/test_check_fastpath.py holds the
# two to the same reading of one table of argument lists).
_LONG = {"--server": "server", "--port": "port", "--samples": "samples", "--timeout": "timeout",
         "--warn": "warn", "--crit": "crit", "--output": "output", "--textfile": "textfile",
         "--textfile-dir": "textfile_dir", "--chronyd-socket": "chronyd_socket"}
_SHORT = {"-s": "server", "-H": "server", "-t": "timeout", "-w": "warn", "-c": "crit",
          "-o": "output"}
_FLAGS = {"--chronyd": ("chronyd", True), "--no-chronyd": ("chronyd", False),
          "--quiet": ("quiet", True)}
_SHORT_FLAGS = {"-q": ("quiet", True)}
_NUMBERS: dict[str, type[int] | type[float]] = {
    "port": int, "samples": int, "timeout": float, "warn": float, "crit": float}


def fast_parse(args: list[str], environ: Mapping[str, str]) -> dict[str, Any] | None:
    """`check`'s options as click reads them, or None where click must speak (help, an unknown
    option, a missing or malformed value, a bad choice, a stray argument): then the typer CLI
    runs, with click's own messages. As click: `--opt value`, `--opt=value`, `-o value`,
    `-ovalue` (so `-o=json` is the value "=json"), short options bundled (`-qH::1`: -q, then -H
    takes the rest); a value is the next argument whatever it looks like; the last of a repeated
    option wins, --server adds up; CHRONYCTL6_TEXTFILE_DIR when not empty.
    (No argparse: it reads some of these differently, and costs start-up time.)"""
    params = dict(DEFAULTS)
    servers: list[str] = []
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if arg in _FLAGS:
            flag, on = _FLAGS[arg]
            params[flag] = on
            continue
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            dest = _LONG.get(name)
            if dest is None:
                return None
            if not eq:
                if not rest:
                    return None
                value = rest.pop(0)
        elif arg.startswith("-") and len(arg) > 1:
            # click's bundling: flags one character at a time, until an option that takes a
            # value, which takes the rest of the argument, or else the next one.
            j = 1
            while arg[j:j + 1] and "-" + arg[j] in _SHORT_FLAGS:
                flag, on = _SHORT_FLAGS["-" + arg[j]]
                params[flag] = on
                j += 1
            if j == len(arg):
                continue
            dest = _SHORT.get("-" + arg[j])
            if dest is None:
                return None
            value = arg[j + 1:]
            if not value:
                if not rest:
                    return None
                value = rest.pop(0)
        else:
            return None  # an argument check does not take (or `-`)
        if dest == "server":
            servers.append(value)
        elif dest in _NUMBERS:
            try:
                params[dest] = _NUMBERS[dest](value)
            except ValueError:
                return None
        elif dest == "output" and value not in OUTPUTS:
            return None  # click's Choice (case-sensitive) refuses it
        else:
            params[dest] = value
    params["server"] = servers or None
    if not 1 <= params["port"] <= 65535:  # click's IntRange says so, in its words
        return None
    if params["textfile_dir"] is None:
        params["textfile_dir"] = environ.get(TEXTFILE_DIR_ENV) or None  # click ignores ""
    return params


def fast_main(args: list[str]) -> None:
    """Run `check` without typer if fast_parse takes the arguments (then exit), else return."""
    params = fast_parse(args, os.environ)
    if params is None:
        return
    outcome = run(params)
    if outcome.stdout is not None:
        sys.stdout.write(outcome.stdout + "\n")
    if outcome.stdout_raw is not None:
        sys.stdout.write(outcome.stdout_raw)
    sys.stdout.flush()
    for line in outcome.stderr:
        sys.stderr.write(line + "\n")
    sys.exit(outcome.exit_code)
