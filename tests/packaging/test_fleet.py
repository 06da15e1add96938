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
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

from tests.conftest import REPO, require
from tests.packaging_support import (
    PACKAGING,
    built_deb,
    chroot,
    fresh_root,
    install_deb,
    require_tools,
    run,
)

# Packages installed into chroots of cached roots: root.
pytestmark = pytest.mark.root

SSM_DOC = PACKAGING / "ssm" / "chronyctl6-apply.yml"
IB_DOC = PACKAGING / "imagebuilder" / "chronyctl6-component.yml"
CLOUD_CONFIG = PACKAGING / "cloud-init" / "chronyctl6.cloud-config.yml"
PACKER = PACKAGING / "packer" / "chronyctl6.pkr.hcl"
ANSIBLE = PACKAGING / "ansible"
PROMETHEUS = PACKAGING / "prometheus"
SSM_CONSOLE = 2500  # characters of output the SSM console shows
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
    summary = json.loads(proc.stdout)  # one chronyctl6-ssm/v1 document, under the console's limit
    assert summary["schema"] == "chronyctl6-ssm/v1" and len(proc.stdout) < SSM_CONSOLE
    assert summary["apply"]["changed"] is True and summary["apply"]["dry_run"] is True
    assert "fd00:ec2::123" in summary["diff"] and summary["exit_code"] == 0
    assert (root / "etc/chrony/chrony.conf").read_bytes() == before, "a dry run writes nothing"

    values.update(Action="apply", DryRun="true", Ipv6="sideways")
    bad = chroot(root, "bash", "-c", _ssm_script(doc, values), check=False)
    assert bad.returncode != 0, "chronyctl6 itself refuses a value SSM would not have allowed"


# The document's own logic (which flags each parameter becomes, the one summary document, the
# compliance report), run by bash with its parameters pasted in. chronyctl6 and aws are recorders
# on PATH here: what they are given is the subject; the real chronyctl6 runs in the test above.
_RECORDER = """#!/bin/sh
printf '%s\\n' "$(basename "$0") $*" >> "$RECORD"
case "$(basename "$0") $1" in
  "chronyctl6 apply") cat "$APPLY_OUT"; exit "${APPLY_STATUS:-0}" ;;
  "chronyctl6 check") cat "$CHECK_OUT"; exit "${CHECK_STATUS:-0}" ;;
  aws*) exit "${AWS_STATUS:-0}" ;;
esac
"""


def _ssm_run(tmp_path: Path, apply_out: dict[str, Any] | str, check_out: dict[str, Any],
             **params: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    doc = _load(SSM_DOC)
    values = {name: spec["default"] for name, spec in doc["parameters"].items()}
    env_extra = {k: params.pop(k) for k in list(params) if k.isupper()}
    values.update(params)
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    for name in ("chronyctl6", "aws"):
        (bindir / name).write_text(_RECORDER, encoding="utf-8")
        (bindir / name).chmod(0o755)
    (tmp_path / "apply.json").write_text(apply_out if isinstance(apply_out, str) else json.dumps(apply_out),
                                         encoding="utf-8")
    (tmp_path / "check.json").write_text(json.dumps(check_out), encoding="utf-8")
    record = tmp_path / "record"
    record.write_text("", encoding="utf-8")
    script = _ssm_script(doc, values).replace(
        "export PATH=", f"export PATH={bindir}:", 1)  # the recorders first, as an installed tool would be
    env = {"PATH": "/usr/bin:/bin", "RECORD": str(record), "APPLY_OUT": str(tmp_path / "apply.json"),
           "CHECK_OUT": str(tmp_path / "check.json"), **env_extra}
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60,
                          check=False)
    return proc, record.read_text(encoding="utf-8").splitlines()


def _envelope(command: str, status: str, code: int, data: dict[str, Any],
              messages: int = 0) -> dict[str, Any]:
    return {"schema": "chronyctl6/v1", "command": command, "status": status, "exit_code": code, "data": data,
            "messages": [{"level": "warning", "text": f"message {i} " + "x" * 900} for i in range(messages)]}


APPLY_OK = _envelope("apply", "ok", 0, {"changed": True, "dry_run": False, "action": "restart",
                                        "files": ["/etc/chrony/chrony.conf"], "selected": "fd00:ec2::123",
                                        "diff": "".join(f"+line {i} " + "y" * 60 + "\n" for i in range(100))},
                     messages=6)
CHECK_OK = _envelope("check", "ok", 0, {"verdict": "OK", "server": "fd00:ec2::123", "offset_seconds": 1e-05,
                                        "max_error_seconds": 0.0002, "stratum": 3, "samples": [{}] * 50})
CHECK_CRIT = _envelope("check", "critical", 2, {"verdict": "CRITICAL", "server": "fd00:ec2::123"})


def test_ssm_wait_seconds_zero_applies_without_waiting(tmp_path: Path) -> None:
    proc, calls = _ssm_run(tmp_path, APPLY_OK, CHECK_OK, Action="apply", WaitSeconds="0")
    assert proc.returncode == 0, proc.stderr
    (apply_call,) = calls
    assert "--no-wait" in apply_call.split() and "--wait" not in apply_call.split()
    proc, calls = _ssm_run(tmp_path, APPLY_OK, CHECK_OK, Action="apply", WaitSeconds="7")
    assert calls[0].split()[-2:] == ["--wait", "7"]


def test_ssm_dry_run_still_checks(tmp_path: Path) -> None:
    """DryRun limits apply; check changes nothing, so it runs (it did nothing at all before)."""
    proc, calls = _ssm_run(tmp_path, APPLY_OK, CHECK_OK, Action="check", DryRun="true")
    assert proc.returncode == 0 and calls == ["chronyctl6 check -o json"], (proc.stderr, calls)
    proc, calls = _ssm_run(tmp_path, APPLY_OK, CHECK_OK, Action="apply-and-check", DryRun="true")
    assert [c.split()[:2] for c in calls] == [["chronyctl6", "apply"], ["chronyctl6", "check"]]
    assert "--dry-run" in calls[0].split()


def test_ssm_prints_one_document_under_the_console_limit(tmp_path: Path) -> None:
    proc, _ = _ssm_run(tmp_path, APPLY_OK, CHECK_OK)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout) < SSM_CONSOLE, len(proc.stdout)
    doc = json.loads(proc.stdout)  # exactly one JSON document: json.loads refuses trailing data
    assert doc["apply"]["selected"] == "fd00:ec2::123" and doc["check"]["offset_seconds"] == 1e-05
    assert doc["diff"].startswith("+line 0") and doc["diff"].endswith("all of it)")
    assert doc["compliance"] == "not-requested" and doc["exit_code"] == 0


def test_ssm_exit_status_is_applys_failure_else_checks(tmp_path: Path) -> None:
    failed = _envelope("apply", "failed", 1, {}, messages=1)
    proc, calls = _ssm_run(tmp_path, failed, CHECK_OK, APPLY_STATUS="1")
    assert proc.returncode == 1 and len(calls) == 1, "no check after a failed apply"
    assert json.loads(proc.stdout)["apply"]["status"] == "failed"
    proc, _ = _ssm_run(tmp_path, APPLY_OK, CHECK_CRIT, CHECK_STATUS="2")
    assert proc.returncode == 2 and json.loads(proc.stdout)["check"]["verdict"] == "CRITICAL"
    # Output that is not JSON at all (a crash) still gives one document, with what it said.
    proc, _ = _ssm_run(tmp_path, "Traceback (most recent call last):", CHECK_OK, Action="apply", APPLY_STATUS="1")
    crashed = json.loads(proc.stdout)
    assert proc.returncode == 1 and crashed["exit_code"] == 1 and crashed["apply"]["status"] == "failed"


def test_ssm_reports_compliance_when_asked(tmp_path: Path) -> None:
    proc, calls = _ssm_run(tmp_path, APPLY_OK, CHECK_CRIT, ReportCompliance="true", CHECK_STATUS="2",
                           AWS_SSM_INSTANCE_ID="i-0123456789abcdef0")
    assert proc.returncode == 2
    (aws,) = [c for c in calls if c.startswith("aws ")]
    assert aws.startswith("aws ssm put-compliance-items --resource-id i-0123456789abcdef0 "
                          "--resource-type ManagedInstance --compliance-type Custom:chronyctl6 ")
    assert '"Status": "NON_COMPLIANT"' in aws and '"Id": "TimeSync"' in aws
    assert json.loads(proc.stdout)["compliance"] == "reported NON_COMPLIANT"
    # Without SSM's instance id, or when aws fails, the document says so and the exit status stands.
    proc, calls = _ssm_run(tmp_path, APPLY_OK, CHECK_OK, ReportCompliance="true")
    assert proc.returncode == 0 and not [c for c in calls if c.startswith("aws ")]
    assert "AWS_SSM_INSTANCE_ID" in json.loads(proc.stdout)["compliance"]
    proc, _ = _ssm_run(tmp_path, APPLY_OK, CHECK_OK, ReportCompliance="true", AWS_STATUS="255",
                       AWS_SSM_INSTANCE_ID="i-0123456789abcdef0")
    assert proc.returncode == 0 and json.loads(proc.stdout)["compliance"].startswith("not reported")


# ---- EC2 Image Builder -----------------------------------------------------------------------

def test_imagebuilder_component() -> None:
    doc = _load(IB_DOC)
    assert doc["schemaVersion"] == 1.0 and doc["name"] and doc["description"]
    phases = {phase["name"]: phase["steps"] for phase in doc["phases"]}
    assert set(phases) <= {"build", "validate", "test"} and "build" in phases
    declared = {name for p in doc.get("parameters", []) for name in p}
    for steps in phases.values():
        for step in steps:
            assert re.fullmatch(r"[A-Za-z0-9]+", step["name"])
            if step["action"] == "CreateFile":
                continue
            assert step["action"] == "ExecuteBash"
            for command in step["inputs"]["commands"]:
                # No parameter is ever pasted into shell code (Image Builder has no allowedPattern).
                assert PARAM_REF.findall(command) == [], command
                run(["bash", "-n", "-c", command])
    (url_file,) = [f for s in phases["build"] if s["action"] == "CreateFile" for f in s["inputs"]]
    assert set(PARAM_REF.findall(url_file["content"])) == {"PackageUrl"} <= declared
    build = "\n".join(c for s in phases["build"] if s["action"] == "ExecuteBash" for c in s["inputs"]["commands"])
    assert "echo 'at_boot = true'" in build and "chronyctl6 apply --wait 60" in build
    # Idempotence by apply --check's exit status, never by reading pretty-printed JSON.
    validate = "\n".join(c for s in phases["validate"] for c in s["inputs"]["commands"])
    assert "chronyctl6 apply --check" in validate
    assert "grep" not in validate.replace("grep -q '^at_boot = true'", "")


def _imagebuilder_install(tmp_path: Path, value: str) -> subprocess.CompletedProcess[str]:
    """The build phase's CreateFile + InstallPackage, as Image Builder runs them, with `aws` and
    the package managers replaced by stubs that log their arguments."""
    doc = _load(IB_DOC)
    (build,) = [p["steps"] for p in doc["phases"] if p["name"] == "build"]
    (url_file,) = [f for s in build if s["action"] == "CreateFile" for f in s["inputs"]]
    (install,) = [s["inputs"]["commands"][0] for s in build if s["name"] == "InstallPackage"]
    where = tmp_path / "url"
    where.write_text(PARAM_REF.sub(lambda m: value, url_file["content"]), encoding="utf-8")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("aws", "dnf"):
        stub = bin_dir / tool
        stub.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{tmp_path}/calls"\n', encoding="utf-8")
        stub.chmod(0o755)
    script = install.replace(url_file["path"], str(where))
    return run(["bash", "-c", script], check=False, env={"PATH": f"{bin_dir}:/usr/bin:/bin"})


@pytest.mark.parametrize("value", [*HOSTILE[:-2], "s3://bucket/chronyctl6.rpm;id", "http://x/chronyctl6-1.rpm",
                                   "s3://bucket/other-1.rpm", "s3://bucket/chronyctl6-1.rpm x",
                                   "s3://bucket/../chronyctl6-1.rpm/x", "s3://bucket/chronyctl6-1.rpm\nid",
                                   "s3://b/chronyctl6-1.rpm'$(id)'"])
def test_imagebuilder_package_url_refuses_anything_but_a_package_in_s3(tmp_path: Path, value: str) -> None:
    if value == "":
        return  # empty is allowed: the configured repositories
    done = _imagebuilder_install(tmp_path, value)
    assert done.returncode != 0 and "PackageUrl must be" in done.stderr, done.stdout + done.stderr
    assert not (tmp_path / "calls").exists(), "nothing ran before the URL was checked"


def test_imagebuilder_package_url_accepted_forms(tmp_path: Path) -> None:
    url = "s3://my-bucket.eu/builds/chronyctl6-0.1.0-1.x86_64.rpm"
    done = _imagebuilder_install(tmp_path, url)
    assert done.returncode == 0, done.stderr
    calls = (tmp_path / "calls").read_text(encoding="utf-8").splitlines()
    assert calls == [f"aws s3 cp -- {url} /tmp/chronyctl6-0.1.0-1.x86_64.rpm",
                     "dnf install -y /tmp/chronyctl6-0.1.0-1.x86_64.rpm"]
    (tmp_path / "calls").unlink()
    assert _imagebuilder_install(tmp_path, "").returncode == 0
    assert (tmp_path / "calls").read_text(encoding="utf-8").splitlines() == ["dnf install -y chronyctl6"]


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

def test_packer_template(tmp_path: Path) -> None:
    require_tools("packer")
    package = tmp_path / "chronyctl6-0.1.0-1.x86_64.rpm"
    package.write_bytes(b"")  # the file provisioner's source must exist
    run(["packer", "fmt", "-check", PACKER])
    # Full validation with the amazon-ebs builder's schema; nothing is contacted.
    run(["packer", "validate", "-var", f"package={package}", PACKER],
        cwd=PACKER.parent)
    # The package variable is pinned by pattern: a chronyctl6 .rpm or .deb and nothing else.
    for bad in ("", "pyproject.toml", "dist/chronyctl6.rpm.sh", "dist/other-1.rpm", "chronyctl6-1.rpm\nx"):
        refused = run(["packer", "validate", "-var", f"package={bad}", PACKER], cwd=PACKER.parent, check=False)
        assert refused.returncode != 0 and "must be a chronyctl6" in refused.stdout + refused.stderr, bad
    text = PACKER.read_text(encoding="utf-8")
    assert "echo 'at_boot = true'" in text and "chronyctl6 apply --wait 60" in text
    assert "systemctl enable chronyctl6-boot.service" in text
    # Idempotence by apply --check's exit status, never by reading pretty-printed JSON.
    assert '"chronyctl6 apply --check",' in text and "changed" not in text
    # The Amazon Linux 2023 path names the RPM it needs and how it is built.
    assert "--define 'python3_pkgversion 3.11'" in text and "x86_64.rpm" in text


def test_packer_names_its_plugin() -> None:
    """Packer 1.7+ installs the builder from `required_plugins` (`packer init`); Debian's 1.6.6
    refuses that block, so it sits in a file of its own that 1.6.6 never reads (test above)."""
    try:
        import hcl2
    except ImportError:
        require(False, "python-hcl2 (pip install python-hcl2)")
        return
    with (PACKER.parent / "plugins.pkr.hcl").open(encoding="utf-8") as handle:
        doc = hcl2.load(handle)
    (block,) = doc["packer"]
    (plugins,) = block["required_plugins"]
    amazon = {key: str(value).strip('"') for key, value in plugins["amazon"].items()}  # hcl2 5.x keeps quotes
    assert amazon["source"] == "github.com/hashicorp/amazon" and amazon["version"].startswith(">= 1.2.0")
    assert "packer init packaging/packer" in PACKER.read_text(encoding="utf-8")
    # Every source the template uses comes from a plugin it names.
    text = PACKER.read_text(encoding="utf-8")
    assert set(re.findall(r'^source "([a-z0-9]+)-', text, re.M)) == {"amazon"}
    assert "packer {" not in text, "Debian's packer 1.6.6 must be able to validate the template file alone"


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
    return _recap(_playbook_run(root, *extra))


def _recap(proc: subprocess.CompletedProcess[str]) -> dict[str, int]:
    recap = re.search(r"localhost\s+:\s+(.*)$", proc.stdout, re.M)
    assert recap is not None, proc.stdout
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", recap.group(1))}


def _playbook_run(root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return chroot(
        root, "env", "ANSIBLE_ROLES_PATH=/srv/ansible/roles", "ANSIBLE_NOCOLOR=1",
        "ANSIBLE_LOCAL_TEMP=/root/.ansible/tmp", "ansible-playbook", "-i", "localhost,",
        "-c", "local", "/srv/ansible/playbook.yml", "-e", "@/srv/vars.json", *extra,
        timeout=300,
    )


def test_ansible_syntax(tmp_path: Path) -> None:
    require_tools("ansible-playbook")
    env = {"PATH": "/usr/bin:/bin", "ANSIBLE_ROLES_PATH": str(ANSIBLE / "roles"),
           "HOME": str(tmp_path), "ANSIBLE_LOCAL_TEMP": str(tmp_path)}
    run(["ansible-playbook", "-i", "localhost,", "--syntax-check", ANSIBLE / "playbook.yml"],
        env=env)


def _role_settings(tmp_path: Path, settings: dict[str, Any], at_boot: bool = False) -> str:
    """The role's settings template rendered by ansible-core itself (its Jinja, its filters)."""
    require_tools("ansible")
    variables = tmp_path / "vars.json"
    variables.write_text(json.dumps({"chronyctl6_settings": settings, "chronyctl6_at_boot": at_boot}),
                         encoding="utf-8")
    out = tmp_path / "settings.toml"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "ANSIBLE_LOCAL_TEMP": str(tmp_path),
           "LANG": "C.UTF-8"}
    template = ANSIBLE / "roles" / "chronyctl6" / "templates" / "settings.toml.j2"
    run(["ansible", "localhost", "-c", "local", "-i", "localhost,", "-m", "template",
         "-a", f"src={template} dest={out}", "-e", f"@{variables}"], env=env, timeout=120)
    return out.read_text(encoding="utf-8")


def test_ansible_settings_template_writes_every_documented_key(tmp_path: Path) -> None:
    """Every key settings.toml knows, through the role's TOML macro, parses back to the input,
    and chronyctl6 reads it as meant."""
    from chronyctl6.configure import settings as schema

    given: dict[str, Any] = {
        "distro": "debian", "ipv6": "on", "phc": "off", "service_manager": "systemd", "wait": 12.5,
        "timesync": {"minpoll": -2, "maxpoll": 6},
        "servers": [{"host": "time.aws.com", "options": ["iburst", "maxpoll 10"]}],
        "pools": [{"host": "pool.example.org", "options": ["iburst", "maxsources 2"]}],
        "directives": ["maxclockerror 50", "makestep 1.0 3"],
    }
    assert set(given) | {"at_boot"} == schema._KNOWN_KEYS, "a documented key the test leaves out"
    text = _role_settings(tmp_path, given, at_boot=True)
    assert tomllib.loads(text) == {**given, "at_boot": True}
    parsed = schema.parse(text)
    assert (parsed.ipv6, parsed.phc, parsed.at_boot, parsed.wait) == ("on", "off", True, 12.5)
    assert [s.line for s in parsed.extra_sources] == [
        "server time.aws.com iburst maxpoll 10", "pool pool.example.org iburst maxsources 2"]
    assert "minpoll -2" in parsed.timesync_options


def test_ansible_settings_template_survives_hostile_values(tmp_path: Path) -> None:
    """Whatever the inventory holds, the file is valid TOML that says exactly that (chronyctl6's
    own validation then refuses what it must): quotes, backslashes, control characters, DEL,
    U+2028, astral characters, odd keys, floats in exponent form, nested lists and tables."""
    given: dict[str, Any] = {
        "directives": ['a"b', "back\\slash", "cr\rlf\n", "ff\f", "del\x7f", "ls\u2028", "\U0001f600",
                       "[table]", "x = 1"],
        "key with space": "v", "dotted.key": 1, "": "empty key", "ünï": "ok",
        "wait": 1e-05, "big": 2**40, "neg": -7, "flag": False,
        "nested": {"list": [[1, 2], ["a"]], "table": {"deep": {"er": "yes"}}},
        "servers": [{"host": "h", "options": []}],
    }
    text = _role_settings(tmp_path, given)
    assert tomllib.loads(text) == {**given, "at_boot": False}


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

    # Check mode with a change pending: it says what would change, shows chrony.conf's diff, and
    # writes nothing.
    before = (root / "etc/chrony/chrony.conf").read_bytes()
    variables["chronyctl6_at_boot"] = False  # the endpoint fixed in chrony.conf, not chosen at boot
    (root / "srv" / "vars.json").write_text(json.dumps(variables), encoding="utf-8")
    proc = _playbook_run(root, "--check", "--diff")
    pending = _recap(proc)
    assert pending["failed"] == 0 and pending["changed"] >= 1, pending
    task = proc.stdout[proc.stdout.index("TASK [chronyctl6 : Apply chronyctl6]"):]
    task = task[:task.index("TASK [", 1)]
    assert "--- /etc/chrony/chrony.conf" in task and "+server fd00:ec2::123 prefer iburst" in task, task
    assert "changed: [localhost]" in task
    assert (root / "etc/chrony/chrony.conf").read_bytes() == before, "check mode writes nothing"


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
    # The unit runs with ProtectSystem=strict: a moved directory must be made writable too.
    assert "ReadWritePaths=-{{ chronyctl6_textfile_dir }}" in tasks
    assert f"ReadWritePaths=-{defaults['chronyctl6_textfile_dir']}" in unit
