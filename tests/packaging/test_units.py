"""The systemd units' confinement, scored by systemd itself.

`systemd-analyze security --offline=true` scores a unit file's exposure (0 = fully confined,
10 = unconfined) without a running systemd. Targets: the check unit (every minute, on every
instance, talks to the network) below 3.0, the boot step (root, writes /run, talks to IMDS and
chronyd) below 5.0. That the confined units still do their job is shown on a booted instance:
tests/packaging/test_booted.py (the check unit writes its metrics, chronyd's state included) and
tests/e2e/test_booted.py (the boot step picks the endpoint on every boot).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.packaging_support import PACKAGING, require_tools, run

UNITS = PACKAGING / "systemd"
# systemd-analyze (the systemd package, which packaging/prepare-tests installs).
pytestmark = pytest.mark.tools
TARGETS = {"chronyctl6-check.service": 3.0, "chronyctl6-boot.service": 5.0, "chronyctl6-wait.service": 5.0}


def exposure(unit: Path) -> float:
    require_tools("systemd-analyze")
    proc = run(["systemd-analyze", "security", "--offline=true", "--no-pager", unit.name],
               cwd=unit.parent, check=False, timeout=60)
    found = re.search(rf"Overall exposure level for {re.escape(unit.name)}: (\d+\.\d)", proc.stdout)
    assert found is not None, proc.stdout + proc.stderr
    return float(found.group(1))


def unit_settings(unit: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in unit.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_unit_exposure_below_target(name: str) -> None:
    score = exposure(UNITS / name)
    print(f"systemd-analyze security --offline=true {name}: {score}")
    assert score < TARGETS[name], f"{name}: exposure {score}, target < {TARGETS[name]}"


def test_scoring_tells_a_confined_unit_from_an_open_one(tmp_path: Path) -> None:
    """The score is not a constant: the same check unit stripped of its confinement is exposed."""
    lines = (UNITS / "chronyctl6-check.service").read_text(encoding="utf-8").splitlines()
    keep = ("[", "#", "Description", "Documentation", "After", "Condition", "Type", "ExecStart",
            "StandardOutput", "SuccessExitStatus", "TimeoutStartSec", "Nice", "Environment")
    open_unit = tmp_path / "chronyctl6-check.service"
    open_unit.write_text("\n".join(line for line in lines if not line or line.startswith(keep)) + "\n",
                         encoding="utf-8")
    assert exposure(open_unit) > 8.0


def _expand(value: str, environment: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: environment.get(m.group(1) or m.group(2), m.group(0)),
                  value)


def test_check_unit_may_write_where_it_writes_and_nowhere_else() -> None:
    """ProtectSystem=strict makes everything read-only: the textfile --textfile names (through an
    Environment= variable or not) must sit in a ReadWritePaths= directory; nothing else is
    writable, and no capability is left."""
    settings = unit_settings(UNITS / "chronyctl6-check.service")
    assert settings["ProtectSystem"] == ["strict"]
    assert settings["CapabilityBoundingSet"] == [""]
    environment = dict(
        word.strip('"').split("=", 1)
        for line in settings.get("Environment", []) for word in line.split() if "=" in word
    )
    (exec_start,) = settings["ExecStart"]
    words = _expand(exec_start, environment).split()
    if "--textfile-dir" in words:  # check --textfile-dir DIR writes DIR/chronyctl6.prom
        directory = Path(words[words.index("--textfile-dir") + 1])
    else:
        directory = Path(words[words.index("--textfile") + 1]).parent
    writable = [Path(p.lstrip("-")) for line in settings["ReadWritePaths"] for p in line.split()]
    assert writable == [directory], (directory, writable)
    # The Condition that skips the run checks the same directory.
    assert [_expand(c, environment) for c in settings["ConditionPathIsDirectory"]] == [str(directory)]


def test_boot_unit_writes_only_its_runtime_and_state_directories() -> None:
    settings = unit_settings(UNITS / "chronyctl6-boot.service")
    assert settings["ProtectSystem"] == ["strict"]
    assert settings["RuntimeDirectory"] == ["chronyctl6"]
    assert settings["RuntimeDirectoryPreserve"] == ["yes"]
    assert settings["StateDirectory"] == ["chronyctl6"] and settings["StateDirectoryMode"] == ["0700"]
    assert settings["ReadWritePaths"] == ["-/run/chrony"]
    assert settings["CapabilityBoundingSet"] == ["CAP_DAC_OVERRIDE"]
    families = set(settings["RestrictAddressFamilies"][0].split())
    assert families == {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"}


def test_wait_unit_orders_before_time_sync_target_like_chrony_wait() -> None:
    """In place of chrony-wait.service: the same ordering (after chronyd, before and wanting
    time-sync.target, pulled in by multi-user.target), and nothing but loopback."""
    settings = unit_settings(UNITS / "chronyctl6-wait.service")
    assert settings["Before"] == ["time-sync.target"] and settings["Wants"] == ["time-sync.target"]
    assert set(settings["After"][0].split()) >= {"chrony.service", "chronyd.service", "chronyctl6-boot.service"}
    assert settings["Type"] == ["oneshot"] and settings["RemainAfterExit"] == ["yes"]
    assert settings["ExecStart"] == ["/usr/bin/chronyctl6 wait --timeout 180"]
    assert settings["WantedBy"] == ["multi-user.target"]
    assert settings["IPAddressDeny"] == ["any"] and settings["IPAddressAllow"] == ["localhost"]
