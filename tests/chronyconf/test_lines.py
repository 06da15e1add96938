"""Lines and words split exactly as chronyd splits them (conf.c fgets, cmdparse.c CPS_NormalizeLine).

Where a test states chronyd's behaviour, test_chronyd_agrees_* checks it against the real chronyd -p.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from chronyctl6.chronyconf import directives, sources
from chronyctl6.effects import commands
from tests.conftest import require

# Characters Python's str.splitlines() breaks a line at, but chronyd does not.
NOT_LINE_BREAKS = ["\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("sep", NOT_LINE_BREAKS)
def test_a_comment_never_hides_a_live_directive(sep: str) -> None:
    text = f"# old note{sep}cmdallow all\nserver a.example iburst\n"
    assert [d.keyword for d in directives.parse(text)] == ["server"]


@pytest.mark.parametrize("sep", ["\r", "\x0b", "\x0c"])
def test_carriage_return_and_form_feed_are_white_space(sep: str) -> None:
    (d,) = directives.parse(f"server{sep}a.example{sep}iburst{sep}\n")
    assert (d.keyword, d.args) == ("server", ("a.example", "iburst"))
    assert sep not in d.line  # never carried into a file where some reader takes it for a break


@pytest.mark.parametrize("sep", ["\x1c", "\x1d", "\x1e", "\x1f", "\x85", "\u2028", "\xa0"])
def test_other_unicode_space_is_part_of_a_word(sep: str) -> None:
    (d,) = directives.parse(f"log{sep}tracking\n")
    assert d.keyword == f"log{sep}tracking".lower() and d.args == ()


def test_nul_ends_the_line_and_lines_are_numbered_by_newlines_only() -> None:
    text = "driftfile /a\x00 cmdallow all\r\n# c\rx\nmaxclockerror 50"
    ds = directives.parse(text)
    assert [(d.normalized, d.lineno) for d in ds] == [("driftfile /a", 1), ("maxclockerror 50", 3)]


def test_a_sources_file_stops_where_chronyd_stops() -> None:
    long = "server " + "a" * 2100 + ".example\n"
    text = "server a.example\n" + long + "server b.example\nserver c.example"
    assert [d.args[0] for d in directives.parse(text, sources_file=True)] == ["a.example"]
    # Unterminated last line: not read from a *.sources file; read from a configuration file.
    assert [d.args[0] for d in directives.parse("server a.example\nserver b.example", sources_file=True)] == [
        "a.example"]
    assert len(directives.parse("server a.example\nserver b.example")) == 2


def test_over_long_line_is_measured_in_bytes() -> None:
    assert not directives.split_lines("x" * 2046 + "\n")[0].too_long
    assert directives.split_lines("x" * 2047 + "\n")[0].too_long
    assert directives.split_lines("é" * 1024 + "\n")[0].too_long  # 2048 bytes


def test_non_utf8_bytes_round_trip() -> None:
    data = b"driftfile /var/lib/chrony/d\xe9rive.drift\n"
    (d,) = directives.parse(directives.decode(data))
    assert directives.encode(d.line) + b"\n" == data


def test_rebase_includes_keeps_every_other_line_byte_for_byte() -> None:
    text = directives.decode(b"# a\rb\ndriftfile /x\xff\ninclude /etc/chrony.d/*.conf\n")
    out = directives.encode(directives.rebase_includes(text, "/img"))
    assert out == b"# a\rb\ndriftfile /x\xff\ninclude /img/etc/chrony.d/*.conf\n"


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("server fd00:ec2::123 iburst", sources.Kind.TIMESYNC_IPV6),
        ("server fd00:ec2:0:0::123", sources.Kind.TIMESYNC_IPV6),
        ("server fd00:ec2::123%eth0 iburst", sources.Kind.TIMESYNC_IPV6),
        ("pool 169.254.169.123", sources.Kind.TIMESYNC_IPV4),
        ("peer time.aws.com", sources.Kind.SMEARED),
        ("server TIME.AWS.COM.", sources.Kind.SMEARED),
        ("pool 2.suse.pool.ntp.org iburst", sources.Kind.NON_SMEARED),
        ("server fd00:ec2::124", sources.Kind.NON_SMEARED),
        ("refclock PHC /dev/ptp_ena poll 0", sources.Kind.PHC),
        ("refclock SHM 0", sources.Kind.REFCLOCK),
        ("allow all", None),
        ("server", None),
    ],
)
def test_source_policy(line: str, kind: sources.Kind | None) -> None:
    (d,) = directives.parse(line)
    assert sources.classify(d.keyword, d.args) is kind


def test_leapseclist_is_dropped_like_leapsectz() -> None:
    for line in ("leapsectz right/UTC", "leapseclist /usr/share/zoneinfo/leap-seconds.list"):
        verdict = directives.judge(directives.parse(line)[0], runtime_sourcedir="/run/chronyctl6")
        assert verdict.fate is directives.Fate.DROP and "smears leap seconds" in verdict.reason
        d = directives.parse(line)[0]
        assert sources.takeover_reason(d.keyword, d.args) is not None


def _chronyd_prints(tmp_path: Path, data: bytes) -> list[str]:
    require(commands.which("chronyd") is not None, "chronyd is not installed")
    conf = tmp_path / "c.conf"
    conf.write_bytes(data)
    done = subprocess.run(["chronyd", "-p", "-u", "root", "-f", str(conf)], capture_output=True, timeout=15,
                          check=False)
    assert done.returncode == 0, done.stderr
    return [ln for ln in directives.decode(done.stdout).split("\n") if ln]


def test_chronyd_agrees_on_comments_white_space_and_nul(tmp_path: Path) -> None:
    data = (b"# note\rcmdallow all\n"
            b"! x\x0ccmddeny all\n"
            b"server\x0ca.example\riburst\n"
            b"driftfile /var/lib/d\xe9\x00 trailing\n")
    printed = _chronyd_prints(tmp_path, data)
    ours = [d.normalized for d in directives.parse(directives.decode(data))]
    assert printed == ours


def test_chronyd_agrees_where_a_line_becomes_too_long(tmp_path: Path) -> None:
    require(commands.which("chronyd") is not None, "chronyd is not installed")
    conf = tmp_path / "c.conf"
    for size, refused in ((2046, False), (2047, True)):
        line = "# " + "x" * (size - 2)
        conf.write_text(line + "\n")
        done = subprocess.run(["chronyd", "-p", "-u", "root", "-f", str(conf)], capture_output=True, text=True,
                              timeout=15, check=False)
        assert (done.returncode != 0) is refused, (size, done.stderr)
        assert directives.split_lines(line + "\n")[0].too_long is refused
