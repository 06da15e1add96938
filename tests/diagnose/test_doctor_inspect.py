"""doctor (issue 20): an image inspected offline (--root), the kept intent named as the reason,
checks before suggestions, fixes as short numbered steps. Real temporary roots and plain facts;
nothing here needs root."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from chronyctl6.configure.plan import Request, make_plan
from chronyctl6.diagnose import doctor, facts, offline
from chronyctl6.diagnose.doctor import Status
from chronyctl6.effects import chrony_tools, daemons, history, host, metadata
from chronyctl6.effects.host import HostNetwork
from chronyctl6.measure import exchange
from tests.contract import envelope
from tests.diagnose.test_doctor_checks import MD, reach
from tests.diagnose.test_doctor_fleet import ipv4_only
from tests.helpers import cli, stock_root, write_settings


@pytest.fixture
def nothing_of_this_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline means offline: no IMDS, no packet, no process table, no chronyc, no addresses."""
    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("doctor --root asked this host")

    for module, name in ((metadata, "reach"), (exchange, "measure"), (daemons, "scan"), (chrony_tools, "chronyc"),
                         (chrony_tools, "chronyd_version"), (host, "read_network"), (facts, "read_firewall"),
                         (facts, "route_to")):
        monkeypatch.setattr(module, name, refuse)


def _doctor(root: Path) -> tuple[int, dict[str, Any], str]:
    done = cli("doctor", "--root", str(root), "-o", "json")
    data = envelope(done, "doctor")["data"]
    text = cli("doctor", "--root", str(root))
    assert text.returncode == done.returncode
    return done.returncode, data, text.stdout


def _checks(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in data["checks"]}


@pytest.mark.usefixtures("nothing_of_this_host")
def test_an_image_is_examined_offline(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    code, data, text = _doctor(root)
    c = _checks(data)
    for cid in offline.NOT_OFFLINE:
        assert c[cid]["status"] == "skip" and c[cid]["evidence"].startswith("not applicable offline"), cid
    assert code == 2 and c["config-timesync"]["status"] == "fail"
    assert c["config-timesync"]["fix"] == f"chronyctl6 apply --root {root}"  # the image's apply, not the host's
    assert c["chrony"]["status"] == "fail" and data["offline"] == str(root)
    assert "inspected offline" in text
    # The image made right: chronyd in it, its unit enabled (an absolute link, the image's own), the config rendered.
    (root / "usr/sbin").mkdir(parents=True)
    (root / "usr/sbin/chronyd").write_bytes(b"\x7fELF")
    units = root / "usr/lib/systemd/system"
    units.mkdir(parents=True)
    (units / "chrony.service").write_text("[Service]\nExecStart=/usr/sbin/chronyd\n")
    (root / "etc/systemd/system/multi-user.target.wants").mkdir(parents=True)
    (root / "etc/systemd/system/multi-user.target.wants/chrony.service").symlink_to(
        "/usr/lib/systemd/system/chrony.service")
    plan = make_plan(Request(root=root, ipv6="on"))  # what `apply --root DIR --ipv6 on` writes and keeps
    for change in plan.pending:
        change.path.write_bytes(change.new)
    history.Store(root).save_intent(plan.intent)
    code, data, text = _doctor(root)
    c = _checks(data)
    assert code == 0, text
    assert (c["chrony"]["status"], c["chronyd"]["status"], c["config-timesync"]["status"]) == ("pass",) * 3
    assert data["intent"]["why"] == ('the intent `chronyctl6 apply --ipv6 on` kept in /var/lib/chronyctl6/state.json: '
                                     'ipv6 = "on"')  # kept in the image's state file
    # Another time daemon enabled in the image: it would fight chronyd at the first boot.
    (root / "etc/systemd/system/sysinit.target.wants").mkdir()
    (units / "systemd-timesyncd.service").write_text("[Unit]\n")
    (root / "etc/systemd/system/sysinit.target.wants/systemd-timesyncd.service").symlink_to(
        "/usr/lib/systemd/system/systemd-timesyncd.service")
    code, data, _ = _doctor(root)
    assert code == 2 and _checks(data)["other-daemons"]["fix"] == (
        f"sudo systemctl --root {root} disable systemd-timesyncd.service")


@pytest.mark.usefixtures("nothing_of_this_host")
def test_hostile_files_in_the_image_are_refused_not_followed(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    os.mkfifo(root / "etc/chrony/conf.d/fifo.conf")  # never opened: it would hang
    (root / "etc/chrony/conf.d/odd.conf").write_bytes(b"# caf\xe9 \x1b]0;x\x07\nserver fd00:ec2::123 iburst\n")
    (root / "etc/chrony/sources.d/host.sources").symlink_to("/etc/passwd")  # the image's /etc/passwd: none
    _, data, text = _doctor(root)
    c = _checks(data)
    assert c["config-timesync"]["status"] == "fail" and "FIFO" in c["config-timesync"]["evidence"]
    assert "\x1b" not in text and "\x07" not in text


def test_the_kept_intent_is_named_as_the_reason(tmp_path: Path) -> None:
    """After `apply --ipv6 off` the state file, not the settings file, explains IPv4; a key in
    settings.toml wins and is named as such."""
    root = stock_root(tmp_path, "debian12")
    history.Store(root).save_intent({"ipv6": "off"})
    chosen = facts._platform(root)
    assert (chosen.ipv6, chosen.ipv6_from) == ("off", "the intent `chronyctl6 apply --ipv6 off` kept in "
                                                      "/var/lib/chronyctl6/state.json")
    f = ipv4_only(ipv6_setting=chosen.ipv6, ipv6_from=chosen.ipv6_from)
    meant = doctor.intent(f)
    assert meant.family == "ipv4" and meant.why.startswith("the intent `chronyctl6 apply --ipv6 off` kept in ")
    assert "settings" not in meant.why
    settings = write_settings(root, 'ipv6 = "off"\n')
    assert facts._platform(root).ipv6_from == str(settings)
    write_settings(root, 'ipv6 = "on"\n')
    assert facts._platform(root).ipv6 == "on" and facts._platform(root).ipv6_from == str(settings)


def test_it_checks_before_it_suggests_an_address() -> None:
    """An instance kept on IPv4 (apply --ipv6 off) that has an IPv6 address: the way to IPv6 is
    one step, never assigning an address it has; an unreachable endpoint with an address is a
    route to fix, not an address to add."""
    f = replace(ipv4_only(ipv6_setting="off", ipv6_from="the kept intent"),
                network=HostNetwork(("2001:db8::10%eth0",), ("192.0.2.10%eth0",)),
                imds_v4=reach(metadata.IMDS_V4, md=MD))
    meant = doctor.intent(f)
    assert meant.family == "ipv4"
    [note] = doctor.notes(f, meant)
    assert "it has an IPv6 address (2001:db8::10%eth0)" in note
    assert doctor.ipv6_steps(f, meant) == ("sudo chronyctl6 apply --ipv6 on",)
    on = replace(f, ipv6_setting="on")
    checks = doctor.run_checks(on)
    assert not any("assign-ipv6-addresses" in (c.fix or "") for c in checks), [(c.id, c.fix) for c in checks]
    c = {x.id: x for x in checks}
    unreachable = c["timesync-ipv6"]
    fix = unreachable.fix or c[unreachable.same_fix_as or ""].fix
    assert unreachable.status is Status.FAIL and "ip -6 route add" in (fix or "")


@pytest.mark.parametrize(("fix", "steps", "note"), [
    ("a && b", ("a", "b"), None),
    ("x  # why: a; b", ("x",), "why: a; b"),
    ("echo 'a && b # c' && y", ("echo 'a && b # c'", "y"), None),  # quoted: one word
    ("V=$(f 'x' && g) && h  # n", ("V=$(f 'x' && g)", "h"), "n"),  # inside $(...): one step
    ("sed -i 's/#x/y/' f", ("sed -i 's/#x/y/' f",), None),
])
def test_a_fix_splits_into_its_steps(fix: str, steps: tuple[str, ...], note: str | None) -> None:
    assert doctor.split_fix(fix) == (steps, note)


def test_fixes_print_as_short_numbered_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """The VPC fix (a subnet and a VPC without IPv6 blocks) was one 906-character line: now
    numbered steps, each a command that pastes as printed."""
    bare = replace(MD, ipv6s=(), subnet_ipv6_cidrs=(), vpc_ipv6_cidrs=(), subnet_id=None, vpc_id=None)
    f = ipv4_only(md=bare, ipv6_setting="on")
    monkeypatch.setattr(doctor, "gather", lambda options: f)
    done = cli("doctor")
    lines = [line for line in done.stdout.splitlines() if line.startswith(" ")]  # fixes, their steps and notes
    assert max(len(line) for line in lines) < 250, max(lines, key=len)
    assert any(line.strip().startswith("1. ") for line in lines)
    numbered = [line.strip() for line in lines if line.strip()[:2] in {f"{n}." for n in range(1, 10)}]
    fix = next(c.fix for c in doctor.run_checks(f) if c.fix and "associate-vpc-cidr-block" in c.fix)
    assert [n.split(". ", 1)[1] for n in numbered[:len(doctor.split_fix(fix)[0])]] == list(doctor.split_fix(fix)[0])


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file; scripts/test runs this as nobody")
def test_a_user_who_cannot_read_the_kept_intent_is_told(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    store = history.Store(root)
    store.save_intent({"ipv6": "off"})
    store.base.chmod(0)
    try:
        chosen = facts._platform(root)
    finally:
        store.base.chmod(0o700)
    assert chosen.unread and "state.json" in chosen.unread[0] and chosen.ipv6 == "auto"
    f = replace(ipv4_only(), unread=chosen.unread)
    assert any(n.startswith("could not read") and "intent kept there is unknown" in n
               for n in doctor.notes(f, doctor.intent(f)))


@pytest.mark.usefixtures("nothing_of_this_host")
def test_a_baked_image_choosing_at_boot_is_judged_by_its_boot_unit(tmp_path: Path) -> None:
    """apply --root's default: `sourcedir /run/chronyctl6`, no Time Sync line of the image's own;
    fine when chronyctl6-boot.service is enabled, a failure when it is not installed."""
    from chronyctl6.configure.platforms import by_name

    assert by_name("debian").runtime_sourcedir == doctor.BOOT_SOURCEDIR
    root = stock_root(tmp_path, "debian12")
    plan = make_plan(Request(root=root))
    for change in plan.pending:
        change.path.write_bytes(change.new)
    _, data, _ = _doctor(root)
    c = _checks(data)["config-timesync"]
    assert c["status"] == "fail" and "chronyctl6-boot.service is not installed" in c["evidence"]
    units = root / "usr/lib/systemd/system"
    units.mkdir(parents=True)
    (units / "chronyctl6-boot.service").write_text("[Unit]\n")
    _, data, _ = _doctor(root)
    c = _checks(data)["config-timesync"]
    assert c["status"] == "fail" and c["fix"] == f"chronyctl6 apply --root {root}"  # apply enables it
    (root / "etc/systemd/system/multi-user.target.wants").mkdir(parents=True)
    (root / "etc/systemd/system/multi-user.target.wants/chronyctl6-boot.service").symlink_to(
        "/usr/lib/systemd/system/chronyctl6-boot.service")
    _, data, _ = _doctor(root)
    assert _checks(data)["config-timesync"]["status"] == "pass"


def test_a_root_that_is_not_a_directory_is_a_usage_error(tmp_path: Path) -> None:
    for command in ("doctor", "status"):
        done = cli(command, "--root", str(tmp_path / "none"), "-o", "json")
        doc = envelope(done, command)
        assert (doc["status"], done.returncode) == ("usage", 3) and "is not a directory" in done.stderr


def test_without_systemd_the_fixes_do_not_ask_systemctl() -> None:
    """systemd absent (a container): said as such, and the fixes do without it."""
    from chronyctl6.effects import daemons as procs

    ntpd = procs.Proc(7, "ntpd", "ntp", 0.0, ("ntpd",))
    f = replace(ipv4_only(ipv6_setting="off"), chronyd=(), others=(ntpd,), systemd=False)
    c = {x.id: x for x in doctor.run_checks(f)}
    assert "systemd is not running" in c["chronyd"].evidence
    assert c["chronyd"].steps == ("sudo chronyctl6 apply --service-manager direct",)
    assert c["other-daemons"].steps == ("sudo kill 7",) and "systemd is not running" in (c["other-daemons"].note or "")
    with_systemd = {x.id: x for x in doctor.run_checks(replace(f, systemd=True))}
    assert with_systemd["chronyd"].fix == "sudo systemctl enable --now chrony"
