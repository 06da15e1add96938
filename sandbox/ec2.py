"""The simulated EC2 host: a Nitro side serving Time Sync and IMDS, joined to an instance.

    with sandbox.Ec2(ipv6=True, nitro=True, imds_ipv6=True, tokens="required",
                     timesync="serving", distro="debian") as ec2:
        ec2.instance.run(["chronyctl6", "apply", "--wait", "30"])

Two holders (see namespaces.py) are joined by a veth pair: `nitro0` on the EC2 side carries
the service addresses, `eth0` on the instance side carries the instance's addresses. The EC2
side has no other link, so nothing here can reach a real network. Traps are switched by
leaving addresses out (ENETUNREACH on the instance) or black-holing them on the EC2 side (a
silent time-out, which is what a disabled endpoint looks like from an instance).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Literal

from sandbox import distros
from sandbox.container import Container, attach
from sandbox.instance import DEFAULT_SETTINGS, Instance
from sandbox.namespaces import Holder, SandboxError, bound_ports, refuse_real_network, veth_pair

TIME_SYNC_V6 = "fd00:ec2::123"
TIME_SYNC_V4 = "169.254.169.123"
IMDS_V6 = "fd00:ec2::254"
IMDS_V4 = "169.254.169.254"
INSTANCE_V4 = "192.0.2.10"
GATEWAY_V4 = "192.0.2.1"
SUBNET_V4 = "192.0.2.0/24"
INSTANCE_V6 = "2001:db8:0:1::10"
SUBNET_V6 = "2001:db8:0:1::/64"
GATEWAY_LL = "fe80::1"  # the EC2 router's link-local address, as on a real VPC

TimeSync = Literal["serving", "silent", "ratelimit", "kod"]
Tokens = Literal["required", "optional"]


class Ec2:
    def __init__(
        self,
        *,
        ipv6: bool = True,
        ipv4: bool = True,
        nitro: bool = True,
        imds_ipv6: bool = True,
        tokens: Tokens = "required",
        timesync: TimeSync = "serving",
        distro: str = "debian",
        subnet_ipv6: bool | None = None,
        settings: str = DEFAULT_SETTINGS,
        metadata: dict[str, str] | None = None,
        ratelimit: str = "interval 12 burst 1 leak 4",
        hop_limit: int = 1,
    ) -> None:
        if timesync not in ("serving", "silent", "ratelimit", "kod"):
            raise SandboxError(f"unknown timesync mode {timesync!r}")
        if tokens not in ("required", "optional"):
            raise SandboxError(f"unknown tokens mode {tokens!r}")
        self.ipv6, self.ipv4, self.nitro = ipv6, ipv4, nitro
        self.imds_ipv6 = imds_ipv6 and nitro  # the IPv6 endpoints exist only on Nitro
        self.tokens: Tokens = tokens
        self.timesync: TimeSync = timesync
        self.subnet_ipv6 = ipv6 if subnet_ipv6 is None else subnet_ipv6
        self.ratelimit = ratelimit
        self.hop_limit = hop_limit  # HttpPutResponseHopLimit (EC2's default is 1)
        self.distro = distros.load(distro)
        suffix = os.urandom(8).hex()
        self.instance_id = "i-0" + suffix[:16]
        self.instance_type = "m7i.large" if nitro else "m4.large"
        self.eni_id = "eni-0" + suffix[:16]
        self.subnet_id = "subnet-0" + suffix[:16]
        self.mac = "0e:" + ":".join(suffix[i:i + 2] for i in range(0, 10, 2))
        self.settings = settings
        self.extra_metadata = metadata or {}
        self.workdir = Path()
        self.ec2 = Holder("ec2")
        self.instance_holder = Holder("instance")
        self._containers: list[Container] = []
        self._instance: Instance | None = None
        self._procs: list[subprocess.Popen[bytes]] = []
        self._timesync_proc: subprocess.Popen[bytes] | None = None
        self.setup_seconds = 0.0
        self._closed = False

    # ------------------------------------------------------------ public surface

    @property
    def instance(self) -> Instance:
        if self._instance is None:
            raise SandboxError("the sandbox is not running")
        return self._instance

    @property
    def imds_log(self) -> Path:
        return self.workdir / "ec2" / "imds.log"

    @property
    def timesync_log(self) -> Path:
        return self.workdir / "ec2" / "timesync.log"

    def imds_requests(self) -> list[dict[str, object]]:
        if not self.imds_log.exists():
            return []
        return [json.loads(line) for line in self.imds_log.read_text().splitlines() if line]

    def container(self) -> Container:
        """A container on the instance, one routed hop behind it (see container.py)."""
        if self._instance is None:
            raise SandboxError("the sandbox is not running")
        box = attach(self.ec2, self.instance_holder,
                     self.workdir / f"container-{len(self._containers)}.log",
                     instance_v4=self._instance.ipv4, instance_v6=self._instance.ipv6)
        self._containers.append(box)
        return box

    def __enter__(self) -> Ec2:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def start(self) -> None:
        started = time.monotonic()
        refuse_real_network()
        base = os.environ.get("SANDBOX_TMPDIR") or tempfile.gettempdir()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"chronyctl6-sandbox-{os.getpid()}-", dir=base))
        try:
            (self.workdir / "ec2").mkdir()
            (self.workdir / "instance").mkdir()
            self.ec2.start(self.workdir / "ec2" / "holder.log")
            self.instance_holder.start(self.workdir / "instance-holder.log")
            self._instance = Instance(
                self.instance_holder, self.workdir / "instance", self.distro, mac=self.mac,
                ipv4=INSTANCE_V4 if self.ipv4 else None, ipv6=INSTANCE_V6 if self.ipv6 else None,
                settings=self.settings,
            )
            self._instance.build()
            self._network()
            self._start_timesync()
            self._start_imds()
        except BaseException:
            self.close()
            raise
        self.setup_seconds = time.monotonic() - started

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Containers and the instance first: nothing there may outlive its network.
        for box in self._containers:
            box.holder.stop()
        self.instance_holder.stop()
        self.ec2.stop()
        for proc in self._procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self.workdir != Path() and self.workdir.exists():
            shutil.rmtree(self.workdir)
        self._instance = None

    def leftovers(self) -> list[str]:
        """What of this sandbox still exists (empty after close): processes, mounts, files."""
        holders = [self.ec2, self.instance_holder, *(box.holder for box in self._containers)]
        found = [line for holder in holders for line in holder.processes()]
        for proc in self._procs:
            if proc.poll() is None:
                found.append(f"child {proc.pid} ({proc.args!r}) still running")
        if self.workdir != Path():
            if self.workdir.exists():
                found.append(f"directory {self.workdir}")
            if str(self.workdir) in Path("/proc/self/mountinfo").read_text():
                found.append(f"a mount under {self.workdir}")
        return found

    # ------------------------------------------------------------ building

    def _network(self) -> None:
        veth_pair(self.instance_holder, "eth0", self.ec2, "nitro0", mac=self.mac)
        nitro = [
            "ip link set lo up",
            "echo 0 > /proc/sys/net/ipv6/conf/nitro0/accept_dad",
            "ip link set nitro0 addrgenmode none",
            "ip link set nitro0 up",
            f"ip addr add {GATEWAY_V4}/24 dev nitro0",
            f"ip addr add {GATEWAY_LL}/64 dev nitro0 nodad",
            f"ip addr add {TIME_SYNC_V4}/32 dev nitro0",
            f"ip addr add {IMDS_V4}/32 dev nitro0",
            f"ip -6 route add {SUBNET_V6} dev nitro0",
        ]
        # A missing endpoint is black-holed, not refused: from the instance it just never answers.
        if self.nitro:
            nitro.append(f"ip addr add {TIME_SYNC_V6}/128 dev nitro0 nodad")
        else:
            nitro.append(f"ip -6 route add blackhole {TIME_SYNC_V6}/128")
        if self.imds_ipv6:
            nitro.append(f"ip addr add {IMDS_V6}/128 dev nitro0 nodad")
        else:
            nitro.append(f"ip -6 route add blackhole {IMDS_V6}/128")
        inst = [
            "ip link set lo up",
            "echo 0 > /proc/sys/net/ipv6/conf/eth0/accept_dad",
            "ip link set eth0 up",
        ]
        if self.ipv4:
            inst += [
                f"ip addr add {INSTANCE_V4}/24 dev eth0",
                f"ip route add 169.254.169.0/24 via {GATEWAY_V4} dev eth0",
            ]
        # Without a global IPv6 address the instance has only fe80::/64 and no route to
        # fd00:ec2::/64: connecting fails with ENETUNREACH, as on EC2.
        if self.ipv6:
            inst += [
                f"ip addr add {INSTANCE_V6}/64 dev eth0 nodad",
                f"ip -6 route add fd00:ec2::/64 via {GATEWAY_LL} dev eth0",
            ]
        self.ec2.run(["sh", "-ec", "\n".join(nitro)], timeout=20, check=True)
        self.instance_holder.run(["sh", "-ec", "\n".join(inst)], timeout=20, check=True)

    def _timesync_binds(self) -> list[str]:
        return [TIME_SYNC_V4] + ([TIME_SYNC_V6] if self.nitro else [])

    def set_timesync(self, mode: TimeSync) -> None:
        """Switch the Time Sync Service to another behaviour while the instance runs."""
        if mode not in ("serving", "silent", "ratelimit", "kod"):
            raise SandboxError(f"unknown timesync mode {mode!r}")
        old = self._timesync_proc
        if old is not None:
            # nsenter forked the server into the PID namespace and waits for it: kill the server.
            for child in _children(old.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
            old.wait(timeout=10)
        self.timesync = mode
        self._start_timesync()

    def _start_timesync(self) -> None:
        ec2dir = self.workdir / "ec2"
        binds = self._timesync_binds()
        if self.timesync in ("serving", "ratelimit"):
            lines = ["local stratum 3", "allow", "port 123", "cmdport 0",
                     f"pidfile {ec2dir}/chronyd.pid", f"driftfile {ec2dir}/chronyd.drift"]
            lines += [f"bindaddress {a}" for a in binds]
            if self.timesync == "ratelimit":
                lines.append(f"ratelimit {self.ratelimit}")
            conf = ec2dir / "chronyd.conf"
            conf.write_text("\n".join(lines) + "\n")
            # -d: stay in the foreground so the holder's PID namespace owns it; -x: never
            # touch the clock; -u root: the temp dir is not readable by _chrony.
            argv = ["chronyd", "-d", "-x", "-u", "root", "-f", str(conf)]
        else:
            argv = [sys.executable, "-m", "sandbox.ntp", "serve", "--mode",
                    "kod" if self.timesync == "kod" else "silent"]
            argv += [arg for a in binds for arg in ("--bind", a)]
        self._timesync_proc = self.ec2.popen(argv, log=self.timesync_log)
        self._procs.append(self._timesync_proc)
        self._wait(lambda: 123 in bound_ports(self.ec2, "udp")
                   and (not self.nitro or 123 in bound_ports(self.ec2, "udp6")),
                   "the Time Sync Service", self.timesync_log)

    def _metadata(self) -> dict[str, str]:
        mac = f"meta-data/network/interfaces/macs/{self.mac}/"
        md = {
            "meta-data/ami-id": "ami-0abcdef1234567890",
            "meta-data/instance-id": self.instance_id,
            "meta-data/instance-type": self.instance_type,
            "meta-data/mac": self.mac,
            "meta-data/system": "nitro" if self.nitro else "xen",
            "meta-data/placement/availability-zone": "us-east-1a",
            "meta-data/placement/region": "us-east-1",
            mac + "device-number": "0",
            mac + "interface-id": self.eni_id,
            mac + "mac": self.mac,
            mac + "subnet-id": self.subnet_id,
            mac + "vpc-id": "vpc-0" + self.instance_id[3:],
            mac + "subnet-ipv4-cidr-block": SUBNET_V4,
        }
        if self.ipv4:
            md["meta-data/local-ipv4"] = INSTANCE_V4
            md[mac + "local-ipv4s"] = INSTANCE_V4
        if self.ipv6:
            md["meta-data/ipv6"] = INSTANCE_V6
            md[mac + "ipv6s"] = INSTANCE_V6
        if self.subnet_ipv6:
            md[mac + "subnet-ipv6-cidr-blocks"] = SUBNET_V6
        md["dynamic/instance-identity/document"] = json.dumps({
            "instanceId": self.instance_id, "instanceType": self.instance_type,
            "region": "us-east-1", "availabilityZone": "us-east-1a",
        }, indent=2)
        md.update(self.extra_metadata)
        return md

    def _start_imds(self) -> None:
        ec2dir = self.workdir / "ec2"
        ready = ec2dir / "imds.ready"
        config = {
            "binds": [IMDS_V4] + ([IMDS_V6] if self.imds_ipv6 else []),
            "tokens": self.tokens,
            "hop_limit": self.hop_limit,
            "metadata": self._metadata(),
            "log": str(self.imds_log),
            "ready_file": str(ready),
        }
        path = ec2dir / "imds.json"
        path.write_text(json.dumps(config, indent=2))
        self._procs.append(self.ec2.popen(
            [sys.executable, "-m", "sandbox.imds", "--config", str(path)],
            log=ec2dir / "imds.stderr",
        ))
        self._wait(ready.exists, "the instance metadata service", ec2dir / "imds.stderr")

    def _wait(self, ready: object, what: str, log: Path, timeout: float = 10.0) -> None:
        assert callable(ready)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            if self._procs and self._procs[-1].poll() is not None:
                break
            time.sleep(0.01)
        tail = log.read_text()[-2000:] if log.exists() else ""
        raise SandboxError(f"{what} did not come up within {timeout:g} s:\n{tail}")


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
