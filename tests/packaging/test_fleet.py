"""Image builders and fleet engines: every document parsed by its own tool where Debian has it,
and run for real where that can be done without AWS.

- SSM Command document: structure, parameters, injection-proof patterns; its script run in a
  throwaway Debian 12 root with the .deb installed (a dry-run apply).
- EC2 Image Builder component: structure, every bash block parsed by bash.
- cloud-init: `cloud-init schema`, and the settings it writes accepted by chronyctl6.
- Packer: `packer validate` (Debian's packer 1.6.6, offline), `packer fmt -check`, python-hcl2.
- Ansible: ansible-core runs the role inside a throwaway Debian 12 root (connection local, in a
  network namespace): a first run changes things, the second and a --check run change nothing.
- Prometheus: `promtool check rules` and `promtool test rules`.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.packaging_support import (
    PACKAGING,
    REPO,
    built_deb,
    chroot,
    fresh_root,
    install_deb,
    require,
    require_tools,
    run,
)

SSM_DOC = PACKAGING / "ssm" / "chronyctl6-apply.yml"
IB_DOC = PACKAGING / "imagebuilder" / "chronyctl6-component.yml"
CLOUD_CONFIG = PACKAGING / "cloud-init" / "chronyctl6.cloud-config.yml"
PACKER = PACKAGING / "packer" / "chronyctl6.pkr.hcl"
ANSIBLE = PACKAGING / "ansible"
PROMETHEUS = PACKAGING / "prometheus"
PARAM_REF = re.compile(r"\{\{\s*(\w+)\s*\}\}")
# What a caller could try to smuggle into a shell script through a parameter.
HOSTILE = ["1; reboot", "$(id)", "`id`", "1 && id", "1|id", "'", '"', "a b", "1\n2", "-1", "",
           "../../etc", "on; id", "${IFS}"]


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with fresh_root(tmp_path_factory.mktemp("fleetroot")) as target:
        yield target


# ---- SSM -----------------------------------------------------------------------------------

def _ssm_script(doc: dict[str, Any], values: dict[str, str]) -> str:
    """The shell script SSM would run: parameters pasted in as text, as SSM does."""
    (step,) = doc["mainSteps"]
    lines: list[str] = step["inputs"]["runCommand"]
    return "\n".join(PARAM_REF.sub(lambda m: values[m.group(1)], line) for line in lines) + "\n"


def test_ssm_document_structure() -> None:
    doc = _load(SSM_DOC)
    assert doc["schemaVersion"] == "2.2"
    assert isinstance(doc["description"], str) and doc["description"]
    params: dict[str, dict[str, Any]] = doc["parameters"]
    (step,) = doc["mainSteps"]
    assert step["action"] == "aws:runShellScript"
    assert step["precondition"] == {"StringEquals": ["platformType", "Linux"]}
    text = "\n".join(step["inputs"]["runCommand"])
    referenced = set(PARAM_REF.findall(text))
    assert referenced == set(params), "every parameter used, every reference defined"
    # Each reference sits inside single quotes: even an allowed value is never shell syntax.
    for line in step["inputs"]["runCommand"]:
        for match in PARAM_REF.finditer(line):
            assert line[match.start() - 1] == "'" and line[match.end()] == "'", line
    for name, spec in params.items():
        assert spec["type"] == "String" and spec.get("description"), name
        assert "allowedValues" in spec or "allowedPattern" in spec, f"{name} is unconstrained"
        default = spec["default"]
        assert isinstance(default, str), f"{name}: YAML turned the default into {default!r}"
        if "allowedValues" in spec:
            assert all(isinstance(v, str) for v in spec["allowedValues"]), name
            assert default in spec["allowedValues"]
        else:
            pattern = spec["allowedPattern"]
            assert pattern.startswith("^") and pattern.endswith("$"), name
            assert re.search(pattern, default)


def test_ssm_parameters_reject_injection() -> None:
    for name, spec in _load(SSM_DOC)["parameters"].items():
        for value in HOSTILE:
            if "allowedValues" in spec:
                assert value not in spec["allowedValues"], (name, value)
            else:
                # SSM matches like Java's find(); \n inside the value is the one case where `$`
                # could match early, so reject it by the character class as well.
                assert re.search(spec["allowedPattern"], value) is None, (name, value)
                assert "'" not in spec["allowedPattern"]


def test_ssm_script_runs_a_dry_run_apply(root: Path) -> None:
    """The document's script, with its parameters pasted in, on a host with the package."""
    install_deb(root, built_deb())
    doc = _load(SSM_DOC)
    values = {name: spec["default"] for name, spec in doc["parameters"].items()}
    values.update(Action="apply", DryRun="true", Ipv6="on", Phc="off")
    script = _ssm_script(doc, values)
    run(["bash", "-n", "-c", script])
    (root / "root" / "ssm.sh").write_text(script, encoding="utf-8")
    before = (root / "etc/chrony/chrony.conf").read_bytes()
    proc = chroot(root, "bash", "/root/ssm.sh")
    plan = json.loads(proc.stdout)["data"]  # the chronyctl6/v1 envelope
    assert plan["changed"] is True and "fd00:ec2::123" in plan["diff"]
    assert (root / "etc/chrony/chrony.conf").read_bytes() == before, "a dry run writes nothing"

    values.update(Action="apply", DryRun="true", Ipv6="sideways")
    bad = chroot(root, "bash", "-c", _ssm_script(doc, values), check=False)
    assert bad.returncode != 0, "chronyctl6 itself refuses a value SSM would not have allowed"


# ---- EC2 Image Builder -----------------------------------------------------------------------

def test_imagebuilder_component() -> None:
    doc = _load(IB_DOC)
    assert doc["schemaVersion"] == 1.0 and doc["name"] and doc["description"]
    phases = {phase["name"]: phase["steps"] for phase in doc["phases"]}
    assert set(phases) <= {"build", "validate", "test"} and "build" in phases
    declared = {name for p in doc.get("parameters", []) for name in p}
    for steps in phases.values():
        for step in steps:
            assert step["action"] == "ExecuteBash" and re.fullmatch(r"[A-Za-z0-9]+", step["name"])
            for command in step["inputs"]["commands"]:
                assert set(PARAM_REF.findall(command)) <= declared
                script = PARAM_REF.sub("s3://bucket/chronyctl6.rpm", command)
                run(["bash", "-n", "-c", script])
    build = "\n".join(c for s in phases["build"] for c in s["inputs"]["commands"])
    assert "echo 'at_boot = true'" in build and "chronyctl6 apply --wait 60" in build
    assert "systemctl enable chronyctl6-boot.service" in build


# ---- cloud-init -------------------------------------------------------------------------------

def test_cloud_config_schema(tmp_path: Path) -> None:
    require_tools("cloud-init")
    assert CLOUD_CONFIG.read_text(encoding="utf-8").startswith("#cloud-config\n")
    run(["cloud-init", "schema", "--config-file", CLOUD_CONFIG])
    # The validator validates: the same file with a wrong type is refused.
    broken = tmp_path / "broken.yml"
    broken.write_text(CLOUD_CONFIG.read_text(encoding="utf-8").replace(
        "  enabled: false", "  enabled: [nope]"), encoding="utf-8")
    assert run(["cloud-init", "schema", "--config-file", broken], check=False).returncode != 0
    doc = _load(CLOUD_CONFIG)
    assert doc["ntp"] == {"enabled": False}, "cloud-init's ntp module must leave chrony alone"
    assert ["chronyctl6", "apply", "--wait", "60", "--diff"] in doc["runcmd"]


def test_cloud_config_settings_are_valid(tmp_path: Path) -> None:
    """The settings.toml it writes is accepted by chronyctl6 (rendering an Amazon Linux image)."""
    (settings,) = [f for f in _load(CLOUD_CONFIG)["write_files"]
                   if f["path"] == "/etc/chronyctl6/settings.toml"]
    image = tmp_path / "image"
    shutil.copytree(REPO / "tests" / "fixtures" / "stock" / "amzn2023", image, symlinks=True)
    (image / "etc" / "chronyctl6").mkdir()
    (image / "etc" / "chronyctl6" / "settings.toml").write_text(settings["content"])
    out = run(["python3", "-m", "chronyctl6", "render", "--root", image], cwd=REPO).stdout
    assert "sourcedir /run/chronyctl6" in out and "maxclockerror 50" in out


# ---- Packer -----------------------------------------------------------------------------------

def test_packer_template() -> None:
    require_tools("packer")
    run(["packer", "fmt", "-check", PACKER])
    # Full validation with the amazon-ebs builder's schema; nothing is contacted.
    run(["packer", "validate", "-var", f"package={REPO / 'pyproject.toml'}", PACKER],
        cwd=PACKER.parent)
    text = PACKER.read_text(encoding="utf-8")
    assert "echo 'at_boot = true'" in text and "chronyctl6 apply --wait 60" in text
    assert "systemctl enable chronyctl6-boot.service" in text


def test_packer_template_parses_as_hcl2() -> None:
    try:
        import hcl2
    except ImportError:
        require(False, "python-hcl2 (pip install python-hcl2)")
        return
    with PACKER.open(encoding="utf-8") as handle:
        doc = hcl2.load(handle)
    (build,) = doc["build"]
    kinds = [next(iter(p)) for p in build["provisioner"]]
    assert [k.strip('"') for k in kinds] == ["file", "shell"]


# ---- Ansible ----------------------------------------------------------------------------------

def _playbook(root: Path, *extra: str) -> dict[str, int]:
    """Run the playbook inside the root with ansible-core (connection local); the recap counts."""
    proc = chroot(
        root, "env", "ANSIBLE_ROLES_PATH=/srv/ansible/roles", "ANSIBLE_NOCOLOR=1",
        "ANSIBLE_LOCAL_TEMP=/root/.ansible/tmp", "ansible-playbook", "-i", "localhost,",
        "-c", "local", "/srv/ansible/playbook.yml", "-e", "@/srv/vars.json", *extra,
        timeout=300,
    )
    recap = re.search(r"localhost\s+:\s+(.*)$", proc.stdout, re.M)
    assert recap is not None, proc.stdout
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", recap.group(1))}


def test_ansible_syntax(tmp_path: Path) -> None:
    require_tools("ansible-playbook")
    env = {"PATH": "/usr/bin:/bin", "ANSIBLE_ROLES_PATH": str(ANSIBLE / "roles"),
           "HOME": str(tmp_path), "ANSIBLE_LOCAL_TEMP": str(tmp_path)}
    run(["ansible-playbook", "-i", "localhost,", "--syntax-check", ANSIBLE / "playbook.yml"],
        env=env)


def test_ansible_role_installs_and_applies(root: Path) -> None:
    deb = built_deb()
    if chroot(root, "dpkg-query", "-W", "chronyctl6", check=False).returncode == 0:
        chroot(root, "dpkg", "--purge", "chronyctl6")
    shutil.copytree(ANSIBLE, root / "srv" / "ansible", dirs_exist_ok=True)
    shutil.copy(deb, root / "srv" / deb.name)
    (root / "var/lib/prometheus/node-exporter").mkdir(parents=True, exist_ok=True)
    variables = {
        "chronyctl6_package_file": f"/srv/{deb.name}",
        "chronyctl6_at_boot": True,
        "chronyctl6_wait": 0,
        "chronyctl6_settings": {"ipv6": "on", "phc": "off", "service_manager": "direct"},
        # The direct service manager starts chronyd as a plain process: never on the real clock.
        "chronyctl6_environment": {"CHRONYCTL6_CHRONYD_ARGS": "-x"},
    }
    (root / "srv" / "vars.json").write_text(json.dumps(variables), encoding="utf-8")

    first = _playbook(root)
    assert first["failed"] == 0 and first["changed"] >= 5, first
    assert chroot(root, "dpkg-query", "-W", "chronyctl6").stdout.startswith("chronyctl6\t")
    conf = (root / "etc/chrony/chrony.conf").read_text(encoding="utf-8")
    assert "managed by chronyctl6" in conf and "sourcedir /run/chronyctl6" in conf
    settings = (root / "etc/chronyctl6/settings.toml").read_text(encoding="utf-8")
    assert 'ipv6 = "on"' in settings
    wants = root / "etc/systemd/system"
    assert (wants / "multi-user.target.wants/chronyctl6-boot.service").is_symlink()
    assert (wants / "timers.target.wants/chronyctl6-check.timer").is_symlink()

    again = _playbook(root)
    assert again["failed"] == 0 and again["changed"] == 0, again
    checked = _playbook(root, "--check", "--diff")
    assert checked["failed"] == 0 and checked["changed"] == 0, checked


# ---- Prometheus -------------------------------------------------------------------------------

def test_prometheus_rules_check_and_unit_tests() -> None:
    require_tools("promtool")
    run(["promtool", "check", "rules", PROMETHEUS / "chronyctl6.rules.yml"])
    proc = run(["promtool", "test", "rules", "chronyctl6.rules.test.yml"], cwd=PROMETHEUS)
    assert "SUCCESS" in proc.stdout


def test_prometheus_rules_use_metrics_chronyctl6_writes() -> None:
    """Every chronyctl6_check_* series an alert reads is one `check -o prometheus` writes."""
    rules = (PROMETHEUS / "chronyctl6.rules.yml").read_text(encoding="utf-8")
    used = set(re.findall(r"\bchronyctl6_check_(\w+)", rules))
    assert used
    source = "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "chronyctl6").rglob("*.py"))
    missing = sorted(name for name in used if f'"{name}"' not in source)
    assert missing == [], f"not written by chronyctl6 check: {missing}"


def test_node_exporter_textfile_dir_matches_the_unit() -> None:
    unit = (PACKAGING / "systemd" / "chronyctl6-check.service").read_text(encoding="utf-8")
    defaults = _load(ANSIBLE / "roles" / "chronyctl6" / "defaults" / "main.yml")
    assert f"Environment=CHRONYCTL6_TEXTFILE_DIR={defaults['chronyctl6_textfile_dir']}\n" in unit
    assert "--textfile-dir ${CHRONYCTL6_TEXTFILE_DIR}" in unit
    assert f"ConditionPathIsDirectory={defaults['chronyctl6_textfile_dir']}" in unit
    # The role's variable reaches the unit through a drop-in, condition included.
    tasks = (ANSIBLE / "roles" / "chronyctl6" / "tasks" / "main.yml").read_text(encoding="utf-8")
    assert "Environment=CHRONYCTL6_TEXTFILE_DIR={{ chronyctl6_textfile_dir }}" in tasks
    assert "ConditionPathIsDirectory=\n" in tasks
    assert "ConditionPathIsDirectory={{ chronyctl6_textfile_dir }}" in tasks
