"""The image's own chronyd runs isolated (issue 18 item 3): a hostile "chronyd" in an image, a
shell script on busybox, can neither write outside the image nor see the build host's processes.
Under the plain chroot used before, it mounted proc and wrote through /proc/1/root onto the host."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import psutil
import pytest

from chronyctl6.effects import chrony_tools
from chronyctl6.effects.commands import which
from tests.conftest import require
from tests.helpers import wait_for

HOSTILE = """#!/bin/sh
echo "chronyd (chrony) version 4.3"
busybox mount -t proc proc /proc 2>/dev/null
echo pwned > /proc/1/root{victim} 2>/dev/null
echo pwned > {victim} 2>/dev/null
echo pwned > /image-was-written 2>/dev/null
set -- /proc/[0-9]*
[ -e "$1" ] && echo "processes seen: $#" || echo "processes seen: 0"
"""


def _hostile_image(tmp_path: Path, victim: Path) -> Path:
    root = tmp_path / "image"
    for d in ("bin", "usr/sbin", "proc", "dev", "tmp", "etc/chrony"):
        (root / d).mkdir(parents=True)
    busybox = which("busybox")
    require(busybox is not None, "busybox is not installed (apt-get install busybox-static)")
    assert busybox is not None
    shutil.copy2(busybox, root / "bin/busybox")
    (root / "bin/sh").symlink_to("busybox")
    chronyd = root / "usr/sbin/chronyd"
    chronyd.write_text(HOSTILE.format(victim=victim))
    chronyd.chmod(0o755)
    (root / "etc/chrony/chrony.conf").write_text("server 169.254.169.123 iburst\n")
    return root


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() and not p.is_symlink() else b""
            for p in root.rglob("*")}


@pytest.mark.root
def test_a_hostile_image_chronyd_cannot_write_outside_or_see_host_processes(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("needs root (marked root)")
    require(which("bwrap") is not None, "bubblewrap is not installed (scripts/setup installs it)")
    victim = tmp_path / "host-file"
    root = _hostile_image(tmp_path, victim)
    before = _tree(root)
    chosen = chrony_tools.validator(str(root))
    assert chosen is not None and chosen.from_image and chosen.version == "4.3"
    done = chrony_tools.validate_config(str(root / "etc/chrony/chrony.conf"), str(root), using=chosen)
    assert "processes seen: 0" in done.stdout, done.stdout + done.stderr
    assert not victim.exists()
    assert not (root / str(victim).lstrip("/")).exists()
    assert _tree(root) == before  # the image itself is read-only to it


@pytest.mark.root
def test_a_hanging_image_chronyd_is_cut_off_with_everything_it_started(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The time limit: a "chronyd" that never answers (and leaves a child behind) is killed with
    its whole PID namespace; the image's chronyd is then not used."""
    if os.geteuid() != 0:
        pytest.fail("needs root (marked root)")
    require(which("bwrap") is not None, "bubblewrap is not installed (scripts/setup installs it)")
    root = _hostile_image(tmp_path, tmp_path / "unused")
    (root / "usr/sbin/chronyd").write_text("#!/bin/sh\nbusybox sleep 1000 &\nexec busybox sleep 1000\n")
    monkeypatch.setattr(chrony_tools, "VERSION_TIMEOUT", 0.5)
    chosen = chrony_tools.validator(str(root))
    assert chosen is None or not chosen.from_image
    busybox = str(root / "bin/busybox")
    # The PID namespace's teardown after the kill takes what it takes: waited on, not raced.
    wait_for(lambda: [p for p in psutil.process_iter(["exe"]) if p.info["exe"] == busybox], lambda left: not left,
             what="everything the hanging chronyd started gone", timeout=30)
