"""The service-manager seam: systemd argv per distro, and `auto` never starting chronyd by hand."""

from __future__ import annotations

import pytest

from chronyctl6.configure.platforms import by_name
from chronyctl6.effects import service
from chronyctl6.errors import BadInput


@pytest.mark.parametrize(("distro", "unit"), [("debian", "chrony"), ("ubuntu", "chrony"), ("amzn2023", "chronyd"),
                                              ("amzn2", "chronyd"), ("rhel", "chronyd"), ("sles", "chronyd")])
def test_systemd_argv_names_the_distros_unit(distro: str, unit: str) -> None:
    platform = by_name(distro)
    manager = service.choose("systemd", unit=platform.unit, config_path=platform.config_path, pidfile=None)
    assert isinstance(manager, service.Systemd)
    assert manager.argv("restart") == ["systemctl", "restart", f"{unit}.service"]
    assert manager.argv("show", "--property=MainPID", "--value") == [
        "systemctl", "show", "--property=MainPID", "--value", f"{unit}.service"]


def test_auto_without_systemd_refuses_rather_than_starting_chronyd() -> None:
    assert not service.systemd_running()  # this machine: no systemd as PID 1
    with pytest.raises(BadInput) as err:
        service.choose("auto", unit="chrony", config_path="/etc/chrony/chrony.conf", pidfile=None)
    assert err.value.hint is not None and "--service-manager direct" in err.value.hint


def test_direct_takes_extra_chronyd_args_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(service.CHRONYD_ARGS_ENV, "-x -u root")
    manager = service.choose("direct", unit="chrony", config_path="/c.conf", pidfile="/p.pid")
    assert isinstance(manager, service.Direct)
    assert (manager.extra_args, manager.pidfile, manager.config_path) == (["-x", "-u", "root"], "/p.pid", "/c.conf")


def test_direct_with_no_pidfile_is_not_active(tmp_path: object) -> None:
    manager = service.Direct(config_path="/nonexistent", pidfile="/nonexistent/chronyd.pid")
    assert not manager.is_active() and manager.main_pid() is None


def test_unknown_manager() -> None:
    with pytest.raises(BadInput):
        service.choose("upstart", unit="chrony", config_path="/c", pidfile=None)
