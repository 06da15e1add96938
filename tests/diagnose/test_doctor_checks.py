"""doctor's checks are pure functions of Facts: each trap as plain data, the verdict and the fix."""

from __future__ import annotations

import errno
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from chronyctl6.chronyconf import directives, traversal
from chronyctl6.configure.platforms import by_name
from chronyctl6.diagnose import doctor, facts
from chronyctl6.diagnose.doctor import Status
from chronyctl6.diagnose.facts import Facts, NtpOutcome, Route
from chronyctl6.effects import configtree, daemons, metadata
from chronyctl6.effects.host import HostNetwork
from chronyctl6.effects.phc import PhcFacts
from chronyctl6.measure import exchange

MD = metadata.InstanceMetadata(
    endpoint="[fd00:ec2::254]:80", version="v2", instance_id="i-0abc", instance_type="m7i.large",
    system="nitro", region="eu-west-1", mac="0e:00:00:00:00:01", interface_id="eni-0def",
    subnet_id="subnet-0123", vpc_id="vpc-0456", ipv6s=("2001:db8::10",),
    subnet_ipv6_cidrs=("2001:db8::/64",), vpc_ipv6_cidrs=("2001:db8::/56",))
CHRONYD = daemons.Proc(42, "chronyd", "_chrony", 1_700_000_000.0,
                       ("/usr/sbin/chronyd", "-f", "/etc/chrony/chrony.conf"))


def reach(host: str, md: metadata.InstanceMetadata | None = MD, failure: metadata.Failure | None = None,
          detail: str = "answered") -> metadata.Reach:
    return metadata.Reach(host, md if failure is None else None, failure, detail, 0.01)


def config(*lines: str, extra: dict[str, tuple[str, ...]] | None = None) -> traversal.ConfigTree:
    files = {"/etc/chrony/chrony.conf": lines, **(extra or {})}
    located = tuple(traversal.Located(name, d) for name, text in files.items()
                    for d in directives.parse("\n".join(text)))
    return traversal.ConfigTree("/etc/chrony/chrony.conf", tuple(files), located)


def healthy() -> Facts:
    return Facts(
        imds_v6=reach(metadata.IMDS_V6), imds_v4=reach(metadata.IMDS_V4),
        network=HostNetwork(("2001:db8::10%eth0",), ("192.0.2.10%eth0",)),
        interfaces={"eth0": "0e:00:00:00:00:01"},
        route_v6=Route("fd00:ec2::123", "2001:db8::10", None),
        ntp_v6=NtpOutcome("fd00:ec2::123", "reply", "offset +0.010 ms"),
        ntp_v4=NtpOutcome("169.254.169.123", "reply", "offset +0.010 ms"),
        chrony_version=(4, 3), chronyd=(CHRONYD,), platform=by_name("debian"),
        config=config("server fd00:ec2::123 prefer iburst minpoll 4 maxpoll 4", "makestep 1 3"),
        config_from="chronyd -f", phc=None, others=())


def by_id(f: Facts) -> dict[str, doctor.Check]:
    return {c.id: c for c in doctor.run_checks(f)}


def test_a_healthy_instance_passes_every_check() -> None:
    checks = doctor.run_checks(healthy())
    assert [c.id for c in checks] == ["ec2", "nitro", "imds-ipv6", "ipv6-address", "route-ipv6", "timesync-ipv6",
                                      "timesync-ipv4", "firewall", "chrony", "chronyd", "config-timesync",
                                      "config-smear", "phc", "phc-leap", "other-daemons"]
    assert {c.id: c.status for c in checks} == {c.id: Status.PASS for c in checks}
    assert all(c.fix is None for c in checks)
    assert doctor.exit_status(checks) == 0


def test_not_ec2_at_all() -> None:
    f = replace(healthy(), imds_v6=reach(metadata.IMDS_V6, failure=metadata.Failure.TIMEOUT),
                imds_v4=reach(metadata.IMDS_V4, failure=metadata.Failure.UNREACHABLE))
    c = by_id(f)
    assert c["ec2"].status is Status.FAIL and "timeout" in c["ec2"].evidence
    assert c["nitro"].status is Status.SKIP
    assert doctor.exit_status(list(c.values())) == 2


def test_imds_ipv6_off_prints_the_modify_command_with_this_instance_id() -> None:
    f = replace(healthy(), imds_v6=reach(metadata.IMDS_V6, failure=metadata.Failure.TIMEOUT))
    c = by_id(f)["imds-ipv6"]
    assert c.status is Status.WARN  # Time Sync over IPv6 does not need it...
    assert c.fix == ("aws ec2 modify-instance-metadata-options --instance-id i-0abc --http-protocol-ipv6 enabled "
                     "--region eu-west-1  # needs AWS CLI v2.2.33 or later")
    ipv6_only = replace(f, network=HostNetwork(("2001:db8::10%eth0",), ()))
    assert by_id(ipv6_only)["imds-ipv6"].status is Status.FAIL  # ...an IPv6-only instance does


def test_hop_limit_and_refused_imdsv1() -> None:
    f = replace(healthy(), imds_v6=reach(metadata.IMDS_V6, failure=metadata.Failure.NO_RESPONSE, detail="no answer"))
    assert "--http-put-response-hop-limit 2" in (by_id(f)["imds-ipv6"].fix or "")
    refused = reach(metadata.IMDS_V4, failure=metadata.Failure.V1_REFUSED,
                    detail="refuses IMDSv1 (HttpTokens=required)")
    f = replace(healthy(), imds_v4=refused, imdsv1_asked=True)
    c = by_id(f)["imdsv1"]
    assert c.status is Status.FAIL and "HttpTokens=required" in c.evidence
    assert "--http-put-response-hop-limit 2" in (c.fix or "")


def test_behind_a_hop_too_many_ec2_is_a_warning_with_the_hop_limit_fix() -> None:
    lost = reach(metadata.IMDS_V4, failure=metadata.Failure.NO_RESPONSE, detail="connected, no answer")
    f = replace(healthy(), imds_v6=replace(lost, host=metadata.IMDS_V6), imds_v4=lost)
    c = by_id(f)["ec2"]
    assert c.status is Status.WARN and "no-response" in c.evidence
    # No IMDS, so no instance id from it: the fix looks it up first (Nitro's board asset tag).
    assert c.fix == ("INSTANCE_ID=$(cat /sys/devices/virtual/dmi/id/board_asset_tag) && aws ec2 "
                     'modify-instance-metadata-options --instance-id "$INSTANCE_ID" --http-put-response-hop-limit 2')
    fallback = replace(healthy(), imds_v4=replace(reach(metadata.IMDS_V4), v1_status=200,
                                                  token_failure=metadata.Failure.NO_RESPONSE), imdsv1_asked=True)
    c = by_id(fallback)["imdsv1"]
    assert c.status is Status.WARN and "IMDSv1 was used as asked" in c.evidence
    assert "--instance-id i-0abc --http-put-response-hop-limit 2" in (c.fix or "")


def test_imdsv1_asked_for_on_an_instance_that_requires_tokens() -> None:
    f = replace(healthy(), imds_v6=replace(reach(metadata.IMDS_V6), v1_status=401), imdsv1_asked=True)
    checks = doctor.run_checks(f)
    assert [c.id for c in checks][3] == "imdsv1"
    c = by_id(f)["imdsv1"]
    assert c.status is Status.WARN and "401" in c.evidence and "HttpTokens=required" in c.evidence
    allowed = replace(f, imds_v6=replace(reach(metadata.IMDS_V6), v1_status=200))
    assert by_id(allowed)["imdsv1"].status is Status.PASS
    assert "imdsv1" not in by_id(healthy())  # not asked: not checked


def test_no_ipv6_anywhere_gives_assign_and_subnet_commands_with_its_ids() -> None:
    md = replace(MD, ipv6s=(), subnet_ipv6_cidrs=())
    f = replace(healthy(), imds_v6=reach(metadata.IMDS_V6, failure=metadata.Failure.UNREACHABLE),
                imds_v4=reach(metadata.IMDS_V4, md=md), network=HostNetwork((), ("192.0.2.10%eth0",)),
                route_v6=Route("fd00:ec2::123", None, "ENETUNREACH: Network is unreachable"),
                ntp_v6=NtpOutcome("fd00:ec2::123", "unreachable", "cannot send: Network is unreachable"))
    c = by_id(f)
    assert c["ipv6-address"].status is Status.FAIL
    assert "subnet subnet-0123 has no IPv6 CIDR" in c["ipv6-address"].evidence
    # The chain is printed once, under the first check that needs it; the others point at it.
    fix = c["imds-ipv6"].fix or ""
    assert ('aws ec2 associate-subnet-cidr-block --subnet-id subnet-0123 --ipv6-cidr-block "$CIDR" '
            "--region eu-west-1") in fix
    assert "USED=$(aws ec2 describe-subnets --filters Name=vpc-id,Values=vpc-0456 " in fix
    assert "<" not in fix and ">" not in fix  # no placeholder to fill in
    assert fix.endswith("aws ec2 assign-ipv6-addresses --network-interface-id eni-0def --ipv6-address-count 1 "
                        "--region eu-west-1")
    assert "associate-vpc-cidr-block" not in fix  # the VPC has its block already
    no_vpc_block = replace(f, imds_v4=reach(metadata.IMDS_V4, md=replace(md, vpc_ipv6_cidrs=())))
    assert ("associate-vpc-cidr-block --vpc-id vpc-0456 --amazon-provided-ipv6-cidr-block"
            in (by_id(no_vpc_block)["imds-ipv6"].fix or ""))
    for cid in ("ipv6-address", "route-ipv6", "timesync-ipv6"):
        assert c[cid].status in (Status.FAIL, Status.WARN)
        assert c[cid].fix is None and c[cid].same_fix_as == "imds-ipv6", cid
    assert sum(1 for x in c.values() if x.fix == fix) == 1


def test_an_address_but_no_route() -> None:
    f = replace(healthy(), route_v6=Route("fd00:ec2::123", None, "ENETUNREACH: Network is unreachable"))
    c = by_id(f)["route-ipv6"]
    assert c.status is Status.FAIL and "ENETUNREACH" in c.evidence
    assert (c.fix or "").startswith("sudo ip -6 route add fd00:ec2::/64 dev eth0")


def test_address_in_imds_but_not_configured_locally() -> None:
    f = replace(healthy(), network=HostNetwork((), ("192.0.2.10%eth0",)))
    c = by_id(f)["ipv6-address"]
    assert c.status is Status.FAIL and "on eth0" in c.evidence and "dhclient -6 eth0" in (c.fix or "")


def test_non_nitro_instance() -> None:
    xen = replace(MD, system="xen", instance_type="m4.large")
    f = replace(healthy(), imds_v6=reach(metadata.IMDS_V6, failure=metadata.Failure.TIMEOUT),
                imds_v4=reach(metadata.IMDS_V4, md=xen),
                ntp_v6=NtpOutcome("fd00:ec2::123", "timeout", "no reply"))
    c = by_id(f)
    assert c["nitro"].status is Status.FAIL and "xen" in c["nitro"].evidence
    assert c["nitro"].fix == "sudo chronyctl6 apply --ipv6 off"
    assert c["imds-ipv6"].status is Status.SKIP
    # The same command as nitro's (its comment aside): printed once, pointed at.
    assert c["timesync-ipv6"].status is Status.FAIL and c["timesync-ipv6"].same_fix_as == "nitro"


def test_time_sync_silent_and_kiss_of_death() -> None:
    f = replace(healthy(), ntp_v6=NtpOutcome("fd00:ec2::123", "timeout", "no reply to 2 request(s)"),
                ntp_v4=NtpOutcome("169.254.169.123", "timeout", "no reply to 2 request(s)"))
    c = by_id(f)
    assert c["timesync-ipv6"].status is Status.FAIL and c["timesync-ipv4"].status is Status.FAIL
    kod = replace(healthy(), ntp_v6=NtpOutcome("fd00:ec2::123", "kiss", "kiss-of-death RATE"))
    assert "slow down" in (by_id(kod)["timesync-ipv6"].fix or "")


def test_ipv6_only_instance_skips_the_ipv4_endpoint() -> None:
    f = replace(healthy(), network=HostNetwork(("2001:db8::10%eth0",), ()),
                ntp_v4=NtpOutcome("169.254.169.123", "unreachable", "cannot send"))
    assert by_id(f)["timesync-ipv4"].status is Status.SKIP


def test_chrony_missing_old_or_not_running() -> None:
    c = by_id(replace(healthy(), chrony_version=None, chronyd=()))
    assert c["chrony"].fix == "sudo apt-get install chrony"
    assert c["chronyd"].status is Status.FAIL and c["chronyd"].fix == "sudo systemctl enable --now chrony"
    rhel = by_id(replace(healthy(), chrony_version=None, platform=by_name("rhel"), chronyd=()))
    assert rhel["chronyd"].fix == "sudo systemctl enable --now chronyd"
    assert by_id(replace(healthy(), chrony_version=(3, 5)))["chrony"].status is Status.WARN
    two = by_id(replace(healthy(), chronyd=(CHRONYD, replace(CHRONYD, pid=43))))
    assert two["chronyd"].status is Status.WARN


def test_both_time_sync_lines_configured() -> None:
    f = replace(healthy(), config=config("server 169.254.169.123 prefer iburst",
                                         extra={"/etc/chrony/sources.d/ts.sources": ("server fd00:ec2::123 iburst",)}))
    c = by_id(f)["config-timesync"]
    assert c.status is Status.WARN and c.fix == "sudo chronyctl6 apply"  # the IPv4 line is in chrony.conf
    assert "/etc/chrony/chrony.conf:1" in c.evidence and "/etc/chrony/sources.d/ts.sources:1" in c.evidence
    assert "keep fd00:ec2::123" in c.evidence
    # Amazon Linux 2023's way: the IPv4 line in a drop-in that apply leaves alone.
    al = replace(healthy(), config=config("server fd00:ec2::123 prefer iburst", extra={
        "/run/chrony.d/link-local.sources": ("server 169.254.169.123 prefer iburst",),
        "/run/chrony.d/mixed.sources": ("pool time.aws.com iburst", "server 169.254.169.123 iburst")}))
    assert by_id(al)["config-timesync"].fix == ("sudo rm /run/chrony.d/link-local.sources && "
                                                "sudo sed -i '2d' /run/chrony.d/mixed.sources && "
                                                "sudo chronyc reload sources  # /run is filled again at boot: "
                                                "also stop whatever writes it")
    # Where fd00:ec2::123 does not answer, the IPv4 line is the one to keep; apply comments the
    # other out of a persistent drop-in itself.
    broken = replace(f, ntp_v6=NtpOutcome("fd00:ec2::123", "timeout", "no reply"))
    assert by_id(broken)["config-timesync"].fix == "sudo chronyctl6 apply"
    # A *.conf drop-in (confdir) under /etc: apply comments the line out of it too.
    confd = replace(healthy(), config=config("server fd00:ec2::123 prefer iburst", extra={
        "/etc/chrony/conf.d/old.conf": ("makestep 1 3", "server 169.254.169.123 iburst")}))
    assert by_id(confd)["config-timesync"].fix == "sudo chronyctl6 apply"
    # A package's file outside /etc, which apply leaves alone: removed by line, then a restart
    # (reload reads *.sources only).
    usr = replace(healthy(), config=config("server fd00:ec2::123 prefer iburst", extra={
        "/usr/etc/chrony.d/old.conf": ("makestep 1 3", "server 169.254.169.123 iburst")}))
    assert by_id(usr)["config-timesync"].fix == ("sudo sed -i '2d' /usr/etc/chrony.d/old.conf && "
                                                 "sudo systemctl restart chrony")


def test_no_time_sync_line_or_ipv4_where_ipv6_works() -> None:
    assert by_id(replace(healthy(), config=config("pool 2.debian.pool.ntp.org iburst")))[
        "config-timesync"].status is Status.FAIL
    v4 = by_id(replace(healthy(), config=config("server 169.254.169.123 prefer iburst")))["config-timesync"]
    assert v4.status is Status.WARN and v4.fix == "sudo chronyctl6 apply --ipv6 on"
    dropin = replace(healthy(), config=config("sourcedir /run/chrony.d", extra={
        "/run/chrony.d/link-local.sources": ("server 169.254.169.123 prefer iburst",)}))
    assert by_id(dropin)["config-timesync"].fix == ("sudo rm /run/chrony.d/link-local.sources && "
                                                    "sudo chronyctl6 apply --ipv6 on  # /run is filled "
                                                    "again at boot: also stop whatever writes it")


def test_mixing_smeared_and_non_smeared_and_leapsectz() -> None:
    f = replace(healthy(), config=config("server fd00:ec2::123 prefer iburst", "leapsectz right/UTC",
                                         extra={"/run/chrony-dhcp/eth0.sources": ("server 203.0.113.5 iburst",)}))
    c = by_id(f)["config-smear"]
    assert c.status is Status.WARN
    assert "server 203.0.113.5 iburst (/run/chrony-dhcp/eth0.sources)" in c.evidence
    assert "leapsectz right/UTC" in c.evidence
    assert c.fix == ("sudo rm /run/chrony-dhcp/eth0.sources && sudo chronyctl6 apply  # /run is filled again at "
                     "boot: also stop whatever writes it")
    only_pools = replace(healthy(), config=config("pool 2.debian.pool.ntp.org iburst"))
    assert by_id(only_pools)["config-smear"].status is Status.PASS  # nothing smeared to mix with


def test_phc_present_but_unused() -> None:
    c = by_id(replace(healthy(), phc="/dev/ptp_ena"))["phc"]
    assert c.status is Status.WARN and c.fix == "sudo chronyctl6 apply --phc on"
    used = replace(healthy(), phc="/dev/ptp_ena", config=config(
        "server fd00:ec2::123 prefer iburst", "refclock PHC /dev/ptp_ena poll 0 delay 0.000010 prefer trust"))
    assert by_id(used)["phc"].status is Status.PASS
    boot_time = replace(healthy(), phc="/dev/ptp_ena", config=config(
        "server fd00:ec2::123 prefer iburst", "confdir /run/chronyctl6"))
    c = by_id(boot_time)["phc"]
    assert c.status is Status.WARN and c.fix is not None and "chronyctl6 boot" in c.fix and "restart" in c.fix


def test_phc_driver_support_and_phc_enable_are_reported() -> None:
    off = PhcFacts(None, driver_loaded=True, driver_version="2.13.0g", phc_enable="0")
    c = by_id(replace(healthy(), phc_facts=off))["phc"]
    assert c.status is Status.WARN and "phc_enable=0" in c.evidence and c.fix is not None
    assert "options ena phc_enable=1" in c.fix
    old = by_id(replace(healthy(), phc_facts=PhcFacts(None, driver_loaded=True)))["phc"]
    assert old.status is Status.PASS and "needs ENA 2.10+" in old.evidence
    planted = PhcFacts(None, problems=("/dev/ptp_ena exists, but no /sys/class/ptp clock is the ENA driver's: "
                                       "not used",))
    assert by_id(replace(healthy(), phc_facts=planted))["phc"].status is Status.WARN


def test_the_leap_policy_beside_smeared_ntp() -> None:
    ours = replace(healthy(), phc="/dev/ptp_ena", config=config(
        "server fd00:ec2::123 prefer iburst", "refclock PHC /dev/ptp_ena poll 0 delay 0.000010 prefer trust"))
    c = by_id(ours)["phc-leap"]
    assert c.status is Status.PASS and "trusted reference" in c.evidence and "configure-ec2-ntp" in c.evidence
    recipe = replace(healthy(), phc="/dev/ptp_ena", config=config(
        "server 169.254.169.123 prefer iburst", "refclock PHC /dev/ptp0 poll 0 delay 0.000010 prefer"))
    c = by_id(recipe)["phc-leap"]
    assert c.status is Status.WARN and "may select neither" in c.evidence
    assert c.fix is not None and "s/$/ trust/" in c.fix
    alone = replace(healthy(), config=config("refclock PHC /dev/ptp0 poll 0 delay 0.000010 prefer"))
    assert by_id(alone)["phc-leap"].status is Status.PASS  # nothing smeared beside it


def test_other_time_daemons() -> None:
    timesyncd = daemons.Proc(7, "systemd-timesyncd", "systemd-timesync", 0.0, ("/lib/systemd/systemd-timesyncd",))
    c = by_id(replace(healthy(), others=(timesyncd,)))["other-daemons"]
    assert c.status is Status.FAIL and "beside chronyd" in c.evidence
    assert c.fix == "sudo systemctl disable --now systemd-timesyncd"
    ntpd = daemons.Proc(8, "ntpd", "ntp", 0.0, ("/usr/sbin/ntpd",))
    alone = by_id(replace(healthy(), others=(ntpd,), chronyd=()))["other-daemons"]
    assert alone.status is Status.WARN and "ntp ntpd ntpsec openntpd" in (alone.fix or "")


@pytest.mark.parametrize(("statuses", "code"), [
    ((Status.PASS, Status.SKIP), 0), ((Status.PASS, Status.WARN), 1), ((Status.WARN, Status.FAIL), 2)])
def test_exit_status(statuses: tuple[Status, ...], code: int) -> None:
    assert doctor.exit_status([doctor.Check(str(i), s, "x") for i, s in enumerate(statuses)]) == code


def test_json_entry_shape() -> None:
    c = doctor.Check("x", Status.WARN, "evidence", "fix it")
    assert c.as_dict() == {"id": "x", "status": "warn", "evidence": "evidence", "fix": "fix it", "steps": ["fix it"],
                           "note": None, "same_fix_as": None}


@pytest.mark.parametrize(("argv", "path"), [
    (("chronyd", "-f", "/etc/x.conf", "-x"), "/etc/x.conf"), (("chronyd", "-f/etc/y.conf"), "/etc/y.conf"),
    (("/usr/sbin/chronyd", "-F", "2"), None), (("chronyd", "-f"), None)])
def test_chronyd_config_from_its_command_line(argv: tuple[str, ...], path: str | None) -> None:
    assert daemons.Proc(1, "chronyd", "root", 0.0, argv).config_path == path


def test_config_tree_follows_include_confdir_and_sourcedir(tmp_path: Path) -> None:
    def write(rel: str, text: str) -> None:
        p = tmp_path / rel.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    write("/etc/chrony/chrony.conf", "confdir /etc/chrony/conf.d /usr/lib/chrony/conf.d\n"
          "sourcedir /run/chrony-dhcp\nsourcedir /etc/chrony/sources.d\ninclude /etc/chrony/extra/*.inc\n"
          "sourcedir /does/not/exist\n")
    write("/etc/chrony/conf.d/a.conf", "makestep 1 3\n")
    write("/usr/lib/chrony/conf.d/a.conf", "makestep 9 9\n")  # shadowed by the first directory's a.conf
    write("/usr/lib/chrony/conf.d/b.conf", "leapsectz right/UTC\n")
    write("/etc/chrony/conf.d/ignored.txt", "server 198.51.100.1\n")
    write("/run/chrony-dhcp/eth0.sources", "server 203.0.113.5 iburst\n")
    write("/etc/chrony/sources.d/ts.sources", "server fd00:ec2::123 iburst\n")
    write("/etc/chrony/extra/1.inc", "include /etc/chrony/chrony.conf\nserver 169.254.169.123\n")  # a loop
    tree = configtree.load("/etc/chrony/chrony.conf", tmp_path)
    # chronyd's order: includes and confdirs where they stand, sourcedirs once the configuration is in.
    assert tree.files == ("/etc/chrony/chrony.conf", "/etc/chrony/conf.d/a.conf", "/usr/lib/chrony/conf.d/b.conf",
                          "/etc/chrony/extra/1.inc", "/run/chrony-dhcp/eth0.sources",
                          "/etc/chrony/sources.d/ts.sources")
    assert [(s.file, s.directive.args[0]) for s in tree.sources()] == [
        ("/etc/chrony/extra/1.inc", "169.254.169.123"), ("/run/chrony-dhcp/eth0.sources", "203.0.113.5"),
        ("/etc/chrony/sources.d/ts.sources", "fd00:ec2::123")]
    assert len(tree.problems) == 1 and "includes itself (a loop)" in tree.problems[0]
    assert [d.directive.line for d in tree.keyword("makestep")] == ["makestep 1 3"]
    assert configtree.load("/etc/missing.conf", tmp_path).missing == ("/etc/missing.conf",)


def _measurement(**fields: object) -> exchange.Measurement:
    [target] = exchange.resolve("fd00:ec2::123")
    m = exchange.Measurement(target, sent=2)
    for key, value in fields.items():
        setattr(m, key, value)
    return m


def test_what_checks_exchange_saw_becomes_one_outcome() -> None:
    sample = exchange.Sample(offset=0.0001, delay=0.0002, stratum=3, leap=0, version=4, ref_id="7F7F0101",
                        root_delay=0.0, root_dispersion=0.0)
    cases = [
        (_measurement(samples=[sample]), "reply", "offset +0.100 ms, delay 0.200 ms, stratum 3, 1/2 replies"),
        (_measurement(error="Network is unreachable", send_errno=errno.ENETUNREACH), "unreachable", "cannot send"),
        (_measurement(error="Operation not permitted", send_errno=errno.EPERM), "error", "cannot send"),
        (_measurement(kiss_code="RATE", rejected=Counter({exchange.Reject.KISS_OF_DEATH: 1})), "kiss", "RATE"),
        (_measurement(rejected=Counter({exchange.Reject.UNREACHABLE: 2}), details=["icmp_unreachable: refused"]),
         "unreachable", "ICMP"),
        (_measurement(rejected=Counter({exchange.Reject.WRONG_ORIGIN: 2})), "rejected", "wrong_origin x2"),
        (_measurement(), "timeout", "no reply to 2 request(s)"),
    ]
    for m, kind, text in cases:
        outcome = facts._outcome(m)
        assert (outcome.kind, outcome.address) == (kind, "fd00:ec2::123")
        assert text in outcome.detail, outcome


def test_an_address_without_a_route_is_named_with_why_and_the_route_fix() -> None:
    f = replace(healthy(), network=HostNetwork((), ("192.0.2.10%eth0",), (
        "2001:db8::10%eth0: no route towards fd00:ec2::123 (neither fd00:ec2::/32 nor a default route)",)),
        route_v6=Route("fd00:ec2::123", None, "ENETUNREACH: Network is unreachable"))
    c = by_id(f)
    assert c["ipv6-address"].status is Status.FAIL and "2001:db8::10%eth0: no route" in c["ipv6-address"].evidence
    assert (c["ipv6-address"].fix or "").startswith("sudo ip -6 route add fd00:ec2::/64 dev eth0")
    assert c["route-ipv6"].same_fix_as == "ipv6-address"  # the one fix, said once


def test_an_address_on_lo_only_asks_for_an_ec2_address() -> None:
    f = replace(healthy(), network=HostNetwork((), ("192.0.2.10%eth0",), ("2001:db8::1%lo: on a loopback interface",)))
    c = by_id(f)["ipv6-address"]
    assert c.status is Status.FAIL and "%lo: on a loopback interface" in c.evidence
    assert "assign-ipv6-addresses" in (c.fix or "")
