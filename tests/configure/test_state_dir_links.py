"""apply and restore with chronyctl6's state directory linked out of the image (issue 18, writers
and state): nothing on the build host is deleted or copied into the image."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from chronyctl6.effects import history
from tests.helpers import apply_root, cli, put, stock_root

CONF = "etc/chrony/chrony.conf"


def _history_linked_to(tmp_path: Path, target: Callable[[Path], Path]) -> tuple[Path, Path, Path]:
    """A stock image whose history directory is a link to `target(build host)`; the image, the
    build host (directories without manifest.json: "incomplete entries") and the link."""
    root = stock_root(tmp_path, "debian12")
    host = tmp_path / "build-host"
    for name in ("projects", "home/user"):
        put(host, f"{name}/file", "keep me\n")
    link = root / "var/lib/chronyctl6/history"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target(host))
    return root, host, link


def test_apply_never_deletes_on_the_build_host_through_a_linked_history(tmp_path: Path) -> None:
    root, host, _ = _history_linked_to(tmp_path, lambda host: host)  # absolute: inside the image, <root><host>
    for mode in ("on", "off", "on"):
        apply_root(root, "--ipv6", mode)
    assert sorted(str(p.relative_to(host)) for p in host.rglob("*")) == [
        "home", "home/user", "home/user/file", "projects", "projects/file"]
    assert len(history.Store(root).entries()) == 3


def test_apply_refuses_a_history_that_leads_out_of_the_image(tmp_path: Path) -> None:
    root, host, link = _history_linked_to(tmp_path, lambda host: Path("../" * 4 + host.name))
    assert link.resolve() == host.resolve()
    done = cli("apply", "--root", str(root), "--ipv6", "on")
    assert done.returncode != 0 and "leads out of" in done.stderr, done.stderr
    assert (host / "projects/file").read_text() == "keep me\n"


def test_restore_original_never_copies_a_build_host_file_into_the_image(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    apply_root(root, "--ipv6", "on")
    host = tmp_path / "build-host"
    put(host, "etc/chrony/chrony.conf", "server build-host.example iburst\n")
    kept = root / "var/lib/chronyctl6/original/etc"
    (kept / "chrony/chrony.conf").unlink()
    (kept / "chrony").rmdir()
    kept.rmdir()
    kept.symlink_to(host / "etc")  # absolute, out of the image
    cli("restore", "--root", str(root), "--original")
    assert b"build-host.example" not in (root / CONF).read_bytes()
