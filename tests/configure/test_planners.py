"""The pure planners, in process, from plain data: no root, no files, no chronyd. Each returns one
change set; the one rule (ChangeSet.service_action) decides restart, reload or nothing."""

from __future__ import annotations

from pathlib import Path

from chronyctl6.configure import planners
from chronyctl6.configure.changeset import CONFIG, OTHER, SOURCES, ChangeSet, FileChange, Verify
from chronyctl6.configure.planners import FileState, RestoreFacts

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
