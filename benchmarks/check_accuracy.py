"""How right, and how fast, is `chronyctl6 check` next to its peers?

    python -m benchmarks.check_accuracy [--trials N] [--offset S] [--mean-delay S]

A local NTP server on [::1]:123 runs a clock ahead by a known offset (default +0.250 s) and
delays every request by a random exponential time (default mean 5 ms; replies go back at
once, so the path is asymmetric, as queues make real paths). Each trial runs, as separate
processes and in turn: `chronyctl6 check`, a bare single ntplib request, `sntp`, and
`chronyd -Q 'server ::1 port 123 iburst maxsamples 1'` (which never sets the clock). For each
it prints the median and 90th percentile absolute offset error and the median wall time to a
verdict (process start-up included), then the ratios against bare ntplib.

It sends packets, so it runs only inside a fresh network namespace: started elsewhere, it
re-executes itself under `unshare -n` (root needed), and refuses if that is not possible.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import clients
from benchmarks.clients import CHECK_SCRIPT as CONSOLE_SCRIPT

REPO = Path(__file__).resolve().parent.parent
_MARK = "CHRONYCTL6_BENCH_NETNS"

NTPLIB_SCRIPT = (
    "import ntplib\n"
    "r = ntplib.NTPClient().request('::1', version=4, port=123, timeout=2)\n"
    "print(r.offset)\n"
)


def isolated() -> bool:
    return sorted(name for _i, name in socket.if_nameindex()) == ["lo"]


def enter_netns() -> None:
    """Re-run this module inside a fresh network namespace, or refuse."""
    if os.environ.get(_MARK):
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        if not isolated():
            sys.exit("benchmark: not in a fresh network namespace; refusing to send packets")
        return
    unshare = shutil.which("unshare")
    if unshare is None:
        sys.exit("benchmark: needs unshare (util-linux) to run in its own network namespace")
    argv = [unshare, "-n", "--", sys.executable, "-m", "benchmarks.check_accuracy", *sys.argv[1:]]
    done = subprocess.run(argv, cwd=REPO, env={**os.environ, _MARK: "1"}, check=False)
    sys.exit(done.returncode)


@dataclass
class Tool:
    name: str
    argv: list[str]
    parse: Callable[[str], float]  # offset in seconds, > 0: local clock behind the server
    errors: list[float] = field(default_factory=list)
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)  # user + system seconds of the process
    failures: int = 0


def _float_after(pattern: str) -> Callable[[str], float]:
    regex = re.compile(pattern)

    def parse(text: str) -> float:
        match = regex.search(text)
        if match is None:
            raise ValueError(f"no offset in {text[-300:]!r}")
        return float(match.group(1))

    return parse


def tools(python: str) -> list[Tool]:
    import json

    found = [
        # As the installed console script runs it (pyproject: chronyctl6.__main__:main), not
        # `python -m`, which adds runpy's start-up.
        Tool("chronyctl6 check", [python, "-c", CONSOLE_SCRIPT, "check", "--server", "::1",
                                 "--port", "123", "-o", "json", "--warn", "5", "--crit", "10"],
             lambda out: float(json.loads(out)["data"]["offset_seconds"])),  # the chronyctl6/v1 envelope
        Tool("ntplib (1 request)", [python, "-c", NTPLIB_SCRIPT], float),
    ]
    sntp = shutil.which("sntp")
    if sntp:
        found.append(Tool("sntp", [sntp, "-t", "2", "::1"],
                          _float_after(r"\(\+\d{4}\) ([+-]\d+\.\d+) ")))
    chronyd = shutil.which("chronyd") or shutil.which("chronyd", path="/usr/sbin:/sbin")
    if chronyd:
        found.append(Tool("chronyd -Q", [chronyd, "-Q", "-u", "root", "-t", "10",
                                         "server ::1 port 123 iburst maxsamples 1"],
                          _float_after(r"System clock wrong by (-?\d+\.\d+) seconds")))
    return found


def run_once(tool: Tool, truth: float) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    done = subprocess.run(tool.argv, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=30, check=False)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    try:
        offset = tool.parse(done.stdout + done.stderr if tool.name == "chronyd -Q"
                            else done.stdout)
    except (ValueError, KeyError, TypeError):
        tool.failures += 1
        return
    tool.errors.append(abs(offset - truth))
    tool.walls.append(wall)
    tool.cpus.append(cpu)


class Floors:
    """What a verdict costs besides the measurement: interpreter start-up and the CLI
    framework; and the two exchanges timed in-process (no start-up at all)."""

    def __init__(self, python: str) -> None:
        import ntplib

        from chronyctl6.measure import exchange

        client = ntplib.NTPClient()
        targets = exchange.resolve("::1", 123)
        self.steps: dict[str, Callable[[], float]] = {
            "python -c pass": lambda: _proc([python, "-c", "pass"]),
            "chronyctl6 --version (interpreter + typer + cli.py)":
                lambda: _proc([python, "-c", CONSOLE_SCRIPT, "--version"]),
            "import check's fast path (interpreter + check code)":
                lambda: _proc([python, "-c", "import chronyctl6.measure.command, "
                               "chronyctl6.measure.check, chronyctl6.measure.report"]),
            "in-process: chronyctl6 exchange.measure, 6 samples": lambda: _timed(
                lambda: exchange.measure(targets, samples=6)),
            "in-process: ntplib request, 1 sample": lambda: _timed(
                lambda: client.request("::1", version=4, port=123, timeout=2)),
        }
        self.runs: dict[str, list[float]] = {label: [] for label in self.steps}

    def run_once(self) -> None:
        for label, step in self.steps.items():
            self.runs[label].append(step())

    def medians_ms(self) -> dict[str, float]:
        return {label: statistics.median(v) * 1000 for label, v in self.runs.items() if v}


def _proc(argv: list[str]) -> float:
    start = time.monotonic()
    subprocess.run(argv, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                   capture_output=True, timeout=30, check=False)
    return time.monotonic() - start


def _timed(call: Callable[[], object]) -> float:
    start = time.monotonic()
    call()
    return time.monotonic() - start


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--offset", type=float, default=0.250)
    parser.add_argument("--mean-delay", type=float, default=0.005)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--python", help="interpreter for chronyctl6 and ntplib (default: Debian's "
                        "/usr/bin/python3, the .deb's, if it can import ntplib; else this one)")
    args = parser.parse_args()
    enter_netns()
    args.python, why = clients.package_python(args.python)
    print(clients.describe(args.python, why))

    sys.path.insert(0, str(REPO))
    from tests.ntp_fixtures import Responder, ServerState, exponential_delay

    # An installed package has its bytecode compiled; a checkout under
    # PYTHONDONTWRITEBYTECODE would recompile every run and time the compiler instead.
    subprocess.run([args.python, "-m", "compileall", "-q", str(REPO / "chronyctl6")], check=True)
    versions = subprocess.run(
        [args.python, "-c", "import typer, ntplib, sys; print(sys.version.split()[0], "
         "typer.__version__)"], capture_output=True, text=True, check=False).stdout.split()
    state = ServerState(offset=args.offset, stratum=1, ref_id=b"GPS\0")
    delay = exponential_delay(args.mean_delay, seed=args.seed)
    found = tools(args.python)
    with Responder(state=state, host="::1", port=123, request_delay=delay):
        floors = Floors(args.python)
        for tool in found:  # warm the page cache; not counted
            run_once(tool, args.offset)
            tool.errors.clear()
            tool.walls.clear()
            tool.cpus.clear()
            tool.failures = 0
        for _ in range(args.trials):
            for tool in found:  # interleaved, so machine load falls on all alike
                run_once(tool, args.offset)
            floors.run_once()

    print(f"server clock +{args.offset:.3f} s, request path delay exponential with mean "
          f"{args.mean_delay * 1000:g} ms; {args.trials} trials each; python {versions[0]}, "
          f"typer {versions[1] if len(versions) > 1 else '?'}")
    print(f"{'tool':<20} {'median |err| ms':>16} {'p90 |err| ms':>13} {'median wall ms':>15} "
          f"{'median CPU ms':>14} {'fails':>6}")
    summary = {}
    for tool in found:
        if not tool.errors:
            print(f"{tool.name:<20} {'-':>16} {'-':>13} {'-':>15} {'-':>14} {tool.failures:>6}")
            continue
        err = statistics.median(tool.errors)
        wall = statistics.median(tool.walls)
        summary[tool.name] = (err, wall)
        print(f"{tool.name:<20} {err * 1000:>16.3f} {quantile(tool.errors, 0.9) * 1000:>13.3f} "
              f"{wall * 1000:>15.1f} {statistics.median(tool.cpus) * 1000:>14.1f} "
              f"{tool.failures:>6}")
    base = summary.get("ntplib (1 request)")
    if base:
        print("\nratios against a bare ntplib request (error: lower is better; target: "
              "chronyctl6 error <= 0.15)")
        for name, (err, wall) in summary.items():
            print(f"  {name:<20} error x{err / base[0]:.3f}   wall x{wall / base[1]:.2f}")
    if "sntp" in summary and "chronyctl6 check" in summary:
        ours, theirs = summary["chronyctl6 check"][1], summary["sntp"][1]
        print(f"\nmedian wall: chronyctl6 check {ours * 1000:.1f} ms, sntp {theirs * 1000:.1f} ms "
              f"(x{ours / theirs:.2f}; target <= 1)")
    print("\nwhere chronyctl6's wall time goes (medians, ms):")
    for label, value in floors.medians_ms().items():
        print(f"  {label:<58} {value:7.1f}")


if __name__ == "__main__":
    main()
