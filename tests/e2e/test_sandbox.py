"""The simulated EC2 instance itself: every trap it must reproduce, and that it leaves nothing.

Each test builds its own sandbox (about 0.3 s) inside the suite's network namespace.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sandbox import IMDS_V4, IMDS_V6, INSTANCE_V6, TIME_SYNC_V4, TIME_SYNC_V6, Ec2, SandboxError
from sandbox.namespaces import REPO_ROOT, Holder, processes_in, python_env
from sandbox.pytest_plugin import require_sandbox
from tests.helpers import wait_for

# The simulated instance: network namespaces, overlay mounts, chronyd (root).
pytestmark = [pytest.mark.e2e, pytest.mark.root]

Factory = Callable[..., Ec2]
TTL = {"X-aws-ec2-metadata-token-ttl-seconds": "60"}


def token(ec2: Ec2, host: str = IMDS_V4) -> str:
    put = ec2.instance.http("PUT", host, "/latest/api/token", TTL)
    assert put["status"] == 200, put
    value: str = put["body"]
    return value


def meta(ec2: Ec2, path: str, host: str = IMDS_V4) -> dict[str, object]:
    headers = {"X-aws-ec2-metadata-token": token(ec2, host)}
    return ec2.instance.http("GET", host, f"/latest/meta-data/{path}", headers)


# ------------------------------------------------------------------ a healthy Nitro instance


def test_healthy_instance_reaches_time_sync_and_imds_over_both_families(ec2: Ec2) -> None:
    for address in (TIME_SYNC_V6, TIME_SYNC_V4):
        [reply] = ec2.instance.ntp_query(address)
        assert reply["outcome"] == "reply", reply
        assert reply["stratum"] == 3 and reply["leap"] == 0
        assert abs(reply["offset"]) < 0.01  # same kernel clock on both sides
    assert meta(ec2, "system", IMDS_V6)["body"] == "nitro"
    assert meta(ec2, "system", IMDS_V4)["body"] == "nitro"
    assert ec2.setup_seconds < 5


def test_metadata_describes_the_instance_interface(ec2: Ec2) -> None:
    inst = ec2.instance
    link = json.loads(inst.run(["ip", "-j", "link", "show", "eth0"], check=True).stdout)[0]
    assert meta(ec2, "mac")["body"] == link["address"] == inst.mac
    assert meta(ec2, "instance-id")["body"] == ec2.instance_id
    assert meta(ec2, "instance-type")["body"] == ec2.instance_type
    assert meta(ec2, f"network/interfaces/macs/{inst.mac}/ipv6s")["body"] == INSTANCE_V6
    listing = meta(ec2, f"network/interfaces/macs/{inst.mac}/")["body"]
    assert isinstance(listing, str) and "ipv6s" in listing.split("\n")
    addrs = json.loads(inst.run(["ip", "-j", "-6", "addr", "show", "eth0", "scope", "global"],
                                check=True).stdout)[0]["addr_info"]
    assert [a["local"] for a in addrs if "local" in a] == [INSTANCE_V6]


# ------------------------------------------------------------------ the traps


def test_without_ipv6_fd00_ec2_is_unreachable_and_ipv4_still_works(ec2_factory: Factory) -> None:
    ec2 = ec2_factory(ipv6=False)
    inst = ec2.instance
    [v6] = inst.ntp_query(TIME_SYNC_V6)
    assert (v6["outcome"], v6["errno"]) == ("error", "ENETUNREACH"), v6
    assert v6["elapsed"] < 0.5  # refused locally at once, not a time-out
    assert inst.http("GET", IMDS_V6, "/latest/meta-data/")["error"] == "ENETUNREACH"
    [v4] = inst.ntp_query(TIME_SYNC_V4)
    assert v4["outcome"] == "reply", v4
    assert meta(ec2, f"network/interfaces/macs/{inst.mac}/ipv6s")["status"] == 404
    info = json.loads(inst.run(["ip", "-j", "-6", "addr", "show", "eth0"], check=True).stdout)
    scopes = {a["scope"] for a in info[0]["addr_info"] if "scope" in a}
    assert scopes == {"link"}  # only fe80::/64, as on an instance without an IPv6 address


def test_ipv6_only_instance_cannot_reach_the_ipv4_endpoints(ec2_factory: Factory) -> None:
    ec2 = ec2_factory(ipv4=False)
    [v4] = ec2.instance.ntp_query(TIME_SYNC_V4)
    assert (v4["outcome"], v4["errno"]) == ("error", "ENETUNREACH"), v4
    [v6] = ec2.instance.ntp_query(TIME_SYNC_V6)
    assert v6["outcome"] == "reply", v6


def test_non_nitro_says_xen_and_the_ipv6_endpoints_never_answer(ec2_factory: Factory) -> None:
    ec2 = ec2_factory(nitro=False)
    assert meta(ec2, "system")["body"] == "xen"
    [v6] = ec2.instance.ntp_query(TIME_SYNC_V6, timeout=0.5)
    assert v6["outcome"] == "timeout", v6
    assert ec2.instance.http("GET", IMDS_V6, "/latest/meta-data/", timeout=0.5)["error"] == "TIMEOUT"
    [v4] = ec2.instance.ntp_query(TIME_SYNC_V4)
    assert v4["outcome"] == "reply", v4


def test_imds_ipv6_disabled_times_out_while_ipv4_imds_and_time_sync_work(ec2_factory: Factory) -> None:
    ec2 = ec2_factory(imds_ipv6=False)
    put = ec2.instance.http("PUT", IMDS_V6, "/latest/api/token", TTL, timeout=0.5)
    assert put["error"] == "TIMEOUT", put  # no RST: the endpoint is simply not there
    assert meta(ec2, "system", IMDS_V4)["body"] == "nitro"
    [v6] = ec2.instance.ntp_query(TIME_SYNC_V6)
    assert v6["outcome"] == "reply", v6


def test_tokens_required_refuses_imdsv1_and_never_logs_the_token(ec2_factory: Factory) -> None:
    ec2 = ec2_factory(tokens="required")
    inst = ec2.instance
    assert inst.http("GET", IMDS_V6, "/latest/meta-data/instance-id")["status"] == 401
    secret = token(ec2, IMDS_V6)
    ok = inst.http("GET", IMDS_V6, "/latest/meta-data/instance-id", {"X-aws-ec2-metadata-token": secret})
    assert (ok["status"], ok["body"]) == (200, ec2.instance_id)
    bad = inst.http("GET", IMDS_V4, "/latest/meta-data/instance-id", {"X-aws-ec2-metadata-token": "x" * 56})
    assert bad["status"] == 401
    for ttl in ("0", "21601", "soon"):
        r = inst.http("PUT", IMDS_V4, "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": ttl})
        assert r["status"] == 400, (ttl, r)
    assert inst.http("PUT", IMDS_V4, "/latest/api/token")["status"] == 400
    proxied = inst.http("PUT", IMDS_V4, "/latest/api/token", {**TTL, "X-Forwarded-For": "192.0.2.99"})
    assert proxied["status"] == 403
    log = ec2.imds_log.read_text()
    assert secret not in log
    states = [(r["method"], r["status"], r["token"]) for r in ec2.imds_requests()]
    assert ("GET", 401, "none") in states and ("GET", 200, "valid") in states
    assert ("GET", 401, "invalid") in states


def test_tokens_optional_allows_imdsv1_but_not_a_bad_token(ec2_factory: Factory) -> None:
    ec2 = ec2_factory(tokens="optional")
    inst = ec2.instance
    v1 = inst.http("GET", IMDS_V4, "/latest/meta-data/system")
    assert (v1["status"], v1["body"]) == (200, "nitro")
    bad = inst.http("GET", IMDS_V4, "/latest/meta-data/system", {"X-aws-ec2-metadata-token": "nope"})
    assert bad["status"] == 401


def test_time_sync_silent_gives_time_outs_not_errors(ec2_factory: Factory) -> None:
    ec2 = ec2_factory(timesync="silent")
    for address in (TIME_SYNC_V6, TIME_SYNC_V4):
        [r] = ec2.instance.ntp_query(address, timeout=0.5)
        assert r["outcome"] == "timeout", r  # nothing answers, not even ICMP port unreachable


def test_time_sync_rate_limit_drops_replies(ec2_factory: Factory) -> None:
    ec2 = ec2_factory(timesync="ratelimit")
    results = ec2.instance.ntp_query(TIME_SYNC_V6, count=12, interval=0.1, timeout=0.3)
    outcomes = [r["outcome"] for r in results]
    assert outcomes[0] == "reply", outcomes  # the burst allowance
    # Then dropped: chrony's leak answers about 1 in 16 at random, so most of 11 time out.
    assert outcomes.count("timeout") >= 6, outcomes


def test_time_sync_kiss_of_death_rate(ec2_factory: Factory) -> None:
    ec2 = ec2_factory(timesync="kod")
    for address in (TIME_SYNC_V6, TIME_SYNC_V4):
        [r] = ec2.instance.ntp_query(address)
        assert (r["outcome"], r["stratum"], r["refid"]) == ("kiss", 0, "RATE"), r


def test_time_sync_can_go_silent_and_come_back_while_the_instance_runs(ec2: Ec2) -> None:
    [before] = ec2.instance.ntp_query(TIME_SYNC_V6)
    assert before["outcome"] == "reply", before
    ec2.set_timesync("silent")
    [during] = ec2.instance.ntp_query(TIME_SYNC_V6, timeout=0.5)
    assert during["outcome"] == "timeout", during
    ec2.set_timesync("kod")
    [kiss] = ec2.instance.ntp_query(TIME_SYNC_V6)
    assert kiss["refid"] == "RATE", kiss
    ec2.set_timesync("serving")
    [after] = ec2.instance.ntp_query(TIME_SYNC_V6)
    assert after["outcome"] == "reply", after


def test_hop_limit_1_keeps_the_token_from_a_container_behind_the_instance(ec2_factory: Factory) -> None:
    ec2 = ec2_factory(tokens="optional")  # hop_limit=1: EC2's default
    box = ec2.container()
    assert ec2.instance.http("PUT", IMDS_V4, "/latest/api/token", TTL)["status"] == 200
    for host in (IMDS_V4, IMDS_V6):
        put = box.http("PUT", host, "/latest/api/token", TTL, timeout=1.0)
        assert (put["status"], put["error"]) == (None, "TIMEOUT"), put  # a time-out, not a refusal
        # The rest of IMDS answers the container: only the token's reply is hop-limited.
        assert box.http("GET", host, "/latest/meta-data/system")["body"] == "nitro"
    [ntp] = box.ntp_query(TIME_SYNC_V6)
    assert ntp["outcome"] == "reply", ntp


def test_hop_limit_2_lets_the_container_have_a_token(ec2_factory: Factory) -> None:
    ec2 = ec2_factory(hop_limit=2)
    box = ec2.container()
    put = box.http("PUT", IMDS_V6, "/latest/api/token", TTL)
    assert put["status"] == 200, put
    got = box.http("GET", IMDS_V6, "/latest/meta-data/instance-id", {"X-aws-ec2-metadata-token": put["body"]})
    assert got["body"] == ec2.instance_id


# ------------------------------------------------------------------ the instance and its chronyd


def test_instance_chronyd_selects_fd00_ec2_123(ec2: Ec2, record_property: Callable[[str, object], None]) -> None:
    inst = ec2.instance
    stock = inst.distro.chrony_conf
    conf = "\n".join(
        line for line in stock.splitlines()
        if not line.startswith(("pool ", "leapsectz"))
    ) + f"\nserver {TIME_SYNC_V6} iburst minpoll -2 maxpoll -2\n"
    started = time.monotonic()
    inst.start_chronyd(conf)
    seconds = inst.wait_selected(TIME_SYNC_V6, timeout=30)
    record_property("select_seconds", round(time.monotonic() - started, 2))
    print(f"\ninstance chronyd selected {TIME_SYNC_V6} {seconds:.2f} s after it was started")
    [src] = inst.sources()
    assert (src.mode, src.state, src.name) == ("^", "*", TIME_SYNC_V6)
    # Debian's chronyd dropped root for _chrony, and chronyc talks to it over its own socket.
    pid = inst.chronyd_pid()
    assert pid is not None
    user = inst.run(["ps", "-o", "user=", "-p", str(pid)], check=True).stdout.strip()
    assert user == "_chrony"
    assert inst.path("/run/chrony/chronyd.sock").is_socket()
    # Its tracking follows from the same update, read a moment later: waited on, not raced.
    wait_for(inst.tracking, lambda t: t.synchronised and t.ref_name == TIME_SYNC_V6, what="chronyd's tracking",
             timeout=30, every=0.1)


def test_amazon_linux_instance_has_its_own_etc_and_run(ec2_factory: Factory) -> None:
    ec2 = ec2_factory(distro="amzn2023")
    inst = ec2.instance
    assert 'ID="amzn"' in inst.read_text("/etc/os-release")
    assert inst.run(["test", "-e", "/etc/chrony"]).returncode == 1  # this host's Debian layout is hidden
    assert "sourcedir /run/chrony.d" in inst.read_text("/etc/chrony.conf")
    assert "169.254.169.123" in inst.read_text("/run/chrony.d/link-local.sources")
    assert 'service_manager = "direct"' in inst.read_text("/etc/chronyctl6/settings.toml")
    assert inst.run(["ls", "-A", "/var/lib/chrony"], check=True).stdout == ""
    # The host's /etc is untouched by what the instance writes.
    inst.run(["sh", "-c", "echo x > /etc/sandbox-probe"], check=True)
    assert not Path("/etc/sandbox-probe").exists()
    assert not Path("/etc/chronyctl6/settings.toml").exists() or \
        "direct" not in Path("/etc/chronyctl6/settings.toml").read_text()


def test_instance_has_its_own_processes_and_a_decoy_time_daemon(ec2: Ec2) -> None:
    inst = ec2.instance
    pid = inst.start_decoy("systemd-timesyncd")
    seen = inst.run([sys.executable, "-c", "import psutil; print(sorted(p.name() for p in psutil.process_iter()))"],
                    check=True).stdout
    assert "systemd-timesyncd" in seen and "chronyd" not in seen  # psutil sees the instance only
    assert inst.read_text(f"/proc/{pid}/comm").strip() == "systemd-timesyncd"[:15]  # TASK_COMM_LEN


# ------------------------------------------------------------------ safety and cleanup


def test_nothing_is_left_behind_even_when_the_test_fails() -> None:
    require_sandbox()
    box = Ec2()
    links_before = subprocess.run(["ip", "-br", "link"], check=False, capture_output=True, text=True).stdout
    fds_before = sorted(Path("/proc/self/fd").iterdir())
    with pytest.raises(RuntimeError, match="the test failed"), box:
        box.instance.start_chronyd()
        assert box.instance.chronyd_pid() is not None
        holders = (box.ec2.pid, box.instance_holder.pid, box.container().holder.pid)
        raise RuntimeError("the test failed")
    assert box.leftovers() == []
    assert sorted(Path("/proc/self/fd").iterdir()) == fds_before  # no pidfd or namespace file kept
    for pid in holders:
        assert not Path(f"/proc/{pid}").exists()
    assert subprocess.run(["ip", "-br", "link"], check=False, capture_output=True, text=True).stdout == links_before


def test_a_stopped_holder_does_not_claim_the_next_sandbox_s_processes(tmp_path: Path) -> None:
    """The kernel hands a freed namespace's inode number to the next namespace made (here the mount
    namespace's, at once): a sandbox closed while another worker builds one must not count that
    worker's processes as its own leftovers."""
    require_sandbox()
    first = Holder("first")
    first.start(tmp_path / "first.log")
    first_pid = first.pid
    first.stop()
    second = Holder("second")
    try:
        second.start(tmp_path / "second.log")
        assert second.processes()  # a running holder does see its own processes
        assert first.processes() == []
        if {first.net_inode, first.mnt_inode} & {second.net_inode, second.mnt_inode}:
            # The number was handed on (as it is, here, for the mount namespace): a count by number
            # now, as leftovers() once made, would take the second's processes for the first's.
            assert processes_in({first.net_inode, first.mnt_inode})
        assert not Path(f"/proc/{first_pid}").exists()
    finally:
        second.stop()
    assert second.processes() == []


def test_stop_counts_what_is_left_only_once_what_it_started_has_exited(tmp_path: Path) -> None:
    """nsenter joins the network and mount namespaces itself and waits outside the PID namespace
    for what it started, so it exits only after PID 1 has gone: stop() waits for what popen()
    started before it counts what is left. Here a process outside the PID namespace, which stop()
    does not kill, stands for it: like nsenter, it exits once PID 1 is gone (tail looks each second)."""
    require_sandbox()
    holder = Holder("entered")
    holder.start(tmp_path / "holder.log")
    try:
        proc = holder.popen(["tail", f"--pid={holder.pid}", "-f", "/dev/null"], log=tmp_path / "tail.log", pid=False)
        wait_for(lambda: [p for p in holder.processes() if "(tail)" in p], what="tail in the holder's namespaces",
                 timeout=30)
    finally:
        holder.stop()
    assert holder.processes() == []
    assert proc.returncode == 0


def test_a_killed_owner_takes_its_sandbox_with_it() -> None:
    """Even SIGKILL of the process that built the sandbox leaves no process behind."""
    require_sandbox()
    script = textwrap.dedent("""
        import json, time, sandbox
        box = sandbox.Ec2()
        box.start()
        print(json.dumps([box.ec2.pid, box.instance_holder.pid, str(box.workdir)]), flush=True)
        time.sleep(60)
    """)
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                             env=python_env(), cwd=REPO_ROOT)
    try:
        assert owner.stdout is not None
        ec2_pid, inst_pid, workdir = json.loads(owner.stdout.readline())
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
    try:
        wait_for(lambda: [p for p in (ec2_pid, inst_pid) if Path(f"/proc/{p}").exists()], lambda left: not left,
                 what="both holders gone after their owner's SIGKILL", timeout=30)
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", workdir], check=False)


def test_refuses_to_start_where_a_real_network_is_reachable(tmp_path: Path) -> None:
    """In a namespace with an addressed interface (a stand-in for the host's network) it refuses."""
    require_sandbox()
    script = textwrap.dedent("""
        set -e
        ip link add probe0 type veth peer name probe1
        ip addr add 198.51.100.2/24 dev probe0
        exec python3 -c 'import sandbox; sandbox.Ec2().start()'
    """)
    # unshare (no --fork) execs sh, which execs python3: the sandbox's process id is this child's,
    # and its work directory would be named after it.
    child = subprocess.Popen(["unshare", "--net", "--", "sh", "-c", script], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=python_env(), cwd=REPO_ROOT)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode != 0
    assert "SandboxError" in stderr and "probe0" in stderr
    assert not list(Path(tempfile.gettempdir()).glob(f"chronyctl6-sandbox-{child.pid}-*"))


def test_unknown_switches_are_refused() -> None:
    with pytest.raises(SandboxError):
        Ec2(timesync="loud")  # type: ignore[arg-type]
    with pytest.raises(SandboxError):
        Ec2(distro="plan9")
