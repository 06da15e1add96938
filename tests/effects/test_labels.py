"""A replaced file keeps what chronyd needs to read it (issue 17 item 6): mode, owner and the
SELinux label (`security.selinux`), copied onto the temp file before the rename.

What this proves here (Debian, no SELinux in the kernel): the label's bytes are carried over by
atomic_write, history.put_back and backup, byte for byte, on ext4. As root, ext4 stores a
`security.selinux` attribute even without SELinux loaded, so the real name is tested as root; as
any user, the same code path is tested through the LABEL_XATTR seam with a `user.` attribute.
What it does not prove: that an SELinux kernel accepts the label (policy, relabelfrom), or that
chronyd_t may then read the file; those need an SELinux host (RHEL, Amazon Linux)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chronyctl6.effects import files, history

ETC_T = b"system_u:object_r:etc_t:s0\x00"
KEYS_T = b"system_u:object_r:chronyd_keys_t:s0\x00"


def _supports(directory: Path, name: str) -> bool:
    probe = directory / ".probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, name, b"x")
        return True
    except OSError:
        return False
    finally:
        probe.unlink()


@pytest.fixture(params=["user", pytest.param("security", marks=pytest.mark.root)])
def label(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = "user.chronyctl6-test-label" if request.param == "user" else "security.selinux"
    if request.param == "security" and os.geteuid() != 0:
        pytest.fail("security.* attributes need root (marked root); the user.* case runs as any user")
    if not _supports(tmp_path, name):
        pytest.fail(f"{tmp_path} cannot hold {name}: run on ext4 or tmpfs with xattrs")
    monkeypatch.setattr(files, "LABEL_XATTR", name)
    return name


def test_a_replaced_file_keeps_its_label_mode_and_owner(tmp_path: Path, label: str) -> None:
    conf = tmp_path / "chrony.keys"
    conf.write_bytes(b"1 SHA1 HEX:00\n")
    conf.chmod(0o640)
    os.setxattr(conf, label, KEYS_T)
    files.atomic_write(conf, b"2 SHA1 HEX:11\n")
    assert os.getxattr(conf, label) == KEYS_T
    assert (conf.stat().st_mode & 0o7777, conf.read_bytes()) == (0o640, b"2 SHA1 HEX:11\n")
    backup = files.backup(conf)
    assert backup is not None and os.getxattr(backup, label) == KEYS_T


def test_put_back_keeps_the_label_of_the_path(tmp_path: Path, label: str) -> None:
    conf = tmp_path / "chrony.conf"
    conf.write_bytes(b"new\n")
    os.setxattr(conf, label, ETC_T)
    history.put_back(conf, history.Saved("/etc/chrony.conf", b"old\n", 0o644, -1, -1))
    assert conf.read_bytes() == b"old\n" and os.getxattr(conf, label) == ETC_T


def test_a_new_file_gets_no_label_of_ours(tmp_path: Path, label: str) -> None:
    """Created in its own directory, it keeps what the kernel gave it there (policy default)."""
    conf = tmp_path / "new.conf"
    files.atomic_write(conf, b"x\n")
    assert files.label_of(conf) is None
