"""How far from the truth is each NTP client? A benchmark where the true offset is known by
construction.

    python3 -m benchmarks.ground_truth [--trials 20] [--paths hop,wan,wan-normal,asym] [--seed 1]

The harness runs in a network namespace of its own (it re-executes itself under `unshare -n`; root
needed) and starts `benchmarks.responder` in a second fresh namespace, joined to the first by a
veth pair: the server is [fd00:ec2::123]:123, an address that exists only in that namespace.
The responder's clock is the shared kernel clock plus a configured offset, so the true offset is
that offset; it emulates each path's one-way delays, jitter and loss (see benchmarks/paths.py and
the responder's docstring for why there and not in `tc netem`).

Each trial draws a true offset (1 ms to 10 s, either sign) and the path's parameters, then runs
every client once, in a shuffled order, as separate processes: `chronyctl6 check`,
`check_timesync`, one bare ntplib request, `sntp`, `check_ntp_time` and `chronyd -Q`. Per path it
prints each client's median and 95th-percentile absolute error against the truth, how often the
client's reported bound contained the truth (for those that report one), its median wall time,
and its failures; and which interpreter ran the Python clients (benchmarks/clients.py: Debian's
python3, the .deb's, unless it cannot import ntplib or --python says otherwise).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import clients as py
from benchmarks.paths import PATHS, Trial, error_table, quantile

REPO = Path(__file__).resolve().parent.parent
SERVER = "fd00:ec2::123"
_MARK = "CHRONYCTL6_GROUND_TRUTH_NETNS"
_CLIENT_IF, _SERVER_IF = "gt-client", "gt-server"

Parsed = tuple[float, float | None]  # offset (> 0: the client's clock is behind), its bound
# Three estimators on the very same bursts: chronyctl6's exchange once, its samples weighed three
# ways. An A/B of the estimator that neither load nor path draws can tilt.
BURST_SCRIPT = (
    "import json, statistics\n"
    "from chronyctl6.measure import exchange as x\n"
    f"m = x.measure(x.resolve('{SERVER}'), samples=x.DEFAULT_SAMPLES)[0]\n"
    "b, f = m.best, m.fastest\n"
    "print(json.dumps({'combine': [b.offset, b.error_bound], 'fastest': [f.offset, f.error_bound],\n"
    "                  'mean': [statistics.fmean(s.offset for s in m.samples), None]}))\n"
)
BURST_ESTIMATORS = {"combine": "same burst: combine", "fastest": "same burst: min delay",
                    "mean": "same burst: mean"}


def enter_netns() -> None:
    """Re-run this module inside a fresh network namespace, or refuse to send anything."""
    if os.environ.get(_MARK):
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        links = sorted(name for _i, name in socket.if_nameindex())
        if links != ["lo"]:
            sys.exit(f"ground_truth: not in a fresh network namespace (links {links}); refusing")
        return
    unshare = shutil.which("unshare")
    if unshare is None:
        sys.exit("ground_truth: needs unshare (util-linux) to run in its own network namespace")
    argv = [unshare, "-n", "--", sys.executable, "-m", "benchmarks.ground_truth", *sys.argv[1:]]
    sys.exit(subprocess.run(argv, cwd=REPO, env={**os.environ, _MARK: "1"}, check=False).returncode)


class Server:
    """The responder in a namespace of its own, reachable only over our veth pair."""

    def __init__(self, realtime: bool) -> None:
        # The server stands for the network and a server with kernel timestamps, which are not on
        # this (shared, loaded) machine: at real-time priority its holds end when the path says,
        # not when the scheduler gets round to it. Its spins are short (_SPIN_NS at most).
        chrt = shutil.which("chrt")
        rt = [chrt, "-f", "10"] if realtime and chrt else []
        self.proc = subprocess.Popen(
            [*rt, "unshare", "-n", "--", sys.executable, "-m", "benchmarks.responder"], cwd=REPO,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)})
        try:
            self._connect(str(self.proc.pid))  # chrt and unshare exec python: one process throughout
        except BaseException:
            self.close()
            raise

    def _connect(self, pid: str) -> None:
        """The veth pair into the responder's namespace, once the responder itself says that
        namespace exists (a handshake on its stdout, not a sleep that a loaded machine outlasts)."""
        self._expect("netns")
        if os.readlink(f"/proc/{pid}/ns/net") == os.readlink("/proc/self/ns/net"):
            raise RuntimeError(f"responder (pid {pid}) is in the harness's own network namespace")
        ns = ["nsenter", "-t", pid, "-n"]
        for argv in (
            ["ip", "link", "add", _CLIENT_IF, "type", "veth", "peer", "name", _SERVER_IF,
             "netns", pid],
            ["ip", "link", "set", _CLIENT_IF, "up"],
            ["ip", "-6", "addr", "add", "fd00:ec2::2/64", "dev", _CLIENT_IF, "nodad"],
            [*ns, "ip", "link", "set", "lo", "up"],
            [*ns, "ip", "link", "set", _SERVER_IF, "up"],
            [*ns, "ip", "-6", "addr", "add", f"{SERVER}/64", "dev", _SERVER_IF, "nodad"],
        ):
            subprocess.run(argv, check=True)
        self._tell("addressed")
        self._expect("ready")

    def _expect(self, word: str, timeout: float = 30.0) -> None:
        """The responder's next line, which must be WORD. It writes one line and then waits for
        the harness, so nothing is left in the pipe's buffer: select on the pipe sees the line."""
        assert self.proc.stdout is not None
        if not select.select([self.proc.stdout], [], [], timeout)[0]:
            raise RuntimeError(f"responder said nothing within {timeout:g} s (waiting for {word!r})")
        line = self.proc.stdout.readline().strip()
        if line != word:
            raise RuntimeError(f"responder said {line!r}, not {word!r}")

    def _tell(self, line: str) -> None:
        """One line to the responder, sent at once."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def configure(self, trial: Trial, seed: int) -> None:
        self._tell(json.dumps({"offset_ns": round(trial.offset * 1e9), "up": trial.up, "down": trial.down,
                               "seed": seed}))
        self._expect("ok")

    def excess(self) -> list[int]:
        """Each reply's realised down-leg delay beyond the drawn one since the last call, ns
        (responder.SendLatency): the harness's own contribution to every client's error."""
        assert self.proc.stdout is not None
        self._tell(json.dumps({"report": True}))
        return [int(v) for v in json.loads(self.proc.stdout.readline())["excess_ns"]]

    def close(self) -> None:
        if self.proc.stdin:
            with contextlib.suppress(BrokenPipeError):  # it may have ended: what it said is the error
                self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Client:
    name: str
    argv: list[str]
    parse: Callable[[str], Parsed]
    bound_name: str | None = None  # what the client calls the bound it reports
    # Other rows filled from the same output (argv empty: not run on their own).
    siblings: dict[str, Client] = field(default_factory=dict)
    errors: list[float] = field(default_factory=list)
    signed: list[float] = field(default_factory=list)  # reported minus true offset
    covered: list[bool] = field(default_factory=list)
    walls: list[float] = field(default_factory=list)
    failures: int = 0


def _regex(pattern: str, bound: str | None = None) -> Callable[[str], Parsed]:
    offset_re, bound_re = re.compile(pattern), re.compile(bound) if bound else None

    def parse(text: str) -> Parsed:
        match = offset_re.search(text)
        if match is None:
            raise ValueError(f"no offset in {text[-300:]!r}")
        b = bound_re.search(text) if bound_re else None
        return float(match.group(1)), float(b.group(1)) if b else None

    return parse


def _check_json(text: str) -> Parsed:
    data = json.loads(text)["data"]
    return float(data["offset_seconds"]), float(data["error_bound_seconds"])


def _burst(key: str) -> Callable[[str], Parsed]:
    def parse(text: str) -> Parsed:
        offset, bound = json.loads(text)[key]
        return float(offset), None if bound is None else float(bound)

    return parse


def burst_clients(python: str) -> list[Client]:
    rows = {key: Client(name, [], _burst(key), "error_bound" if key != "mean" else None)
            for key, name in BURST_ESTIMATORS.items()}
    first = rows.pop("combine")
    first.argv = [python, "-c", BURST_SCRIPT]
    first.siblings = rows
    return [first, *rows.values()]


def clients(python: str, workdir: str) -> list[Client]:
    found = [
        Client("chronyctl6 check", py.check_argv(python, SERVER), _check_json, "error_bound_seconds"),
        Client("check_timesync", py.timesync_argv(python, SERVER), py.parse_timesync, "max error - abs offset"),
        Client("ntplib (1 request)", [python, "-c", py.ntplib_script(SERVER)], _regex(r"^(\S+)")),
    ]
    sntp = shutil.which("sntp")
    if sntp:  # Debian's is ntpsec's ntpdig: "... +0.000123 +/- 0.000050 fd00:ec2::123 s1 no-leap"
        found.append(Client("sntp", [sntp, "-t", "2", SERVER],
                            _regex(r"\(\+\d{4}\) ([+-]\d+\.\d+) ", r" \+/- (\d+\.\d+) "), "+/-"))
    plugin = "/usr/lib/nagios/plugins/check_ntp_time"
    if os.path.exists(plugin):
        found.append(Client("check_ntp_time", [plugin, "-H", SERVER, "-6", "-w", "100", "-c", "200"],
                            _regex(r"Offset (-?\d+(?:\.\d+)?(?:e-?\d+)?) secs")))
    chronyd = shutil.which("chronyd") or shutil.which("chronyd", path="/usr/sbin:/sbin")
    if chronyd:  # -Q never sets the clock; -x as every chronyd here; no pid file, no command port
        found.append(Client("chronyd -Q", [
            chronyd, "-Q", "-x", "-u", "root", "-t", "10", f"server {SERVER} iburst maxsamples 1",
            f"pidfile {workdir}/chronyd.pid", "cmdport 0"],
            _regex(r"System clock wrong by (-?\d+\.\d+) seconds")))
    return [*found, *burst_clients(python)]


def run_client(client: Client, truth: float) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.monotonic()
    done = subprocess.run(client.argv, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=30, check=False)
    wall = time.monotonic() - start
    for row in (client, *client.siblings.values()):
        record(row, done.stdout + done.stderr, truth, wall)


def record(client: Client, output: str, truth: float, wall: float) -> None:
    try:
        offset, bound = client.parse(output)
    except (ValueError, KeyError, TypeError, AttributeError):
        client.failures += 1
        return
    client.errors.append(abs(offset - truth))
    client.signed.append(offset - truth)
    client.walls.append(wall)
    if bound is not None:
        client.covered.append(abs(offset - truth) <= bound)


def table(found: list[Client]) -> list[str]:
    return error_table(found, 21, 1, "median wall ms", lambda c: f"{statistics.median(c.walls) * 1e3:.0f}")


def harness_line(excess: list[int]) -> str:
    """The responder's own noise, beside the table: what no client can see through."""
    if not excess:
        return "responder: no send latency recorded (no transmit stamps)"
    us = [e / 1e3 for e in excess]
    return (f"responder: each reply left {statistics.median(us):+.1f} us after the moment its t3 "
            f"allows for (median; p10 {quantile(us, 0.1):+.1f}, p90 {quantile(us, 0.9):+.1f}; "
            f"{len(us)} replies): down-leg delay the path did not draw, the same for every client")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20, help="trials per path (each runs every client)")
    parser.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated, of {', '.join(PATHS)}")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--python", help="interpreter for chronyctl6, check_timesync and ntplib (default: "
                        f"{py.DEBIAN_PYTHON}, the .deb's, if it can import ntplib; else this one)")
    parser.add_argument("--no-realtime", action="store_true",
                        help="run the responder at normal priority (its holds then overrun under load)")
    parser.add_argument("--json", type=Path, help="also write every trial's errors here")
    args = parser.parse_args()
    names = [n for n in args.paths.split(",") if n]
    unknown = [n for n in names if n not in PATHS]
    if unknown or not 1 <= args.trials <= 1000:
        parser.error(f"unknown path(s) {unknown}" if unknown else "--trials must be 1-1000")
    enter_netns()
    python, why = py.package_python(args.python)
    interpreter = py.describe(python, why)
    subprocess.run([python, "-m", "compileall", "-q", str(REPO / "chronyctl6")], check=True)
    rng = random.Random(args.seed)
    load_before = os.getloadavg()
    raw: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="ground-truth-") as workdir:
        server = Server(realtime=not args.no_realtime)
        try:
            for name in names:
                path = PATHS[name]
                found = clients(python, workdir)
                for _ in range(args.trials):
                    trial = path.trial(rng)
                    server.configure(trial, rng.randrange(1 << 30))
                    runs = [c for c in found if c.argv]
                    for client in rng.sample(runs, len(runs)):  # no client always goes first
                        run_client(client, trial.offset)
                print(f"\npath {name}: {path.what}; {args.trials} trials")
                print("\n".join(table(found)))
                print(interpreter)
                excess = server.excess()
                print(harness_line(excess))
                raw[name] = {c.name: {"errors": c.errors, "signed": c.signed, "covered": c.covered,
                                      "walls": c.walls, "failures": c.failures} for c in found}
                raw[name]["responder excess ns"] = {"values": excess}
        finally:
            server.close()
    load_after = os.getloadavg()
    print(f"\nload average (1, 5, 15 min) before {load_before[0]:.2f} {load_before[1]:.2f} "
          f"{load_before[2]:.2f}, after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}; "
          f"{os.cpu_count()} CPUs; seed {args.seed}")
    if args.json:
        args.json.write_text(json.dumps(raw))


if __name__ == "__main__":
    main()
