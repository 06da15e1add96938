"""The fast path (`chronyctl6 check` parsed without typer) against the typer CLI: on one table of
argument lists, wherever click takes the arguments the fast path must read exactly what click
reads; wherever click refuses them, the fast path must leave them to click (whose messages and
exit status then apply). And the real command, both ways, gives the same verdicts and documents.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main

from chronyctl6 import cli
from chronyctl6.measure import command
from tests.ntp_fixtures import Responder, ServerState, require_isolated_netns

REPO = Path(__file__).resolve().parents[2]

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
            assert getattr(exc, "exit_code", None) == 3, exc  # bad arguments: UNKNOWN
            return None
    params = dict(ctx.params)
    params["server"] = list(params["server"]) if params["server"] else None
    return params


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return bool(a == b) and type(a) is type(b)


@pytest.mark.parametrize("env", [{}, {"CHRONYCTL6_TEXTFILE_DIR": "/srv/textfiles"},
                                 {"CHRONYCTL6_TEXTFILE_DIR": ""}])
@pytest.mark.parametrize("row", range(len(TABLE)))
def test_the_fast_path_reads_arguments_as_click_does(
        row: int, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    args = TABLE[row]
    monkeypatch.delenv("CHRONYCTL6_TEXTFILE_DIR", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    theirs = click_params(args)
    ours = command.fast_parse(args, os.environ)
    if theirs is None:
        assert ours is None, f"click refuses {args}, the fast path took them: {ours}"
        return
    assert ours is not None, f"click takes {args}, so must the fast path"
    assert set(ours) == set(theirs)
    for key in theirs:
        assert same(ours[key], theirs[key]), (key, ours[key], theirs[key])


def test_the_constants_agree() -> None:
    assert cli.TEXTFILE_DIR_ENV == command.TEXTFILE_DIR_ENV
    assert cli.TEXTFILE_NAME == command.TEXTFILE_NAME
    assert cli._CHECK_OUTPUTS == command.OUTPUTS


# ---- the real command, both ways ---------------------------------------------------------------

FAST = [sys.executable, "-m", "chronyctl6", "check"]
TYPER = [sys.executable, "-c", "from chronyctl6.cli import app; app(prog_name='chronyctl6')",
         "check"]


def run(argv: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*argv, *args], cwd=REPO, capture_output=True, text=True, timeout=30,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)


@pytest.mark.parametrize("args", [
    ["-o", "json", "-w", "0.1", "-c", "1"],
    ["-o", "nagios", "-w", "0.1", "-c", "0.2"],
    ["-o", "nagios", "-w", "0.01", "-c", "0.02"],
    ["-o", "prometheus"],
    ["-o", "json", "--crit", "inf"],
    ["-o", "nagios", "--warn", "nan"],
    ["-o", "nagios", "--samples", "9"],
    ["-o", "xml"],
    ["--bogus"],
    ["--help"],
])
def test_both_paths_give_the_same_outcome(args: list[str]) -> None:
    require_isolated_netns()
    with Responder(state=ServerState(offset=0.15)) as r:
        common = ["--no-chronyd", "-H", "::1", "--port", str(r.port), *args]
        fast, slow = run(FAST, *common), run(TYPER, *common)
    assert fast.returncode == slow.returncode, (fast, slow)
    assert "Traceback" not in fast.stderr + slow.stderr
    if "--help" in args or "--bogus" in args:
        assert fast.stdout == slow.stdout and fast.stderr == slow.stderr
    elif "json" in args:
        a, b = json.loads(fast.stdout), json.loads(slow.stdout)
        assert a.keys() == b.keys() and a.get("verdict") == b.get("verdict")
    elif "nagios" in args:
        assert fast.stdout.split(":")[0] == slow.stdout.split(":")[0]
        assert fast.stdout.count("\n") == slow.stdout.count("\n") == 1
    else:
        assert [ln.split()[0] for ln in fast.stdout.splitlines()] == \
            [ln.split()[0] for ln in slow.stdout.splitlines()]


def test_the_fast_path_imports_neither_typer_nor_click() -> None:
    require_isolated_netns()
    probe = (
        "import sys\n"
        "from chronyctl6.__main__ import main\n"
        "sys.argv = ['chronyctl6', 'check', '-H', '127.0.0.1', '--port', '9', '--no-chronyd',"
        " '-t', '0.3', '-o', 'json']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                          text=True, timeout=30, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    loaded = set(done.stderr.split())
    assert "chronyctl6.measure.exchange" in loaded and json.loads(done.stdout)["verdict"]
    for heavy in ("typer", "click", "jinja2", "psutil", "chronyctl6.cli"):
        assert heavy not in loaded, heavy
