"""The Ansible role against the sandbox's booted instance: real systemd, simulated EC2 network.

A fresh Debian 12 root (packaging/test-root: it carries ansible-core) boots with systemd as init
in a simulated dual-stack EC2 instance. ansible-core runs the role there (connection local,
through nsenter, as a pull-mode `ansible-pull` would): it installs the .deb, writes the settings,
applies with --wait so chrony.service is restarted by systemd and must select the Time Sync IPv6
endpoint, enables the boot step and the check timer. A second run changes nothing. The check
service, started by systemd, writes node_exporter's textfile.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox import TIME_SYNC_V6, Ec2
from sandbox.booted import BootedInstance
from tests.packaging_support import PACKAGING, built_deb, debian_root_tarball, require

pytestmark = pytest.mark.e2e
TEXTFILE = "/var/lib/prometheus/node-exporter/chronyctl6.prom"


@pytest.fixture
def vm(tmp_path: Path) -> Iterator[BootedInstance]:
    for tool in ("systemd-nspawn", "nsenter"):
        require(shutil.which(tool) is not None, f"{tool} (apt-get install systemd-container)")
    instance = BootedInstance(debian_root_tarball(), tmp_path / "vm")
    try:
        instance.prepare()
        yield instance
    finally:
        instance.close()
        shutil.rmtree(instance.workdir, ignore_errors=True)


def _playbook(vm: BootedInstance, *extra: str) -> dict[str, int]:
    done = vm.run(["ansible-playbook", "-i", "localhost,", "-c", "local",
                   "/srv/ansible/playbook.yml", "-e", "@/srv/vars.json", *extra],
                  env={"ANSIBLE_ROLES_PATH": "/srv/ansible/roles", "ANSIBLE_NOCOLOR": "1"},
                  timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    recap = re.search(r"localhost\s+:\s+(.*)$", done.stdout, re.M)
    assert recap is not None, done.stdout
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", recap.group(1))}


def _selected(vm: BootedInstance) -> str | None:
    for line in vm.run(["chronyc", "-n", "-c", "sources"], check=True).stdout.splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[1] == "*":
            return fields[2]
    return None


def test_ansible_role_on_the_booted_instance(
    vm: BootedInstance, ec2_factory: Callable[..., Ec2]
) -> None:
    deb = built_deb()
    shutil.copytree(PACKAGING / "ansible", vm.path("/srv/ansible"))
    vm.copy_in(deb, f"/srv/{deb.name}")
    vm.path("/var/lib/prometheus/node-exporter").mkdir(parents=True)
    variables = {
        "chronyctl6_package_file": f"/srv/{deb.name}",
        "chronyctl6_at_boot": True,
        "chronyctl6_wait": 30,
        "chronyctl6_settings": {"ipv6": "auto", "phc": "off"},
    }
    vm.path("/srv/vars.json").write_text(json.dumps(variables), encoding="utf-8")

    ec2 = ec2_factory(ipv6=True)
    vm.boot(ec2.instance.netns_path)
    before = vm.main_pid("chrony.service")

    first = _playbook(vm)
    assert first["failed"] == 0 and first["changed"] >= 5, first
    # Restarted by systemd, and --wait saw chronyd select Time Sync over IPv6.
    assert vm.main_pid("chrony.service") not in (0, before)
    assert vm.run(["systemctl", "is-active", "chrony.service"]).stdout.strip() == "active"
    assert _selected(vm) == TIME_SYNC_V6
    for unit in ("chronyctl6-boot.service", "chronyctl6-check.timer"):
        assert vm.run(["systemctl", "is-enabled", unit]).stdout.strip() == "enabled", unit
    assert vm.run(["systemctl", "is-active", "chronyctl6-check.timer"]).stdout.strip() == "active"

    again = _playbook(vm)
    assert again["failed"] == 0 and again["changed"] == 0, again
    checked = _playbook(vm, "--check")
    assert checked["failed"] == 0 and checked["changed"] == 0, checked

    # The check unit as systemd runs it (its hardening included) writes the metrics.
    started = vm.run(["systemctl", "start", "chronyctl6-check.service"], timeout=90)
    assert started.returncode == 0, started.stdout + started.stderr + vm.run(
        ["journalctl", "--no-pager", "-u", "chronyctl6-check.service"]).stdout
    metrics = vm.run(["cat", TEXTFILE], check=True).stdout
    assert f'chronyctl6_check_up{{server="{TIME_SYNC_V6}"}} 1.0' in metrics, metrics
    assert re.search(r"^chronyctl6_check_offset_seconds\{server=\"fd00:ec2::123\"\} ", metrics,
                     re.M), metrics
