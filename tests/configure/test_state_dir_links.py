"""apply and restore with chronyctl6's state directory linked out of the image (issue 18, writers
and state): nothing on the build host is deleted or copied into the image."""

from __future__ import annotations

from pathlib import Path

from chronyctl6.effects import history
from tests.helpers import cli, stock_root

CONF = "etc/chrony/chrony.conf"


def _host(tmp_path: Path) -> Path:
    host = tmp_path / "build-host"
    for name in ("projects", "home/user"):  # directories without manifest.json: "incomplete entries"
        (host / name).mkdir(parents=True)
        (host / name / "file").write_text("keep me\n")
    return host


def test_apply_never_deletes_on_the_build_host_through_a_linked_history(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    host = _host(tmp_path)
    state = root / "var/lib/chronyctl6"
    state.mkdir(parents=True, exist_ok=True)
    (state / "history").symlink_to(host)  # absolute: inside the image it means <root><host>
    for mode in ("on", "off", "on"):
        done = cli("apply", "--root", str(root), "--ipv6", mode)
        assert done.returncode == 0, done.stderr
    assert sorted(str(p.relative_to(host)) for p in host.rglob("*")) == [
        "home", "home/user", "home/user/file", "projects", "projects/file"]
    assert len(history.Store(root).entries()) == 3


def test_apply_refuses_a_history_that_leads_out_of_the_image(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    host = _host(tmp_path)
    state = root / "var/lib/chronyctl6"
    state.mkdir(parents=True, exist_ok=True)
    (state / "history").symlink_to(Path("../" * 4 + host.name))
    assert (state / "history").resolve() == host.resolve()
    done = cli("apply", "--root", str(root), "--ipv6", "on")
    assert done.returncode != 0 and "leads out of" in done.stderr, done.stderr
    assert (host / "projects/file").read_text() == "keep me\n"


def test_restore_original_never_copies_a_build_host_file_into_the_image(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    assert cli("apply", "--root", str(root), "--ipv6", "on").returncode == 0
    host = tmp_path / "build-host"
    (host / "etc/chrony").mkdir(parents=True)
    (host / "etc/chrony/chrony.conf").write_text("server build-host.example iburst\n")
    kept = root / "var/lib/chronyctl6/original/etc"
    (kept / "chrony/chrony.conf").unlink()
    (kept / "chrony").rmdir()
    kept.rmdir()
    kept.symlink_to(host / "etc")  # absolute, out of the image
    cli("restore", "--root", str(root), "--original")
    assert b"build-host.example" not in (root / CONF).read_bytes()
