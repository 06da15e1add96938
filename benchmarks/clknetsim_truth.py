"""Ground truth in chrony's own simulator: every client against a server whose offset is known by
construction, on simulated clocks and a simulated network (clknetsim).

    sudo python3 -m benchmarks.clknetsim_truth --clknetsim DIR [--trials 20] [--paths hop,wan,asym]
        [--seed 1] [--python PYTHON] [--json FILE]

DIR holds a built clknetsim (`clknetsim.so` and the `clknetsim` server; README: provenance).
clknetsim preloads a library into each program that redirects its clock, socket and timer calls
to a simulation server: each program is a node with its own simulated clock, its packets travel a
simulated network whose one-way delays are drawn per packet from the path's expressions. No real
packet is sent and no real clock is read or set; even so the harness runs in a fresh network
namespace (it re-executes itself under `unshare -n`; root needed) and every simulated program runs
as user nobody, who cannot set this machine's clock if a call ever slipped past the library.

One simulation per trial: node 1 is the server (a real chronyd, `local stratum 1`, the true time);
every client is a node of its own whose clock starts `truth` behind it (frequency error 0), so a
client's true offset is exactly `truth`. The one-shot clients start 10 s in: chronyctl6 check
(JSON), check_timesync, one bare ntplib request, sntp (ntpsec's ntpdig), check_ntp_time, `chronyd -Q`, and one
process that runs chronyctl6's exchange once and weighs its samples several ways (the `same
burst:` rows). A real chronyd (the Time Sync line's options, makestep, maxclockerror) steers its
own simulated clock from the same start; `chronyc -c tracking` asks it from another node after
QUERY_AT seconds, and the bound `status` reports is computed from that reading
(measure.gather.bound_from_tracking). Its truth is its clock's error at that instant, from
clknetsim's offset log.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pwd
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import clients as py
from benchmarks.paths import PATHS, Leg, Trial, error_table

REPO = Path(__file__).resolve().parent.parent
_MARK = "CHRONYCTL6_CLKNETSIM_NETNS"
SERVER_NAME = "node1.net1.clk"  # clknetsim's resolver knows node names only, no IPv6 literals
SERVER_ADDR = "fc00::123:1"  # node 1 on subnet 1 with CLKNETSIM_IP_FAMILY=6
CLIENT_START = 10.0  # simulated seconds: the server has its local reference by then
QUERY_AT = 600.0  # simulated seconds: chronyc asks the steering chronyd (37 polls at 16 s)
LIMIT = QUERY_AT + 5
SIM_EPOCH = 1262304000  # clknetsim's simulated time starts here (CLKNETSIM_START_DATE's default)
OFFSET_RATE = 100  # offset log lines per simulated second (clknetsim -R)
BURST_SCRIPT = (
    "import json, statistics\n"
    "from chronyctl6.measure import exchange as x\n"
    f"m = x.measure(x.resolve('{SERVER_NAME}'), samples=x.DEFAULT_SAMPLES)[0]\n"
    "b, f = m.best, m.fastest\n"
    "print(json.dumps({'combine': [b.offset, b.error_bound], 'fastest': [f.offset, f.error_bound],\n"
    "                  'mean': [statistics.fmean(s.offset for s in m.samples), None],\n"
    "                  'samples': [[s.offset, s.delay, s.taken] for s in m.samples]}))\n"
)
BURST_ROWS = {"combine": "same burst: combine", "fastest": "same burst: min delay",
              "mean": "same burst: mean"}
STEERED = "chronyd (steering): clock"


def enter_netns() -> None:
    """Re-run this module inside a fresh network namespace, or refuse."""
    if os.environ.get(_MARK):
        links = sorted(name for _i, name in socket.if_nameindex())
        if links != ["lo"]:
            sys.exit(f"clknetsim_truth: not in a fresh network namespace (links {links}); refusing")
        return
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("setpriv") is None:
        sys.exit("clknetsim_truth: needs root, unshare and setpriv (util-linux): it runs in a network "
                 "namespace of its own and runs every simulated program as nobody")
    argv = ["unshare", "-n", "--", sys.executable, "-m", "benchmarks.clknetsim_truth", *sys.argv[1:]]
    sys.exit(subprocess.run(argv, cwd=REPO, env={**os.environ, _MARK: "1"}, check=False).returncode)


def leg_expr(leg: Leg) -> str:
    """One direction of a path as a clknetsim delay expression, evaluated for every packet; a
    negative delay drops the packet."""
    base, kind, jitter, loss = leg
    noise = {"normal": f" (* {jitter!r} (normal))", "exp": f" (* {jitter!r} (exponential))"}.get(kind, "")
    expr = f"(+ {base!r}{noise})"
    if kind == "normal":  # a normal draw can go below zero: clip, as the namespace responder does
        expr = f"(max 1e-7 {expr})"
    if loss > 0:  # exponential() exceeds -ln(loss) with probability `loss`: then -1000 s, dropped
        expr = f"(+ {expr} (* -1000 (max 0 (min 1 (* 1e12 (+ (exponential) {math.log(loss)!r}))))))"
    return expr


@dataclass
class Node:
    name: str
    argv: list[str]
    start: float = CLIENT_START
    settle: bool = True  # one-shot client: sleeps 0.15 simulated s first (clknetsim_shim.c says why)


@dataclass
class Row:
    name: str
    bound_name: str | None = None
    errors: list[float] = field(default_factory=list)
    signed: list[float] = field(default_factory=list)
    bounds: list[float] = field(default_factory=list)
    covered: list[bool] = field(default_factory=list)
    failures: int = 0

    def add(self, offset: float, truth: float, bound: float | None) -> None:
        self.errors.append(abs(offset - truth))
        self.signed.append(offset - truth)
        if bound is not None:
            self.bounds.append(bound)
            self.covered.append(abs(offset - truth) <= bound)


def nodes(python: str, workdir: Path) -> list[Node]:
    """Node 1 is the server; the others are clients, in this order (node = index + 1)."""
    found = [
        Node("server", ["/usr/sbin/chronyd", "-d", "-u", "root", "-f", str(workdir / "server.conf")], 0.0, False),
        Node("chronyctl6 check", py.check_argv(python, SERVER_NAME)),
        Node("ntplib (1 request)", [python, "-c", py.ntplib_script(SERVER_NAME)]),
        Node("sntp", ["sntp", "-t", "2", SERVER_NAME]),
        Node("check_ntp_time", ["/usr/lib/nagios/plugins/check_ntp_time", "-H", SERVER_NAME, "-6",
                                "-w", "100", "-c", "200"]),
        Node("chronyd -Q", ["/usr/sbin/chronyd", "-Q", "-x", "-u", "root", "-t", "10",
                            f"server {SERVER_ADDR} iburst maxsamples 1", f"pidfile {workdir}/q.pid",
                            "cmdport 0"], settle=False),
        Node("burst", [python, "-c", BURST_SCRIPT]),
        Node("check_timesync", py.timesync_argv(python, SERVER_NAME)),
        Node("steering chronyd", ["/usr/sbin/chronyd", "-d", "-u", "root", "-f", str(workdir / "client.conf")],
             0.0, False),
        Node("chronyc", ["chronyc", "-c", "-n", "-h", f"fc00::123:{STEERED_NODE}", "tracking"], QUERY_AT, False),
    ]
    return found


STEERED_NODE = 9  # nodes()'s "steering chronyd" (chronyc asks it at fc00::123:9)
QUERY_NODE = 10  # nodes()'s "chronyc"


def write_configs(workdir: Path, trial: Trial, node_list: list[Node]) -> None:
    from chronyctl6.configure.render import MAXCLOCKERROR_PPM

    (workdir / "server.conf").write_text(
        f"local stratum 1\nallow\ncmdport 0\npidfile {workdir}/server.pid\n")
    # The Time Sync line's options, as chronyctl6 renders them, against the simulated server.
    (workdir / "client.conf").write_text(
        f"server {SERVER_ADDR} prefer iburst minpoll 4 maxpoll 4\nmakestep 1.0 3\n"
        f"maxclockerror {MAXCLOCKERROR_PPM:g}\ncmdallow\nbindcmdaddress ::\n"
        f"pidfile {workdir}/client.pid\n")
    lines = ["node1_offset = 0", "node1_freq = 0"]
    for number in range(2, len(node_list) + 1):
        lines += [f"node{number}_offset = {-trial.offset!r}", f"node{number}_freq = 0",
                  f"node{number}_start = {node_list[number - 1].start!r}"]
        if number == QUERY_NODE:  # chronyc: on true time, a short fixed hop to the steering chronyd
            lines[-3] = f"node{number}_offset = 0"
            lines += [f"node{QUERY_NODE}_delay{STEERED_NODE} = (+ 1e-4 0)",
                      f"node{STEERED_NODE}_delay{QUERY_NODE} = (+ 1e-4 0)"]
            continue
        lines += [f"node{number}_delay1 = {leg_expr(trial.up)}", f"node1_delay{number} = {leg_expr(trial.down)}"]
    (workdir / "conf").write_text("\n".join(lines) + "\n")


def build_shim(workdir: Path) -> Path:
    """benchmarks/clknetsim_shim.c (ours), built for this run: what CPython needs under clknetsim."""
    shim = workdir / "shim.so"
    subprocess.run(["cc", "-O2", "-Wall", "-shared", "-fPIC", "-o", str(shim),
                    str(REPO / "benchmarks" / "clknetsim_shim.c"), "-ldl"], check=True)
    return shim


def simulate(clknetsim: Path, python: str, trial: Trial, seed: int) -> dict[str, str]:
    """One trial's simulation; each node's output by name, and the offset log."""
    with tempfile.TemporaryDirectory(prefix="clknetsim-truth-") as tmp:
        workdir = Path(tmp)
        nobody = pwd.getpwnam("nobody")
        os.chown(workdir, nobody.pw_uid, nobody.pw_gid)  # nobody writes its pid files and the socket here
        node_list = nodes(python, workdir)
        shim = build_shim(workdir)
        write_configs(workdir, trial, node_list)
        drop = ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups", "--"]
        base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO),
                    "PYTHONDONTWRITEBYTECODE": "1", "HOME": str(workdir),
                    "CLKNETSIM_SOCKET": str(workdir / "sock"), "CLKNETSIM_IP_FAMILY": "6",
                    "CLKNETSIM_CONNECT_TIMEOUT": "30", "EVENT_NOEPOLL": "1"}
        procs = []
        for number, node in enumerate(node_list, start=1):
            # The library is preloaded only past setpriv (by env): preloaded into setpriv it would
            # fake setpriv's own setuid (clknetsim answers it) and take the node's connection.
            preload = ["env", f"LD_PRELOAD={shim}:{clknetsim / 'clknetsim.so'}", f"CLKNETSIM_NODE={number}",
                       *(["CHRONYCTL6_SETTLE=1"] if node.settle else [])]
            out = open(workdir / f"log.{number}", "w")  # noqa: SIM115 (closed below)
            procs.append((node, subprocess.Popen([*drop, *preload, *node.argv], cwd=REPO, env=base_env,
                                                 stdout=out, stderr=subprocess.STDOUT), out))
        server = subprocess.run(
            [*drop, str(clknetsim / "clknetsim"), "-s", str(workdir / "sock"), "-o", str(workdir / "log.offset"),
             "-R", str(OFFSET_RATE), "-l", str(LIMIT), str(workdir / "conf"), str(len(node_list))],
            cwd=workdir, env={**base_env, "CLKNETSIM_RANDOM_SEED": str(seed)}, capture_output=True, text=True,
            timeout=600, check=False)
        for _node, proc, out in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            out.close()
        result = {node.name: (workdir / f"log.{n}").read_text(errors="replace")
                  for n, (node, _p, _o) in enumerate(procs, start=1)}
        result["log.offset"] = (workdir / "log.offset").read_text() if (workdir / "log.offset").exists() else ""
        result["clknetsim"] = server.stdout + server.stderr
        return result


def steered_truth(offset_log: str, at: float) -> float:
    """The steering chronyd's clock error at simulated time `at`, as chronyctl6 signs offsets
    (> 0: the clock is behind true time): clknetsim logs each node's clock minus true time,
    OFFSET_RATE lines a second (line i at i / OFFSET_RATE s), one column per node."""
    lines = offset_log.splitlines()
    i = at * OFFSET_RATE
    lo = min(max(math.floor(i), 1), len(lines) - 1)
    a, b = (float(lines[k - 1].split()[STEERED_NODE - 1]) for k in (lo, lo + 1))
    return -(a + (b - a) * (i - lo))


def steered_bound(tracking_csv: str) -> tuple[float, float | None]:
    """chronyd's system offset estimate and the bound `status` reports, from chronyc's reading
    (taken at QUERY_AT on true time; the bound is computed for that instant, age 0)."""
    from chronyctl6.effects import chrony_tools
    from chronyctl6.measure import gather

    tracking = chrony_tools.parse_tracking(tracking_csv)
    from chronyctl6.configure.render import MAXCLOCKERROR_PPM

    bound = gather.bound_from_tracking(tracking, maxclockerror_ppm=MAXCLOCKERROR_PPM, now=SIM_EPOCH + QUERY_AT + 1e-4,
                                       age=0.0)
    return tracking.system_offset, bound.seconds


def main() -> None:
    from benchmarks.ground_truth import _check_json, _regex

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--clknetsim", type=Path, required=True,
                        help="directory with a built clknetsim (clknetsim.so and clknetsim)")
    parser.add_argument("--trials", type=int, default=20, help="trials (simulations) per path")
    parser.add_argument("--paths", default="hop,wan,wan-normal,asym", help=f"comma-separated, of {', '.join(PATHS)}")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--python", help="interpreter for chronyctl6, check_timesync and ntplib, dynamically "
                        f"linked to libc (default: {py.DEBIAN_PYTHON}, the .deb's, if it can import ntplib)")
    parser.add_argument("--json", type=Path, help="also write every trial's raw results here")
    args = parser.parse_args()
    names = [n for n in args.paths.split(",") if n]
    if [n for n in names if n not in PATHS] or not 1 <= args.trials <= 1000:
        parser.error("unknown path, or --trials not 1-1000")
    sim = args.clknetsim.resolve()
    if not (sim / "clknetsim.so").is_file() or not (sim / "clknetsim").is_file():
        parser.error(f"{sim} has no clknetsim.so and clknetsim (build clknetsim there: README)")
    enter_netns()
    python, why = py.package_python(args.python)
    interpreter = py.describe(python, why)
    subprocess.run([python, "-m", "compileall", "-q", str(REPO / "chronyctl6")], check=True)
    parsers = {
        "chronyctl6 check": (_check_json, "error_bound_seconds"),
        "check_timesync": (py.parse_timesync, "max error - abs offset"),
        "ntplib (1 request)": (_regex(r"^(\S+)"), None),
        "sntp": (_regex(r"\(\+\d{4}\) ([+-]\d+\.\d+) ", r" \+/- (\d+\.\d+) "), "+/-"),
        "check_ntp_time": (_regex(r"Offset (-?\d+(?:\.\d+)?(?:e-?\d+)?) secs"), None),
        "chronyd -Q": (_regex(r"System clock wrong by (-?\d+\.\d+) seconds"), None),
    }
    rng = random.Random(args.seed)
    raw: dict[str, list[dict[str, object]]] = {}
    for name in names:
        path = PATHS[name]
        rows = {n: Row(n, b) for n, (_p, b) in parsers.items()}
        rows.update({k: Row(v, "error_bound" if k != "mean" else None) for k, v in BURST_ROWS.items()})
        rows[STEERED] = Row(STEERED, "ClockBound bound")
        raw[name] = []
        for _ in range(args.trials):
            trial = path.trial(rng)
            out = simulate(sim, python, trial, rng.randrange(1, 1 << 30))
            raw[name].append({"truth": trial.offset, "up": trial.up, "down": trial.down,
                              **{k: v[-20000:] for k, v in out.items() if k != "log.offset"}})
            record(rows, parsers, out, trial.offset)
        print(f"\npath {name}: {path.what}; {args.trials} trials (simulations)")
        print("\n".join(table(list(rows.values()))))
        print(interpreter)
    if args.json:
        args.json.write_text(json.dumps(raw))


Parser = Callable[[str], tuple[float, "float | None"]]


def record(rows: dict[str, Row], parsers: dict[str, tuple[Parser, str | None]], out: dict[str, str],
           truth: float) -> None:
    """One simulation's outputs into the rows: each client's offset and bound against the truth."""
    for client, (parse, _b) in parsers.items():
        try:
            offset, bound = parse(out[client])
        except (ValueError, KeyError, TypeError):
            rows[client].failures += 1
            continue
        rows[client].add(offset, truth, bound)
    try:
        burst = json.loads(out["burst"].strip().splitlines()[-1])
        for key in BURST_ROWS:
            rows[key].add(float(burst[key][0]), truth,
                          None if burst[key][1] is None else float(burst[key][1]))
    except (ValueError, KeyError, TypeError, IndexError):
        for key in BURST_ROWS:
            rows[key].failures += 1
    try:
        _estimate, bound = steered_bound(out["chronyc"])
        # The row's "offset" is the clock's own: its error is |true clock error|.
        rows[STEERED].add(0.0, steered_truth(out["log.offset"], QUERY_AT + 1e-4), bound)
    except Exception:  # any failure of the reading (chronyc's error, an empty log) fails the row
        rows[STEERED].failures += 1


def table(rows: list[Row]) -> list[str]:
    return error_table(rows, 26, 2, "median bound us",
                       lambda r: f"{statistics.median(r.bounds) * 1e6:.1f}" if r.bounds else "-")


if __name__ == "__main__":
    main()
