"""The service-manager seam: systemd argv per distro, and `auto` never starting chronyd by hand."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chronyctl6.configure.platforms import by_name
from chronyctl6.effects import service
from chronyctl6.errors import BadInput, Status, Unavailable, exit_code
from tests.helpers import put


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
    with pytest.raises(Unavailable) as err:
        service.choose("auto", unit="chrony", config_path="/etc/chrony/chrony.conf", pidfile=None)
    assert err.value.hint is not None and "--service-manager direct" in err.value.hint
    # A fact of this host, said as one (issue 20): its own word and exit code, never a usage error.
    assert not isinstance(err.value, BadInput) and err.value.status is Status.UNAVAILABLE
    assert "systemd is not running" in err.value.message
    assert (exit_code("apply", err.value.status), exit_code("restore", err.value.status)) == (7, 7)
    assert exit_code("status", err.value.status) == 3


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


@pytest.mark.parametrize("args", ["-x -f /other/chrony.conf", "-x -f/other/chrony.conf", "-xdf /other/chrony.conf",
                                  "-f /c.conf -f /other/chrony.conf"])
def test_direct_refuses_args_that_make_chronyd_read_another_file(monkeypatch: pytest.MonkeyPatch, args: str) -> None:
    monkeypatch.setenv(service.CHRONYD_ARGS_ENV, args)
    with pytest.raises(BadInput, match=r"CHRONYCTL6_CHRONYD_ARGS makes chronyd read /other/chrony.conf, not /c.conf"):
        service.choose("direct", unit="chrony", config_path="/c.conf", pidfile=None)


@pytest.mark.parametrize(("args", "error"), [("-x -f", "-f needs an argument"), ("-x '-u", "No closing quotation")])
def test_direct_refuses_args_it_cannot_parse(monkeypatch: pytest.MonkeyPatch, args: str, error: str) -> None:
    monkeypatch.setenv(service.CHRONYD_ARGS_ENV, args)
    with pytest.raises(BadInput, match=error):
        service.choose("direct", unit="chrony", config_path="/c.conf", pidfile=None)


def test_direct_takes_the_managed_file_named_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(service.CHRONYD_ARGS_ENV, "-x -f /etc/chrony/../chrony/chrony.conf")
    manager = service.choose("direct", unit="chrony", config_path="/etc/chrony/chrony.conf", pidfile=None)
    assert isinstance(manager, service.Direct) and manager.extra_args[0] == "-x"


@pytest.mark.parametrize(("path", "text", "refused"), [
    ("etc/default/chrony", 'DAEMON_OPTS="-F 1 -f /etc/chrony/site.conf"\n', "DAEMON_OPTS in /etc/default/chrony"),
    ("etc/sysconfig/chronyd", "# Command-line options for chronyd\nOPTIONS='-F 2' \nOPTIONS=\"-f /srv/c.conf\"\n",
     "OPTIONS in /etc/sysconfig/chronyd"),
    ("etc/default/chrony", 'DAEMON_OPTS="-F 1"\n', None),
    ("etc/default/chrony", "# DAEMON_OPTS='-f /etc/other.conf'\nDAEMON_OPTS=\"-F 1 -f /etc/chrony/chrony.conf\"\n",
     None),
])
def test_unit_arguments_naming_another_file_are_refused(tmp_path: Path, path: str, text: str,
                                                        refused: str | None) -> None:
    put(tmp_path, path, text)
    if refused is None:
        service.check_unit_arguments(tmp_path, "/etc/chrony/chrony.conf")
        return
    with pytest.raises(BadInput, match=f"{refused} makes chronyd read"):
        service.check_unit_arguments(tmp_path, "/etc/chrony/chrony.conf")


def _unit(root: Path, path: str, text: str) -> None:
    put(root, path, text)


DEBIAN_UNIT = "[Unit]\nDescription=chrony\n[Service]\nEnvironmentFile=-/etc/default/chrony\n" \
              "ExecStart=!/usr/sbin/chronyd $DAEMON_OPTS\n"


def test_a_drop_in_execstart_naming_another_file_is_refused(tmp_path: Path) -> None:
    _unit(tmp_path, "lib/systemd/system/chrony.service", DEBIAN_UNIT)
    _unit(tmp_path, "etc/default/chrony", 'DAEMON_OPTS="-F 1"\n')
    service.check_unit_arguments(tmp_path, "/etc/chrony/chrony.conf")  # as shipped
    assert service.exec_start(tmp_path, "chrony.service") == (
        "/lib/systemd/system/chrony.service", ["/usr/sbin/chronyd", "$DAEMON_OPTS"])
    _unit(tmp_path, "etc/systemd/system/chrony.service.d/override.conf",
          "[Service]\nExecStart=\nExecStart=/usr/sbin/chronyd -F 1 \\\n  -f /etc/chrony/site.conf\n")
    with pytest.raises(BadInput, match=re.escape("ExecStart in /etc/systemd/system/chrony.service.d/override.conf "
                                                 "makes chronyd read /etc/chrony/site.conf")):
        service.check_unit_arguments(tmp_path, "/etc/chrony/chrony.conf")
    # A later drop-in (by name) puts the distribution's command line back.
    _unit(tmp_path, "usr/lib/systemd/system/chrony.service.d/zz-back.conf",
          "[Service]\nExecStart=\nExecStart=/usr/sbin/chronyd $DAEMON_OPTS\n")
    service.check_unit_arguments(tmp_path, "/etc/chrony/chrony.conf")


def test_an_execstart_variable_is_expanded_from_the_environment_file(tmp_path: Path) -> None:
    _unit(tmp_path, "usr/lib/systemd/system/chronyd.service",
          "[Service]\nEnvironmentFile=-/etc/sysconfig/chronyd\nExecStart=/usr/sbin/chronyd ${OPTIONS}\n")
    _unit(tmp_path, "etc/sysconfig/chronyd", 'OPTIONS="-f/etc/chrony-other.conf"\n')
    with pytest.raises(BadInput, match=re.escape("makes chronyd read /etc/chrony-other.conf")):
        service.check_unit_arguments(tmp_path, "/etc/chrony.conf")
