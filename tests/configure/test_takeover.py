"""The takeover's pure decisions, in process: one source policy for every file, every dropped or
disabled line reported with its file and line, directives that would stop synchronisation with
the sources left dropped with their reason, the distribution's comments carried as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from chronyctl6.chronyconf import sources
from chronyctl6.chronyconf.sources import Kind
from chronyctl6.configure import render
from chronyctl6.configure.plan import Plan, Request, make_plan
from tests.conftest import FIXTURES
from tests.helpers import put, stock_root


@pytest.mark.parametrize(("host", "kind"), [
    ("fd00:ec2::123", Kind.TIMESYNC_IPV6),
    ("FD00:EC2:0:0::123%eth0", Kind.TIMESYNC_IPV6),
    ("169.254.169.123", Kind.TIMESYNC_IPV4),
    ("::ffff:169.254.169.123", Kind.TIMESYNC_IPV4),
    ("time.aws.com", Kind.SMEARED),
    ("Time.AWS.com.", Kind.SMEARED),
    ("time.google.com", Kind.SMEARED),
    ("time3.google.com", Kind.SMEARED),
    ("time5.google.com", Kind.NON_SMEARED),  # Google serves time1-4 only
    ("time.nist.gov", Kind.NON_SMEARED),
    ("time-a-g.nist.gov", Kind.NON_SMEARED),
    ("2.amazon.pool.ntp.org", Kind.NON_SMEARED),
    ("pool.ntp.org", Kind.NON_SMEARED),
    ("time.aws.com.evil.example", Kind.NON_SMEARED),
    ("169.254.169.124", Kind.NON_SMEARED),
])
def test_one_classification_of_source_names(host: str, kind: Kind) -> None:
    for keyword in ("server", "pool", "peer"):
        assert sources.classify(keyword, (host, "iburst")) is kind


def plan_for(tmp_path: Path, distro: str, main_extra: str = "", files: dict[str, str] | None = None,
             **request: str) -> tuple[Path, Plan]:
    root = stock_root(tmp_path, distro)
    conf = next(p for p in (root / "etc/chrony/chrony.conf", root / "etc/chrony.conf") if p.exists())
    conf.write_text(conf.read_text() + main_extra)
    for path, text in (files or {}).items():
        put(root, path, text)
    return root, make_plan(Request(root=root, ipv6=request.get("ipv6", "on"), phc="off"))


def test_time_aws_com_is_kept_alike_in_the_main_file_and_in_sources_d(tmp_path: Path) -> None:
    dropin = "/etc/chrony/sources.d/aws.sources"
    _, plan = plan_for(tmp_path, "debian12", "server time.aws.com iburst\nserver time.nist.gov iburst\n",
                       {dropin: "pool time.aws.com iburst\nserver time.nist.gov iburst\n"})
    text = plan.config.new.decode()
    assert "\nserver time.aws.com iburst\n" in text and "time.nist.gov" not in text
    edit = next(c for c in plan.pending if c.shown == dropin)
    assert edit.new.decode().startswith("pool time.aws.com iburst\n")
    dropped = {(d.file, d.lineno, d.line) for d in plan.dropped}
    assert (dropin, 2, "server time.nist.gov iburst") in dropped
    assert any(d[0] == "/etc/chrony/chrony.conf" and d[2] == "server time.nist.gov iburst" for d in dropped)


def test_every_disabled_dropin_line_is_reported_with_file_and_line(tmp_path: Path) -> None:
    files = {"/etc/chrony/conf.d/10-a.conf": "# keep me\nmaxclockerror 50\nleapsectz right/UTC\n",
             "/etc/chrony/sources.d/b.sources": "\n\nserver 169.254.169.123 iburst\n"}
    _, plan = plan_for(tmp_path, "debian12", files=files)
    found = {(d.file, d.lineno, d.line) for d in plan.dropped}
    assert ("/etc/chrony/conf.d/10-a.conf", 3, "leapsectz right/UTC") in found
    assert ("/etc/chrony/sources.d/b.sources", 3, "server 169.254.169.123 iburst") in found
    assert ("/etc/chrony/chrony.conf", 8, "pool 2.debian.pool.ntp.org iburst") in found
    for dropped in plan.dropped:
        shown = dropped.as_dict()
        assert set(shown) == {"file", "lineno", "line", "reason"} and shown["reason"]


@pytest.mark.parametrize(("extra", "kept"), [
    ("minsources 2\n", False),  # only Time Sync is left
    ("minsources 1\n", True),
    ("minsources 2\nserver time.aws.com iburst\n", True),  # two smeared sources left
    ("minsources 5\npool time.aws.com iburst\n", True),  # a pool gives up to 4: 5 sources at most
    ("minsources 6\npool time.aws.com iburst\n", False),
    ("minsources 3\npool time.aws.com iburst maxsources 1\n", False),
    ("authselectmode require\n", False),
    ("authselectmode mix\n", True),
])
def test_directives_that_would_stop_synchronisation_are_dropped(tmp_path: Path, extra: str, kept: bool) -> None:
    _, plan = plan_for(tmp_path, "rhel9", extra)
    line = extra.split("\n", maxsplit=1)[0]
    text = plan.config.new.decode()
    assert (f"\n{line}\n" in text) is kept
    reasons = [d.reason for d in plan.dropped if d.line == line]
    assert bool(reasons) is not kept
    if reasons:
        assert "would never" in reasons[0] and "chrony.conf(5)" in reasons[0]


def test_a_stopping_directive_in_a_dropin_is_disabled_there(tmp_path: Path) -> None:
    conf_d = "/etc/chrony/conf.d/strict.conf"
    _, plan = plan_for(tmp_path, "debian12", files={conf_d: "# strict\nminsources 3\nmaxdistance 1\n"})
    edit = next(c for c in plan.pending if c.shown == conf_d)
    assert edit.new.decode().split("\n")[:4] == [
        "# strict", edit.new.decode().split("\n")[1], "# minsources 3", "maxdistance 1"]
    assert "would never" in edit.new.decode().split("\n")[1]
    assert [(d.file, d.lineno) for d in plan.dropped if d.line == "minsources 3"] == [(conf_d, 2)]


def test_an_at_boot_image_counts_the_boot_steps_time_sync_line(tmp_path: Path) -> None:
    _, plan = plan_for(tmp_path, "rhel9", "minsources 1\n", ipv6="auto")
    assert "\nminsources 1\n" in plan.config.new.decode()
    _, plan = plan_for(tmp_path / "b", "rhel9", "minsources 2\n", ipv6="auto")
    assert "\nminsources 2\n" not in plan.config.new.decode()


def test_the_distributions_own_comments_are_carried_byte_for_byte(tmp_path: Path) -> None:
    stock = (FIXTURES / "stock/debian11/etc/chrony/chrony.conf").read_text()
    above = render.comments_above(stock)
    _, plan = plan_for(tmp_path, "debian11")
    text = plan.config.new.decode()
    lines = stock.split("\n")
    kept = [c for n, c in above.items() if f"\n{lines[n - 1]}\n" in text]  # the stock lines written
    assert len(kept) >= 8 and all(f"{c}\n{lines[n - 1]}\n" in text for n, c in above.items() if c in kept)
    assert "it can\u2019t be used" in text  # Debian 11's curly apostrophe, not the platform data's


def test_a_comment_with_a_line_break_lookalike_falls_back_to_the_platforms() -> None:
    text = "# Log files location.\rcmdallow all\nlogdir /var/log/chrony\n"
    assert render.comments_above(text) == {}
    assert render.comments_above("# caf\udce9\nlogdir /x\n") == {}
    assert render.comments_above("  # indented\nlogdir /x\n") == {2: "  # indented"}


def test_render_and_apply_name_every_dropped_line_with_file_and_line_in_text(tmp_path: Path) -> None:
    from tests.helpers import cli

    root = stock_root(tmp_path, "debian12")
    (root / "etc/chrony/sources.d/x.sources").write_text("pool 0.pool.ntp.org iburst\n")
    rendered = cli("render", "--root", str(root), "--ipv6", "on")
    assert "chronyctl6: dropped: /etc/chrony/chrony.conf:8: pool 2.debian.pool.ntp.org iburst" in rendered.stderr
    assert "chronyctl6: dropped: /etc/chrony/sources.d/x.sources:1: pool 0.pool.ntp.org iburst" in rendered.stderr
    assert "dropped" not in rendered.stdout
    applied = cli("apply", "--root", str(root), "--ipv6", "on")
    assert "dropped: /etc/chrony/sources.d/x.sources:1: pool 0.pool.ntp.org iburst  (non-smeared" in applied.stdout


@pytest.mark.parametrize(("extra", "warned"), [
    ("server time.aws.com iburst nts\nauthselectmode prefer\n", "gets noselect"),
    ("server time.aws.com iburst key 1\n", "counts only while it agrees"),  # mix, the default
    ("server time.aws.com iburst require\n", "has the require option"),
    ("bindacqdevice eth1\n", "reaches Time Sync only from there"),
    ("server time.aws.com iburst\n", None),
    ("authselectmode ignore\nserver time.aws.com iburst nts\n", None),
])
def test_kept_directives_that_may_leave_time_sync_unused_are_warned_about(
        tmp_path: Path, extra: str, warned: str | None) -> None:
    _, plan = plan_for(tmp_path, "rhel9", extra)
    found = [w for w in plan.warnings if "chrony.conf(5)" in w or "reaches Time Sync" in w]
    if warned is None:
        assert found == []
    else:
        assert len(found) == 1 and warned in found[0] and "(/etc/chrony.conf:" in found[0]


def test_a_dropin_read_twice_is_one_edit_and_reported_once(tmp_path: Path) -> None:
    conf_d = "/etc/chrony/conf.d/pools.conf"
    _, plan = plan_for(tmp_path, "debian12", "include /etc/chrony/conf.d/*.conf\n",
                       {conf_d: "pool 0.pool.ntp.org iburst\n"})
    assert [c.shown for c in plan.pending].count(conf_d) == 1
    assert [(d.file, d.lineno) for d in plan.dropped if d.file == conf_d] == [(conf_d, 1)]


def test_minsources_met_only_with_internet_sources_is_warned_about(tmp_path: Path) -> None:
    _, plan = plan_for(tmp_path, "rhel9", "minsources 2\nserver time.aws.com iburst\n")
    assert "\nminsources 2\n" in plan.config.new.decode()  # two sources: kept
    (warning,) = [w for w in plan.warnings if "minsources" in w]
    assert "only 1 of the sources left need no internet access" in warning
    _, plan = plan_for(tmp_path / "b", "rhel9", "minsources 1\nserver time.aws.com iburst\n")
    assert not [w for w in plan.warnings if "minsources" in w]


def test_an_extra_reason_disables_a_dropin_line_the_source_policy_keeps() -> None:
    from chronyctl6.chronyconf import traversal
    from chronyctl6.configure import takeover

    class Files:
        def __init__(self) -> None:
            self.data = {"/etc/chrony.conf": b"confdir /etc/chrony.d\n", "/etc/chrony.d/phc.conf":
                         b"# AWS's line\nrefclock PHC /dev/ptp0 poll 0 delay 0.000010 prefer\n"}

        def read(self, shown: str, how: str = "") -> bytes | None:
            return self.data.get(shown)

        def listdir(self, directory: str) -> list[str]:
            return ["phc.conf"] if directory == "/etc/chrony.d" else []

        def exists(self, shown: str) -> bool:
            return shown in self.data

    tree = traversal.load("/etc/chrony.conf", Files())
    assert takeover.take_over(tree, "/run/chronyctl6").edits == ()
    moved = takeover.take_over(tree, "/run/chronyctl6",
                               lambda kw, args: "moves to the boot-time file" if kw == "refclock" else None)
    (edit,) = moved.edits
    assert edit.new == (b"# AWS's line\n# disabled by chronyctl6: moves to the boot-time file\n"
                        b"# refclock PHC /dev/ptp0 poll 0 delay 0.000010 prefer\n")
    assert [(d.file, d.lineno) for d in moved.dropped] == [("/etc/chrony.d/phc.conf", 2)]
