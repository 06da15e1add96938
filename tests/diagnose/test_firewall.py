"""Local firewall rules that silence Time Sync: nft's JSON and iptables -S as nft 1.0.6 and
iptables 1.8.9 (Debian 12) print them, what counts as a block, and the delete command; then the
real thing on the simulated instance (a real nft and a real ip6tables DROP rule, in its own
network namespace), where the printed fix is run and Time Sync answers again."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from dataclasses import replace

import pytest

from chronyctl6.diagnose import firewall
from chronyctl6.diagnose.doctor import Status
from chronyctl6.diagnose.facts import FirewallView, NtpOutcome
from chronyctl6.effects import commands
from sandbox import TIME_SYNC_V4, TIME_SYNC_V6, Ec2
from tests.conftest import require
from tests.contract import envelope
from tests.diagnose.test_doctor_checks import by_id, healthy

BOTH = (TIME_SYNC_V6, TIME_SYNC_V4)


def ruleset(*rules: list[dict[str, object]], family: str = "inet", table: str = "filter", chain: str = "output",
            hook: str = "output") -> str:
    items: list[dict[str, object]] = [
        {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
        {"table": {"family": family, "name": table, "handle": 1}},
        {"chain": {"family": family, "table": table, "name": chain, "handle": 1, "type": "filter", "hook": hook,
                   "prio": 0, "policy": "accept"}}]
    items += [{"rule": {"family": family, "table": table, "chain": chain, "handle": 2 + i, "expr": expr}}
              for i, expr in enumerate(rules)]
    return json.dumps({"nftables": items})


def daddr(proto: str, right: object) -> dict[str, object]:
    return {"match": {"op": "==", "left": {"payload": {"protocol": proto, "field": "daddr"}}, "right": right}}


def dport(right: object, proto: str = "udp", op: str = "==") -> dict[str, object]:
    return {"match": {"op": op, "left": {"payload": {"protocol": proto, "field": "dport"}}, "right": right}}


DROP: dict[str, object] = {"drop": None}


@pytest.mark.parametrize(("expr", "blocked"), [
    ([daddr("ip6", "fd00:ec2::123"), dport(123), DROP], [TIME_SYNC_V6]),
    ([daddr("ip", "169.254.169.123"), dport(123), {"counter": {"packets": 0}},
      {"reject": {"type": "icmp", "expr": "port-unreachable"}}], [TIME_SYNC_V4]),
    ([daddr("ip6", {"prefix": {"addr": "fd00:ec2::", "len": 64}}),
      {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "udp"}}, DROP], [TIME_SYNC_V6]),
    ([dport({"set": [53, 123]}), DROP], BOTH),  # every NTP, to anyone
    ([dport({"range": [100, 200]}), DROP], BOTH),
    ([daddr("ip6", "fd00:ec2::123"), dport(123, "tcp"), DROP], []),  # TCP: not NTP
    ([daddr("ip6", "fd00:ec2::123"), dport(123), {"accept": None}], []),
    ([daddr("ip6", "fd00:ec2::123"), dport(123, op="!="), DROP], []),
    ([daddr("ip6", "2001:db8::1"), dport(123), DROP], []),
    # conditions we do not model: never offered for deletion
    ([{"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "eth1"}}, dport(123), DROP], []),
    ([daddr("ip6", "@timesync"), DROP], []),
    ([{"xt": {"type": "match", "name": "owner"}}, dport(123), DROP], []),
])
def test_nft_rules(expr: list[dict[str, object]], blocked: tuple[str, ...] | list[str]) -> None:
    found = firewall.nft_blocks(ruleset(expr), BOTH)
    assert [b.address for b in found] == list(blocked[:1])  # one block per rule: the first address it drops
    for b in found:
        assert shlex.split(b.delete) == ["sudo", "nft", "delete", "rule", "inet", "filter", "output", "handle", "2"]


def test_nft_only_output_chains_and_not_iptables_nft_tables() -> None:
    rule = [daddr("ip6", "fd00:ec2::123"), dport(123), DROP]
    assert firewall.nft_blocks(ruleset(rule, hook="input"), BOTH) == []
    # ip6tables (nft backend) owns `ip6 filter OUTPUT`: read and deleted through ip6tables.
    assert firewall.nft_blocks(ruleset(rule, family="ip6", chain="OUTPUT"), BOTH) == []
    for junk in ("", "not json", "[]", '{"nftables": [{"rule": {}}]}', "\xff\xfe"):
        assert firewall.nft_blocks(junk, BOTH) == []


@pytest.mark.parametrize(("tool", "line", "blocked"), [
    ("ip6tables", "-A OUTPUT -d fd00:ec2::123/128 -p udp -m udp --dport 123 -j DROP", TIME_SYNC_V6),
    ("iptables", "-A OUTPUT -d 169.254.169.123/32 -p udp -m udp --dport 123 -j REJECT --reject-with "
                 "icmp-port-unreachable", TIME_SYNC_V4),
    ("iptables", "-A OUTPUT -d 169.254.0.0/16 -p udp -m udp --dport 100:200 -j DROP", TIME_SYNC_V4),
    ("ip6tables", "-A OUTPUT -p udp -m udp --dport 123 -j DROP", TIME_SYNC_V6),
    ("ip6tables", "-A OUTPUT -d fd00:ec2::123/128 -p tcp -m tcp --dport 123 -j DROP", None),
    ("ip6tables", "-A OUTPUT ! -d fd00:ec2::123/128 -p udp -m udp --dport 123 -j DROP", None),
    ("ip6tables", "-A OUTPUT -o eth1 -p udp -m udp --dport 123 -j DROP", None),  # an interface: not modelled
    ("ip6tables", "-A OUTPUT -d fd00:ec2::123/128 -p udp -j ACCEPT", None),
    ("ip6tables", "-A INPUT -p udp -m udp --dport 123 -j DROP", None),
    ("ip6tables", "-P OUTPUT DROP", None),
    ("ip6tables", "-A OUTPUT -d 'unterminated -j DROP", None),
])
def test_iptables_rules(tool: str, line: str, blocked: str | None) -> None:
    found = firewall.iptables_blocks(tool, f"-P OUTPUT ACCEPT\n{line}\n", BOTH)
    if blocked is None:
        assert found == []
        return
    [b] = found
    assert b.address == blocked and b.rule == line
    assert shlex.split(b.delete) == ["sudo", tool, "-D", *shlex.split(line)[1:]]


def test_a_silent_time_sync_behind_a_local_rule_gets_the_delete_command_once() -> None:
    block = firewall.iptables_blocks(
        "ip6tables", "-A OUTPUT -d fd00:ec2::123/128 -p udp -m udp --dport 123 -j DROP\n", BOTH)
    f = replace(healthy(), firewall=FirewallView(("nft", "ip6tables"), tuple(block)),
                ntp_v6=NtpOutcome(TIME_SYNC_V6, "timeout", "no reply to 2 request(s) within the deadline"))
    c = by_id(f)
    delete = "sudo ip6tables -D OUTPUT -d fd00:ec2::123/128 -p udp -m udp --dport 123 -j DROP"
    assert c["timesync-ipv6"].status is Status.FAIL and c["timesync-ipv6"].fix == delete
    assert "local firewall rule drops it" in c["timesync-ipv6"].evidence
    assert c["firewall"].status is Status.FAIL and c["firewall"].same_fix_as == "timesync-ipv6"
    assert "-j DROP (to fd00:ec2::123)" in c["firewall"].evidence
    # A local DROP makes sendto fail with EPERM before anything leaves: the same fix.
    eperm = replace(f, ntp_v6=NtpOutcome(TIME_SYNC_V6, "error", "cannot send: Operation not permitted"))
    assert by_id(eperm)["timesync-ipv6"].fix == delete
    assert by_id(healthy())["firewall"].status is Status.PASS
    unreadable = replace(healthy(), firewall=FirewallView((), (), ("nft -j list ruleset: Operation not permitted",)))
    assert by_id(unreadable)["firewall"].status is Status.SKIP


Factory = Callable[..., Ec2]


@pytest.mark.root  # the simulated instance
@pytest.mark.e2e
@pytest.mark.parametrize("tool", ["nft", "ip6tables"])
def test_a_real_drop_rule_on_the_instance_is_found_and_its_fix_works(ec2_factory: Factory, tool: str) -> None:
    require(commands.which(tool) is not None, f"{tool} is not installed (apt-get install nftables iptables)")
    ec2 = ec2_factory()
    inst = ec2.instance
    rule = (["sh", "-ec", "nft add table inet filter && nft add chain inet filter output "
                          "'{ type filter hook output priority 0; policy accept; }' && "
                          "nft add rule inet filter output ip6 daddr fd00:ec2::123 udp dport 123 drop"]
            if tool == "nft" else
            ["ip6tables", "-A", "OUTPUT", "-d", "fd00:ec2::123/128", "-p", "udp", "--dport", "123", "-j", "DROP"])
    inst.run(rule, check=True)
    done = inst.run(["chronyctl6", "doctor", "-o", "json"], timeout=60)
    doc = envelope(done, "doctor")
    checks = {c["id"]: c for c in doc["data"]["checks"]}
    assert checks["timesync-ipv6"]["status"] == "fail" and "firewall" in checks["timesync-ipv6"]["evidence"]
    assert checks["timesync-ipv4"]["status"] == "pass"
    assert checks["firewall"]["status"] == "fail" and checks["firewall"]["same_fix_as"] == "timesync-ipv6"
    fix = checks["timesync-ipv6"]["fix"]
    assert fix.startswith(f"sudo {tool} ")
    inst.run(["sh", "-ec", fix.replace("sudo ", "")], check=True)  # root on the instance, as printed
    after = envelope(inst.run(["chronyctl6", "doctor", "-o", "json"], timeout=60), "doctor")
    again = {c["id"]: c for c in after["data"]["checks"]}
    assert again["timesync-ipv6"]["status"] == again["firewall"]["status"] == "pass"
