"""`status --root` (an image, offline), `status` as a non-root user, and this boot's seconds to
synchronisation (issue 20): real temporary roots, the CLI driven in process, no root needed."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from chronyctl6.configure.plan import Request, make_plan
from chronyctl6.diagnose import status as st
from chronyctl6.effects import chrony_tools, daemons, history
from chronyctl6.measure import gather
from tests.contract import envelope
from tests.helpers import cli, stock_root

CONF = "etc/chrony/chrony.conf"


@pytest.fixture
def nothing_of_this_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline means offline: the process table, chronyc and /run are never asked."""
    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("status --root asked this host")

    monkeypatch.setattr(daemons, "scan", refuse)
    monkeypatch.setattr(chrony_tools, "chronyc", refuse)
    monkeypatch.setattr(gather, "synchronised_record", refuse)


def _units(root: Path, *enabled: tuple[str, str]) -> None:
    lib = root / "usr/lib/systemd/system"
    lib.mkdir(parents=True, exist_ok=True)
    for unit, target in enabled:
        (lib / unit).write_text("[Unit]\n")
        wants = root / f"etc/systemd/system/{target}.wants"
        wants.mkdir(parents=True, exist_ok=True)
        (wants / unit).symlink_to(f"/usr/lib/systemd/system/{unit}")  # absolute: the image's own


def _rendered(root: Path, ipv6: str | None = None) -> None:
    """What `apply --root` writes, and the intent it keeps."""
    plan = make_plan(Request(root=root, ipv6=ipv6))
    for change in plan.pending:
        change.path.write_bytes(change.new)
    history.Store(root).save_intent(plan.intent)


def _status(root: Path) -> tuple[int, dict[str, Any], str]:
    done = cli("status", "--root", str(root), "-o", "json")
    doc = envelope(done, "status")
    text = cli("status", "--root", str(root))
    assert text.returncode == done.returncode
    return done.returncode, doc["data"], text.stdout + text.stderr


@pytest.mark.usefixtures("nothing_of_this_host")
def test_an_image_is_inspected_offline(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    code, data, text = _status(root)
    assert code == 1 and data["config"]["drift"]["state"] == "drift"
    assert data["offline"]["chrony_unit"]["state"] == "not installed"
    assert f"chronyctl6 apply --root {root} --diff --dry-run" in data["config"]["drift"]["detail"]
    assert "not applicable offline" in text and "chronyc" in text and data["chronyd"] == []
    _rendered(root, "on")  # a fixed endpoint: no boot step needed
    _units(root, ("chrony.service", "multi-user.target"))
    code, data, text = _status(root)
    assert (code, data["config"]["drift"]["state"]) == (0, "in-sync"), text
    assert data["offline"]["chrony_unit"] == {"unit": "chrony.service", "state": "enabled",
                                              "path": "/usr/lib/systemd/system/chrony.service"}
    assert "status: OK: the image at" in text
    # A rival enabled in the image, and a masked chrony: each said, each a warning.
    _units(root, ("systemd-timesyncd.service", "sysinit.target"))
    code, data, text = _status(root)
    assert code == 1 and "systemd-timesyncd.service is enabled" in text
    (root / "etc/systemd/system/chrony.service").symlink_to("/dev/null")
    code, data, _ = _status(root)
    assert data["offline"]["chrony_unit"]["state"] == "masked"


@pytest.mark.usefixtures("nothing_of_this_host")
def test_absolute_links_in_the_image_resolve_inside_it(tmp_path: Path) -> None:
    """chrony.conf an absolute link to /srv/chrony.conf: the image's /srv, never this host's (which
    has none); a link leading out through .. is refused, not followed."""
    root = stock_root(tmp_path, "debian12")
    _rendered(root)
    (root / "srv").mkdir()
    (root / CONF).rename(root / "srv/chrony.conf")
    (root / CONF).symlink_to("/srv/chrony.conf")
    assert not Path("/srv/chrony.conf").exists()
    code, data, _ = _status(root)
    assert data["config"]["drift"]["state"] == "in-sync", data["config"]
    (root / CONF).unlink()
    (root / CONF).symlink_to("../../../../../../../../etc/passwd")
    code, data, text = _status(root)
    assert code == 3 and data["config"]["drift"]["state"] == "unknown" and "'..'" in text


@pytest.mark.usefixtures("nothing_of_this_host")
@pytest.mark.parametrize("hostile", ["fifo", "non-utf8"])
def test_hostile_files_in_the_image(tmp_path: Path, hostile: str) -> None:
    root = stock_root(tmp_path, "debian12")
    target = root / "etc/chrony/conf.d/odd.conf"
    if hostile == "fifo":  # never opened: a read would hang
        os.mkfifo(target)
    else:
        target.write_bytes(b"# \xff\xfe caf\xe9 \x1b[31m\nmakestep 1 3\n")
    code, data, text = _status(root)
    assert "\x1b" not in text and "\x1b" not in json.dumps(data)
    if hostile == "fifo":
        assert code == 3 and "FIFO" in data["config"]["drift"]["detail"]
    else:
        assert data["config"]["drift"]["state"] in ("drift", "in-sync")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file; scripts/test runs this as nobody")
def test_a_user_who_cannot_read_the_state_says_so_rather_than_drift(tmp_path: Path) -> None:
    """chronyctl6's state directory is root's (0700): a non-root status cannot read the recorded
    intent, so it cannot tell drift; it names what it could not read."""
    root = stock_root(tmp_path, "debian12")
    _rendered(root)
    store = history.Store(root)
    store.save_intent({"ipv6": "off"})
    assert st.drift(None, root)[0].state in ("drift", "in-sync")
    store.base.chmod(0)
    try:
        found, _ = st.drift(None, root)
        assert found.state == "unknown" and found.unread and "state.json" in found.unread[0]
        assert "not root" in found.detail and "sudo chronyctl6 status" in found.detail
        store.base.chmod(0o700)
        (root / CONF).chmod(0)
        found, _ = st.drift(None, root)
        assert found.state == "unknown" and "chrony.conf" in found.unread[0]
    finally:
        store.base.chmod(0o700)
        (root / CONF).chmod(0o644)


def _record(tmp_path: Path, data: bytes | None = None, *, kind: str = "file") -> str:
    path = tmp_path / "synchronised.json"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "link":
        (tmp_path / "elsewhere.json").write_bytes(data or b"")
        path.symlink_to(tmp_path / "elsewhere.json")
    else:
        path.write_bytes(data or b"")
    return str(path)


GOOD = b'{"since_boot_seconds": 7.25, "since_init_seconds": 5.5, "source": "fd00:ec2::123", "bound_seconds": 0.0004}'


def test_the_record_of_this_boots_synchronisation(tmp_path: Path) -> None:
    kept, note = gather.synchronised_record(_record(tmp_path, GOOD))
    assert note is None and kept is not None
    assert kept.as_dict() == {"since_boot_seconds": 7.25, "since_init_seconds": 5.5, "source": "fd00:ec2::123",
                              "bound_seconds": 0.0004}
    assert gather.synchronised_record(str(tmp_path / "none.json")) == (None, None)  # wait has not run


@pytest.mark.parametrize(("data", "kind", "said"), [
    (b'{"since_boot_seconds": NaN}', "file", "not a number"),
    (b'{"since_boot_seconds": Infinity}', "file", "not a number"),
    (b'{"since_boot_seconds": 1e400}', "file", "out of range"),
    (b'{"since_boot_seconds": -3}', "file", "out of range"),
    (b'{"since_boot_seconds": true}', "file", "not a number"),
    (b'{"since_boot_seconds": "7"}', "file", "not a number"),
    (b'{"since_boot_seconds": 7, "source": ["x"]}', "file", "not a name"),
    (b"[7]", "file", "not a JSON object"),
    (b"\xff\xfe", "file", "not UTF-8"),
    (b"since_boot_seconds=7", "file", "not JSON"),
    (b"[" * 4000, "file", "not JSON"),  # nesting deeper than the parser's recursion: refused, not a crash
    (b"[" * 100000, "file", "over the 4096"),
    (b" " * 5000 + GOOD, "file", "over the 4096"),
    (GOOD, "link", "symbolic link"),
    (None, "fifo", "FIFO"),
])
def test_a_hostile_record_is_ignored_with_a_note(tmp_path: Path, data: bytes | None, kind: str, said: str) -> None:
    kept, note = gather.synchronised_record(_record(tmp_path, data, kind=kind))
    assert kept is None and note is not None and said in note and note.endswith("ignored")


def test_status_and_check_report_it(tmp_path: Path) -> None:
    """status's text and JSON, and check's metric and JSON (the record as their readers see it)."""
    import time

    from chronyctl6.measure import check as chk
    from chronyctl6.measure import report, synced
    from tests.contract import validate

    kept, _ = synced.parse(GOOD)
    assert kept is not None
    proc = daemons.Proc(42, "chronyd", "_chrony", time.time() - 90, ("chronyd",))
    status_report = st.StatusReport((proc,), "/etc/chrony/chrony.conf", "-f", st.Drift("in-sync", "x"), (), None,
                                    ("chronyc tracking: 506",), (), synchronised=kept)
    data = status_report.as_dict()
    assert data["synchronised_at_boot"] == kept.as_dict()
    from chronyctl6 import output

    validate(output.envelope("status", output.Status.UNKNOWN, data, [output.Message(output.Level.ERROR, "x")]))
    from chronyctl6.cli import _synchronised_line

    assert _synchronised_line(kept) == ("synchronised at boot: 7.25 s after boot (to fd00:ec2::123, within "
                                        "0.000400 s, 5.5 s after init; chronyctl6 wait)")
    assert "not recorded" in _synchronised_line(None)
    result = chk.evaluate([], chk.Thresholds(), None, "chronyd is not running", None, (), None)
    result.synchronised = kept
    metrics = report.to_prometheus(result)
    assert "chronyctl6_check_boot_to_synchronised_seconds 7.25" in metrics
    assert "chronyctl6_check_init_to_synchronised_seconds 5.5" in metrics
    assert report.to_data(result)["synchronised_at_boot"]["since_boot_seconds"] == 7.25
    result.synchronised = None
    assert "boot_to_synchronised" not in report.to_prometheus(result)


@pytest.mark.usefixtures("nothing_of_this_host")
def test_a_baked_image_its_kept_intent_and_its_boot_unit(tmp_path: Path) -> None:
    """apply --root's default (the endpoint chosen at every boot): the image is right only with
    chronyctl6-boot.service enabled; the intent kept in its state file is reported."""
    root = stock_root(tmp_path, "debian12")
    _rendered(root)
    _units(root, ("chrony.service", "multi-user.target"))
    code, data, text = _status(root)
    assert code == 1 and "chronyctl6-boot.service is not installed: no Time Sync line at boot" in text
    assert data["offline"]["kept_intent"] == {"ipv6": "auto", "phc": "auto", "at_boot": True, "distro": "debian"}
    _units(root, ("chronyctl6-boot.service", "multi-user.target"))
    code, data, text = _status(root)
    assert code == 0, text
    assert "kept intent (/var/lib/chronyctl6/state.json): ipv6 auto, phc auto, at_boot True, distro debian" in text


@pytest.mark.usefixtures("nothing_of_this_host")
@pytest.mark.parametrize("hostile", ["fifo", "garbage", "loop"])
def test_a_hostile_state_file_or_unit_directory_in_the_image(tmp_path: Path, hostile: str) -> None:
    root = stock_root(tmp_path, "debian12")
    state = root / "var/lib/chronyctl6"
    state.mkdir(parents=True)
    if hostile == "fifo":
        os.mkfifo(state / "state.json")
    elif hostile == "garbage":
        (state / "state.json").write_bytes(b'{"intent": {"ipv6": "\x1b[2J", "at_boot": "yes", "phc": NaN}}')
    else:  # /etc/systemd/system an absolute link to itself: a loop, never followed for ever
        (root / "etc/systemd").mkdir()
        (root / "etc/systemd/system").symlink_to("/etc/systemd/system")
    code, data, text = _status(root)
    assert data["offline"]["kept_intent"] == {} and "\x1b" not in text
    if hostile == "loop":  # not a permission problem: said as what it is, whoever runs it
        assert code == 3 and "symbolic links" in data["config"]["drift"]["detail"]
        assert data["config"]["drift"]["unread"] == []
    else:
        assert "recorded choices ignored" in text


def test_what_could_not_be_read_is_said_on_the_live_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The live status names the unread files as a warning too (-q keeps it, JSON's messages carry it)."""
    unread = st.Drift("unknown", "not judged: as uid 65534 (not root) chronyctl6 could not read x", unread=("x",))
    monkeypatch.setattr(daemons, "scan", lambda: daemons.Scan((), ()))
    monkeypatch.setattr(gather, "synchronised_record", lambda: (None, None))
    monkeypatch.setattr(st, "drift", lambda loaded, root: (unread, "/etc/chrony/chrony.conf"))
    report = st.status()
    assert report.drift is unread and unread.detail in report.warnings
    done = cli("status", "-q", "-o", "json")
    doc = envelope(done, "status")
    assert any(m["level"] == "warning" and "could not read x" in m["text"] for m in doc["messages"])
    assert doc["data"]["config"]["drift"]["unread"] == ["x"]
