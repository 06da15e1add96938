"""doctor as a fleet check: judged against the instance's intent, fixes that paste as printed
(each once, every value quoted, look-ups before unknown values), hostile metadata kept harmless."""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import replace

import pytest

from chronyctl6.diagnose import doctor
from chronyctl6.diagnose.doctor import Status
from chronyctl6.diagnose.facts import Facts, NtpOutcome, Route
from chronyctl6.effects import metadata
from chronyctl6.effects.host import HostNetwork
from tests.diagnose.test_doctor_checks import MD, by_id, config, healthy, reach

IPV4_CONFIG = config("server 169.254.169.123 prefer iburst minpoll 4 maxpoll 4")


def ipv4_only(md: metadata.InstanceMetadata = MD, **more: object) -> Facts:
    """An instance in an IPv4-only subnet: no IPv6 anywhere, chrony on 169.254.169.123."""
    md = replace(md, ipv6s=(), subnet_ipv6_cidrs=())
    f = replace(healthy(), imds_v6=reach(metadata.IMDS_V6, failure=metadata.Failure.UNREACHABLE),
                imds_v4=reach(metadata.IMDS_V4, md=md), network=HostNetwork((), ("192.0.2.10%eth0",)),
                route_v6=Route("fd00:ec2::123", None, "ENETUNREACH: Network is unreachable"),
                ntp_v6=NtpOutcome("fd00:ec2::123", "unreachable", "cannot send: Network is unreachable"),
                config=IPV4_CONFIG)
    return replace(f, **more)  # type: ignore[arg-type]


def bash_parses(command: str) -> None:
    done = subprocess.run(["bash", "-n", "-c", command], capture_output=True, text=True, check=False)
    assert done.returncode == 0, (command, done.stderr)


@pytest.mark.parametrize("setting", ["auto", "off"])
def test_an_instance_meant_for_ipv4_passes_with_a_note(setting: str) -> None:
    f = ipv4_only(ipv6_setting=setting, at_boot=setting == "auto")
    meant = doctor.intent(f)
    assert meant.family == "ipv4"
    checks = doctor.run_checks(f)
    assert doctor.exit_status(checks) == 0, [(c.id, c.status) for c in checks]
    c = {x.id: x for x in checks}
    for cid in ("imds-ipv6", "ipv6-address", "route-ipv6", "timesync-ipv6"):
        assert c[cid].status is Status.SKIP and c[cid].evidence.startswith("IPv4 by intent"), cid
        assert c[cid].fix is None
    assert c["timesync-ipv4"].status is Status.PASS
    [note] = doctor.notes(f, meant)
    assert "meant to use IPv4" in note and "the steps below" in note
    steps = doctor.ipv6_steps(f, meant)  # no address anywhere: one is assigned first, then the switch
    assert "assign-ipv6-addresses" in " ".join(steps) and steps[-1] == "sudo chronyctl6 apply --ipv6 on"
    assert all(len(step) < 300 for step in steps), steps


def test_ipv4_intent_does_not_hide_a_broken_ipv4_time_sync() -> None:
    f = ipv4_only(ipv6_setting="off", ntp_v4=NtpOutcome("169.254.169.123", "timeout", "no reply"))
    assert doctor.exit_status(doctor.run_checks(f)) == 2


def test_auto_with_an_ipv6_address_assigned_is_judged_on_ipv6() -> None:
    # EC2 assigned an address (IMDS lists it), but it is not up: that is a failure, not an intent.
    f = replace(ipv4_only(), imds_v4=reach(metadata.IMDS_V4))
    assert doctor.intent(f).family == "ipv6"
    assert doctor.exit_status(doctor.run_checks(f)) == 2
    # Set to IPv6 explicitly: no IPv6 is a failure whatever the config says.
    assert doctor.intent(ipv4_only(ipv6_setting="on")).family == "ipv6"
    assert doctor.exit_status(doctor.run_checks(ipv4_only(ipv6_setting="on"))) == 2
    # auto, but chrony still has the IPv6 line: not what auto chose, so judged on IPv6.
    assert doctor.intent(ipv4_only(config=healthy().config)).family == "ipv6"


def test_xen_on_auto_with_ipv4_passes_nitro_with_a_note() -> None:
    f = ipv4_only(md=replace(MD, system="xen", instance_type="m4.large"))
    c = by_id(f)
    assert c["nitro"].status is Status.SKIP and "xen" in c["nitro"].evidence
    assert doctor.exit_status(list(c.values())) == 0
    assert "Nitro" in doctor.notes(f, doctor.intent(f))[0]


HOSTILE = replace(MD, instance_id="i-0abc; touch /tmp/pwned", region="eu-west-1\x1b[2J$(reboot)",
                  interface_id="eni-1 `id`", subnet_id="subnet-1\n&& rm -rf /", vpc_id="vpc-'x'",
                  vpc_ipv6_cidrs=("2001:db8::/56\u2028x",), ipv6s=(), subnet_ipv6_cidrs=())


def test_metadata_values_are_quoted_and_stripped_of_control_characters() -> None:
    f = replace(ipv4_only(ipv6_setting="on"), imds_v4=reach(metadata.IMDS_V4, md=HOSTILE))
    fixes = [c.fix for c in doctor.run_checks(f) if c.fix]
    assert fixes
    for fix in fixes:
        bash_parses(fix)
        assert "\x1b" not in fix and "\n" not in fix and "\u2028" not in fix
        words = shlex.split(fix, comments=True)
        # Each hostile value is one shell word (quoted), never a command of its own.
        # Control characters are escaped visibly by the one sanitiser (chronyctl6.text.shown).
        for value in ("i-0abc; touch /tmp/pwned", "eni-1 `id`", "subnet-1\\n&& rm -rf /"):
            if value.split()[0].split(";")[0] in fix:
                assert value in words, (value, fix)
        assert "eu-west-1\\e[2J$(reboot)" in words
    evidence = " ".join(c.evidence for c in doctor.run_checks(f))
    assert "\x1b" not in evidence and "\n" not in evidence


def test_every_fix_pastes_as_printed_and_is_printed_once() -> None:
    cases = [
        ipv4_only(ipv6_setting="on"),
        replace(ipv4_only(ipv6_setting="on"), imds_v4=reach(metadata.IMDS_V4, md=replace(
            MD, ipv6s=(), subnet_ipv6_cidrs=(), vpc_ipv6_cidrs=(), subnet_id=None, vpc_id=None,
            interface_id=None, instance_id=None, region=None))),
        replace(healthy(), imds_v6=reach(metadata.IMDS_V6, failure=metadata.Failure.NO_RESPONSE),
                imds_v4=reach(metadata.IMDS_V4, failure=metadata.Failure.NO_RESPONSE)),
        replace(healthy(), imds_v6=reach(metadata.IMDS_V6, failure=metadata.Failure.TIMEOUT),
                imds_v4=reach(metadata.IMDS_V4, failure=metadata.Failure.UNREACHABLE)),
        replace(healthy(), network=HostNetwork(("2001:db8::10",), ("192.0.2.10%eth0",)),
                route_v6=Route("fd00:ec2::123", None, "ENETUNREACH: Network is unreachable")),
        replace(healthy(), network=HostNetwork((), ("192.0.2.10",)), interfaces={}),
    ]
    for f in cases:
        checks = doctor.run_checks(f)
        fixes = [c.fix for c in checks if c.fix]
        assert fixes and len(fixes) == len(set(fixes))
        for fix in fixes:
            assert "<" not in fix.split("#")[0] and ">" not in fix.split("#")[0], fix
            bash_parses(fix)
        for c in checks:
            if c.same_fix_as:
                assert c.fix is None and any(x.id == c.same_fix_as and x.fix for x in checks)


def test_the_free_subnet_block_look_up_picks_an_unused_64() -> None:
    """The python3 one-liner in the fix, run for real with what describe-subnets would print."""
    fix = by_id(ipv4_only(ipv6_setting="on"))["imds-ipv6"].fix or ""
    script = next(step for step in fix.split(" && ") if step.startswith("CIDR=$("))
    script = script.replace("$USED", "2001:db8::/64 2001:db8:0:1::/64")
    done = subprocess.run(["bash", "-c", script + ' && echo "$CIDR"'], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2001:db8:0:2::/64"


def test_a_refused_imds_ipv6_connection_gets_a_fix() -> None:
    f = replace(healthy(), imds_v6=reach(metadata.IMDS_V6, failure=metadata.Failure.REFUSED,
                                         detail="connection refused"))
    c = by_id(f)["imds-ipv6"]
    assert c.status is Status.WARN and "refused" in c.evidence
    assert c.fix is not None and "--http-endpoint enabled --http-protocol-ipv6 enabled" in c.fix
    assert "--instance-id i-0abc" in c.fix
    bash_parses(c.fix)
