"""With the real chronyd (-x): an image built with `apply --root --phc on` starts and synchronises
on a launch without the PTP hardware clock, and on a launch whose sysfs names the ENA clock the
boot step's refclock line is what chronyd reads (issue 19 item 1).

This machine has no PHC (/dev/ptp* is absent), so chronyd cannot open one: on the launch with
the clock, the test shows the line is in the configuration chronyd parses (`chronyd -p`) and that
chronyd, given it on a machine without the device, stops with "Could not open PHC" -- the very
failure the boot-time decision keeps away from launches without the clock.

The image's Time Sync endpoint is replaced by a loopback responder: nothing here may send a packet
to fd00:ec2::/32. Paths chronyd would write (drift, logs, keys) are left out; every include is
taken under the image root, as apply --root validates.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from chronyctl6.chronyconf import directives
from chronyctl6.configure import boot as boot_mod
from chronyctl6.configure.plan import Request
from chronyctl6.effects import commands, host, metadata
from tests import chronyd_process
from tests.configure.test_phc import ena_root, needs_mknod
from tests.conftest import require
from tests.helpers import apply_root, stock_root
from tests.ntp_fixtures import Responder, ServerState, require_isolated_netns

pytestmark = [pytest.mark.root]
DROP = {"driftfile", "keyfile", "logdir", "ntsdumpdir", "rtcsync", "dumpdir", "log", "pidfile"}


@pytest.fixture
def image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    require(commands.which("chronyd") is not None, "chronyd is not installed (apt-get install chrony)")
    root = stock_root(tmp_path, "debian12", "image")
    apply_root(root, "--phc", "on")
    conf = (root / "etc/chrony/chrony.conf").read_text()
    assert "confdir /run/chronyctl6" in conf and "\nrefclock" not in conf
    monkeypatch.setattr(host, "read_network", lambda: host.HostNetwork(("2600:1f18::5",), ("10.0.0.5",)))
    monkeypatch.setattr(metadata, "instance_hint", lambda network, **_: host.InstanceHint("nitro", True))
    monkeypatch.setattr(boot_mod, "_chronyd_answers", lambda: False)
    return root


def runnable(root: Path, tmp: Path, port: int) -> Path:
    """The image's chrony.conf as chronyd at `root` reads it, with its includes under root and
    the boot step's Time Sync line pointed at the loopback responder."""
    sources = root / "run/chronyctl6/timesync.sources"
    assert sources.read_text().count("server fd00:ec2::123") == 1  # what the boot step chose
    sources.write_text(f"server ::1 port {port} iburst minpoll -2 maxpoll -2\n")
    text = directives.rebase_includes((root / "etc/chrony/chrony.conf").read_text(), str(root))
    kept = [ln for ln in text.splitlines() if ln.split()[:1] and ln.split()[0] not in DROP]
    conf = tmp / "run.conf"
    conf.write_text("\n".join([*kept, "cmdport 0", f"bindcmdaddress {tmp / 'sock'}", "port 0",
                               f"pidfile {tmp / 'pid'}", ""]))
    return conf


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    d = tmp_path / "chronyd"
    d.mkdir(mode=0o700)  # chronyd refuses a command socket in a world-accessible directory
    return d


@pytest.fixture
def responder() -> Iterator[Responder]:
    require_isolated_netns()
    with Responder(state=ServerState(offset=0.0)) as r:
        yield r


def test_an_image_built_with_phc_on_starts_and_syncs_without_the_clock(
        image: Path, tmp: Path, responder: Responder) -> None:
    result = boot_mod.boot(Request(root=image), settle=0)
    assert result.phc is not None and result.phc["written"] is False, result.phc
    assert not (image / "run/chronyctl6/phc.conf").exists()
    conf = runnable(image, tmp, responder.port)
    log = tmp / "chronyd.log"
    with chronyd_process.running(conf, log=log) as proc:  # never fatal: a chronyd that exits fails the wait
        t = chronyd_process.wait_tracking(tmp / "sock", proc, lambda t: t.ref_name == "::1" and t.synchronised,
                                          what="chronyd synchronised to the responder", log=log)
    assert t.leap_status == "Normal", t


@needs_mknod
def test_a_launch_with_the_ena_clock_gets_the_refclock_line_chronyd_reads(image: Path, tmp: Path) -> None:
    ena_root(image)  # this launch's sysfs names an ENA clock; /dev/ptp_ena -> ptp0 is its node
    result = boot_mod.boot(Request(root=image), settle=0)
    assert result.phc is not None and result.phc["written"] is True and result.phc["device"] == "/dev/ptp_ena"
    line = "refclock PHC /dev/ptp_ena poll 0 delay 0.000010 prefer trust"
    assert (image / "run/chronyctl6/phc.conf").read_text().endswith(line + "\n")
    conf = runnable(image, tmp, 123)
    parsed = subprocess.run(["chronyd", "-p", "-f", str(conf)], capture_output=True, text=True, check=False)
    assert parsed.returncode == 0 and line in parsed.stdout.splitlines(), parsed.stderr
    # This machine has no PHC: chronyd given the line stops -- what a baked line does to a launch
    # without the clock, and why the boot step writes it only where sysfs shows the clock.
    require(not Path("/dev/ptp_ena").exists(), "this machine has a /dev/ptp_ena")
    died = subprocess.run(["chronyd", "-x", "-u", "root", "-d", "-t", "10", "-f", str(conf)],
                          capture_output=True, text=True, check=False, timeout=30)
    assert died.returncode != 0 and "Could not open PHC" in died.stderr, died.stderr
