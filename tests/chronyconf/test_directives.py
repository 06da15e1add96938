from __future__ import annotations

import pytest

from chronyctl6.chronyconf import directives


def test_parse_skips_comments_of_every_kind() -> None:
    text = "# a\n% b\n; c\n! pool x\n\n  server  a.example   iburst \nDriftfile /x\n"
    ds = directives.parse(text)
    assert [(d.keyword, d.args, d.lineno) for d in ds] == [
        ("server", ("a.example", "iburst"), 6),
        ("driftfile", ("/x",), 7),
    ]
    assert ds[0].line == "server  a.example   iburst"
    assert ds[0].normalized == "server a.example iburst"


@pytest.mark.parametrize(
    ("line", "fate", "why"),
    [
        ("pool 2.debian.pool.ntp.org iburst", directives.Fate.DROP, "non-smeared"),
        ("server 169.254.169.123 prefer iburst", directives.Fate.DROP, "Time Sync"),
        ("server fd00:ec2::123 iburst", directives.Fate.DROP, "Time Sync"),
        ("server fd00:ec2:0::123 iburst", directives.Fate.DROP, "Time Sync"),
        ("pool time.aws.com iburst", directives.Fate.KEEP, ""),  # as in a drop-in: smeared
        ("server TIME.google.com. iburst", directives.Fate.KEEP, ""),
        ("server time.nist.gov iburst", directives.Fate.DROP, "non-smeared"),
        ("server ::ffff:169.254.169.123 iburst", directives.Fate.DROP, "Time Sync"),
        ("server", directives.Fate.DROP, "without an address"),
        ("peer 10.0.0.2", directives.Fate.DROP, "non-smeared"),
        ("leapsectz right/UTC", directives.Fate.DROP, "smears"),
        ("leapseclist /usr/share/zoneinfo/leap-seconds.list", directives.Fate.DROP, "smears"),
        ("LeapSecList /usr/share/zoneinfo/leap-seconds.list", directives.Fate.DROP, "smears"),
        ("refclock PHC /dev/ptp_ena poll 0", directives.Fate.DROP, "PTP"),
        ("refclock PHC /dev/ptp0 poll 0", directives.Fate.DROP, "PTP"),
        ("sourcedir /run/chronyctl6", directives.Fate.DROP, "boot"),
        ("refclock SHM 0", directives.Fate.KEEP, ""),
        ("sourcedir /run/chrony-dhcp", directives.Fate.KEEP, ""),
        ("allow 10.0.0.0/8", directives.Fate.KEEP, ""),
        ("somethingnew 1 2", directives.Fate.KEEP, ""),
    ],
)
def test_judge(line: str, fate: directives.Fate, why: str) -> None:
    verdict = directives.judge(directives.parse(line)[0], runtime_sourcedir="/run/chronyctl6")
    assert verdict.fate is fate
    assert why in verdict.reason


def test_is_managed_reads_only_the_header() -> None:
    assert directives.is_managed("# This file is managed by chronyctl6.\n")
    assert not directives.is_managed("a\nb\nc\n# managed by chronyctl6\n")


def test_judge_drops_a_distros_boot_filled_sourcedir() -> None:
    replaced = (("/run/chrony.d", "boot-filled"),)
    d = directives.parse("sourcedir /run/chrony.d/")[0]
    verdict = directives.judge(d, runtime_sourcedir="/run/chronyctl6", replaced_sourcedirs=replaced)
    assert verdict.fate is directives.Fate.DROP and verdict.reason == "boot-filled"
    keep = directives.judge(directives.parse("sourcedir /etc/chrony.d")[0], runtime_sourcedir="/run/chronyctl6",
                      replaced_sourcedirs=replaced)
    assert keep.fate is directives.Fate.KEEP
