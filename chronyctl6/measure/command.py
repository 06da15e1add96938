"""The `check` command's body, shared by the typer CLI and the fast path.

`chronyctl6 check` runs every minute on every instance (the timer, Nagios): most of its wall time
was start-up, and typer with click is the larger part of it. So `chronyctl6 check ...` is first
offered to `fast_parse`, a small parser of the very same options; it takes only argument lists
it reads as click does (a test runs both parsers on one table of arguments), and hands
everything else (help, errors) to the typer CLI, so help, error messages and exit statuses stay
click's.

No typer here; `run` returns what to print rather than printing it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

DEFAULTS: dict[str, Any] = {
    "server": None, "port": 123, "samples": 6, "timeout": 2.0, "warn": 0.1, "crit": 1.0,
    "output": "text", "textfile": None, "textfile_dir": None, "chronyd": True,
    "chronyd_socket": None,
}
OUTPUTS = ("text", "json", "nagios", "prometheus")
TEXTFILE_DIR_ENV = "CHRONYCTL6_TEXTFILE_DIR"
TEXTFILE_NAME = "chronyctl6.prom"
UNKNOWN = 3


@dataclass
class Outcome:
    exit_code: int
    stdout: str | None = None  # one line or document, printed with a newline
    stdout_raw: str | None = None  # printed as is (Prometheus text ends in its own newline)
    stderr: list[str] = field(default_factory=list)
    # -o json: the document as a dict (stdout is its text), for an output envelope to wrap
    data: dict[str, Any] | None = None


class _Unknown(Exception):
    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome


def run(params: Mapping[str, Any], *, debug: bool = False) -> Outcome:
    """The check, from options as typer (or fast_parse) gives them, to what to print."""
    from chronyctl6.errors import ChronyCtlError
    from chronyctl6.measure import check as chk
    from chronyctl6.measure import report as fmt

    p = {**DEFAULTS, **params}
    output = p["output"]

    def unknown(message: str, hint: str | None, data: Any = None) -> NoReturn:
        """Every outcome prints its one line (Nagios) or document (JSON) on stdout."""
        out, document = None, None
        if output == "nagios":
            out = fmt.nagios_unknown(message)
        elif output == "json":
            document = data if data is not None else {"verdict": "UNKNOWN", "error": message,
                                                      "hint": hint}
            out = dumps(document)
        err = [f"chronyctl6: error: {fmt.one_line(message)}"]
        if hint:
            err.append(f"chronyctl6: hint: {hint}")
        raise _Unknown(Outcome(UNKNOWN, out, None, err, document))

    def destination() -> str | None:
        textfile, textfile_dir = p["textfile"], p["textfile_dir"]
        if textfile is not None:
            if not textfile.endswith(".prom"):
                raise chk.CheckUsageError(f"--textfile {fmt.one_line(textfile)}: node_exporter "
                                          "reads only files ending in .prom")
            return str(textfile)
        if textfile_dir:
            return os.path.join(textfile_dir, TEXTFILE_NAME)
        return None

    try:
        try:
            if output not in OUTPUTS:
                raise chk.CheckUsageError(f"-o {fmt.one_line(output)!r}: use {', '.join(OUTPUTS)}")
            where = destination()
            thresholds = chk.Thresholds(p["warn"], p["crit"])
            result = chk.run(list(p["server"] or [chk.default_server()]), port=p["port"],
                             samples=p["samples"], timeout=p["timeout"], thresholds=thresholds,
                             ask_chronyd=p["chronyd"], chronyd_socket=p["chronyd_socket"])
        except ChronyCtlError as exc:
            unknown(exc.message, exc.hint)
        except Exception as exc:
            if debug:
                raise
            unknown(f"unexpected error: {exc!r} (run with --debug for a traceback)", None)
        why = write_textfile(where, fmt.to_prometheus(result)) if where is not None else None
        if why is not None:
            message = (f"cannot write the metrics to {fmt.one_line(str(where))}: {why}; the "
                       f"measurement: {result.status.name}: {result.summary}")
            # JSON keeps the measurement, and says why the exit status is UNKNOWN anyway.
            unknown(message, None, {**fmt.to_data(result), "error": message})
    except _Unknown as stop:
        return stop.outcome
    code = int(result.status)
    if output == "json":
        document = fmt.to_data(result)
        return Outcome(code, dumps(document), data=document)
    if output == "nagios":
        return Outcome(code, fmt.to_nagios(result))
    if output == "prometheus":
        return Outcome(code, None, fmt.to_prometheus(result))
    return Outcome(code, fmt.to_text(result))


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


def dumps(obj: Any) -> str:
    """As the CLI's emit_json writes JSON."""
    import json

    return json.dumps(obj, indent=2, sort_keys=True)


# ---- the fast path ----------------------------------------------------------------------------


# `check`'s options as the typer CLI declares them (tests/measure/test_check_fastpath.py holds the
# two to the same reading of one table of argument lists).
_LONG = {"--server": "server", "--port": "port", "--samples": "samples", "--timeout": "timeout",
         "--warn": "warn", "--crit": "crit", "--output": "output", "--textfile": "textfile",
         "--textfile-dir": "textfile_dir", "--chronyd-socket": "chronyd_socket"}
_SHORT = {"-s": "server", "-H": "server", "-t": "timeout", "-w": "warn", "-c": "crit",
          "-o": "output"}
_FLAGS = {"--chronyd": True, "--no-chronyd": False}
_NUMBERS: dict[str, type[int] | type[float]] = {
    "port": int, "samples": int, "timeout": float, "warn": float, "crit": float}


def fast_parse(args: list[str], environ: Mapping[str, str]) -> dict[str, Any] | None:
    """`check`'s options as click reads them, or None where click must speak (help, an unknown
    option, a missing or malformed value, a stray argument): then the typer CLI runs, with
    click's own messages. As click: `--opt value`, `--opt=value`, `-o value`, `-ovalue` (so
    `-o=json` is the value "=json"); a value is the next argument whatever it looks like; the last
    of a repeated option wins, --server adds up; CHRONYCTL6_TEXTFILE_DIR when not empty.
    (No argparse: it reads some of these differently, and costs start-up time.)"""
    params = dict(DEFAULTS)
    servers: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg in _FLAGS:
            params["chronyd"] = _FLAGS[arg]
            continue
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            dest = _LONG.get(name)
            attached = bool(eq)
        elif arg.startswith("-") and len(arg) > 1:
            name, value = arg[:2], arg[2:]
            dest = _SHORT.get(name)
            attached = bool(value)
        else:
            return None  # an argument check does not take (or `-`)
        if dest is None:
            return None
        if not attached:
            if i == len(args):
                return None
            value = args[i]
            i += 1
        if dest == "server":
            servers.append(value)
        elif dest in _NUMBERS:
            try:
                params[dest] = _NUMBERS[dest](value)
            except ValueError:
                return None
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
