"""The pure planners, in process, from plain data: no root, no files, no chronyd. Each returns one
change set; the one rule (ChangeSet.service_action) decides restart, reload or nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chronyctl6.configure import planners
from chronyctl6.configure.changeset import CONFIG, OTHER, SOURCES, ChangeSet, FileChange, UnitLink, Verify
from chronyctl6.configure.planners import BootFacts, ReleaseFacts, RestoreFacts
from chronyctl6.effects.host import HostNetwork, InstanceHint
from chronyctl6.filestate import FileState

ROOT = Path("/img")
CONF = "/etc/chrony/chrony.conf"
LINK = "/etc/systemd/system/multi-user.target.wants/chronyctl6-boot.service"


def _restore_facts(kept: list[FileState], now: list[FileState], *, live: bool = True) -> RestoreFacts:
    return RestoreFacts(ROOT, CONF, ROOT / CONF.lstrip("/"), next((s.data for s in now if s.shown == CONF), None),
                        tuple(kept), {s.shown: s for s in now}, {s.shown: ROOT / s.shown.lstrip("/") for s in kept},
                        live=live)


# ---- the one rule --------------------------------------------------------------------------

def _change(shown: str, kind: str) -> FileChange:
    return FileChange(ROOT / shown.lstrip("/"), shown, b"old\n", b"new\n", kind)


def _set(*changes: FileChange, live: bool = True) -> ChangeSet:
    return ChangeSet(ROOT, CONF, ROOT / CONF.lstrip("/"), b"", b"", files=changes, live=live)


def test_the_one_rule_for_restart_reload_or_nothing() -> None:
    sources = _change("/etc/chrony/sources.d/a.sources", SOURCES)
    config = _change("/etc/chrony/conf.d/a.conf", CONFIG)
    unit = _change(LINK, OTHER)
    assert _set(sources).service_action == "reload"
    assert _set(sources, config).service_action == "restart"
    assert _set(_change(CONF, CONFIG)).service_action == "restart"
    assert _set(unit).service_action == "none"  # chronyd does not read a unit link
    assert _set(sources, unit).service_action == "reload"
    assert _set(config, live=False).service_action == "none"  # an image: nothing runs
    assert _set().service_action == "none" and _set().empty


# ---- restore -------------------------------------------------------------------------------

def test_restore_puts_back_only_what_differs_with_mode_and_owner() -> None:
    kept = [FileState(CONF, b"pool 2.debian.pool.ntp.org iburst\n", 0o640, 0, 123),
            FileState("/etc/chrony/conf.d/x.conf", b"same\n", 0o644, 0, 0)]
    now = [FileState(CONF, b"# managed by chronyctl6\n", 0o644, 0, 0),
           FileState("/etc/chrony/conf.d/x.conf", b"same\n", 0o644, 0, 0)]
    cs = planners.plan_restore(_restore_facts(kept, now))
    assert [c.shown for c in cs.files] == [CONF]
    (change,) = cs.files
    assert (change.new, change.mode, change.uid, change.gid) == (kept[0].data, 0o640, 0, 123)
    assert cs.config_final == kept[0].data and cs.config_old == now[0].data
    assert cs.service_action == "restart" and cs.verify is Verify.ANSWERS
    assert not cs.keep_originals and cs.record_history


def test_restore_of_mode_only_and_of_a_file_that_did_not_exist() -> None:
    kept = [FileState(CONF, b"x\n", 0o600, 0, 0), FileState("/etc/chrony/sources.d/t.sources", None),
            FileState(LINK, None)]
    now = [FileState(CONF, b"x\n", 0o644, 0, 0),
           FileState("/etc/chrony/sources.d/t.sources", b"server fd00:ec2::123\n"),
           FileState(LINK, None, link="/usr/lib/systemd/system/chronyctl6-boot.service")]
    cs = planners.plan_restore(_restore_facts(kept, now))
    by = {c.shown: c for c in cs.files}
    assert by[CONF].mode == 0o600 and not by[CONF].changed  # same bytes, the mode differs: still put back
    assert by["/etc/chrony/sources.d/t.sources"].removed and by[LINK].removed and by[LINK].kind == OTHER
    assert cs.edits() == {CONF: b"x\n", "/etc/chrony/sources.d/t.sources": None}


def test_restore_when_everything_is_as_kept_is_empty_and_an_image_is_not_verified() -> None:
    state = [FileState(CONF, b"x\n")]
    assert planners.plan_restore(_restore_facts(state, state)).empty
    image = planners.plan_restore(_restore_facts([FileState(CONF, b"y\n")], state, live=False))
    assert image.verify is Verify.NONE and image.service_action == "none"


def test_restore_of_a_kept_symlink_is_validated_with_what_it_leads_to() -> None:
    kept = [FileState(CONF, None, link="chrony.conf.dist")]
    facts = _restore_facts(kept, [FileState(CONF, b"now\n")])
    facts = RestoreFacts(**{**facts.__dict__, "link_reads": {CONF: b"dist\n"}})
    cs = planners.plan_restore(facts)
    assert cs.files[0].link == "chrony.conf.dist" and cs.config_final == b"dist\n"


# ---- the boot step -------------------------------------------------------------------------

SOURCES_FILE = "/run/chronyctl6/timesync.sources"
DUAL = HostNetwork(("2600:1f18:aaaa::5%eth0",), ("10.0.0.5%eth0",))
V4_ONLY = HostNetwork((), ("10.0.0.5%eth0",))


def _boot(**facts: Any) -> planners.BootPlan:
    base: dict[str, Any] = {"root": ROOT, "path": ROOT / SOURCES_FILE.lstrip("/"), "shown": SOURCES_FILE,
                            "current": None, "options": ("prefer", "iburst"), "mode": "auto", "network": DUAL,
                            "hint": InstanceHint("nitro", True)}
    return planners.plan_boot(BootFacts(**{**base, **facts}))


def test_boot_writes_this_launchs_endpoint_into_run() -> None:
    decided = _boot()
    assert decided.endpoint.address == "fd00:ec2::123" and not decided.fallback
    (change,) = decided.changes.files
    assert change.kind == SOURCES and b"server fd00:ec2::123 prefer iburst" in change.new
    assert decided.changes.service_action == "none"  # at boot chronyd is not up yet
    assert not decided.changes.record_history and not decided.changes.keep_originals
    assert _boot(chronyd_running=True).changes.service_action == "reload"  # run by hand
    assert _boot(current=change.new).changes.empty  # already right: nothing to write
    assert _boot(network=V4_ONLY, hint=InstanceHint("nitro", False)).endpoint.address == "169.254.169.123"


def test_boot_without_facts_falls_back_and_never_to_an_ipv6_this_launch_cannot_use() -> None:
    last_v6 = {"address": "fd00:ec2::123", "reason": "IPv6 address on eth0"}
    broken = {"mode": None, "problem": "settings.toml: bad ipv6 value"}
    # A broken settings file, a last boot that chose IPv6, and an IPv4-only launch: IPv4.
    decided = _boot(**broken, last_boot=last_v6, network=V4_ONLY)
    assert decided.fallback and decided.endpoint.address == "169.254.169.123"
    assert "no usable IPv6" in decided.warnings[0] and "settings.toml: bad ipv6 value" in decided.warnings[0]
    # The same launch with IPv6: the last good choice.
    assert _boot(**broken, last_boot=last_v6).endpoint.address == "fd00:ec2::123"
    # Nothing known of the last boot: IPv4, which every instance reaches.
    assert _boot(**broken).endpoint.address == "169.254.169.123"
    # A damaged last-boot record (any address but the two endpoints) is never written.
    evil = _boot(**broken, last_boot={"address": "evil.example\nserver x"})
    assert evil.endpoint.address == "169.254.169.123" and b"evil" not in evil.changes.files[0].new


# ---- package removal -----------------------------------------------------------------------

MANAGED = "# This file is managed by chronyctl6.\n"
BOOT_UNIT = "/usr/lib/systemd/system/chronyctl6-boot.service"


def _release(conf: str | None, runtime: bytes | None = None, **facts: Any) -> planners.ReleasePlan:
    base: dict[str, Any] = {
        "root": ROOT, "config_shown": CONF, "config_path": ROOT / CONF.lstrip("/"),
        "config_now": conf.encode() if conf is not None else None, "runtime_sourcedir": "/run/chronyctl6",
        "runtime": FileState(SOURCES_FILE, runtime), "runtime_path": ROOT / SOURCES_FILE.lstrip("/"),
        "boot_link": UnitLink(ROOT / LINK.lstrip("/"), LINK, BOOT_UNIT), "options": ("prefer", "iburst"),
        "live": True}
    return planners.plan_release(ReleaseFacts(**{**base, **facts}))


def test_release_replaces_the_boot_steps_sourcedir_with_this_launchs_line() -> None:
    conf = MANAGED + "driftfile /var/lib/chrony/drift\nsourcedir /run/chronyctl6 /etc/chrony/sources.d\n"
    decided = _release(conf, b"server fd00:ec2::123 prefer iburst\n")
    main, runtime = decided.changes.files
    lines = main.new.decode().splitlines()
    assert lines[1] == "driftfile /var/lib/chrony/drift"
    assert lines[3:] == ["server fd00:ec2::123 prefer iburst", "sourcedir /etc/chrony/sources.d"]
    assert runtime.removed and runtime.kind == OTHER
    assert [u.shown for u in decided.changes.disable] == [LINK]
    assert decided.changes.service_action == "restart" and decided.changes.verify is Verify.ANSWERS
    assert decided.changes.config_final == main.new and not decided.changes.keep_originals


def test_release_chooses_a_line_this_launch_can_use() -> None:
    conf = MANAGED + "sourcedir /run/chronyctl6/\n"
    last_v6 = {"address": "fd00:ec2::123"}
    assert _release(conf).endpoint == "169.254.169.123"  # nothing known
    assert _release(conf, last_boot=last_v6, network=V4_ONLY).endpoint == "169.254.169.123"
    assert _release(conf, last_boot=last_v6, network=DUAL).endpoint == "fd00:ec2::123"
    hostile = _release(conf, b"server evil.example iburst\npool x\n")  # not a Time Sync line: not copied
    assert hostile.endpoint == "169.254.169.123" and b"evil" not in hostile.changes.files[0].new


def test_release_leaves_alone_what_is_not_ours_or_needs_nothing() -> None:
    foreign = _release("pool 2.debian.pool.ntp.org iburst\nsourcedir /run/chronyctl6\n", b"server fd00:ec2::123\n",
                       boot_link=None)
    assert foreign.changes.empty and "not managed" in foreign.said[0]
    fixed = _release(MANAGED + "server fd00:ec2::123 prefer iburst\n", boot_link=None)
    assert fixed.changes.empty
    unit_only = _release(MANAGED + "server fd00:ec2::123 prefer iburst\n")
    assert unit_only.changes.files == () and unit_only.changes.disable
    assert unit_only.changes.service_action == "none"  # a unit link: nothing for chronyd
    assert _release(None).changes.files == ()  # no chrony.conf at all


def test_restore_never_brings_back_a_copy_of_ours_and_original_takes_the_boot_file_away() -> None:
    bak = "/etc/chrony/conf.d/pool.conf.chronyctl6.bak"
    kept = [FileState(CONF, b"pool x\n"), FileState(bak, b"server 192.0.2.2\n")]
    now = [FileState(CONF, b"managed\n"), FileState(bak, None)]
    facts = _restore_facts(kept, now)
    facts = RestoreFacts(**{**facts.__dict__, "runtime": FileState(SOURCES_FILE, b"server fd00:ec2::123\n"),
                            "runtime_path": ROOT / SOURCES_FILE.lstrip("/")})
    cs = planners.plan_restore(facts)
    assert [c.shown for c in cs.files] == [CONF, SOURCES_FILE]
    assert cs.files[1].removed and cs.files[1].kind == OTHER
