"""The fast path (`chronyctl6 check` parsed without typer) against the typer CLI: on one table of
argument lists, wherever click takes the arguments the fast path must read exactly what click
reads; wherever click refuses them, the fast path must leave them to click (whose messages and
exit status then apply). And the real command, both ways, gives the same verdicts and documents.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chronyctl6 import cli
from chronyctl6.measure import command
from tests.conftest import require
from tests.contract import validate
from tests.helpers import START_UP_NEVER, cli_runner, cli_typer, modules_run_imports
from tests.helpers import cli as run_cli
from tests.measure.fastpath_table import TABLE, click_params, same
from tests.ntp_fixtures import Responder, ServerState, require_isolated_netns

REPO = Path(__file__).resolve().parents[2]

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


def test_debians_typer_reads_the_table_as_the_fast_path_does() -> None:
    """The .deb runs Debian's python3 with typer 0.7.0 and click 8.1: the same table there."""
    debian = "/usr/bin/python3"
    probe = subprocess.run([debian, "-c", "import typer"], capture_output=True, check=False)
    require(probe.returncode == 0, "Debian's python3-typer is not installed (apt-get install "
            "python3-typer)")
    for env in ({}, {"CHRONYCTL6_TEXTFILE_DIR": "/srv/textfiles"}):
        clean = {k: v for k, v in os.environ.items() if k != "CHRONYCTL6_TEXTFILE_DIR"}
        done = subprocess.run([debian, "-m", "tests.measure.fastpath_table"], cwd=REPO,
                              capture_output=True, text=True, timeout=60, check=False,
                              env={**clean, **env, "PYTHONPATH": str(REPO)})
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["mismatches"] == [], report  # report["typer"]: the version compared


def test_the_constants_agree() -> None:
    assert cli.TEXTFILE_DIR_ENV == command.TEXTFILE_DIR_ENV
    assert cli.TEXTFILE_NAME == command.TEXTFILE_NAME
    assert tuple(o.value for o in cli.CheckOutput) == command.OUTPUTS


# ---- the real command, both ways ---------------------------------------------------------------

# In process, as `python -m chronyctl6 check` (the fast path first) and as the typer app alone.
FAST = run_cli
TYPER = cli_typer


def run(entry: Callable[..., subprocess.CompletedProcess[str]], *args: str) -> subprocess.CompletedProcess[str]:
    return entry("check", *args)


@pytest.mark.parametrize("args", [
    ["-o", "json", "-w", "0.1", "-c", "1"],
    ["-o", "nagios", "-w", "0.1", "-c", "0.2"],
    ["-o", "nagios", "-w", "0.01", "-c", "0.02"],
    ["-o", "prometheus"],
    ["-o", "json", "--crit", "inf"],
    ["-o", "nagios", "--warn", "nan"],
    ["-o", "nagios", "--samples", "9"],
    ["-o", "xml"],
    ["-o", "json", "--samples", "9"],
    ["-o", "json", "--textfile", "metrics.txt"],
    ["-o", "json", "--port", "0"],
    ["-o", "json", "-q", "--warn", "2", "--crit", "1"],
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
        # The same chronyctl6/v1 envelope both ways: valid, the same status and verdict, the same
        # fields at every depth (the measured numbers differ from one run to the next).
        a, b = validate(json.loads(fast.stdout)), validate(json.loads(slow.stdout))
        assert a["exit_code"] == fast.returncode and b["exit_code"] == slow.returncode
        assert (a["status"], a["data"].get("verdict")) == (b["status"], b["data"].get("verdict"))
        assert shape(a) == shape(b)
        if a["status"] == "usage":  # nothing measured: the very same bytes
            assert fast.stdout == slow.stdout
    elif "nagios" in args:
        assert fast.stdout.split(":")[0] == slow.stdout.split(":")[0]
        assert fast.stdout.count("\n") == slow.stdout.count("\n") == 1
    else:
        assert [ln.split()[0] for ln in fast.stdout.splitlines()] == \
            [ln.split()[0] for ln in slow.stdout.splitlines()]


def shape(value: Any) -> Any:
    """A JSON document's keys at every depth, and its messages' levels. Of `samples`, the shapes of
    its items but not how many: a reply late on a loaded machine is one sample fewer, in either run."""
    if isinstance(value, dict):
        if set(value) == {"level", "text"}:
            return ("message", value["level"])
        return {k: sorted({repr(shape(s)) for s in v}) if k == "samples" and isinstance(v, list) else shape(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__ if value is not None else None


@pytest.mark.parametrize("verdict", ["OK", "WARNING", "CRITICAL", "UNKNOWN"])
@pytest.mark.parametrize("output", ["json", "nagios", "text", "prometheus"])
def test_typer_and_the_fast_path_print_the_identical_outcome(
        verdict: str, output: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """One measurement (a fixed result, nothing sent), printed both ways: byte for byte the same,
    and under -o json a valid chronyctl6/v1 envelope."""

    from chronyctl6.measure import gather
    from chronyctl6.measure.check import CheckStatus, Thresholds, evaluate
    from tests.measure.test_check_verdict import measurement, sample, tracking

    offsets = {"OK": 0.001, "WARNING": 0.15, "CRITICAL": 1.5}
    m = (measurement("::1", sample(offsets[verdict], 0.0002)) if verdict in offsets
         else measurement("::1", root_distance_too_large=2, zero_reference=1))
    fixed = evaluate([m], Thresholds(), tracking(offsets.get(verdict, 0.0)))
    assert fixed.status is CheckStatus[verdict]
    monkeypatch.setattr(gather, "run", lambda *a, **k: fixed)
    args = ["-H", "::1", "--no-chronyd", "-o", output]
    with pytest.raises(SystemExit) as ended:
        command.fast_main(args)
    fast = capsys.readouterr()
    slow = cli_runner().invoke(cli.app, ["check", *args])
    assert (ended.value.code, fast.out, fast.err) == (slow.exit_code, slow.stdout, slow.stderr)
    assert slow.exit_code == int(CheckStatus[verdict])
    if output == "json":
        doc = validate(json.loads(fast.out))
        assert (doc["command"], doc["status"], doc["exit_code"]) == ("check", verdict.lower(),
                                                                      slow.exit_code)
        assert doc["data"]["verdict"] == verdict


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
    doc = validate(json.loads(done.stdout))
    assert "chronyctl6.measure.exchange" in loaded and doc["data"]["verdict"] == "UNKNOWN"
    for heavy in ("typer", "click", "jinja2", "psutil", "chronyctl6.cli"):
        assert heavy not in loaded, heavy
    # --no-chronyd: nothing of chronyd's is read, so neither its bound nor wait's record is imported
    for unneeded in ("chronyctl6.measure.clockbound", "chronyctl6.measure.synced", "chronyctl6.effects"):
        assert unneeded not in loaded, unneeded


@pytest.mark.parametrize("output", ["json", "nagios", "text"])
def test_the_fast_path_imports_no_dataclasses_inspect_or_typing(output: str) -> None:
    """The console script's entry, under -S so the interpreter's own site hooks hide nothing."""
    require_isolated_netns()
    with Responder(state=ServerState(offset=0.001)) as r:
        loaded, done = modules_run_imports("chronyctl6.__main__", "main", [
            "chronyctl6", "check", "-H", "::1", "--port", str(r.port), "--no-chronyd", "-o", output])
    assert done.returncode == 0 and "chronyctl6.measure.exchange" in loaded, done  # it measured: OK
    assert not loaded & set(START_UP_NEVER), sorted(loaded & set(START_UP_NEVER))
    assert "chronyctl6.plain" in loaded  # the records that stand in for dataclasses


@pytest.mark.parametrize("output", ["json", "nagios", "text", "prometheus"])
def test_the_default_check_imports_none_of_them_either(output: str, tmp_path: Path) -> None:
    """Without --no-chronyd check runs chronyc (here against a socket where no chronyd listens:
    tests/measure/test_check_chronyd.py has the one that answers) and reads this boot's record."""
    require_isolated_netns()
    with Responder(state=ServerState(offset=0.001)) as r:
        loaded, done = modules_run_imports("chronyctl6.__main__", "main", [
            "chronyctl6", "check", "-H", "::1", "--port", str(r.port), "-o", output,
            "--chronyd-socket", str(tmp_path / "no-chronyd.sock")])
    assert done.returncode == 0 and "chronyctl6.measure.exchange" in loaded, done  # it measured: OK
    assert {"chronyctl6.effects.chronyc", "chronyctl6.measure.synced"} <= loaded  # chronyd was asked
    assert not loaded & set(START_UP_NEVER), sorted(loaded & set(START_UP_NEVER))


def test_the_envelope_is_also_returned_as_data() -> None:
    require_isolated_netns()
    with Responder(state=ServerState(offset=0.001)) as r:
        ok = command.run({"server": ["::1"], "port": r.port, "output": "json", "chronyd": False})
    bad = command.run({"server": ["::1"], "output": "json", "crit": float("inf")})
    assert ok.exit_code == 0 and ok.data is not None and json.loads(ok.stdout or "") == ok.data
    assert validate(ok.data)["status"] == "ok" and ok.data["data"]["verdict"] == "OK"
    assert bad.exit_code == 3 and bad.data is not None and json.loads(bad.stdout or "") == bad.data
    assert validate(bad.data)["status"] == "usage" and bad.data["exit_code"] == 3
    assert "thresholds" in bad.data["messages"][0]["text"]
