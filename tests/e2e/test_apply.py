"""End to end on the simulated EC2 instance: chronyctl6's real job against real chronyd.

Each instance starts as the distribution ships it (stock chrony.conf, no chronyd running,
settings.toml saying service_manager = "direct"). chronyctl6 runs ON the instance with no
--root: real paths, a real chronyd restarted through the direct service backend (with -x),
read back with `chronyc -n -c sources`.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sandbox import TIME_SYNC_V4, TIME_SYNC_V6, Ec2
from sandbox.distros import FIXTURES
from sandbox.namespaces import REPO_ROOT, python_env

# The simulated instance: network namespaces, overlay mounts, chronyd (root).
pytestmark = [pytest.mark.e2e, pytest.mark.root]

Factory = Callable[..., Ec2]
Record = Callable[[str, object], None]
# Debian 12, and the real stock files whose drop-ins hold sources of their own: Ubuntu's EC2 image
# (IPv4 Time Sync in conf.d/00-cpc.conf), SLES (pool in /etc/chrony.d/pool.conf), Amazon Linux 2
# (Time Sync and pools in /etc/chrony.d/*.sources), Amazon Linux 2023 (/run/chrony.d); and Debian 13
# (leapseclist, confdir last), run by this host's chronyd and by its own 4.6.1 (debian13-chrony46).
DISTROS = ["debian", "debian13", "debian13-chrony46", "ubuntu2404", "sles15", "amzn2", "amzn2023"]


def apply(ec2: Ec2, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = ec2.instance.run(["chronyctl6", "apply", *args], timeout=120)
    return done, time.monotonic() - started


def assert_runs_on(ec2: Ec2, address: str) -> None:
    """chronyd selected `address`, no other Time Sync line, and runs the file chronyctl6 wrote."""
    inst = ec2.instance
    sources = inst.sources()
    assert [s.name for s in sources if s.selected] == [address], sources
    assert [s.name for s in sources] == [address], sources  # nothing else read, drop-ins included
    config = inst.read_text(inst.distro.chrony_conf_path)
    active = [ln.strip() for ln in config.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert f"server {address} prefer iburst minpoll 4 maxpoll 4" in active
    other = TIME_SYNC_V4 if address == TIME_SYNC_V6 else TIME_SYNC_V6
    assert not [ln for ln in active if other in ln]
    assert not [ln for ln in active if ln.startswith("leapsectz")]
    pid = inst.chronyd_pid()
    assert pid is not None
    cmdline = inst.run(["cat", f"/proc/{pid}/cmdline"], check=True).stdout.split("\0")
    assert cmdline[:3] == ["/usr/sbin/chronyd", "-f", inst.distro.chrony_conf_path] and "-x" in cmdline


@pytest.mark.parametrize("distro", DISTROS)
def test_apply_on_a_fresh_instance_selects_fd00_ec2_123(
    ec2_factory: Factory, distro: str, record_property: Record
) -> None:
    ec2 = ec2_factory(distro=distro)
    done, seconds = apply(ec2, "--wait", "30")
    assert done.returncode == 0, done.stderr
    assert f"chronyd selected {TIME_SYNC_V6} after" in done.stdout
    assert "chronyd: restart" in done.stdout
    assert_runs_on(ec2, TIME_SYNC_V6)
    record_property("apply_to_selected_seconds", round(seconds, 2))
    print(f"\n{distro}: setup {ec2.setup_seconds:.2f} s, apply --wait to {TIME_SYNC_V6} selected {seconds:.2f} s")


@pytest.mark.parametrize("distro", DISTROS)
def test_apply_without_ipv6_selects_the_ipv4_endpoint(ec2_factory: Factory, distro: str) -> None:
    ec2 = ec2_factory(distro=distro, ipv6=False)
    done, _ = apply(ec2, "--wait", "30")
    assert done.returncode == 0, done.stderr
    assert f"chronyd selected {TIME_SYNC_V4} after" in done.stdout
    assert_runs_on(ec2, TIME_SYNC_V4)


def test_apply_on_an_ipv6_only_instance_selects_fd00_ec2_123(ec2_factory: Factory) -> None:
    ec2 = ec2_factory(ipv4=False)
    done, _ = apply(ec2, "--wait", "30")
    assert done.returncode == 0, done.stderr
    assert_runs_on(ec2, TIME_SYNC_V6)


def test_non_nitro_instance_gets_the_ipv4_endpoint_despite_its_ipv6_address(ec2_factory: Factory) -> None:
    """On Xen the IPv6 endpoints do not exist even with an IPv6 address: `--ipv6 auto` reads
    meta-data/system and takes IPv4."""
    ec2 = ec2_factory(nitro=False)
    done, _ = apply(ec2, "--wait", "30")
    assert done.returncode == 0, done.stderr
    assert_runs_on(ec2, TIME_SYNC_V4)
    assert "a Xen instance" in ec2.instance.read_text(ec2.instance.distro.chrony_conf_path)


def test_explicit_ipv6_on_a_non_nitro_instance_rolls_back(ec2_factory: Factory) -> None:
    ec2 = ec2_factory(nitro=False)
    inst = ec2.instance
    stock = inst.read_text(inst.distro.chrony_conf_path)
    # fd00:ec2::123 is black-holed here: never selected, however long apply waits (3 s will do).
    done, _ = apply(ec2, "--ipv6", "on", "--wait", "3")
    assert done.returncode == 1
    assert "previous configuration is restored" in done.stderr, done.stderr
    assert inst.read_text(inst.distro.chrony_conf_path) == stock


def test_apply_again_changes_nothing_and_keeps_chronyd(ec2_factory: Factory) -> None:
    ec2 = ec2_factory()
    first, _ = apply(ec2, "--wait", "30")
    assert first.returncode == 0, first.stderr
    pid = ec2.instance.chronyd_pid()
    again, _ = apply(ec2, "--wait", "30")
    assert again.returncode == 0, again.stderr
    assert "up to date, nothing to do" in again.stdout
    assert ec2.instance.chronyd_pid() == pid


def test_silent_time_sync_makes_apply_roll_back_and_say_so(ec2_factory: Factory) -> None:
    ec2 = ec2_factory(timesync="silent")
    inst = ec2.instance
    stock = inst.read_text(inst.distro.chrony_conf_path)
    done, seconds = apply(ec2, "--wait", "3")  # a silent server is never selected: any wait proves it
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert f"did not select {TIME_SYNC_V6} within 3 s" in done.stderr
    assert "previous configuration is restored" in done.stderr
    assert "chronyctl6 doctor" in done.stderr  # the hint
    assert 3 <= seconds < 30
    # Rolled back for real: the stock file, byte for byte, and chronyd running on it.
    assert inst.read_text(inst.distro.chrony_conf_path) == stock
    pid = inst.chronyd_pid()
    assert pid is not None
    assert inst.run(["kill", "-0", str(pid)]).returncode == 0
    assert TIME_SYNC_V6 not in inst.chronyc("sources").stdout


def bake_image(tmp_path: Path) -> str:
    """What an image builder does once: `apply --root IMAGE --at-boot` on the mounted image."""
    image = tmp_path / "image"
    shutil.copytree(FIXTURES / "debian12", image)
    done = subprocess.run(
        [sys.executable, "-m", "chronyctl6", "apply", "--root", str(image), "--at-boot"],
        capture_output=True, text=True, env=python_env(), cwd=REPO_ROOT, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    baked = (image / "etc/chrony/chrony.conf").read_text()
    # The image fixes no endpoint: it is chosen at every boot.
    assert TIME_SYNC_V6 not in baked and TIME_SYNC_V4 not in baked
    assert "sourcedir /run/chronyctl6" in baked
    return baked


@pytest.mark.parametrize(("ipv6", "expected"), [(True, TIME_SYNC_V6), (False, TIME_SYNC_V4)],
                         ids=["dual-stack-launch", "ipv4-only-launch"])
def test_baked_image_boot_step_picks_the_launch_endpoint(
    ec2_factory: Factory, tmp_path: Path, ipv6: bool, expected: str
) -> None:
    baked = bake_image(tmp_path)
    ec2 = ec2_factory(ipv6=ipv6)
    inst = ec2.instance
    inst.write_text(inst.distro.chrony_conf_path, baked)
    # Boot order: chronyctl6-boot.service, then chrony.service (here: chronyd by hand, -x).
    boot = inst.run(["chronyctl6", "boot"], timeout=60)
    assert boot.returncode == 0, boot.stderr
    assert f"Time Sync endpoint for this boot: {expected}" in boot.stdout
    assert "reloaded" not in boot.stdout  # chronyd was not up yet
    sources_file = inst.read_text("/run/chronyctl6/timesync.sources")
    assert f"server {expected} prefer iburst minpoll 4 maxpoll 4" in sources_file
    inst.start_chronyd()
    inst.wait_selected(expected, timeout=30)
    names = [s.name for s in inst.sources()]
    assert names == [expected], names  # exactly one Time Sync line, as AWS advises


def test_apply_on_debian13_with_its_own_chronyd_46(ec2_factory: Factory) -> None:
    """Debian 13's stock files run by Debian 13's own chronyd 4.6.1 (chrooted into its release's
    root on the instance): apply validates with it, chronyd selects fd00:ec2::123."""
    ec2 = ec2_factory(distro="debian13-chrony46")
    inst = ec2.instance
    assert "version 4.6.1 " in inst.run(["chronyd", "--version"], check=True).stdout
    done, _ = apply(ec2, "--wait", "30")
    assert done.returncode == 0, done.stderr
    assert "validated by chronyd 4.6.1 from this host" in done.stdout
    assert f"chronyd selected {TIME_SYNC_V6} after" in done.stdout
    assert_runs_on(ec2, TIME_SYNC_V6)
    assert "version 4.6.1 " in inst.run(["chronyc", "-v"], check=True).stdout


# ---- the transaction on a real chronyd (-x) --------------------------------------------------

def test_sigterm_during_the_wait_rolls_back(ec2_factory: Factory) -> None:
    """What an SSM or Ansible time-out does: SIGTERM while apply waits for chronyd to select."""
    ec2 = ec2_factory(timesync="silent")
    inst = ec2.instance
    path = inst.distro.chrony_conf_path
    stock = inst.path(path).read_bytes()
    script = (f"{shlex.join(inst.cli)} apply --wait 60 2>/tmp/err & pid=$!; "
              # Until apply has restarted chronyd on the new file and is waiting: a condition, with a
              # generous bound (30 s) that fails the test rather than signalling apply too early.
              f"i=0; until grep -q fd00:ec2::123 {path} && chronyc -n -c sources 2>/dev/null | grep -q fd00; do "
              "i=$((i+1)); [ $i -le 300 ] || { echo 'apply never restarted chronyd on its file'; exit 9; }; "
              "sleep 0.1; done; "
              # A second into apply's 60 s wait: far inside it, whatever the load (no timer raced).
              "sleep 1; t0=$(date +%s%N); kill -TERM $pid; wait $pid; echo rc=$?; "
              "echo after-kill-ms=$(( ($(date +%s%N) - t0) / 1000000 )); cat /tmp/err")
    done = inst.run(["sh", "-c", script], timeout=120)
    assert "rc=1" in done.stdout, (done.stdout, done.stderr)
    seconds = int(done.stdout.split("after-kill-ms=")[1].split()[0]) / 1000
    assert "interrupted by SIGTERM; the previous configuration is restored and chronyd restarted on it" \
        in done.stdout
    assert seconds < 30  # it did not wait out the 59 s left of its 60 s
    assert inst.path(path).read_bytes() == stock
    pid = inst.chronyd_pid()
    assert pid is not None and inst.run(["kill", "-0", str(pid)]).returncode == 0
    assert TIME_SYNC_V6 not in inst.chronyc("sources").stdout


def test_a_live_apply_waits_by_default_and_check_then_agrees(ec2_factory: Factory) -> None:
    ec2 = ec2_factory()
    inst = ec2.instance
    before = inst.run(["chronyctl6", "apply", "--check"], timeout=60)
    assert before.returncode == 5, before.stdout + before.stderr
    done, _ = apply(ec2)  # no --wait: 60 s by default on a live host
    assert done.returncode == 0, done.stderr
    assert f"chronyd selected {TIME_SYNC_V6} after" in done.stdout
    after = inst.run(["chronyctl6", "apply", "--check"], timeout=60)
    assert after.returncode == 0, after.stdout + after.stderr


def test_restore_original_puts_the_stock_file_back_and_chronyd_runs_on_it(ec2_factory: Factory) -> None:
    ec2 = ec2_factory()
    inst = ec2.instance
    path = inst.distro.chrony_conf_path
    stock = inst.path(path).read_bytes()
    done, _ = apply(ec2, "--wait", "30")
    assert done.returncode == 0, done.stderr
    restored = inst.run(["chronyctl6", "restore", "--original", "--wait", "20"], timeout=120)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "chronyd: restart" in restored.stdout and "chronyd answers after" in restored.stdout
    assert inst.path(path).read_bytes() == stock
    pid = inst.chronyd_pid()
    assert pid is not None
    cmdline = inst.run(["cat", f"/proc/{pid}/cmdline"], check=True).stdout.split("\0")
    assert cmdline[:3] == ["/usr/sbin/chronyd", "-f", path] and "-x" in cmdline
    assert TIME_SYNC_V6 not in inst.chronyc("sources").stdout


def test_boot_step_with_broken_settings_writes_ipv4_warns_naming_the_file_and_exits_0(
    ec2_factory: Factory, tmp_path: Path
) -> None:
    baked = bake_image(tmp_path)
    ec2 = ec2_factory(settings="ipv6 = 'sometimes'\n")
    inst = ec2.instance
    inst.write_text(inst.distro.chrony_conf_path, baked)
    boot = inst.run(["chronyctl6", "boot"], timeout=60)
    assert boot.returncode == 0, boot.stderr
    assert "chronyctl6: warning:" in boot.stderr and "/etc/chronyctl6/settings.toml" in boot.stderr
    assert "Time Sync endpoint for this boot: 169.254.169.123" in boot.stdout
    inst.start_chronyd()
    inst.wait_selected(TIME_SYNC_V4, timeout=30)  # chronyd has a source all the same


def test_boot_step_falls_back_to_the_last_good_choice(ec2_factory: Factory, tmp_path: Path) -> None:
    baked = bake_image(tmp_path)
    ec2 = ec2_factory(ipv4=False)  # IPv6-only: IPv4 would leave chronyd with no source at all
    inst = ec2.instance
    inst.write_text(inst.distro.chrony_conf_path, baked)
    assert inst.run(["chronyctl6", "boot"], timeout=60).returncode == 0  # a good boot: IPv6, recorded
    inst.write_text("/etc/chronyctl6/settings.toml", "[[servers]]\nhost = 'x\\u2028server evil'\n")
    inst.run(["rm", "/run/chronyctl6/timesync.sources"], check=True)  # what a reboot leaves
    boot = inst.run(["chronyctl6", "boot"], timeout=60)
    assert boot.returncode == 0, boot.stderr
    assert "the last good choice" in boot.stderr
    assert "server fd00:ec2::123 prefer iburst" in inst.read_text("/run/chronyctl6/timesync.sources")
    inst.start_chronyd()
    inst.wait_selected(TIME_SYNC_V6, timeout=30)


def test_include_star_keeps_no_copy_of_ours_live_and_a_second_apply_is_a_no_op(ec2_factory: Factory) -> None:
    """`include /etc/chrony/conf.d/*` (no suffix) reads every file there: a *.chronyctl6.bak an
    older chronyctl6 left beside pool.conf would be a live public source. The real chronyd, asked
    with `chronyc sources`, has Time Sync only; `apply --check` then exits 0."""
    ec2 = ec2_factory(distro="debian")
    inst = ec2.instance
    path = inst.distro.chrony_conf_path
    inst.write_text(path, inst.read_text(path) + "include /etc/chrony/conf.d/*\n")
    inst.run(["rm", "-f", "/etc/chrony/conf.d/README"], check=True)
    inst.write_text("/etc/chrony/conf.d/pool.conf", "server 192.0.2.1 iburst\n")
    inst.write_text("/etc/chrony/conf.d/pool.conf.chronyctl6.bak", "server 192.0.2.2 iburst\n")
    done, _ = apply(ec2, "--wait", "30")
    assert done.returncode == 0, done.stderr
    assert_runs_on(ec2, TIME_SYNC_V6)  # chronyc sources: Time Sync, and nothing else
    listing = inst.run(["ls", "-A", "/etc/chrony", "/etc/chrony/conf.d"], check=True).stdout
    assert "chronyctl6" not in listing, listing
    again = inst.run(["chronyctl6", "apply", "--check", "--diff"], timeout=60)
    assert again.returncode == 0, again.stdout + again.stderr


def test_package_removal_keeps_chronyd_on_time_sync_after_run_is_emptied(ec2_factory: Factory, tmp_path: Path) -> None:
    """`chronyctl6 release` (what the package's prerm runs) on a launched baked image: chronyd is
    restarted on this launch's Time Sync line and answers; then, as after a reboot without the
    boot step (/run emptied), a fresh chronyd still selects Time Sync."""
    baked = bake_image(tmp_path)
    ec2 = ec2_factory()
    inst = ec2.instance
    inst.write_text(inst.distro.chrony_conf_path, baked)
    assert inst.run(["chronyctl6", "boot"], timeout=60).returncode == 0
    inst.start_chronyd()
    inst.wait_selected(TIME_SYNC_V6, timeout=30)
    released = inst.run(["chronyctl6", "release", "--wait", "20"], timeout=120)
    assert released.returncode == 0, released.stdout + released.stderr
    assert "chronyd: restart" in released.stdout and "so that chrony keeps a source" in released.stdout
    config = inst.read_text(inst.distro.chrony_conf_path)
    assert "sourcedir /run/chronyctl6" not in config
    assert inst.run(["test", "-e", "/run/chronyctl6/timesync.sources"]).returncode != 0
    inst.wait_selected(TIME_SYNC_V6, timeout=30)
    pid = inst.chronyd_pid()
    assert pid is not None
    # The next boot: /run is empty and nothing of chronyctl6 runs; chronyd starts on chrony.conf.
    inst.run(["sh", "-c", f"kill {pid}; while kill -0 {pid} 2>/dev/null; do sleep 0.05; done"],
             timeout=20, check=True)
    inst.start_chronyd()
    inst.wait_selected(TIME_SYNC_V6, timeout=30)
    assert [s.name for s in inst.sources()] == [TIME_SYNC_V6]
