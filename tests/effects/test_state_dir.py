"""The state directory under --root (history/, original/, state.json): every path resolved inside
the root, nothing deleted or read through a link out of it, history ordered by sequence number.
In process, tmp dirs, no root needed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from chronyctl6.effects import files, history
from tests.helpers import put

CONF = "/etc/chrony/chrony.conf"


def _image(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "image"
    (root / "etc/chrony").mkdir(parents=True)
    host = tmp_path / "host"  # stands for the build host: nothing here may change
    put(host, "precious/data/file", "keep me\n")
    return root, host


def _host_tree(host: Path) -> dict[str, bytes]:
    return {str(p.relative_to(host)): p.read_bytes() if p.is_file() else b"<dir>" for p in host.rglob("*")}


def _record(store: history.Store, text: str) -> Path:
    return store.record([history.Saved(CONF, text.encode(), 0o644, os.getuid(), os.getgid())])


def test_history_linked_out_of_the_image_by_an_absolute_link_is_taken_under_the_root(tmp_path: Path) -> None:
    """Before: the clean-up listed the build host's directory and deleted every directory in it
    that had no manifest.json (exit 0)."""
    root, host = _image(tmp_path)
    state = root / "var/lib/chronyctl6"
    state.mkdir(parents=True)
    (state / "history").symlink_to(host)  # absolute: means <root><host> inside the image
    before = _host_tree(host)
    store = history.Store(root)
    for i in range(history.KEEP + 2):
        _record(store, f"version {i}\n")
    assert _host_tree(host) == before
    rerooted = root / str(host).lstrip("/")
    assert len(store.entries()) == history.KEEP
    assert all(e.parent == rerooted for e in store.entries())
    assert store.previous()[0].data == f"version {history.KEEP + 1}\n".encode()


def test_history_linked_out_of_the_image_through_dotdot_is_refused(tmp_path: Path) -> None:
    root, host = _image(tmp_path)
    state = root / "var/lib/chronyctl6"
    state.mkdir(parents=True)
    (state / "history").symlink_to(Path("../" * 4 + "host"))  # /var/lib/chronyctl6/../../../../host
    assert (state / "history").resolve() == host.resolve()
    before = _host_tree(host)
    with pytest.raises(files.Unreadable, match=r"leads out of .* through '\.\.'"):
        _record(history.Store(root), "version\n")
    assert _host_tree(host) == before


def test_the_state_directory_itself_linked_out_is_taken_under_the_root(tmp_path: Path) -> None:
    root, host = _image(tmp_path)
    (root / "var/lib").mkdir(parents=True)
    (root / "var/lib/chronyctl6").symlink_to(host)
    before = _host_tree(host)
    store = history.Store(root)
    store.save_intent({"ipv6": "on"})
    _record(store, "one\n")
    assert store.base == root / str(host).lstrip("/")
    assert (store.base / "state.json").is_file()
    assert _host_tree(host) == before


@pytest.mark.parametrize("absolute", [True, False], ids=["absolute link", "relative link out"])
def test_restore_original_never_reads_a_host_file_through_a_link(tmp_path: Path, absolute: bool) -> None:
    """Before: original/etc -> the host's etc made `restore --original` copy the host's file in."""
    root, host = _image(tmp_path)
    put(host, "etc/chrony/chrony.conf", "THE BUILD HOST'S OWN FILE\n")
    store = history.Store(root)
    assert store.keep_original(history.Saved(CONF, b"the image's original\n", 0o644, os.getuid(), os.getgid()))
    kept = store.base / "original/etc"
    files.remove_tree(kept, below=store.base)
    kept.symlink_to(host / "etc" if absolute else Path("../" * 5 + "host/etc"))
    try:
        got = store.originals()
    except (files.WriteFailed, files.Unreadable) as exc:
        assert "BUILD HOST" not in exc.message
        return
    assert all(b"BUILD HOST" not in (s.data or b"") for s in got)


def test_restore_picks_the_newest_change_after_the_clock_went_back(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: entries were named and ordered by the wall clock; after the clock was corrected
    backwards (what this tool does), `restore` took an older version for the newest."""
    root, _ = _image(tmp_path)
    store = history.Store(root)
    clock = [time.gmtime(2_000_000_000)]  # 2033
    monkeypatch.setattr(time, "gmtime", lambda *_: clock[0])
    _record(store, "first\n")
    clock[0] = time.gmtime(1_000_000_000)  # corrected back to 2001
    _record(store, "second\n")
    _record(store, "third\n")
    assert [e.name.split("-")[0] for e in store.entries()] == ["00000001", "00000002", "00000003"]
    assert store.previous()[0].data == b"third\n"


def test_entries_of_earlier_versions_count_as_older(tmp_path: Path) -> None:
    root, _ = _image(tmp_path)
    store = history.Store(root)
    _record(store, "numbered\n")
    legacy = store.base / "history/29991231T235959.000000000Z"
    put(legacy, "etc/chrony/chrony.conf", "legacy\n")
    (legacy / "manifest.json").write_text('{"/etc/chrony/chrony.conf": {"existed": true, "mode": 420, '
                                          f'"uid": {os.getuid()}, "gid": {os.getgid()}}}}}\n')
    assert store.entries()[-1].name.startswith("00000001-")
    assert store.previous()[0].data == b"numbered\n"


def test_a_linked_entry_is_neither_listed_nor_deleted(tmp_path: Path) -> None:
    root, host = _image(tmp_path)
    store = history.Store(root)
    _record(store, "one\n")
    (store.base / "history/00000000-link").symlink_to(host / "precious")
    before = _host_tree(host)
    for i in range(history.KEEP + 1):
        _record(store, f"v{i}\n")
    assert _host_tree(host) == before
    assert (store.base / "history/00000000-link").is_symlink()


def test_remove_tree_refuses_a_link_below_its_base(tmp_path: Path) -> None:
    root, host = _image(tmp_path)
    (root / "state").mkdir()
    (root / "state/history").symlink_to(host)
    with pytest.raises(files.WriteFailed, match="symbolic link"):
        files.remove_tree(root / "state/history/precious", below=root / "state")
    with pytest.raises(files.WriteFailed, match="not below"):
        files.remove_tree(host / "precious", below=root / "state")
    assert (host / "precious/data/file").read_text() == "keep me\n"
