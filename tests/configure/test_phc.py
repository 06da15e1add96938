"""The ENA PTP hardware clock: found through sysfs, never trusted by name; decided at every boot
in an image; an operator's refclock lines kept or moved, never rewritten (issue 19 item 1,
issue 18 item 12). Pure decisions in process; discovery over a test root with real device nodes."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from chronyctl6.chronyconf import directives
from chronyctl6.configure import phc as policy
from chronyctl6.configure import render
from chronyctl6.configure.platforms import by_name
from chronyctl6.configure.settings import Settings
from chronyctl6.effects import host
from chronyctl6.effects import phc as phc_effects
from chronyctl6.effects.phc import Clock, Node, pick
from chronyctl6.errors import BadInput
from tests.configure.test_transaction import Host, live  # noqa: F401 (the fixture)
from tests.helpers import put, stock_root

ENA = Clock("ptp0", "ena-ptp-05", (248, 0), "0000:00:05.0")
KVM = Clock("ptp1", "KVM virtual PTP", (248, 1))
CHAR_ENA = Node(True, (248, 0))
DEBIAN = by_name("debian")
NET = host.HostNetwork(("2600:1f18::5",), ("10.0.0.5",))


# ---- pick: a name proves nothing -------------------------------------------------------------

def test_the_stable_name_is_preferred_when_it_is_the_ena_clock() -> None:
    phc, problems = pick([KVM, ENA], {"/dev/ptp_ena": CHAR_ENA, "/dev/ptp0": CHAR_ENA})
    assert phc is not None and phc.device == "/dev/ptp_ena" and phc.clock is ENA and problems == []
    assert phc.error_bound_path == "/sys/bus/pci/devices/0000:00:05.0/phc_error_bound"


def test_without_the_udev_name_the_ena_clocks_own_ptpN_is_used() -> None:
    ena_at_1 = Clock("ptp1", "ena-ptp-05", (248, 1))  # numbers change between boots
    phc, _ = pick([Clock("ptp0", "KVM virtual PTP", (248, 0)), ena_at_1],
                  {"/dev/ptp_ena": None, "/dev/ptp1": Node(True, (248, 1))})
    assert phc is not None and phc.device == "/dev/ptp1"


@pytest.mark.parametrize("node, said", [
    (Node(False, (0, 0)), "not a character device"),
    (Node(True, (1, 3)), "not the ENA clock"),  # e.g. a link to /dev/null
])
def test_a_ptp_ena_that_is_not_the_ena_clock_is_not_used(node: Node, said: str) -> None:
    phc, problems = pick([ENA], {"/dev/ptp_ena": node, "/dev/ptp0": CHAR_ENA})
    assert phc is not None and phc.device == "/dev/ptp0"
    assert any(said in p for p in problems), problems


def test_no_ena_clock_no_phc_whatever_dev_holds() -> None:
    assert pick([KVM], {"/dev/ptp_ena": CHAR_ENA, "/dev/ptp1": Node(True, (248, 1))})[0] is None
    assert pick([ENA], {"/dev/ptp_ena": None, "/dev/ptp0": None})[0] is None


# ---- the policy: an image never carries a PHC line of ours --------------------------------------

def _choices(phc: str, *, on_host: bool, device: str | None = None, own: frozenset[str] = frozenset(),
             at_boot: bool = False) -> render.Choices:
    settings = Settings(ipv6="on", phc=phc, at_boot=at_boot)
    return render.decide(settings, DEBIAN, network=NET if on_host else None, phc_device=device, own_refclocks=own)


def _active(text: str) -> list[str]:
    return [d.line for d in directives.parse(text)]


@pytest.mark.parametrize("mode", ["on", "auto"])
def test_an_image_gets_the_boot_time_confdir_and_no_refclock(mode: str) -> None:
    rendered = render.render_config(_choices(mode, on_host=False), None)
    lines = _active(rendered.text)
    assert "confdir /run/chronyctl6" in lines and not [ln for ln in lines if ln.startswith("refclock")]
    assert rendered.phc_boot_options == policy.DEFAULT_OPTIONS and rendered.phc_line is None


def test_phc_off_in_an_image_means_no_confdir_either() -> None:
    rendered = render.render_config(_choices("off", on_host=False), None)
    assert "confdir /run/chronyctl6" not in _active(rendered.text) and rendered.phc_boot_options is None


def test_a_live_host_with_the_clock_gets_the_line_with_the_leap_policy() -> None:
    rendered = render.render_config(_choices("auto", on_host=True, device="/dev/ptp_ena"), None)
    assert "refclock PHC /dev/ptp_ena poll 0 delay 0.000010 prefer trust" in _active(rendered.text)
    assert rendered.phc_line == "refclock PHC /dev/ptp_ena poll 0 delay 0.000010 prefer trust"


def test_phc_on_without_the_clock_on_a_live_host_stays_an_error() -> None:
    with pytest.raises(BadInput, match="no ENA PTP hardware clock"):
        _choices("on", on_host=True, device=None)


def test_a_live_host_that_picks_its_endpoint_at_boot_decides_the_phc_at_boot_too() -> None:
    rendered = render.render_config(_choices("auto", on_host=True, device="/dev/ptp_ena", at_boot=True), None)
    assert "confdir /run/chronyctl6" in _active(rendered.text)
    assert not [ln for ln in _active(rendered.text) if ln.startswith("refclock")]


# ---- operator refclocks: never dropped silently, never rewritten -------------------------------

AWS_RECIPE = "refclock PHC /dev/ptp0 poll 0 delay 0.000010 prefer"


def test_an_operators_ena_phc_line_moves_to_the_boot_time_file_with_their_options() -> None:
    existing = f"server 169.254.169.123 iburst\n{AWS_RECIPE}\nrefclock PHC /dev/ptp_ena poll 3 dpoll -2 offset 0\n"
    rendered = render.render_config(_choices("off", on_host=False), existing)  # even with --phc off
    assert rendered.phc_boot_options == ("poll", "0", "delay", "0.000010", "prefer")  # the first line's
    assert "confdir /run/chronyctl6" in _active(rendered.text)
    assert not [ln for ln in _active(rendered.text) if ln.startswith("refclock")]
    assert any("moved to /run/chronyctl6/phc.conf" in n and AWS_RECIPE in n for n in rendered.notes)
    assert any("second ENA PHC line" in n for n in rendered.notes)
    moved = [v for v in rendered.dropped if v.directive.keyword == "refclock"]
    assert len(moved) == 2 and all("moved to the boot-time" in v.reason for v in moved)


def test_on_a_live_host_whose_device_exists_the_operators_line_stays_as_written() -> None:
    choices = render.decide(Settings(ipv6="on", phc="on"), DEBIAN, network=NET, phc_device="/dev/ptp_ena",
                            phc_present=frozenset({"/dev/ptp_ena", "/dev/ptp0"}))
    rendered = render.render_config(choices, f"{AWS_RECIPE}\n")
    lines = _active(rendered.text)
    assert AWS_RECIPE in lines  # not rewritten to /dev/ptp_ena, and no second PHC line of ours
    assert [ln for ln in lines if ln.startswith("refclock")] == [AWS_RECIPE]
    assert rendered.phc_line is None and rendered.phc_boot_options is None


def test_other_refclocks_are_kept_as_written_with_a_warning_in_an_image() -> None:
    lines = ["refclock SHM 0 refid GPS precision 1e-1 offset 0.9999 delay 0.2",
             "refclock PPS /dev/pps0 lock GPS", "refclock PHC /dev/ptp2:extpps:pin=1 width 0.2 poll 2"]
    rendered = render.render_config(_choices("auto", on_host=False), "\n".join(lines) + "\n")
    assert all(ln in _active(rendered.text) for ln in lines)
    assert len(rendered.warnings) == 3 and all("kept as written" in w for w in rendered.warnings)


def test_chronyctl6s_own_line_is_known_from_its_state_not_from_the_text() -> None:
    own = "refclock PHC /dev/ptp_ena poll 0 delay 0.000010 prefer trust"
    mine = render.render_config(_choices("auto", on_host=False, own=frozenset({own})), f"{own}\n")
    assert mine.notes == () and mine.phc_boot_options == policy.DEFAULT_OPTIONS  # ours: re-rendered
    theirs = render.render_config(_choices("auto", on_host=False), f"{own}\n")  # same text, no record
    assert theirs.notes and theirs.phc_boot_options == ("poll", "0", "delay", "0.000010", "prefer", "trust")


@pytest.mark.parametrize("value, kept", [("100", True), ("50", True), ("10", False), ("nan", False)])
def test_an_operators_larger_maxclockerror_is_kept(value: str, kept: bool) -> None:
    rendered = render.render_config(_choices("off", on_host=False), f"maxclockerror {value}\n")
    mce = [ln for ln in _active(rendered.text) if ln.startswith("maxclockerror")]
    assert mce == ([f"maxclockerror {value}"] if kept else ["maxclockerror 50"])


# ---- the boot step's decision --------------------------------------------------------------------

def test_boot_options_come_from_state_and_damaged_state_never_reaches_chrony() -> None:
    assert policy.options_from("auto", {}) == (policy.DEFAULT_OPTIONS, None)
    assert policy.options_from("off", {}) == (None, None)
    assert policy.options_from("off", {"phc_boot_options": ["poll", "3"]}) == (("poll", "3"), None)
    assert policy.options_from("on", {"phc_boot_options": None}) == (None, None)
    options, warning = policy.options_from("on", {"phc_boot_options": ["poll", "0\nallow all"]})
    assert options == policy.DEFAULT_OPTIONS and warning and "not plain words" in warning


def test_boot_decides_nothing_without_the_clock_and_the_line_with_it() -> None:
    none = policy.decide("/run/chronyctl6", policy.DEFAULT_OPTIONS, phc_effects.PhcFacts(None))
    assert none.content is None and "no ENA PTP hardware clock" in none.reason
    phc, _ = pick([ENA], {"/dev/ptp_ena": CHAR_ENA})
    some = policy.decide("/run/chronyctl6", ("poll", "2"), phc_effects.PhcFacts(phc))
    assert some.content is not None and some.content.endswith("refclock PHC /dev/ptp_ena poll 2\n")


# ---- discovery over a test root with real device nodes (mknod needs root) ----------------------

def ena_root(root: Path, *, ptp: str = "ptp0", dev: tuple[int, int] = (1, 3), stable: str | None = "ptp0",
             slot: str = "0000:00:05.0", error_bound_ns: int | None = 2500) -> Path:
    """A tree whose sysfs names an ENA clock (ena-ptp-05) at `ptp`, with its device node (a char
    device with that clock's number; /dev/null's 1:3 by default: any real char device serves)."""
    entry = root / "sys/class/ptp" / ptp
    (entry / "device").mkdir(parents=True)
    (entry / "clock_name").write_text("ena-ptp-05\n")
    (entry / "dev").write_text(f"{dev[0]}:{dev[1]}\n")
    (entry / "device" / "uevent").write_text(f"DRIVER=ena\nPCI_SLOT_NAME={slot}\n")
    put(root, "sys/module/ena/parameters/phc_enable", "1\n")
    if error_bound_ns is not None:
        put(root, f"sys/bus/pci/devices/{slot}/phc_error_bound", f"{error_bound_ns}\n")
    (root / "dev").mkdir(parents=True, exist_ok=True)
    os.mknod(root / "dev" / ptp, 0o600 | stat.S_IFCHR, os.makedev(*dev))
    if stable:
        os.symlink(stable, root / "dev/ptp_ena")
    return root


needs_mknod = pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")


@pytest.mark.root
@needs_mknod
def test_discovery_through_sysfs_and_the_udev_link(tmp_path: Path) -> None:
    facts = phc_effects.discover(ena_root(tmp_path))
    assert facts.phc is not None and facts.phc.device == "/dev/ptp_ena" and facts.phc_enable == "1"
    assert phc_effects.read_error_bound(tmp_path, facts.phc) == pytest.approx(2.5e-6)
    assert host.find_phc(tmp_path) == "/dev/ptp_ena"


@pytest.mark.root
@needs_mknod
@pytest.mark.parametrize("plant", ["fifo", "link-out", "link-abs-out", "regular"])
def test_a_planted_ptp_ena_is_not_trusted(tmp_path: Path, plant: str) -> None:
    root = ena_root(tmp_path, stable=None)
    ptp_ena = root / "dev/ptp_ena"
    if plant == "fifo":
        os.mkfifo(ptp_ena)
    elif plant == "link-out":
        os.symlink("../../../../../../dev/null", ptp_ena)  # leaves the root: refused
    elif plant == "link-abs-out":
        os.symlink("/etc/passwd", ptp_ena)  # taken inside the root, where it is nothing
    else:
        ptp_ena.write_text("not a device\n")
    facts = phc_effects.discover(root)
    assert facts.phc is not None and facts.phc.device == "/dev/ptp0", facts  # the clock's own node


@pytest.mark.root
@needs_mknod
def test_the_boot_step_writes_the_line_only_on_a_launch_with_the_clock(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from chronyctl6.configure import boot as boot_mod
    from chronyctl6.configure.plan import Request
    from chronyctl6.effects import metadata

    monkeypatch.setattr(host, "read_network", lambda: NET)
    monkeypatch.setattr(metadata, "instance_hint", lambda network, **_: host.InstanceHint("nitro", True))
    monkeypatch.setattr(boot_mod, "_chronyd_answers", lambda: False)
    with_clock = ena_root(stock_root(tmp_path, "debian12", "with"))
    put(with_clock, "var/lib/chronyctl6/state.json", json.dumps({"intent": {"phc_boot_options": ["poll", "0"]}}))
    result = boot_mod.boot(Request(root=with_clock), settle=0)
    assert result.phc is not None and result.phc["written"] is True and result.phc["changed"] is True
    assert (with_clock / "run/chronyctl6/phc.conf").read_text().endswith("refclock PHC /dev/ptp_ena poll 0\n")
    again = boot_mod.boot(Request(root=with_clock), settle=0)
    assert again.phc is not None and again.phc["changed"] is False
    # The same image on a launch without the clock: no file; one left from a run by hand goes.
    without = stock_root(tmp_path, "debian12", "without")
    put(without, "run/chronyctl6/phc.conf", "refclock PHC /dev/ptp_ena poll 0\n")
    result = boot_mod.boot(Request(root=without), settle=0)
    assert result.phc is not None and result.phc["written"] is False and result.phc["changed"] is True
    assert not (without / "run/chronyctl6/phc.conf").exists()
    assert json.dumps(result.as_dict())  # what `boot -o json` reports


@pytest.mark.root
@needs_mknod
def test_a_live_host_choosing_at_boot_writes_phc_conf_now_and_needs_a_restart(live: Host) -> None:  # noqa: F811
    ena_root(live.root)
    result = live.apply(at_boot=True, phc="on")
    assert "/run/chronyctl6/phc.conf" in result.files and result.action == "restart"
    conf = (live.root / "etc/chrony.conf").read_text()
    assert "\nconfdir /run/chronyctl6\n" in conf and "\nrefclock" not in conf
    assert (live.root / "run/chronyctl6/phc.conf").read_text().endswith(
        "refclock PHC /dev/ptp_ena poll 0 delay 0.000010 prefer trust\n")


def test_phc_on_on_a_live_host_without_the_clock_is_refused(live: Host) -> None:  # noqa: F811
    with pytest.raises(BadInput, match="no ENA PTP hardware clock"):
        live.apply(phc="on")


def test_an_ena_phc_line_in_a_drop_in_moves_too_and_other_refclocks_there_are_warned_about(tmp_path: Path) -> None:
    from chronyctl6.configure.plan import Request, make_plan

    root = stock_root(tmp_path, "debian12")
    dropin = root / "etc/chrony/conf.d/phc.conf"
    dropin.write_text("# AWS's recipe\nrefclock PHC /dev/ptp0 poll 0 delay 0.000010 prefer\nrefclock SHM 0 refid GPS\n")
    plan = make_plan(Request(root=root, phc="off"))  # an image; even with --phc off the line is theirs
    assert plan.rendered.phc_boot_options == ("poll", "0", "delay", "0.000010", "prefer")
    assert "confdir /run/chronyctl6" in _active(plan.config.new.decode())
    edited = next(c for c in plan.changes if c.shown == "/etc/chrony/conf.d/phc.conf").new.decode()
    assert "\nrefclock PHC" not in edited and "# refclock PHC /dev/ptp0 poll 0 delay 0.000010 prefer" in edited
    assert "\nrefclock SHM 0 refid GPS\n" in edited  # kept as written
    assert any("moved to /run/chronyctl6/phc.conf" in n and "conf.d/phc.conf:2" in n for n in plan.notes)
    assert any("refclock SHM 0 refid GPS" in w and "kept as written" in w for w in plan.warnings)
    assert plan.intent["phc_boot_options"] == ["poll", "0", "delay", "0.000010", "prefer"]
