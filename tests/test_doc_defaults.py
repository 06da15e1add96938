"""Every default and limit the docs state is the code's (issue 20: the `--wait` default was stated
three ways, settings(5) said 0).

The docs: the README, packaging's README and fleet files, the units' comments, every command's
`--help` and the pages packaging/gen_docs.py renders (all made in process, as any user). Each
statement is a `Claim`: where it is, a pattern whose named groups are the numbers it states, and
the code's value for each. The sweep then finds every "default N" / "N by default" in those docs:
one that no claim covers fails, so a new default cannot be written into a doc without a test.
click's own "[default: X]" in --help is left out of the sweep: click prints the option's default.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from chronyctl6 import defaults
from chronyctl6.configure import settings as schema

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


def _gen_docs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_docs", REPO / "packaging/gen_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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

    return float(check_timesync.Options._field_defaults["port"])


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
    gen = _gen_docs()
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
