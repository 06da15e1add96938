from __future__ import annotations

import pytest

from chronyctl6 import conf


def test_parse_skips_comments_of_every_kind() -> None:
    text = "# a\n% b\n; c\n! pool x\n\n  server  a.example   iburst \nDriftfile /x\n"
    ds = conf.parse(text)
    assert [(d.keyword, d.args, d.lineno) for d in ds] == [
        ("server", ("a.example", "iburst"), 6),
        ("driftfile", ("/x",), 7),
    ]
    assert ds[0].line == "server  a.example   iburst"
    assert ds[0].normalized == "server a.example iburst"


@pytest.mark.parametrize(
    ("line", "fate", "why"),
    [
        ("pool 2.debian.pool.ntp.org iburst", conf.Fate.DROP, "non-smeared"),
        ("server 169.254.169.123 prefer iburst", conf.Fate.DROP, "Time Sync"),
        ("server fd00:ec2::123 iburst", conf.Fate.DROP, "Time Sync"),
        ("server fd00:ec2:0::123 iburst", conf.Fate.DROP, "Time Sync"),
        ("pool time.aws.com iburst", conf.Fate.DROP, "settings.toml"),
        ("peer 10.0.0.2", conf.Fate.DROP, "non-smeared"),
        ("leapsectz right/UTC", conf.Fate.DROP, "smears"),
        ("refclock PHC /dev/ptp_ena poll 0", conf.Fate.DROP, "PTP"),
        ("refclock PHC /dev/ptp0 poll 0", conf.Fate.DROP, "PTP"),
        ("sourcedir /run/chronyctl6", conf.Fate.DROP, "boot"),
        ("refclock SHM 0", conf.Fate.KEEP, ""),
        ("sourcedir /run/chrony-dhcp", conf.Fate.KEEP, ""),
        ("allow 10.0.0.0/8", conf.Fate.KEEP, ""),
        ("somethingnew 1 2", conf.Fate.KEEP, ""),
    ],
)
def test_judge(line: str, fate: conf.Fate, why: str) -> None:
    verdict = conf.judge(conf.parse(line)[0], runtime_sourcedir="/run/chronyctl6")
    assert verdict.fate is fate
    assert why in verdict.reason


def test_is_managed_reads_only_the_header() -> None:
    assert conf.is_managed("# This file is managed by chronyctl6.\n")
    assert not conf.is_managed("a\nb\nc\n# managed by chronyctl6\n")


def test_judge_drops_a_distros_boot_filled_sourcedir() -> None:
    replaced = (("/run/chrony.d", "boot-filled"),)
    d = conf.parse("sourcedir /run/chrony.d/")[0]
    verdict = conf.judge(d, runtime_sourcedir="/run/chronyctl6", replaced_sourcedirs=replaced)
    assert verdict.fate is conf.Fate.DROP and verdict.reason == "boot-filled"
    keep = conf.judge(conf.parse("sourcedir /etc/chrony.d")[0], runtime_sourcedir="/run/chronyctl6",
                      replaced_sourcedirs=replaced)
    assert keep.fate is conf.Fate.KEEP
