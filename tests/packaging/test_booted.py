"""The Ansible role against the sandbox's booted instance: real systemd, simulated EC2 network.

A fresh Debian 12 root (packaging/test-root: it carries ansible-core) boots with systemd as init
in a simulated dual-stack EC2 instance. ansible-core runs the role there (connection local,
through nsenter, as a pull-mode `ansible-pull` would): it installs the .deb, writes the settings,
applies with --wait so chrony.service is restarted by systemd and must select the Time Sync IPv6
endpoint, enables the boot step and the check timer. A second run changes nothing. The check
service, started by systemd, writes node_exporter's textfile. Then the SSM Command document's
script, its parameters pasted in as SSM does, applies (nothing left to change) and checks the
clock against Time Sync.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from sandbox import TIME_SYNC_V4, TIME_SYNC_V6, Ec2
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


def test_ansible_role_then_ssm_document_on_the_booted_instance(
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
    # Confined (no capability, read-only system), it still reads chronyd's state: chronyc falls
    # back from the closed /run/chrony socket to UDP 323 on loopback.
    assert "chronyctl6_check_chronyd_up 1.0" in metrics.splitlines(), metrics
    assert "chronyctl6_check_chronyd_synchronised 1.0" in metrics.splitlines(), metrics

    # The SSM document's script, as Run Command would run it on this instance.
    doc = yaml.safe_load((PACKAGING / "ssm" / "chronyctl6-apply.yml").read_text(encoding="utf-8"))
    values = {name: spec["default"] for name, spec in doc["parameters"].items()}
    # The defaults leave the choices the role pinned in settings.toml: nothing left to change.
    values.update(Action="apply-and-check", WaitSeconds="30")
    lines = doc["mainSteps"][0]["inputs"]["runCommand"]
    script = "\n".join(re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: values[m.group(1)], line)
                       for line in lines)
    vm.path("/root/ssm.sh").write_text(script + "\n", encoding="utf-8")
    ssm = vm.run(["bash", "/root/ssm.sh"], timeout=180)
    assert ssm.returncode == 0, ssm.stdout + ssm.stderr
    assert '"changed": false' in ssm.stdout and '"status": "OK"' in ssm.stdout, ssm.stdout


def _component_commands(phase: str) -> list[str]:
    doc = yaml.safe_load((PACKAGING / "imagebuilder" / "chronyctl6-component.yml")
                         .read_text(encoding="utf-8"))
    (steps,) = [p["steps"] for p in doc["phases"] if p["name"] == phase]
    return [command for step in steps for command in step["inputs"]["commands"]]


def test_packer_bake_then_image_builder_phases_on_relaunch(
    vm: BootedInstance, ec2_factory: Callable[..., Ec2]
) -> None:
    """Packer's provisioners bake the image on a dual-stack build instance (the package installed
    from the uploaded file, applied with --wait, units enabled); Image Builder's validate phase
    accepts the result; the image relaunched into an IPv4-only subnet passes Image Builder's
    test phase with the IPv4 endpoint, chosen at boot with no manual step."""
    try:
        import hcl2
    except ImportError:
        require(False, "python-hcl2 (pip install python-hcl2)")
        return
    with (PACKAGING / "packer" / "chronyctl6.pkr.hcl").open(encoding="utf-8") as handle:
        template = hcl2.load(handle)
    (build,) = template["build"]
    (file_step,) = [p['"file"'] for p in build["provisioner"] if '"file"' in p]
    (shell_step,) = [p['"shell"'] for p in build["provisioner"] if '"shell"' in p]
    destination = file_step["destination"].strip('"')
    inline = [line.strip('"').replace('\\"', '"') for line in shell_step["inline"]]
    vm.path("/root/packer.sh").write_text("\n".join(inline) + "\n", encoding="utf-8")

    build_ec2 = ec2_factory(ipv6=True)
    vm.boot(build_ec2.instance.netns_path)
    # What the file provisioner uploads, once booted (nspawn gives the instance its own /tmp).
    vm.copy_in(built_deb(), "/root/upload.pkg")
    vm.run(["cp", "/root/upload.pkg", destination], check=True)
    # execute_command: sudo -S env {{ .Vars }} bash -euo pipefail '{{ .Path }}' (we are root).
    baked = vm.run(["bash", "-euo", "pipefail", "/root/packer.sh"], timeout=300)
    assert baked.returncode == 0, baked.stdout + baked.stderr
    assert _selected(vm) == TIME_SYNC_V6
    for command in _component_commands("validate"):
        done = vm.run(["bash", "-c", command], timeout=120)
        assert done.returncode == 0, command + done.stdout + done.stderr
    vm.poweroff()
    build_ec2.close()

    launch_ec2 = ec2_factory(ipv6=False)
    vm.boot(launch_ec2.instance.netns_path)
    for command in _component_commands("test"):
        done = vm.run(["bash", "-c", command], timeout=180)
        assert done.returncode == 0, command + done.stdout + done.stderr
    dropin = vm.run(["cat", "/run/chronyctl6/timesync.sources"], check=True).stdout
    servers = [line for line in dropin.splitlines() if line.startswith("server ")]
    assert servers == [f"server {TIME_SYNC_V4} prefer iburst minpoll 4 maxpoll 4"], dropin
    assert _selected(vm) == TIME_SYNC_V4
