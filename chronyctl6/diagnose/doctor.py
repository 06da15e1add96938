"""`chronyctl6 doctor`: why IPv6 time sync does not work here, and the command that fixes it.

chronyctl6.diagnose.facts reads this host once into plain `Facts`; each check here is a pure function of
those facts returning a `Check` (pass / warn / fail / skip, one line of evidence, the fix), so
the checklist is data and is tested with plain data. A fix is a command filled in with this
instance's own ids (instance, ENI, subnet, VPC, region) from IMDS.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum

from chronyctl6.chronyconf import directives, sources, traversal
from chronyctl6.configure import phc as phc_policy
from chronyctl6.configure.platforms import Platform
from chronyctl6.diagnose.facts import Facts, NtpOutcome, Options, gather
from chronyctl6.effects import daemons, metadata
from chronyctl6.measure import clockbound
from chronyctl6.text import shown

__all__ = ["CHECKS", "Check", "Facts", "Intent", "NtpOutcome", "Options", "Report", "Status", "doctor", "intent",
           "run_checks"]

MIN_CLI = "2.2.33"  # the AWS CLI release that has --http-protocol-ipv6
RELOAD_SOURCES_SINCE = (4, 0)  # `sourcedir` and `chronyc reload sources` are chrony 4.0+


class Status(str, Enum):
    PASS = "pass"  # noqa: S105 (a check status)
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"

    def __str__(self) -> str:  # as StrEnum (3.11+) would print it
        return str(self.value)


@dataclass(frozen=True)
class Check:
    id: str
    status: Status
    evidence: str  # one line
    fix: str | None = None  # shell commands that paste as printed
    same_fix_as: str | None = None  # the fix is the one an earlier check printed

    @property
    def steps(self) -> tuple[str, ...]:
        """The fix as short numbered steps, one command each (the same commands `fix` chains)."""
        return split_fix(self.fix)[0] if self.fix else ()

    @property
    def note(self) -> str | None:
        """What the fix's trailing comment says (why, or what to look at if it does not help)."""
        return split_fix(self.fix)[1] if self.fix else None

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "status": str(self.status), "evidence": self.evidence, "fix": self.fix,
                "steps": list(self.steps), "note": self.note, "same_fix_as": self.same_fix_as}


def split_fix(fix: str) -> tuple[tuple[str, ...], str | None]:
    """A fix chain (`a && b  # why`) as its commands and its comment: split at `&&` and `#` only
    outside quotes and $(...), so a quoted value holding either (all values are shell-quoted)
    stays whole."""
    steps: list[str] = []
    quote, depth, start, i = "", 0, 0, 0
    while i < len(fix):
        c = fix[i]
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif fix.startswith("$(", i):
            depth, i = depth + 1, i + 1
        elif c == ")" and depth:
            depth -= 1
        elif depth == 0 and fix.startswith(" && ", i):
            steps.append(fix[start:i].strip())
            start, i = i + 4, i + 3
        elif depth == 0 and c == "#" and (i == 0 or fix[i - 1] == " "):
            steps.append(fix[start:i].strip())
            return tuple(x for x in steps if x), fix[i + 1:].strip() or None
        i += 1
    steps.append(fix[start:].strip())
    return tuple(x for x in steps if x), None


# ---------------------------------------------------------------- shell-safe values

def q(value: str) -> str:
    """One shell word, whatever the value holds."""
    return shlex.quote(shown(value))


# ---------------------------------------------------------------- fixes, with this instance's ids


def _aws(md: metadata.InstanceMetadata | None, command: str) -> str:
    region = f" --region {q(md.region)}" if md is not None and md.region else ""
    return f"aws ec2 {command}{region}"


# On Nitro the instance id is also the board's asset tag: known even where IMDS does not answer.
_LOOKUP_INSTANCE_ID = "INSTANCE_ID=$(cat /sys/devices/virtual/dmi/id/board_asset_tag)"


def _instance(md: metadata.InstanceMetadata | None) -> tuple[list[str], str]:
    """(look-up steps, the shell word for the instance id)."""
    if md is not None and md.instance_id:
        return [], q(md.instance_id)
    return [_LOOKUP_INSTANCE_ID], '"$INSTANCE_ID"'


def _chain(steps: list[str]) -> str:
    return " && ".join(steps)


def fix_imds_ipv6(md: metadata.InstanceMetadata | None) -> str:
    steps, iid = _instance(md)
    return (_chain([*steps, _aws(md, f"modify-instance-metadata-options --instance-id {iid} "
                                      "--http-protocol-ipv6 enabled")])
            + f"  # needs AWS CLI v{MIN_CLI} or later")


def fix_imds_refused(md: metadata.InstanceMetadata | None) -> str:
    steps, iid = _instance(md)
    return (_chain([*steps, _aws(md, f"modify-instance-metadata-options --instance-id {iid} --http-endpoint enabled "
                                      "--http-protocol-ipv6 enabled")])
            + "  # if it is still refused, a local firewall rule rejects it: "
              "sudo nft list ruleset | grep -n fd00:ec2::254; sudo ip6tables -S OUTPUT | grep fd00:ec2::254")


def fix_hop_limit(md: metadata.InstanceMetadata | None) -> str:
    steps, iid = _instance(md)
    return _chain([*steps, _aws(md, f"modify-instance-metadata-options --instance-id {iid} "
                                     "--http-put-response-hop-limit 2")])


# The first /64 of the VPC's IPv6 block that no subnet uses; python3 is on every supported distro.
_FREE_64 = ("python3 -c 'import ipaddress, sys; used = set(sys.argv[2:]); "
            "print(next(str(n) for n in ipaddress.ip_network(sys.argv[1]).subnets(new_prefix=64) "
            "if str(n) not in used))'")


def fix_assign_ipv6(md: metadata.InstanceMetadata | None) -> str:
    """Give this instance an IPv6 address: every value is this instance's own, or looked up by a
    command printed first (into a shell variable), so the chain pastes as printed."""
    steps, iid = _instance(md)
    if md is not None and md.interface_id:
        eni = q(md.interface_id)
    else:
        steps.append(_aws(md, f"describe-instances --instance-ids {iid} --query "
                              "'Reservations[0].Instances[0].NetworkInterfaces[0].NetworkInterfaceId' --output text")
                     .join(("ENI=$(", ")")))
        eni = '"$ENI"'
    assign = _aws(md, f"assign-ipv6-addresses --network-interface-id {eni} --ipv6-address-count 1")
    if md is None or md.subnet_ipv6_cidrs:
        return _chain([*steps, assign])
    # The subnet has no IPv6 CIDR yet: it needs a free /64 of the VPC's block (and the VPC a block first).
    if md.subnet_id:
        subnet = q(md.subnet_id)
    else:
        steps.append(_aws(md, f"describe-network-interfaces --network-interface-ids {eni} --query "
                              "'NetworkInterfaces[0].SubnetId' --output text").join(("SUBNET=$(", ")")))
        subnet = '"$SUBNET"'
    if md.vpc_id:
        vpc = q(md.vpc_id)
    else:
        steps.append(_aws(md, f"describe-subnets --subnet-ids {subnet} --query 'Subnets[0].VpcId' --output text")
                     .join(("VPC=$(", ")")))
        vpc = '"$VPC"'
    if md.vpc_ipv6_cidrs:
        block = q(md.vpc_ipv6_cidrs[0])
    else:
        steps.append(_aws(md, f"associate-vpc-cidr-block --vpc-id {vpc} --amazon-provided-ipv6-cidr-block"))
        steps.append(_aws(md, f"describe-vpcs --vpc-ids {vpc} --query "
                              "'Vpcs[0].Ipv6CidrBlockAssociationSet[0].Ipv6CidrBlock' --output text")
                     .join(("VPC_CIDR=$(", ")")))
        block = '"$VPC_CIDR"'
    steps.append(_aws(md, f"describe-subnets --filters Name=vpc-id,Values={vpc} --query "
                          "'Subnets[].Ipv6CidrBlockAssociationSet[].Ipv6CidrBlock' --output text")
                 .join(("USED=$(", ")")))
    steps.append(f"CIDR=$({_FREE_64} {block} $USED)")
    steps.append(_aws(md, f'associate-subnet-cidr-block --subnet-id {subnet} --ipv6-cidr-block "$CIDR"'))
    steps.append(assign)
    return _chain(steps)


APPLY = "sudo chronyctl6 apply"
BOOT_SOURCEDIR = "/run/chronyctl6"  # Platform.runtime_sourcedir: the boot step writes its Time Sync line there


def _apply(f: Facts) -> str:
    """apply, as this system takes it: on the host (root), or on the image doctor inspects offline."""
    return f"chronyctl6 apply --root {q(f.offline)}" if f.offline else APPLY


# ---------------------------------------------------------------- the checks (pure)


_ANSWERED = frozenset({metadata.Failure.NO_RESPONSE, metadata.Failure.V1_REFUSED, metadata.Failure.HTTP})


def check_ec2(f: Facts) -> Check:
    md = f.metadata
    if md is None:
        tried = "; ".join(f"{r.host}: {r.failure}" for r in (f.imds_v6, f.imds_v4) if r is not None)
        if any(r is not None and r.failure in _ANSWERED for r in (f.imds_v6, f.imds_v4)):
            # Something took the connection: this is EC2, but no metadata reaches this host. Behind
            # a container bridge that is the token reply's hop limit.
            return Check("ec2", Status.WARN, f"IMDS accepts connections but no metadata could be read ({tried}): "
                         "the token's answer is lost on the way (a container one hop too far?)",
                         fix_hop_limit(None))
        return Check("ec2", Status.FAIL, f"no instance metadata service answered ({tried})",
                     _chain([_LOOKUP_INSTANCE_ID, _aws(None, 'modify-instance-metadata-options --instance-id '
                                                             '"$INSTANCE_ID" --http-endpoint enabled')])
                     + "  # on an EC2 instance whose metadata service is switched off")
    return Check("ec2", Status.PASS, f"EC2 instance {md.instance_id} ({md.instance_type}), "
                                     f"IMDS{md.version} at {md.endpoint}")


def check_nitro(f: Facts) -> Check:
    md = f.metadata
    if md is None:
        return Check("nitro", Status.SKIP, "no instance metadata: cannot tell")
    if md.system == "nitro":
        return Check("nitro", Status.PASS, f"meta-data/system: nitro ({md.instance_type})")
    if md.system is None:
        return Check("nitro", Status.WARN, f"IMDS has no meta-data/system for {md.instance_type}: an older "
                                           "instance type, most likely not Nitro", f"{_apply(f)} --ipv6 off")
    return Check("nitro", Status.FAIL,
                 f"meta-data/system: {md.system} ({md.instance_type}): fd00:ec2::123 and fd00:ec2::254 answer "
                 "only Nitro instances; use 169.254.169.123 (or move to a Nitro instance type)",
                 f"{_apply(f)} --ipv6 off")


def check_imds_ipv6(f: Facts) -> Check:
    reach, md = f.imds_v6, f.metadata
    if reach is None:
        return Check("imds-ipv6", Status.SKIP, "not tried")
    if reach.ok:
        return Check("imds-ipv6", Status.PASS, f"{reach.detail} in {reach.seconds:.2f} s")
    if md is not None and md.system not in ("nitro", None):
        return Check("imds-ipv6", Status.SKIP, f"{md.system} instance: IMDS has no IPv6 endpoint")
    # Time Sync over IPv6 does not need IMDS over IPv6; an IPv6-only instance does.
    severity = Status.FAIL if not f.network.has_ipv4 else Status.WARN
    kind = reach.failure
    if kind is metadata.Failure.TIMEOUT:
        return Check("imds-ipv6", severity, f"{metadata.IMDS_V6} never answered (time-out, no refusal): IMDS over "
                                            "IPv6 is off on this instance (HttpProtocolIpv6=disabled)",
                     fix_imds_ipv6(md))
    if kind is metadata.Failure.UNREACHABLE:
        if (address := has_ipv6(f)) is not None:  # checked before suggesting one: the route is what is missing
            return Check("imds-ipv6", severity, f"no route to {metadata.IMDS_V6} from {address}",
                         _fix_route(_routeless_interface(f) or address.partition("%")[2]))
        return Check("imds-ipv6", severity, f"no route to {metadata.IMDS_V6}: this instance has no IPv6 address",
                     fix_assign_ipv6(md))
    if kind in (metadata.Failure.NO_RESPONSE, metadata.Failure.V1_REFUSED):
        return Check("imds-ipv6", severity, f"{metadata.IMDS_V6}: {reach.detail}", fix_hop_limit(md))
    if kind is metadata.Failure.REFUSED:
        return Check("imds-ipv6", severity, f"{metadata.IMDS_V6} refused the connection: its metadata service is "
                                            "switched off, or a local firewall rule rejects it", fix_imds_refused(md))
    return Check("imds-ipv6", severity, f"{metadata.IMDS_V6}: {reach.detail}", None)


def check_imdsv1(f: Facts) -> Check:
    """Only when the user asked for IMDSv1 (--imdsv1): does this instance allow it at all?"""
    statuses = [r.v1_status for r in (f.imds_v6, f.imds_v4) if r is not None and r.v1_status is not None]
    failed = [r for r in (f.imds_v6, f.imds_v4) if r is not None and r.failure is metadata.Failure.V1_REFUSED]
    if failed:
        return Check("imdsv1", Status.FAIL, failed[0].detail, fix_hop_limit(f.metadata))
    fallback = [r for r in (f.imds_v6, f.imds_v4) if r is not None and r.token_failure is not None]
    if fallback:
        return Check("imdsv1", Status.WARN, f"{fallback[0].detail}; IMDSv1 was used as asked (HttpTokens=optional): "
                     "IMDSv2 needs the token's answer to arrive", fix_hop_limit(f.metadata))
    if not statuses:
        return Check("imdsv1", Status.SKIP, "IMDS did not answer: cannot tell whether it allows IMDSv1")
    if 401 in statuses:
        return Check("imdsv1", Status.WARN, "--imdsv1 asked for, but the instance refuses requests without a "
                                            "token (HTTP 401, HttpTokens=required); IMDSv2 was used",
                     "leave out --imdsv1: this instance needs IMDSv2 tokens, and chronyctl6 uses them")
    return Check("imdsv1", Status.PASS, f"IMDSv1 allowed (HTTP {statuses[0]} without a token, "
                                        "HttpTokens=optional); IMDSv2 is still tried first")


def check_ipv6_address(f: Facts) -> Check:
    md = f.metadata
    local = f.network.global_ipv6
    listed = md.ipv6s if md is not None else ()
    if local and (md is None or listed):
        return Check("ipv6-address", Status.PASS, f"local {', '.join(local)}"
                     + (f"; IMDS lists {', '.join(listed)}" if listed else "; IMDS not reachable to compare"))
    if local and not listed:
        return Check("ipv6-address", Status.WARN, f"local {', '.join(local)}, but IMDS lists no IPv6 address for "
                     f"{md.mac if md else 'this interface'}: not an EC2-assigned address", fix_assign_ipv6(md))
    unusable = f.network.unusable_ipv6
    if unusable:  # an address is there, but it cannot reach fd00:ec2::123 (effects.host.network_from)
        routeless = _routeless_interface(f)
        fix = _fix_route(routeless) if routeless else fix_assign_ipv6(md)
        return Check("ipv6-address", Status.FAIL, "no usable global IPv6 address: " + "; ".join(unusable)
                     + (f" (IMDS lists {', '.join(listed)})" if listed else ""), fix)
    if listed:
        ifname = next((n for n, m in f.interfaces.items() if md is not None and m == md.mac), None)
        dev = q(ifname) if ifname else '"$IFACE"'
        lookup = "" if ifname else "IFACE=$(ip -4 route show default | awk '{print $5; exit}') && "
        return Check("ipv6-address", Status.FAIL, f"IMDS lists {', '.join(listed)}, but no global IPv6 address "
                     f"is configured on {ifname or 'the primary interface'}: DHCPv6 has not run",
                     f"{lookup}sudo dhclient -6 {dev}  # or: sudo networkctl reconfigure {dev}, or reboot")
    subnet = "" if md is None or md.subnet_ipv6_cidrs else f"; subnet {md.subnet_id} has no IPv6 CIDR"
    return Check("ipv6-address", Status.FAIL, f"no global IPv6 address on any interface nor in IMDS{subnet}",
                 fix_assign_ipv6(md))


def check_route_ipv6(f: Facts) -> Check:
    r = f.route_v6
    if r.ok:
        return Check("route-ipv6", Status.PASS, f"{r.destination} is routed, from {r.source}")
    routeless = _routeless_interface(f)
    if routeless:
        fix = _fix_route(routeless)
    elif not f.network.has_global_ipv6:
        fix = fix_assign_ipv6(f.metadata)
    else:
        fix = _fix_route(f.network.global_ipv6[0].partition("%")[2])
    return Check("route-ipv6", Status.FAIL, f"no route to {r.destination} ({r.error})", fix)


def _routeless_interface(f: Facts) -> str | None:
    """The interface of a global IPv6 address that has no route towards Time Sync through it
    ("address%interface: why", interface names hold no colon)."""
    return next((u.partition("%")[2].partition(":")[0] for u in f.network.unusable_ipv6 if "route" in u), None)


def _fix_route(ifname: str) -> str:
    dev = q(ifname) if ifname else '"$IFACE"'
    lookup = "" if ifname else "IFACE=$(ip -6 -o addr show scope global | awk '{print $2; exit}') && "
    return (f"{lookup}sudo ip -6 route add fd00:ec2::/64 dev {dev}  # then find out why the route the VPC "
            "router advertises is missing")


def fix_firewall(f: Facts) -> str:
    return _chain([b.delete for b in f.firewall.blocks])


def check_firewall(f: Facts) -> Check:
    view = f.firewall
    if view.blocks:
        rules = "; ".join(f"{b.tool}: {b.rule} (to {b.address})" for b in view.blocks)
        families = {"ipv6" if ":" in b.address else "ipv4" for b in view.blocks}
        status = Status.FAIL if intent(f).family in families else Status.WARN
        return Check("firewall", status, f"a local OUTPUT rule drops NTP to Time Sync: {rules}", fix_firewall(f))
    if not view.read:
        if view.problems:
            return Check("firewall", Status.SKIP, f"cannot read the firewall: {'; '.join(view.problems)}")
        return Check("firewall", Status.PASS, "no nft or iptables on this host: no local firewall rules to check")
    return Check("firewall", Status.PASS, f"no OUTPUT rule ({', '.join(view.read)}) drops NTP to Time Sync")


def _check_timesync(f: Facts, outcome: NtpOutcome | None, family: str) -> Check:
    cid = f"timesync-{family}"
    if outcome is None:
        return Check(cid, Status.SKIP, "not measured")
    if outcome.ok:
        return Check(cid, Status.PASS, f"{outcome.address} answered NTP: {outcome.detail}")
    md = f.metadata
    if family == "ipv4" and not f.network.has_ipv4 and outcome.kind == "unreachable":
        return Check(cid, Status.SKIP, f"IPv6-only instance: {outcome.address} is out of reach, as expected")
    evidence = f"{outcome.address}: {outcome.detail}"
    fix: str | None = None
    # A local DROP makes sendto fail (EPERM), a REJECT comes back as unreachable, a drop further on is silence.
    if outcome.kind != "kiss" and any(b.address == outcome.address for b in f.firewall.blocks):
        return Check(cid, Status.FAIL, f"{evidence}: a local firewall rule drops it (see firewall)", fix_firewall(f))
    if family == "ipv6":
        if md is not None and md.system not in ("nitro", None):
            fix = f"{_apply(f)} --ipv6 off  # {md.system} instance: only 169.254.169.123 answers"
        elif outcome.kind == "unreachable" and (address := has_ipv6(f)) is not None:
            fix = _fix_route(_routeless_interface(f) or address.partition("%")[2])  # it has one: not an address
        elif outcome.kind == "unreachable":
            fix = fix_assign_ipv6(md)
        elif outcome.kind == "timeout" and f.ntp_v4 is not None and f.ntp_v4.ok:
            fix = (f"{_apply(f)} --ipv6 off  # until fd00:ec2::123 answers: check security group / NACL rules "
                   "for UDP 123")
    if outcome.kind == "kiss":
        fix = "slow down: another NTP client on this instance is querying Time Sync too fast (minpoll 4 is 16 s)"
    return Check(cid, Status.FAIL, evidence, fix)


def check_timesync_ipv6(f: Facts) -> Check:
    return _check_timesync(f, f.ntp_v6, "ipv6")


def check_timesync_ipv4(f: Facts) -> Check:
    return _check_timesync(f, f.ntp_v4, "ipv4")


def _install_fix(platform: Platform | None) -> str:
    if platform is not None and platform.name in ("debian", "ubuntu"):
        return "sudo apt-get install chrony"
    if platform is not None and platform.name == "sles":
        return "sudo zypper install chrony"
    return "sudo dnf install chrony  # or yum on Amazon Linux 2"


def check_chrony(f: Facts) -> Check:
    if f.chrony_version is None:
        return Check("chrony", Status.FAIL, "chronyd is not installed", _install_fix(f.platform))
    text = ".".join(map(str, f.chrony_version))
    if f.chrony_version < RELOAD_SOURCES_SINCE:
        return Check("chrony", Status.WARN, f"chrony {text}: before 4.0 there is no sourcedir or "
                     "`chronyc reload sources`, so a source change needs a restart", _install_fix(f.platform))
    return Check("chrony", Status.PASS, f"chrony {text} (sourcedir and `chronyc reload sources` supported)")


def check_chronyd(f: Facts) -> Check:
    unit = f.platform.unit if f.platform is not None else "chronyd"
    if not f.chronyd and not f.systemd:  # checked before suggesting systemctl: a container, a chroot
        return Check("chronyd", Status.FAIL, "chronyd is not running, and systemd is not running here",
                     f"{APPLY} --service-manager direct  # starts chronyd as a plain process")
    if not f.chronyd:
        return Check("chronyd", Status.FAIL, "chronyd is not running", f"sudo systemctl enable --now {unit}")
    p = f.chronyd[0]
    evidence = (f"pid {p.pid} as {p.user}, up {p.uptime:.0f} s, config {f.config.main if f.config else '?'} "
                f"({f.config_from})")
    if len(f.chronyd) > 1:
        pids = ", ".join(str(x.pid) for x in f.chronyd)
        return Check("chronyd", Status.WARN, f"{len(f.chronyd)} chronyd processes ({pids}); {evidence}",
                     f"sudo systemctl restart {unit}")
    if f.config is not None and f.config.main in f.config.missing:
        return Check("chronyd", Status.FAIL, f"{evidence}: that file does not exist", _apply(f))
    return _bound_check(f, evidence)


def _bound_check(f: Facts, evidence: str) -> Check:
    """chronyd's bound on the clock's error, judged as `status` judges it (its thresholds, and
    clockbound.classify, the word status and check say): right after a start chronyd has selected
    Time Sync while its bound is still a second or more, and doctor must not call healthy what
    status calls critical. Settling is not a fault the operator can fix, so it warns, with `wait`."""
    from chronyctl6.diagnose import status  # the defaults status judges with

    if f.bound is None:  # chronyd did not answer: status says unknown, and judges nothing
        note = f"; its bound is unknown ({f.bound_problem})" if f.bound_problem else ""
        return Check("chronyd", Status.PASS, evidence + note)
    word = clockbound.classify(f.bound, status.DEFAULT_WARN, status.DEFAULT_CRIT)
    if f.bound.seconds is None:
        said = f"chronyd has no bound on the clock's error ({f.bound.problem})"
    else:
        said = f"chronyd's bound on the clock's error is {f.bound.seconds:.6f} s"
    said += f" (as status computes it: {word}"
    if word == "ok":
        return Check("chronyd", Status.PASS, f"{evidence}; {said})")
    limit = status.DEFAULT_CRIT if word == "critical" else status.DEFAULT_WARN
    said += f", at {limit:g} s or more)" if f.bound.seconds is not None else ")"
    return Check("chronyd", Status.WARN, f"{said}; {evidence}",
                 f"sudo chronyctl6 wait  # chronyd is still settling after a start: wait until its bound is "
                 f"within {status.DEFAULT_WARN:g} s (it says why not, if it never is)")


def _timesync_lines(f: Facts) -> list[traversal.Located]:
    if f.config is None:
        return []
    return [located for located, kind in f.config.kinds() if kind.timesync]


SUSE_POOL_PACKAGE_FIX = "sudo zypper install chrony-pool-empty"  # replaces chrony-pool-suse/-openSUSE's pool.conf


def remove_lines_fix(f: Facts, drop: list[traversal.Located], then: str | None = None) -> str:
    """The commands that take these lines out of the configuration chronyd reads, and make it read
    it again.

    `apply` comments such lines out of every file under /etc that chronyd reads (the main file,
    include, confdir and sourcedir files). It leaves /run alone (whoever fills it does so again
    at every boot) and package files elsewhere (/usr): those are removed here, the whole file
    when nothing else is in it (a symlink, as Amazon Linux 2023 makes them, is removed, never
    edited through), else the lines by number. SUSE's pool drop-in comes from a package: the
    durable fix is the package that ships it empty. `chronyc reload sources` re-reads *.sources
    files only; anything else needs a restart."""
    assert f.config is not None
    tree = f.config
    steps: list[str] = []
    needs_apply = needs_restart = under_run = False
    by_file: dict[str, list[traversal.Located]] = {}
    for located in drop:
        by_file.setdefault(located.file, []).append(located)
    sles = f.platform is not None and f.platform.name == "sles"
    for file, lines in by_file.items():
        if sles and file.endswith("/chrony.d/pool.conf") and SUSE_POOL_PACKAGE_FIX not in steps:
            steps.insert(0, SUSE_POOL_PACKAGE_FIX)
            needs_restart = True
            if not sources.takeover_edits(file):
                continue  # the package replaces it: nothing to remove by hand
        if sources.takeover_edits(file):
            needs_apply = True
            continue
        under_run = under_run or file.startswith("/run/")
        needs_restart = needs_restart or not file.endswith(".sources")
        everything = [d for d in tree.directives if d.file == file]
        where = q(f.offline.rstrip("/") + file) if f.offline else q(file)  # offline: the image's file
        if len(everything) == len(lines):
            steps.append(f"sudo rm {where}")
        else:
            numbers = ";".join(f"{x.directive.lineno}d" for x in sorted(lines, key=lambda x: x.directive.lineno))
            steps.append(f"sudo sed -i '{numbers}' {where}")
    if then is not None or needs_apply:
        steps.append(then or _apply(f))
    if f.offline:  # an image: nothing runs to restart; its chronyd reads the files at its first boot
        return " && ".join(steps)
    if needs_restart:
        unit = f.platform.unit if f.platform is not None else "chronyd"
        steps.append(f"sudo systemctl restart {unit}")
    elif steps and then is None and not needs_apply:
        steps.append("sudo chronyc reload sources")
    fix = " && ".join(steps)
    return fix + ("  # /run is filled again at boot: also stop whatever writes it" if under_run else "")


def _unreadable(f: Facts, check_id: str) -> Check | None:
    if f.config is None or f.config.main in f.config.missing:
        return Check(check_id, Status.SKIP, "no chrony configuration to read")
    if f.config.problems:
        more = f" (and {len(f.config.problems) - 1} more)" if len(f.config.problems) > 1 else ""
        return Check(check_id, Status.FAIL, f"{f.config.problems[0]}{more}",
                     "make it a regular file chronyd can read, or remove the line that names it")
    return None


def check_config_timesync(f: Facts) -> Check:
    unreadable = _unreadable(f, "config-timesync")
    if unreadable is not None or f.config is None:
        return unreadable or Check("config-timesync", Status.SKIP, "no chrony configuration to read")
    lines = _timesync_lines(f)
    if not lines and f.offline and _chosen_at_boot(f):
        return _at_boot_offline(f)
    where = "; ".join(f"{s.file}:{s.directive.lineno}: {s.directive.line}" for s in lines)
    addresses = {sources.timesync_address(s.directive.args[0]) for s in lines}
    md = f.metadata
    ipv6_works = f.ntp_v6 is not None and f.ntp_v6.ok and (md is None or md.system == "nitro")
    if directives.TIMESYNC_IPV6 in addresses and directives.TIMESYNC_IPV4 in addresses:
        keep = directives.TIMESYNC_IPV6 if ipv6_works or f.ntp_v6 is None else directives.TIMESYNC_IPV4
        drop = [s for s in lines if sources.timesync_address(s.directive.args[0]) != keep]
        return Check("config-timesync", Status.WARN, f"both Time Sync endpoints are configured ({where}): "
                     f"they are the same server, and AWS advises listing one; keep {keep}",
                     remove_lines_fix(f, drop))
    if not lines:
        return Check("config-timesync", Status.FAIL,
                     f"no Time Sync line in {', '.join(f.config.files)}", _apply(f))
    if addresses == {directives.TIMESYNC_IPV4} and ipv6_works:
        return Check("config-timesync", Status.WARN, f"{where}: fd00:ec2::123 answers here, but chrony uses "
                     "IPv4", remove_lines_fix(f, lines, then=f"{_apply(f)} --ipv6 on"))
    return Check("config-timesync", Status.PASS, where)


def _chosen_at_boot(f: Facts) -> bool:
    """The image reads the boot step's sourcedir (apply --root's default): its Time Sync line is
    written at every boot, so an image has none of its own."""
    return f.config is not None and any(c.directive.args[:1] == (BOOT_SOURCEDIR,)
                                        for c in f.config.keyword("sourcedir"))


def _at_boot_offline(f: Facts) -> Check:
    boot = f.image_boot_unit
    if boot is not None and boot.state == "enabled":
        return Check("config-timesync", Status.PASS, f"sourcedir {BOOT_SOURCEDIR}: the Time Sync line is chosen at "
                     f"every boot ({boot.unit} is enabled in the image)")
    state = boot.state if boot is not None else "not installed"
    fix = _apply(f) if state == "disabled" else f"{_apply(f)}  # after installing the chronyctl6 package in the image"
    return Check("config-timesync", Status.FAIL, f"sourcedir {BOOT_SOURCEDIR}, but chronyctl6-boot.service is {state} "
                 "in the image: no Time Sync line at boot", fix)


def check_config_smear(f: Facts) -> Check:
    """Refclocks are left out: the PHC does not smear, but it is Amazon's own clock and
    chronyctl6 manages it (--phc); other refclocks are the operator's."""
    unreadable = _unreadable(f, "config-smear")
    if unreadable is not None or f.config is None:
        return unreadable or Check("config-smear", Status.SKIP, "no chrony configuration to read")
    kinds = [(located, kind) for located, kind in f.config.kinds()
             if located.directive.keyword in directives.SOURCE_KEYWORDS]
    smeared = [located for located, kind in kinds if kind.smeared]
    plain = [located for located, kind in kinds if not kind.smeared]
    leap = f.config.keyword(*sources.LEAP_KEYWORDS)
    problems = []
    if smeared and plain:
        problems.append("non-smeared " + ", ".join(f"{s.directive.line} ({s.file})" for s in plain)
                        + " beside smeared Time Sync: around a leap second they disagree by up to 1 s")
    if smeared and leap:
        problems.append(f"{leap[0].directive.line} ({leap[0].file}) makes chronyd apply leap seconds on top of "
                        "Time Sync's smear")
    if problems:
        return Check("config-smear", Status.WARN, "; ".join(problems),
                     remove_lines_fix(f, (plain if smeared else []) + (leap if smeared else [])))
    described = "smeared" if smeared else "non-smeared" if plain else "no"
    return Check("config-smear", Status.PASS, f"{len(kinds)} source line(s), all {described}; no mixing")


def _phc_support(f: Facts) -> str:
    """What the ENA driver says about the PTP hardware clock: loaded, its version, phc_enable."""
    pf = f.phc_facts
    if pf is None:
        return "ENA driver not examined"
    if not pf.driver_loaded:
        return "the ENA driver is not loaded"
    version = f" {shown(pf.driver_version)}" if pf.driver_version else ""
    if pf.phc_enable is None:
        return f"ENA driver{version} loaded, without a phc_enable parameter (PHC support needs ENA 2.10+)"
    return f"ENA driver{version} loaded, phc_enable={shown(pf.phc_enable)}"


def _phc_lines(f: Facts) -> list[traversal.Located]:
    return [r for r in (f.config.refclocks() if f.config else []) if phc_policy.is_ena_phc(r.directive.args)
            or (f.phc is not None and len(r.directive.args) >= 2 and r.directive.args[0].upper() == "PHC"
                and phc_policy.device_of(r.directive.args) == f.phc)]


def check_phc(f: Facts) -> Check:
    """The ENA PTP hardware clock: driver support, phc_enable, the device sysfs names, and whether
    chrony uses it (in the main file, or the boot-time /run/chronyctl6/phc.conf)."""
    support = _phc_support(f)
    pf = f.phc_facts
    problems = "; ".join(shown(p) for p in pf.problems) if pf and pf.problems else ""
    if f.phc is None:
        if pf is not None and pf.driver_loaded and pf.phc_enable == "0":
            return Check("phc", Status.WARN, f"no ENA PTP hardware clock: {support}, so the driver does not "
                         "expose it", "echo 'options ena phc_enable=1' | sudo tee /etc/modprobe.d/ena-phc.conf "
                         "&& sudo reboot  # on an instance type with the PTP hardware clock")
        if problems:
            return Check("phc", Status.WARN, f"no ENA PTP hardware clock found: {problems} ({support})")
        return Check("phc", Status.PASS, f"no ENA PTP hardware clock on this instance ({support}): nothing left "
                     f"unused; to get one: {phc_policy.ENABLE_FIX}")
    clock = f" ({shown(pf.phc.clock.clock_name)} at /dev/{pf.phc.clock.ptp})" if pf and pf.phc else ""
    used = _phc_lines(f)
    if used:
        where = ", ".join(f"{u.file}:{u.directive.lineno}" for u in used)
        return Check("phc", Status.PASS, f"{f.phc}{clock} is present and chrony uses it ({where}); {support}")
    at_boot = f.config is not None and any(c.directive.args[:1] == ("/run/chronyctl6",)
                                           for c in f.config.keyword("confdir"))
    if at_boot:  # the image's boot-time decision has not run since the clock appeared
        return Check("phc", Status.WARN, f"{f.phc}{clock} is present, but /run/chronyctl6/phc.conf has no line "
                     "for it", "sudo chronyctl6 boot && sudo systemctl restart chronyd  # a confdir is read at "
                     "start only")
    return Check("phc", Status.WARN, f"{f.phc}{clock} is present, but no `refclock PHC` uses it; {support}",
                 f"{_apply(f)} --phc on")


def check_phc_leap(f: Facts) -> Check:
    """The leap-second policy for the PHC beside smeared NTP (configure/phc.py LEAP_POLICY, from
    AWS's documentation)."""
    lines = _phc_lines(f)
    if not lines or f.config is None:
        return Check("phc-leap", Status.PASS, "no PTP hardware clock line: Time Sync's smeared time alone")
    smeared = any(kind.smeared for located, kind in f.config.kinds()
                  if located.directive.keyword in directives.SOURCE_KEYWORDS)
    bad = [u for u in lines if phc_policy.leap_problem(u.directive.args, smeared)]
    if not bad:
        return Check("phc-leap", Status.PASS, f"policy: {phc_policy.LEAP_POLICY} ({phc_policy.AWS_PHC_DOC})")
    first = bad[0]
    why = phc_policy.leap_problem(first.directive.args, smeared)
    where = f"{first.file}:{first.directive.lineno}: `{first.directive.line}`"
    return Check("phc-leap", Status.WARN,
                 f"{where}: {why}; policy: {phc_policy.LEAP_POLICY} ({phc_policy.AWS_LEAP_DOC})",
                 f"sudo sed -i '{first.directive.lineno}s/$/ trust/' {q(first.file)} && sudo systemctl restart chronyd")


def check_other_daemons(f: Facts) -> Check:
    if not f.others:
        return Check("other-daemons", Status.PASS, "no ntpd, systemd-timesyncd or openntpd running")
    names = ", ".join(f"{daemons.CONFLICTING.get(p.name, p.name)} (pid {p.pid})" for p in f.others)
    units = " ".join(dict.fromkeys(daemons.STOP_UNITS.get(p.name, p.name) for p in f.others))
    status = Status.FAIL if f.chronyd else Status.WARN
    fix = (f"sudo systemctl disable --now {units}" if f.systemd
           else f"sudo kill {' '.join(str(p.pid) for p in f.others)}  # systemd is not running here: "
                "also remove what starts them")
    return Check("other-daemons", status, f"{names} running" + (" beside chronyd: they fight over the clock"
                                                                 if f.chronyd else ""), fix)


CHECKS: tuple[Callable[[Facts], Check], ...] = (
    check_ec2, check_nitro, check_imds_ipv6, check_ipv6_address, check_route_ipv6,
    check_timesync_ipv6, check_timesync_ipv4, check_firewall, check_chrony, check_chronyd, check_config_timesync,
    check_config_smear, check_phc, check_phc_leap, check_other_daemons,
)


@dataclass(frozen=True)
class Intent:
    """What this instance is set to use; doctor judges it against that, not against IPv6 always."""

    family: str  # ipv6 | ipv4
    why: str

    def as_dict(self) -> dict[str, str]:
        return {"family": self.family, "why": self.why}


# What does not matter on an instance meant to use IPv4.
IPV6_ONLY_CHECKS = frozenset({"nitro", "imds-ipv6", "ipv6-address", "route-ipv6", "timesync-ipv6", "config-timesync"})


def intent(f: Facts) -> Intent:
    """IPv4 when settings say `ipv6 = "off"`, or `auto` (at boot or not) chose IPv4 because EC2
    assigned this instance no IPv6 address or it is not Nitro, and chrony follows that choice."""
    if f.ipv6_setting == "on":
        return Intent("ipv6", f'{f.ipv6_from}: ipv6 = "on"')
    configured = {s.directive.args[0] for s in _timesync_lines(f)}
    if f.ipv6_setting == "off":
        return Intent("ipv4", f'{f.ipv6_from}: ipv6 = "off"')
    md = f.metadata
    follows = configured == {directives.TIMESYNC_IPV4}
    if md is not None and follows and md.system not in ("nitro", None):
        return Intent("ipv4", f"ipv6 = auto on a {md.system} instance (the IPv6 endpoints answer only Nitro), "
                              "and chrony uses 169.254.169.123")
    if md is not None and follows and not md.ipv6s and not f.network.has_global_ipv6:
        return Intent("ipv4", "ipv6 = auto, EC2 assigned this instance no IPv6 address, and chrony uses "
                              "169.254.169.123")
    return Intent("ipv6", f"ipv6 = {f.ipv6_setting}" + (" (at boot)" if f.at_boot else ""))


def _by_intent(c: Check, meant: Intent) -> Check:
    if meant.family != "ipv4" or c.id not in IPV6_ONLY_CHECKS or c.status in (Status.PASS, Status.SKIP):
        return c
    return Check(c.id, Status.SKIP, f"IPv4 by intent ({meant.why}): {c.evidence}")


def _once(checks: list[Check]) -> list[Check]:
    """Each fix printed once: a later check with the same commands (whatever its comment says)
    points at the first one."""
    first: dict[tuple[str, ...], str] = {}
    out = []
    for c in checks:
        if c.fix is not None and c.steps in first:
            c = replace(c, fix=None, same_fix_as=first[c.steps])
        elif c.fix is not None:
            first[c.steps] = c.id
        out.append(c)
    return out


def run_checks(f: Facts) -> list[Check]:
    from chronyctl6.diagnose import offline  # it builds on this module's checks and fixes

    chosen = [offline.INSTEAD.get(c, c) for c in CHECKS] if f.offline else list(CHECKS)
    checks = [offline.not_applicable(c(f), f) for c in chosen]
    if f.imdsv1_asked:
        checks.insert(3, check_imdsv1(f))
    meant = intent(f)
    checks = [_by_intent(c, meant) for c in checks]
    # Evidence and fixes carry values from IMDS and files: nothing in them may drive the terminal.
    checks = [replace(c, evidence=shown(c.evidence), fix=shown(c.fix) if c.fix else None) for c in checks]
    return _once(checks)


def exit_status(checks: list[Check]) -> int:
    """0 every check passed (or had nothing to check), 1 a warning, 2 a failure."""
    statuses = {c.status for c in checks}
    return 2 if Status.FAIL in statuses else 1 if Status.WARN in statuses else 0


@dataclass(frozen=True)
class Report:
    checks: list[Check]
    seconds: dict[str, float]
    intent: Intent = Intent("ipv6", "ipv6 = auto")
    notes: tuple[str, ...] = ()
    ipv6_steps: tuple[str, ...] = ()  # an instance meant for IPv4: how it moves to IPv6 Time Sync
    offline: str | None = None  # --root: the image inspected

    @property
    def status(self) -> int:
        """0 healthy, 1 a warning, 2 a failure (3, could not run, is the CLI's)."""
        return exit_status(self.checks)

    @property
    def counts(self) -> dict[str, int]:
        return {str(s): sum(1 for c in self.checks if c.status is s) for s in Status}

    def as_dict(self) -> dict[str, object]:
        return {"checks": [c.as_dict() for c in self.checks], "elapsed_seconds": self.seconds,
                "counts": self.counts, "intent": self.intent.as_dict(),
                "fixes": [c.fix for c in self.checks if c.fix is not None], "notes": list(self.notes),
                "ipv6_steps": list(self.ipv6_steps), "offline": self.offline}


def has_ipv6(f: Facts) -> str | None:
    """The instance's IPv6 address, where it has one (here, or as EC2 assigned it): checked before
    any fix suggests assigning one."""
    md = f.metadata
    if f.network.global_ipv6:
        return f.network.global_ipv6[0]
    return md.ipv6s[0] if md is not None and md.ipv6s else None


def notes(f: Facts, meant: Intent) -> tuple[str, ...]:
    found: list[str] = []
    if f.offline:
        found.append(f"the image at {f.offline}, inspected offline: what only a running instance can say "
                     "(metadata, addresses, routes, Time Sync's answers, the firewall, the PTP clock, running "
                     "processes) is not applicable")
    found += [f"could not read {problem}: the intent kept there is unknown" for problem in f.unread]
    if meant.family == "ipv4":
        md = f.metadata
        if md is not None and md.system not in ("nitro", None):
            how = "move it to a Nitro instance type (the IPv6 endpoints answer only Nitro)"
        elif (address := has_ipv6(f)) is not None:
            how = f"it has an IPv6 address ({address}), so only the kept choice keeps it on IPv4: the step below"
        else:
            how = "the steps below"
        found.append(f"this instance is meant to use IPv4 ({meant.why}); for IPv6 Time Sync: {how}")
    return tuple(found)


def ipv6_steps(f: Facts, meant: Intent) -> tuple[str, ...]:
    """How an instance meant for IPv4 moves to IPv6 Time Sync, as short steps: an address first
    only where it has none."""
    md = f.metadata
    if meant.family != "ipv4" or (md is not None and md.system not in ("nitro", None)):
        return ()
    switch = f"{_apply(f)} --ipv6 on"
    if has_ipv6(f) is not None or f.offline:
        return (switch,)
    return (*split_fix(shown(fix_assign_ipv6(md)))[0], switch)


def doctor(options: Options) -> Report:
    started = time.monotonic()
    facts = gather(options)
    checks = run_checks(facts)
    seconds = {**facts.seconds, "total": round(time.monotonic() - started, 3)}
    meant = intent(facts)
    return Report(checks, seconds, meant, notes(facts, meant), ipv6_steps(facts, meant), facts.offline)
