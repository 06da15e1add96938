"""Every default, limit and exit status the docs state is the code's (issue 20: the `--wait`
default was stated three ways, settings(5) said 0).

The docs: the README, packaging's README and fleet files, the units' comments, every command's
`--help` and the pages packaging/gen_docs.py renders (all made in process, as any user). Each
statement is a `Claim`: where it is, a pattern whose named groups are the numbers it states, and
the code's value for each. The sweep then finds every "default N" / "N by default" in those docs:
one that no claim covers fails, so a new default cannot be written into a doc without a test.
click's own "[default: X]" in --help is left out of the sweep: click prints the option's default.
Exit statuses the same way: an `ExitClaim` names the command and status word whose code
(chronyctl6.errors.exit_code, the one table) each number stated is; the sweep finds "exit N".
The "Exit statuses:" lists of --help and the README's tables are generated from the table itself
(tests/test_output_contract.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from chronyctl6 import defaults
from chronyctl6.configure import settings as schema
from tests.packaging_support import gen_docs

REPO = Path(__file__).resolve().parent.parent
# The files an operator reads. Contributors' READMEs (sandbox/, benchmarks/) describe test tools.
FILES = ("README.md", "packaging/README.md", "packaging/debian-jammy/README",
         "packaging/systemd/*", "packaging/ssm/*.yml", "packaging/ansible/**/*.yml", "packaging/ansible/**/*.j2",
         "packaging/imagebuilder/*.yml", "packaging/packer/*.hcl", "packaging/cloud-init/*.yml",
         "packaging/prometheus/chronyctl6.rules.yml", "templates/*.j2")
COMMANDS = ("render", "apply", "restore", "boot", "release", "check", "doctor", "status", "wait")
MAN = ("chronyctl6.1", "chronyctl6-settings.5", "check_timesync.1")
# Values that are other programs' defaults, which the docs state beside ours.
CHRONY_MAXSOURCES = 4  # chrony.conf(5), pool: "maxsources ... The default value is 4"
NETWORKD_WAIT_ONLINE_TIMEOUT = 120  # systemd-networkd-wait-online(8): --timeout "Defaults to 120 seconds"


def _option(command: str, name: str) -> Any:
    """The default of a command's option, from the command tree --help is printed from."""
    import typer

    from chronyctl6.cli import app

    group: Any = typer.main.get_command(app)
    for param in group.commands[command].params:
        if name in param.opts:
            return param.default
    raise AssertionError(f"{command} has no {name}")


def _samples_max() -> int:
    from chronyctl6.measure import exchange

    return exchange.MAX_SAMPLES


def _max_distance() -> float:
    from chronyctl6.measure import exchange

    return exchange.DEFAULT_MAX_DISTANCE


def _plugin(name: str) -> float:
    from chronyctl6.measure import check_timesync

    return float(getattr(check_timesync, name))


def _plugin_port() -> float:
    from chronyctl6.measure import check_timesync

    return float(check_timesync.DEFAULT_PORT)


def _maxclockerror() -> float:
    from chronyctl6.configure import render

    return render.MAXCLOCKERROR_PPM


def _timesync_poll() -> tuple[int, int]:
    options = dict(o.split() for o in schema.Settings().timesync_options if " " in o)
    return int(options["minpoll"]), int(options["maxpoll"])


@dataclass(frozen=True)
class Claim:
    docs: tuple[str, ...]  # corpus names (a file's path, "help CMD", a page's name); each must state it
    pattern: str  # over the text with its whitespace collapsed; named groups: the numbers stated
    values: Callable[[], dict[str, float]]  # the code's value for each group


def _wait() -> dict[str, float]:
    return {"v": defaults.APPLY_WAIT}


APPLY_HELP = ("help apply", "chronyctl6.1")
CHECK_HELP = ("help check", "chronyctl6.1")
PLUGIN_HELP = ("check_timesync -h", "check_timesync.1")
CLAIMS = (
    # apply's (and restore's) wait on a live host: the default stated most often
    Claim(("README.md",), r"verify chronyd selected Time Sync \((?P<v>\d+) s by default\)", _wait),
    Claim(("README.md",), r"`--wait SECONDS` \(default (?P<v>\d+) on a live host", _wait),
    Claim(("README.md",), r"\(or the PHC\): (?P<v>\d+) s by default on a live host", _wait),
    Claim(("README.md", "chronyctl6-settings.5"),
          r"wait = \d+ +# apply's --wait default, seconds \(not set: (?P<v>\d+) on a live host", _wait),
    Claim(("chronyctl6-settings.5",), r"default: not set, which is (?P<v>\d+) on a live host", _wait),
    Claim(("chronyctl6-settings.5",), r"number of seconds, (?P<lo>\d+) to (?P<hi>\d+); default: not set",
          lambda: {"lo": 0, "hi": defaults.WAIT_MAX}),
    Claim(APPLY_HELP, r"and wait \((?P<v>\d+) s by default\) for chronyd", _wait),
    Claim(APPLY_HELP, r"on a running instance \(waits up to (?P<v>\d+) s\)", _wait),
    Claim((*APPLY_HELP, "help restore"), r"Default: settings.toml's wait, else (?P<v>\d+) on a live host", _wait),
    Claim(("packaging/ssm/chronyctl6-apply.yml",), r"WaitSeconds: .*? default: \"(?P<v>\d+)\"", _wait),
    Claim(("packaging/ansible/roles/chronyctl6/defaults/main.yml",), r"chronyctl6_wait: (?P<v>\d+)", _wait),
    Claim(("help release", "chronyctl6.1"), r"answers after the restart \(default (?P<v>\d+)\)",
          lambda: {"v": defaults.RELEASE_WAIT}),
    Claim(("README.md",), r"waits up to `--settle` seconds \(default (?P<v>\d+)\)",
          lambda: {"v": _option("boot", "--settle")}),
    # check
    Claim(("README.md",), r"`--samples` \(default (?P<v>\d+), at most (?P<hi>\d+):",
          lambda: {"v": _option("check", "--samples"), "hi": _samples_max()}),
    Claim(CHECK_HELP, r"Requests per server, (?P<lo>\d+) to (?P<hi>\d+) \(", lambda: {"lo": 1, "hi": _samples_max()}),
    Claim(("README.md",), r"`--timeout`/`-t` \(default (?P<v>[\d.]+) s\)",
          lambda: {"v": _option("check", "--timeout")}),
    Claim(("README.md",), r"--warn`/`-w` \(default (?P<v>[\d.]+) s\)", lambda: {"v": _option("check", "--warn")}),
    Claim(("README.md",), r"--crit`/`-c` \(default (?P<v>[\d.]+) s\)", lambda: {"v": _option("check", "--crit")}),
    Claim(("README.md", *CHECK_HELP), r"root distance .{0,60}?(?:of )?at most (?P<v>\d+) s",
          lambda: {"v": _max_distance()}),
    # wait
    Claim(("help wait", "chronyctl6.1"), r"Give up after this long \((?P<v>\d+) s, as chrony-wait.service\)",
          lambda: {"v": _option("wait", "--timeout")}),
    Claim(("packaging/systemd/chronyctl6-wait.service",), r"chronyctl6 wait's bound # \((?P<v>[\d.]+) s by default\)",
          lambda: {"v": _option("wait", "--max-error")}),
    Claim(("packaging/systemd/chronyctl6-wait.service",), r"it gives up after (?P<v>\d+) s",
          lambda: {"v": _option("wait", "--timeout")}),
    # check_timesync: check_ntp_time's defaults
    Claim(("README.md",), r"UDP port or service name \(default (?P<v>\d+)\)", lambda: {"v": _plugin_port()}),
    Claim(("README.md",), r"-w, --warning=THRESHOLD` \| same \| [^`]*?\(default `(?P<v>\d+)`\)",
          lambda: {"v": _plugin("DEFAULT_WARNING")}),
    Claim(("README.md",), r"-c, --critical=THRESHOLD` \| same \| [^`]*?\(default `(?P<v>\d+)`\)",
          lambda: {"v": _plugin("DEFAULT_CRITICAL")}),
    Claim(("README.md",), r"-t, --timeout=INTEGER` \| same \| [^`]*?\(default (?P<v>\d+),",
          lambda: {"v": _plugin("DEFAULT_TIMEOUT")}),
    Claim(PLUGIN_HELP, r"Port number \(default: (?P<v>\d+)\)", lambda: {"v": _plugin_port()}),
    Claim(PLUGIN_HELP, r"warning status \(seconds; default (?P<v>\d+)\)", lambda: {"v": _plugin("DEFAULT_WARNING")}),
    Claim(PLUGIN_HELP, r"critical status \(seconds; default (?P<v>\d+)\)", lambda: {"v": _plugin("DEFAULT_CRITICAL")}),
    Claim(PLUGIN_HELP, r"gives up \(default: (?P<v>\d+)\)", lambda: {"v": _plugin("DEFAULT_TIMEOUT")}),
    # settings.toml
    Claim(("README.md",), r"poll ranges (?P<lo>-?\d+)\.\.(?P<hi>\d+)",
          lambda: {"lo": schema.POLL_RANGE[0], "hi": schema.POLL_RANGE[1]}),
    Claim(("README.md",), r"a regular UTF-8 file of at most (?P<v>\d+) KiB", lambda: {"v": schema.MAX_BYTES / 1024}),
    Claim(("chronyctl6-settings.5",), r"default: minpoll = (?P<lo>-?\d+), maxpoll = (?P<hi>-?\d+)",
          lambda: dict(zip(("lo", "hi"), _timesync_poll(), strict=True))),
    Claim(("README.md",), r"chronyctl6 writes `maxclockerror (?P<v>\d+)`, as ClockBound asks",
          lambda: {"v": _maxclockerror()}),
    # other programs' defaults, stated beside ours
    Claim(("README.md",), r"a pool up to its `maxsources`, (?P<v>\d+) by default", lambda: {"v": CHRONY_MAXSOURCES}),
    Claim(("packaging/README.md",), r"at most its `--timeout`, (?P<v>\d+) s by default",
          lambda: {"v": NETWORKD_WAIT_ONLINE_TIMEOUT}),
)

_NUMBER = r"(?<![\w./:-])-?\d+(?:\.\d+)?(?![\w/:%-]|\.\d)"
SWEEP = (re.compile(r"(?<!\[)\bdefault(?:s|ed)?\b(?:(?!default)[^.;|\[]){0,40}?" + _NUMBER, re.I),
         re.compile(_NUMBER + r"(?: ?(?:s|seconds|ms))? by default", re.I))


@cache
def corpus() -> dict[str, str]:
    """Every doc, by name, its whitespace collapsed (so a statement wrapped across lines is one)."""
    from typer.testing import CliRunner

    from chronyctl6.cli import app
    from chronyctl6.measure import check_timesync

    docs: dict[str, str] = {}
    for pattern in FILES:
        for path in sorted(REPO.glob(pattern)):
            docs[str(path.relative_to(REPO))] = path.read_text(encoding="utf-8")
    for command in COMMANDS:
        done = CliRunner().invoke(app, [command, "--help"], max_content_width=200, terminal_width=200)
        assert done.exit_code == 0, done.output
        docs[f"help {command}"] = done.output
    docs["check_timesync -h"] = check_timesync.help_text()
    gen = gen_docs()
    docs["chronyctl6.1"] = gen.render_man(app, "0", "2026-01-01")
    docs["chronyctl6-settings.5"] = gen.render_settings_man("0", "2026-01-01")
    docs["check_timesync.1"] = gen.render_plugin_man("0", "2026-01-01")
    for name in MAN:  # roff's escapes as the reader sees them
        docs[name] = re.sub(r"\\f[BIRP]|\\&", "", docs[name]).replace("\\-", "-").replace("\\e", "\\")
    return {name: " ".join(text.split()) for name, text in docs.items()}


def _matches(claim: Claim, doc: str) -> list[re.Match[str]]:
    return list(re.finditer(claim.pattern, corpus()[doc]))


@pytest.mark.parametrize("claim", CLAIMS, ids=[c.pattern[:50] for c in CLAIMS])
def test_each_stated_default_is_the_codes(claim: Claim) -> None:
    expected = claim.values()
    for doc in claim.docs:
        found = _matches(claim, doc)
        assert found, f"{doc} no longer says {claim.pattern!r}: update the claim with the doc"
        for match in found:
            stated = {k: float(v) for k, v in match.groupdict().items()}
            assert stated == {k: float(v) for k, v in expected.items()}, (doc, match.group(0))


def test_every_default_the_docs_state_is_claimed() -> None:
    """The sweep: a default written into any doc without a claim (and so without a test) fails."""
    covered: dict[str, list[tuple[int, int]]] = {}
    for claim in CLAIMS:
        for doc in claim.docs:
            covered.setdefault(doc, []).extend(m.span() for m in _matches(claim, doc))
    unclaimed = []
    for doc, text in corpus().items():
        for pattern in SWEEP:
            for match in pattern.finditer(text):
                if not any(a <= match.start() < b or a < match.end() <= b for a, b in covered.get(doc, ())):
                    unclaimed.append(f"{doc}: ...{text[max(0, match.start() - 40):match.end() + 20]}...")
    assert not unclaimed, "defaults stated without a test (add a Claim):\n" + "\n".join(unclaimed)


def test_the_sweep_finds_what_it_is_for() -> None:
    """The sweep's patterns catch the ways the docs state a default (else the test above is empty)."""
    for said in ("--wait SECONDS (default 60 on a live host", "verify it (60 s by default)",
                 "the timeout (default: 10)", "(default `120`)", "defaults to 3 s"):
        assert any(p.search(said) for p in SWEEP), said
    for unsaid in ("a default route", "[default: 10.0]", "the default `mix`", "default: settings"):
        assert not any(p.search(unsaid) for p in SWEEP), unsaid
    assert len(corpus()) > len(COMMANDS) + len(MAN) + 10


# ---- exit statuses

@dataclass(frozen=True)
class ExitClaim:
    docs: tuple[str, ...]
    pattern: str  # named groups: exit codes stated
    words: dict[str, tuple[str, str]]  # group -> (command, status word): the code is the table's


_NAGIOS = {"ok": ("check", "ok"), "w": ("check", "warning"), "c": ("check", "critical"), "u": ("check", "unknown")}
EXIT_CLAIMS = (
    ExitClaim(("README.md",), r"`--check` \(exit (?P<c>\d) if apply would change", {"c": ("apply", "pending")}),
    # The first screen's healthy output: status and check (the same family's `ok`).
    ExitClaim(("README.md",), r"installed as above; each exits (?P<ok>\d)\)", {"ok": ("status", "ok")}),
    ExitClaim(APPLY_HELP, r"--check Change nothing; exit (?P<c>\d) if apply would change anything .{0,60}?, "
                          r"(?P<ok>\d) if not", {"c": ("apply", "pending"), "ok": ("apply", "ok")}),
    ExitClaim(APPLY_HELP, r"apply --check --diff exit (?P<c>\d) and show it", {"c": ("apply", "pending")}),
    ExitClaim(("README.md",), r"without changing anything: exit (?P<ok>\d) when files and state are as `apply` "
                              r"would make them, (?P<c>\d) when not",
              {"ok": ("apply", "ok"), "c": ("apply", "pending")}),
    ExitClaim(("packaging/imagebuilder/chronyctl6-component.yml",), r"apply --check exits (?P<ok>\d) when the host",
              {"ok": ("apply", "ok")}),
    ExitClaim(("README.md",), r"is refused \(exit (?P<c>\d)\), since chronyctl6 would validate",
              {"c": ("apply", "usage")}),
    ExitClaim(("README.md",), r"reached it \(exit status (?P<c>\d); doctor's config checks",
              {"c": ("render", "usage")}),
    ExitClaim(("README.md",), r'"command": "apply", "status": "ok", "exit_code": (?P<c>\d)', {"c": ("apply", "ok")}),
    ExitClaim(("README.md",), r"`--lock-timeout`, exit (?P<c>\d), the message names", {"c": ("apply", "busy")}),
    ExitClaim(("README.md",), r"on the old files; exit (?P<c>\d) says so\. A rollback that itself fails "
                              r"exits (?P<r>\d)",
              {"c": ("apply", "failed"), "r": ("apply", "rollback-failed")}),
    ExitClaim(("README.md",), r"byte for byte \(exit (?P<c>\d) and \"nothing to restore\"", {"c": ("restore", "ok")}),
    ExitClaim(("chronyctl6-settings.5",), r"render, apply, restore exit (?P<c>\d) \(status usage\)",
              {"c": ("apply", "usage")}),
    ExitClaim(("packaging/ssm/chronyctl6-apply.yml",),
              r'"exit_code":(?P<c>\d),"error":"chronyctl6 is not installed on this instance"\}\'; exit (?P<e>\d); fi',
              {"c": ("apply", "failed"), "e": ("apply", "failed")}),
    # check and check_timesync: the Nagios convention
    ExitClaim(("README.md",), r"a negative value is UNKNOWN \(exit (?P<u>\d)\)", _NAGIOS),
    ExitClaim(("README.md",), r"`usage` for bad arguments; exit (?P<ok>\d)-(?P<u>\d)\)", _NAGIOS),
    ExitClaim(("README.md",), r"`check_timesync` has check_ntp_time's: (?P<ok>\d) OK · (?P<w>\d) WARNING · "
                              r"(?P<c>\d) CRITICAL \(also no response at all\) · (?P<u>\d) UNKNOWN", _NAGIOS),
    ExitClaim(("README.md",), r"`-h, --help` \| same \| print, exit (?P<u>\d) \(as monitoring-plugins", _NAGIOS),
    ExitClaim(("README.md", *PLUGIN_HELP), r"Exit(?: status)?: (?P<ok>\d) OK, (?P<w>\d) WARNING, (?P<c>\d) CRITICAL "
                                           r"\([^)]*\),? (?P<u>\d) UNKNOWN", _NAGIOS),
    ExitClaim(("README.md",), r"status `unavailable`, exit (?P<c>\d), nothing changed",
              {"c": ("apply", "unavailable")}),
    ExitClaim(("README.md",), r"`status --root DIR` .{0,700}?Exit (?P<ok>\d) when the image is as chronyctl6 renders "
                              r"it with chrony enabled, (?P<w>\d) with drift, .{0,60}?, (?P<u>\d) when its "
                              r"configuration cannot be read",
              {"ok": ("status", "ok"), "w": ("status", "warning"), "u": ("status", "unknown")}),
)

# A shell script's own `exit 1` (in the fleet files: "exit 1 fi", "exit 1; fi") is the script's.
EXIT_SWEEP = re.compile(r"\b(?:exit(?:s|ed|ing)?|exit status|exit code|exit_code)\b(?! statuses:)[^.;|]{0,12}?"
                        r"(?<![\w.])\d(?![\w.])(?!;? fi\b)", re.I)


def _code(command: str, word: str) -> int:
    from chronyctl6 import errors

    return errors.exit_code(command, errors.Status(word))


@pytest.mark.parametrize("claim", EXIT_CLAIMS, ids=[c.pattern[:50] for c in EXIT_CLAIMS])
def test_each_stated_exit_status_is_the_tables(claim: ExitClaim) -> None:
    for doc in claim.docs:
        found = list(re.finditer(claim.pattern, corpus()[doc]))
        assert found, f"{doc} no longer says {claim.pattern!r}: update the claim with the doc"
        for match in found:
            for group, stated in match.groupdict().items():
                if stated is not None:
                    assert int(stated) == _code(*claim.words[group]), (doc, group, match.group(0))


def test_every_exit_status_the_docs_state_is_claimed() -> None:
    covered: dict[str, list[tuple[int, int]]] = {}
    for claim in EXIT_CLAIMS:
        for doc in claim.docs:
            covered.setdefault(doc, []).extend(m.span() for m in re.finditer(claim.pattern, corpus()[doc]))
    unclaimed = []
    for doc, text in corpus().items():
        for match in EXIT_SWEEP.finditer(text):
            if not any(a <= match.start() < b or a < match.end() <= b for a, b in covered.get(doc, ())):
                unclaimed.append(f"{doc}: ...{text[max(0, match.start() - 40):match.end() + 20]}...")
    assert not unclaimed, "exit statuses stated without a test (add an ExitClaim):\n" + "\n".join(unclaimed)
