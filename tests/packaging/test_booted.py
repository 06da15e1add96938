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

import hashlib
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from sandbox import TIME_SYNC_V4, TIME_SYNC_V6, Ec2
from sandbox.booted import BootedInstance
from tests.conftest import require
from tests.packaging_support import PACKAGING, built_deb, run

# A booted root (systemd-nspawn): root.
pytestmark = [pytest.mark.e2e, pytest.mark.root]
TEXTFILE = "/var/lib/prometheus/node-exporter/chronyctl6.prom"




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
    # One chronyctl6-ssm/v1 document, under the console's limit: apply's part, then check's.
    summary = json.loads(ssm.stdout)
    assert summary["schema"] == "chronyctl6-ssm/v1" and len(ssm.stdout) < 2500, ssm.stdout
    assert (summary["apply"]["status"], summary["check"]["status"], summary["exit_code"]) == ("ok", "ok", 0), ssm.stdout
    assert summary["apply"]["changed"] is False and summary["check"]["verdict"] == "OK", ssm.stdout


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


def _chrony_debs(tmp_path: Path) -> tuple[Path, Path]:
    """Debian 12's chrony .deb (cached by prepare-tests), and the same repacked as a later
    version whose stock chrony.conf changed: what a chrony point release with a new default is.
    Debian's chrony does not ship /etc/chrony/chrony.conf as a dpkg conffile: its postinst hands
    /usr/share/chrony/chrony.conf to ucf (three-way merge), so that is the file that changes."""
    cached = sorted((Path("/var/cache/chronyctl6-test") / "debs").glob("chrony_*.deb"))
    require(bool(cached), "chrony's .deb in /var/cache/chronyctl6-test/debs: run packaging/prepare-tests")
    stock = cached[-1]
    tree = tmp_path / "chrony-tree"
    run(["dpkg-deb", "-R", str(stock), str(tree)])
    assert "ucf --three-way /usr/share/chrony/chrony.conf /etc/chrony/chrony.conf" in (
        tree / "DEBIAN" / "postinst").read_text(encoding="utf-8")
    control = tree / "DEBIAN" / "control"
    text = control.read_text(encoding="utf-8")
    version = re.search(r"^Version: (.+)$", text, re.M)
    assert version is not None
    control.write_text(text.replace(version.group(0), f"Version: {version.group(1)}+chronyctl6test1"),
                       encoding="utf-8")
    upstream = tree / "usr" / "share" / "chrony" / "chrony.conf"
    upstream.write_text(upstream.read_text(encoding="utf-8") + "\n# A later release's stock file.\n",
                        encoding="utf-8")
    md5sums = tree / "DEBIAN" / "md5sums"
    md5sums.write_text("".join(
        line if not line.endswith(" usr/share/chrony/chrony.conf\n")
        else f"{hashlib.md5(upstream.read_bytes()).hexdigest()}  usr/share/chrony/chrony.conf\n"  # noqa: S324
        for line in md5sums.read_text(encoding="utf-8").splitlines(keepends=True)), encoding="utf-8")
    upgrade = tmp_path / "chrony-upgrade.deb"
    run(["dpkg-deb", "--root-owner-group", "-b", str(tree), str(upgrade)])
    return stock, upgrade


def _waitsync(vm: BootedInstance) -> None:
    done = vm.run(["chronyc", "-n", "waitsync", "60", "0", "0", "1"], timeout=90)
    assert done.returncode == 0, done.stdout + done.stderr


def test_chrony_upgrade_keeps_the_applied_config_and_removal_leaves_a_source(
    vm: BootedInstance, ec2_factory: Callable[..., Ec2], tmp_path: Path
) -> None:
    """dpkg (and ucf) and chrony's configuration after chronyctl6 rewrote it: reinstalling the
    same chrony keeps it silently; a chrony whose stock file changed keeps it too when installed
    non-interactively (ucf's default answer), with the new stock file beside it. chrony stays on
    Time Sync throughout. Removing chronyctl6 stops its timer and leaves
    chrony on Time Sync, across a reboot (this launch's line, kept where chrony reads it)."""
    stock, upgrade = _chrony_debs(tmp_path)
    deb = built_deb()
    for source, target in ((deb, f"/root/{deb.name}"), (stock, "/root/chrony.deb"),
                           (upgrade, "/root/chrony-upgrade.deb")):
        vm.copy_in(source, target)
    vm.path("/var/lib/prometheus/node-exporter").mkdir(parents=True)
    ec2 = ec2_factory(ipv6=True)
    vm.boot(ec2.instance.netns_path)
    vm.run(["dpkg", "-i", f"/root/{deb.name}"], check=True, timeout=180)
    applied = vm.run(["chronyctl6", "apply", "--at-boot", "--ipv6", "auto", "--phc", "off",
                      "--wait", "60"], timeout=180)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    vm.run(["systemctl", "enable", "--now", "chronyctl6-check.timer"], check=True)
    conf = vm.path("/etc/chrony/chrony.conf")
    written = conf.read_text(encoding="utf-8")
    assert "managed by chronyctl6" in written and "sourcedir /run/chronyctl6" in written
    env = {"DEBIAN_FRONTEND": "noninteractive"}

    same = vm.run(["dpkg", "-i", "/root/chrony.deb"], env=env, timeout=180)
    assert same.returncode == 0, same.stdout + same.stderr
    assert conf.read_text(encoding="utf-8") == written
    _waitsync(vm)
    assert _selected(vm) == TIME_SYNC_V6

    # A chrony whose stock file changed: ucf asks through debconf; non-interactive (apt in
    # cloud-init, unattended-upgrades) the answer is its default, keep the local file, and the
    # new stock file lands beside it as chrony.conf.ucf-dist.
    kept = vm.run(["dpkg", "-i", "/root/chrony-upgrade.deb"], env=env, timeout=180)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert vm.run(["dpkg-query", "-W", "-f", "${Version}", "chrony"]).stdout.endswith("+chronyctl6test1")
    assert conf.read_text(encoding="utf-8") == written
    assert vm.path("/etc/chrony/chrony.conf.ucf-dist").read_text(encoding="utf-8").endswith(
        "# A later release's stock file.\n")
    _waitsync(vm)
    assert _selected(vm) == TIME_SYNC_V6

    removed = vm.run(["dpkg", "-r", "chronyctl6"], env=env, timeout=180)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert vm.run(["systemctl", "is-active", "chronyctl6-check.timer"]).stdout.strip() == "inactive"
    said = removed.stderr
    assert "so that chrony keeps a source" in said, said
    # Removal is no request to leave Time Sync: chronyctl6's file stays, but for the boot step's
    # sourcedir, which this launch's Time Sync line replaces; the boot unit is no longer enabled.
    released = conf.read_text(encoding="utf-8")
    assert "sourcedir /run/chronyctl6" not in released and f"server {TIME_SYNC_V6} " in released
    assert "managed by chronyctl6" in released
    assert vm.run(["systemctl", "is-enabled", "chronyctl6-boot.service"]).stdout.strip() != "enabled"
    # The next boot empties /run: chrony must still have a source without chronyctl6's boot step.
    vm.poweroff()
    vm.boot(ec2.instance.netns_path)
    sources = vm.run(["chronyc", "-n", "-c", "sources"], check=True).stdout.splitlines()
    assert sources, "chrony has no source after chronyctl6 was removed"
    _waitsync(vm)
    assert _selected(vm) == TIME_SYNC_V6
