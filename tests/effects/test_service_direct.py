"""The direct backend drives a real chronyd (-x: the host clock is never touched)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chronyctl6.effects import service
from chronyctl6.effects.commands import which
from tests.conftest import require

# Starts and restarts a real chronyd: root.
pytestmark = pytest.mark.root


def test_direct_restarts_a_real_chronyd(tmp_path: Path) -> None:
    require(which("chronyd") is not None, "chronyd is not installed (apt-get install chrony)")
    tmp_path.chmod(0o700)  # chronyd refuses a command socket in a world-accessible directory
    config = tmp_path / "chrony.conf"
    pidfile = tmp_path / "chronyd.pid"
    config.write_text(f"port 0\ncmdport 0\nbindcmdaddress {tmp_path}/chronyd.sock\npidfile {pidfile}\n"
                      f"driftfile {tmp_path}/drift\n")
    manager = service.Direct(config_path=str(config), pidfile=str(pidfile), extra_args=["-x", "-u", "root"])
    try:
        manager.restart()  # nothing running yet: a restart starts it
        first = manager.main_pid()
        assert first is not None and manager.is_active()
        manager.restart()
        second = manager.main_pid()
        assert second is not None and second != first
        assert not Path(f"/proc/{first}").exists() or service._alive(first) is False
    finally:
        manager.stop()
    assert manager.main_pid() is None and not manager.is_active()
