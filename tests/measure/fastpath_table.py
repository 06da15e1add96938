"""The argument table and the two readings of it (click's, the fast path's) that
test_check_fastpath.py compares, kept free of pytest so that Debian's own python3 (typer 0.7.0,
click 8.1) can run the same comparison: `python3 -m tests.measure.fastpath_table`.
"""

from __future__ import annotations

import math
import os
from enum import Enum
from typing import Any

import typer.main

from chronyctl6 import cli
from chronyctl6.measure import command

# Arguments monitoring systems and people pass, and ones meant to trip a parser up.
TABLE: list[list[str]] = [
    [],
    ["--server", "::1"],
    ["-s", "::1", "-H", "127.0.0.1", "--server", "fd00:ec2::123"],
    ["-H", "::1", "-w", "0.5", "-c", "1", "-t", "3"],
    ["-H::1", "-w0.5", "-c1", "-t3", "-onagios"],
    ["--server=::1", "--warn=0.01", "--crit=0.1", "--output=json"],
    ["--warn", "-1"],
    ["--warn", "nan", "--crit", "inf"],
    ["--crit", "1e999"],
    ["--warn", "1_000"],
    ["--samples", "3", "--samples", "4"],
    ["--samples", "three"],
    ["--samples", "0x10"],
    ["--samples", " 5"],
    ["--port", "0"],
    ["--port", "65536"],
    ["--port", "65535"],
    ["--port", "-1"],
    ["--timeout", ""],
    ["--server", ""],
    ["--server="],
    ["-o", "xml"],
    ["-o=json"],
    ["-o", "-w"],
    ["--no-chronyd"],
    ["--no-chronyd", "--chronyd"],
    ["--chronyd", "--no-chronyd", "--chronyd-socket", "/run/chrony/chronyd.sock"],
    ["--textfile", "/srv/metrics/x.prom"],
    ["--textfile-dir", "/var/lib/prometheus/node-exporter"],
    ["--textfile-dir="],
    ["--serv", "::1"],
    ["--no-chrony"],
    ["--bogus"],
    ["extra"],
    ["--", "--server"],
    ["-"],
    ["--help"],
    ["-h"],
    ["--server"],
    ["-w"],
    ["--warn", "--crit", "1"],
    ["-s", "-H"],
    ["--server", "a" * 300],
    ["--server", "t\u00e9st\u2028\x1b[2J"],
    ["--output", "json", "--output", "nagios"],
    ["-o=json", "-H=::1"],
    ["--chronyd=yes"],
    ["--no-chronyd=1"],
    ["-Hfd00:ec2::123", "-t0.5", "-w", "-0.5"],
    ["--samples=", "3"],
    ["--port", "+123"],
    ["--port", "\u0661\u0662\u0663"],
    ["--warn", "\u0661.\u0665"],
    ["--timeout", "1e-3", "-t", "-inf"],
    ["---server", "::1"],
    ["-ss"],
    ["-x"],
    ["-5"],
    ["--server", "::1", "extra"],
    ["-o"],
    ["--textfile-dir", "/a", "--textfile", "/b.prom"],
    # -q/--quiet, -h and the -o choices (an Enum: case-sensitive) as the typer CLI declares them.
    ["-q"],
    ["--quiet", "-o", "text"],
    ["-qH::1", "-onagios"],
    ["-qq", "-H", "::1"],
    ["-Hq"],
    ["-qh"],
    ["-qx"],
    ["-q-"],
    ["--quiet=1"],
    ["-o", "JSON"],
    ["-o", ""],
    ["--output", "prometheus", "-q"],
]


def click_params(args: list[str]) -> dict[str, Any] | None:
    """What the typer CLI's click parser makes of `check ARGS`, or None if it refuses them.
    (typer 0.7 uses click, newer typers a copy of it: hence no click import here.)"""
    group: Any = typer.main.get_command(cli.app)
    with group.make_context("chronyctl6", ["check"], resilient_parsing=True) as parent:
        sub = group.get_command(parent, "check")
        assert sub is not None
        try:
            ctx = sub.make_context("check", list(args), parent=parent)
        except Exception as exc:
            if type(exc).__name__ == "Exit":
                return None  # --help
            if getattr(exc, "exit_code", None) != 3:  # bad arguments must be UNKNOWN
                raise
            return None
    params = dict(ctx.params)
    params["server"] = list(params["server"]) if params["server"] else None
    # Choices are str Enums in the typer CLI; the fast path hands run() their values.
    return {k: v.value if isinstance(v, Enum) else v for k, v in params.items()}


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return bool(a == b) and type(a) is type(b)


def mismatches(environ: dict[str, str] | os._Environ[str]) -> list[str]:
    """Every row where the fast path does not read the arguments as click does."""
    found = []
    for args in TABLE:
        theirs = click_params(args)
        ours = command.fast_parse(args, environ)
        if (theirs is None) != (ours is None):
            found.append(f"{args!r}: click {theirs!r}, fast path {ours!r}")
        elif theirs is not None and ours is not None:
            for key in set(theirs) | set(ours):
                if not same(ours.get(key), theirs.get(key)):
                    found.append(f"{args!r}: {key} click {theirs.get(key)!r}, "
                                 f"fast path {ours.get(key)!r}")
    return found


if __name__ == "__main__":
    import contextlib
    import io
    import json

    with contextlib.redirect_stdout(io.StringIO()):  # click prints --help
        result = mismatches(os.environ)
    print(json.dumps({"typer": __import__("typer").__version__, "mismatches": result}))
