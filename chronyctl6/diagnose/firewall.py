"""Local firewall rules that drop or reject NTP to a Time Sync address on its way out.

Pure: parses `nft -j list ruleset` and `ip6tables -S OUTPUT` / `iptables -S OUTPUT` text. A rule
counts only when every condition in it is understood and a UDP packet to ADDRESS port 123 meets
them all (an interface, a source address, conntrack state or an iptables extension we do not
model make it uncertain, and an uncertain rule is never offered for deletion). Each rule found
comes with the command that deletes exactly it.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
from dataclasses import dataclass
from typing import Any

NTP_PORT = 123


@dataclass(frozen=True)
class Block:
    tool: str  # nft | iptables | ip6tables
    address: str  # the Time Sync address it blocks
    rule: str  # the rule, for people
    delete: str  # the command that deletes exactly this rule


class _Unknown(Exception):
    """A condition we do not model: the rule is left alone."""


def _net(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(value, strict=False)


def _address_in(right: Any, address: str) -> bool:
    target = ipaddress.ip_address(address)
    if isinstance(right, str):
        try:
            return target in _net(right)
        except ValueError as exc:  # a named set (@name) or a host name
            raise _Unknown(right) from exc
    if isinstance(right, dict) and "prefix" in right:
        p = right["prefix"]
        return target in _net(f"{p['addr']}/{p['len']}")
    if isinstance(right, dict) and "range" in right:
        low, high = (ipaddress.ip_address(x) for x in right["range"])
        return type(low) is type(target) and low <= target <= high  # type: ignore[operator]
    if isinstance(right, dict) and "set" in right:
        return any(_address_in(x, address) for x in right["set"])
    raise _Unknown(repr(right))


def _port_in(right: Any, port: int) -> bool:
    if isinstance(right, int):
        return right == port
    if isinstance(right, str) and right in ("ntp", "123"):
        return True
    if isinstance(right, dict) and "range" in right:
        low, high = right["range"]
        return int(low) <= port <= int(high)
    if isinstance(right, dict) and "set" in right:
        return any(_port_in(x, port) for x in right["set"])
    if isinstance(right, str) and right.isdigit():
        return int(right) == port
    raise _Unknown(repr(right))


def _names_in(right: Any, names: set[str]) -> bool:
    if isinstance(right, str):
        return right in names
    if isinstance(right, dict) and "set" in right:
        return any(_names_in(x, names) for x in right["set"])
    raise _Unknown(repr(right))


def _nft_match(match: dict[str, Any], address: str) -> bool:
    """Does a UDP packet to address:123 meet this nft match?"""
    left, right, op = match.get("left"), match.get("right"), match.get("op", "==")
    if op not in ("==", "!=", "in"):
        raise _Unknown(op)
    v6 = ":" in address
    if isinstance(left, dict) and "payload" in left:
        field = left["payload"].get("field")
        proto = left["payload"].get("protocol")
        if field == "daddr" and proto in ("ip", "ip6"):
            met = proto == ("ip6" if v6 else "ip") and _address_in(right, address)
        elif field == "dport" and proto in ("udp", "th"):
            met = _port_in(right, NTP_PORT)
        elif field == "dport" and proto in ("tcp", "sctp", "dccp"):
            met = False
        else:
            raise _Unknown(f"{proto} {field}")
    elif isinstance(left, dict) and "meta" in left:
        key = left["meta"].get("key")
        if key == "l4proto":
            met = _names_in(right, {"udp", "17"}) if not isinstance(right, int) else right == 17
        elif key == "nfproto":
            met = _names_in(right, {"ipv6" if v6 else "ipv4"})
        else:
            raise _Unknown(f"meta {key}")
    else:
        raise _Unknown(repr(left))
    return met if op != "!=" else not met


def _nft_rule_blocks(rule: dict[str, Any], address: str) -> bool:
    verdict = False
    for expr in rule.get("expr", ()):
        (kind, body), = expr.items()
        if kind == "match":
            if not _nft_match(body, address):
                return False
        elif kind in ("drop", "reject"):
            verdict = True
        elif kind in ("counter", "log", "limit", "comment"):
            continue
        else:  # accept, jump, xt (an iptables extension), ct, ...: not a plain drop
            raise _Unknown(kind)
    return verdict


def _describe(rule: dict[str, Any]) -> str:
    parts = []
    for expr in rule.get("expr", ()):
        (kind, body), = expr.items()
        if kind == "match":
            left = body.get("left", {})
            name = (" ".join(str(v) for v in left["payload"].values()) if "payload" in left
                    else f"meta {left.get('meta', {}).get('key')}" if "meta" in left else "?")
            parts.append(f"{name} {body.get('op', '==')} {json.dumps(body.get('right'))}")
        elif kind in ("drop", "reject"):
            parts.append(kind)
    return " ".join(parts)


def nft_blocks(ruleset: str, addresses: tuple[str, ...]) -> list[Block]:
    """Rules of nft's output-hook base chains that drop NTP to one of addresses. Chains of
    iptables-nft's own tables (ip/ip6 `filter`, chain `OUTPUT`) are left to the iptables reader."""
    try:
        items = json.loads(ruleset).get("nftables", [])
    except (ValueError, AttributeError):
        return []
    output_chains = set()
    for item in items:
        chain = item.get("chain") if isinstance(item, dict) else None
        if chain and chain.get("hook") == "output" and chain.get("type", "filter") == "filter":
            if chain.get("family") in ("ip", "ip6") and chain.get("name") == "OUTPUT":
                continue  # iptables-nft: read with iptables -S, deleted with iptables -D
            output_chains.add((chain.get("family"), chain.get("table"), chain.get("name")))
    found = []
    for item in items:
        rule = item.get("rule") if isinstance(item, dict) else None
        if not rule or (rule.get("family"), rule.get("table"), rule.get("chain")) not in output_chains:
            continue
        for address in addresses:
            try:
                blocks = _nft_rule_blocks(rule, address)
            except (_Unknown, ValueError, KeyError, TypeError):
                blocks = False
            if blocks:
                where = [str(rule["family"]), str(rule["table"]), str(rule["chain"])]
                found.append(Block("nft", address, f"{' '.join(where)} handle {rule['handle']}: {_describe(rule)}",
                                   shlex.join(["sudo", "nft", "delete", "rule", *where, "handle",
                                               str(rule["handle"])])))
                break
    return found


_IPT_UNDERSTOOD = {"-d", "--destination", "-p", "--protocol", "-m", "--match", "--dport", "--destination-port",
                   "-j", "--jump", "--reject-with"}


def _ipt_rule_blocks(words: list[str], address: str) -> bool:
    i, verdict = 0, False
    while i < len(words):
        negate = words[i] == "!"
        if negate:
            i += 1
        if i + 1 >= len(words) or words[i] not in _IPT_UNDERSTOOD:
            raise _Unknown(words[i] if i < len(words) else "end")
        option, value = words[i], words[i + 1]
        i += 2
        if option in ("-d", "--destination"):
            met = ipaddress.ip_address(address) in _net(value)
        elif option in ("-p", "--protocol"):
            met = value in ("udp", "17", "all")
        elif option in ("--dport", "--destination-port"):
            low, _, high = value.partition(":")
            met = int(low or 0) <= NTP_PORT <= int(high or low)
        elif option in ("-m", "--match"):
            if value != "udp":
                raise _Unknown(value)
            continue
        elif option in ("-j", "--jump"):
            if value not in ("DROP", "REJECT"):
                return False
            verdict = True
            continue
        else:  # --reject-with
            continue
        if met == negate:
            return False
    return verdict


def iptables_blocks(tool: str, text: str, addresses: tuple[str, ...]) -> list[Block]:
    """`iptables -S OUTPUT` (or ip6tables) lines that drop NTP to one of addresses."""
    found = []
    for line in text.splitlines():
        try:
            words = shlex.split(line)
        except ValueError:
            continue
        if words[:2] != ["-A", "OUTPUT"]:
            continue
        for address in addresses:
            if (":" in address) != (tool == "ip6tables"):
                continue
            try:
                blocks = _ipt_rule_blocks(words[2:], address)
            except (_Unknown, ValueError):
                blocks = False
            if blocks:
                found.append(Block(tool, address, line.strip(), shlex.join(["sudo", tool, "-D", *words[1:]])))
                break
    return found
