"""A container on the instance: one routed hop behind it, as behind Docker's bridge.

    box = ec2.container()            # ec2 = sandbox.Ec2(hop_limit=1), the EC2 default
    box.http("PUT", IMDS_V4, "/latest/api/token", {...})   # -> error "TIMEOUT"

The instance forwards between its `docker0` and eth0 (no NAT: the EC2 side routes the
container's prefixes back via the instance), so every packet to the container crosses one more
hop. IMDS sends the token's reply with the instance's HttpPutResponseHopLimit as its TTL: with
1 the instance drops it while forwarding, and the container sees its PUT time out (not
refused), exactly the trap on EC2.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from sandbox.namespaces import Holder, veth_pair
from sandbox.probe import Probes

BRIDGE_V4 = "172.17.0.1"
CONTAINER_V4 = "172.17.0.2"
CONTAINER_NET_V4 = "172.17.0.0/16"
BRIDGE_V6 = "2001:db8:0:2::1"
CONTAINER_V6 = "2001:db8:0:2::2"
CONTAINER_NET_V6 = "2001:db8:0:2::/64"


class Container(Probes):
    def __init__(self, holder: Holder, *, ipv4: str | None, ipv6: str | None) -> None:
        self.holder = holder
        self.ipv4 = ipv4
        self.ipv6 = ipv6

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 60.0,
        check: bool = False,
        env: Mapping[str, str] | None = None,
        input_text: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return self.holder.run(argv, timeout=timeout, env=env, input_text=input_text, check=check)


def attach(ec2: Holder, instance: Holder, log: Path, *, instance_v4: str | None,
           instance_v6: str | None) -> Container:
    """Start a container holder and route it through the instance. The caller stops the holder."""
    holder = Holder("container")
    holder.start(log)
    try:
        return _wire(holder, ec2, instance, instance_v4=instance_v4, instance_v6=instance_v6)
    except BaseException:
        holder.stop()
        raise


def _wire(holder: Holder, ec2: Holder, instance: Holder, *, instance_v4: str | None,
          instance_v6: str | None) -> Container:
    veth_pair(holder, "eth0", instance, "docker0", what="container's veth pair")
    on_instance = [
        "echo 0 > /proc/sys/net/ipv6/conf/docker0/accept_dad",
        "ip link set docker0 up",
    ]
    in_container = [
        "ip link set lo up",
        "echo 0 > /proc/sys/net/ipv6/conf/eth0/accept_dad",
        "ip link set eth0 up",
    ]
    on_ec2 = []
    if instance_v4:
        on_instance += ["echo 1 > /proc/sys/net/ipv4/ip_forward",
                        f"ip addr add {BRIDGE_V4}/16 dev docker0"]
        in_container += [f"ip addr add {CONTAINER_V4}/16 dev eth0",
                         f"ip route add 169.254.169.0/24 via {BRIDGE_V4}"]
        on_ec2.append(f"ip route add {CONTAINER_NET_V4} via {instance_v4}")
    if instance_v6:
        on_instance += ["echo 1 > /proc/sys/net/ipv6/conf/all/forwarding",
                        f"ip addr add {BRIDGE_V6}/64 dev docker0 nodad"]
        in_container += [f"ip addr add {CONTAINER_V6}/64 dev eth0 nodad",
                         f"ip -6 route add fd00:ec2::/64 via {BRIDGE_V6}"]
        on_ec2.append(f"ip -6 route add {CONTAINER_NET_V6} via {instance_v6}")
    instance.run(["sh", "-ec", "\n".join(on_instance)], timeout=20, check=True)
    holder.run(["sh", "-ec", "\n".join(in_container)], timeout=20, check=True)
    if on_ec2:
        ec2.run(["sh", "-ec", "\n".join(on_ec2)], timeout=20, check=True)
    return Container(holder, ipv4=CONTAINER_V4 if instance_v4 else None,
                     ipv6=CONTAINER_V6 if instance_v6 else None)
