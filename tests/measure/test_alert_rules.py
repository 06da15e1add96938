"""One table of cases, three judges that must agree: the verdict (`check`'s exit status), the
Nagios line (its max_error perfdata and thresholds), and the shipped Prometheus alert rules run
by `promtool test rules` on the very series `check -o prometheus` writes for each case.

The error bound all three use: max_error = |offset| + delay/2 + root delay/2 + root dispersion.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import pytest
from prometheus_client.parser import text_string_to_metric_families

from chronyctl6.measure import report
from chronyctl6.measure.check import CheckResult, CheckStatus, Thresholds, evaluate
from chronyctl6.measure.exchange import Measurement, Sample, Target
from tests.conftest import require

RULES = Path(__file__).resolve().parents[2] / "packaging" / "prometheus" / "chronyctl6.rules.yml"


class Case(NamedTuple):
    name: str
    offset: float | None  # None: no valid reply
    delay: float
    root_delay: float
    root_dispersion: float
    warn: float
    crit: float
    status: CheckStatus


CASES = [
    Case("healthy", 0.00005, 0.0002, 0.0001, 0.0002, 0.1, 1.0, CheckStatus.OK),
    Case("negative offset, healthy", -0.02, 0.0002, 0.0, 0.0, 0.1, 1.0, CheckStatus.OK),
    Case("path bound tips the offset over warning", -0.099, 0.004, 0.0, 0.0, 0.1, 1.0,
         CheckStatus.WARNING),
    Case("root distance tips it over warning", 0.05, 0.0002, 0.02, 0.04, 0.1, 1.0,
         CheckStatus.WARNING),
    Case("root distance just short of warning", 0.05, 0.0002, 0.02, 0.0398, 0.1, 1.0,
         CheckStatus.OK),
    Case("offset beyond critical", -1.5, 0.0002, 0.0, 0.0, 0.1, 1.0, CheckStatus.CRITICAL),
    Case("root dispersion alone beyond critical", 0.001, 0.0002, 0.0, 2.5, 0.1, 1.0,
         CheckStatus.CRITICAL),
    Case("microsecond thresholds", 0.00002, 0.00001, 0.0, 0.0, 0.00001, 0.00005,
         CheckStatus.WARNING),
    Case("microsecond thresholds, critical", 0.00006, 0.00001, 0.0, 0.0, 0.00001, 0.00005,
         CheckStatus.CRITICAL),
    Case("no valid reply", None, 0.0, 0.0, 0.0, 0.1, 1.0, CheckStatus.UNKNOWN),
]
ALERTS = {
    CheckStatus.OK: set(),
    CheckStatus.WARNING: {"ClockOffsetHigh"},
    CheckStatus.CRITICAL: {"ClockOffsetCritical"},
    CheckStatus.UNKNOWN: {"TimeSyncUnreachable"},
}
SERVER = "fd00:ec2::123"


def result(case: Case) -> CheckResult:
    m = Measurement(Target(SERVER, socket.AF_INET6, (SERVER, 123, 0, 0)), sent=2)
    if case.offset is None:
        m.rejected = Counter({"root_distance_too_large": 2})
    else:
        m.samples.append(Sample(case.offset, case.delay, 1, 0, 4, "AMZN", case.root_delay,
                                case.root_dispersion))
    return evaluate([m], Thresholds(case.warn, case.crit))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_verdict_and_nagios_line(case: Case) -> None:
    r = result(case)
    assert r.status is case.status
    line = report.to_nagios(r)
    assert line.startswith(f"NTP {case.status.name}: ") and "\n" not in line
    assert "e-" not in line and "e+" not in line  # plain decimals only
    if case.offset is None:
        assert "|" not in line
        return
    expected = abs(case.offset) + case.delay / 2 + case.root_delay / 2 + case.root_dispersion
    assert r.max_error == pytest.approx(expected)
    m = re.search(r"\bmax_error=([0-9.]+)s;([0-9.]+);([0-9.]+);0;", line)
    assert m is not None, line
    perf, warn, crit = (float(x) for x in m.groups())
    assert (warn, crit) == (case.warn, case.crit)
    assert perf == pytest.approx(expected, abs=1e-9)
    # The perfdata alone gives the verdict, as a graphing or alerting system would read it.
    judged = (CheckStatus.CRITICAL if perf >= crit else
              CheckStatus.WARNING if perf >= warn else CheckStatus.OK)
    assert judged is case.status


def promtool_tests() -> dict[str, object]:
    """A promtool unit test: each case's metrics, as `check` writes them, held for 30
    minutes on its own instance; at the end exactly the alerts of its verdict fire."""
    series: list[dict[str, str]] = []
    rules_text = RULES.read_text(encoding="utf-8")
    # promtool compares, per alert and time, every alert firing across all instances.
    expected: dict[str, list[dict[str, object]]] = {
        name: [] for name in re.findall(r"^\s*- alert: (\w+)", rules_text, re.M)
        if name != "ClockCheckStale"  # about node_exporter's file, not the verdict
    }
    for i, case in enumerate(CASES):
        instance = f"case-{i}"
        text = report.to_prometheus(result(case))
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                labels = {"instance": instance, "job": "node", **s.labels}
                inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
                series.append({"series": f"{s.name}{{{inner}}}", "values": f"{s.value!r}x30"})
        for alert in ALERTS[case.status]:
            expected[alert].append(_expected(alert, instance))
    checks = [{"eval_time": "30m", "alertname": name, "exp_alerts": alerts}
              for name, alerts in expected.items()]
    return {"rule_files": [str(RULES)], "evaluation_interval": "1m",
            "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": checks}]}


def _expected(alert: str, instance: str) -> dict[str, object]:
    level = "critical" if alert == "ClockOffsetCritical" else "warning"
    if alert == "TimeSyncUnreachable":
        return {"exp_labels": {"severity": "warning", "instance": instance, "job": "node",
                               "server": SERVER},
                "exp_annotations": {
                    "summary": f"No valid reply from {SERVER} on {instance}",
                    "description": f"chronyctl6 check got no valid NTP reply from {SERVER} for 5 "
                                   "minutes (no IPv6 address, a non-Nitro instance, or a security "
                                   "rule)."}}
    against = f"the Amazon Time Sync Service ({SERVER})" if level == "warning" else SERVER
    minutes = 5 if level == "warning" else 2
    return {"exp_labels": {"severity": level, "instance": instance, "job": "node",
                           "server": SERVER},
            "exp_annotations": {
                "summary": f"Clock of {instance} may be off UTC by more than the {level} "
                           f"threshold ({SERVER})",
                "description": f"For {minutes} minutes, |offset| + path bound + root distance "
                               f"measured against {against} on {instance} has reached the "
                               f"{level} threshold. Run `chronyctl6 check` and `chronyctl6 "
                               "doctor` on the instance."}}


@pytest.mark.tools  # promtool
def test_alert_rules_agree_with_the_verdict_on_every_case(tmp_path: Path) -> None:
    require(shutil.which("promtool") is not None, "promtool is not installed (apt-get install "
            "prometheus)")
    spec = tmp_path / "verdict_cases.test.yml"
    spec.write_text(json.dumps(promtool_tests(), indent=1))  # JSON is YAML
    done = subprocess.run(["promtool", "test", "rules", str(spec)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr


@pytest.mark.tools  # promtool
def test_shipped_rules_and_their_own_unit_tests_pass() -> None:
    """The rules file is valid, and its hand-written cases hold (the stale and the missing
    textfile among them)."""
    require(shutil.which("promtool") is not None, "promtool is not installed (apt-get install "
            "prometheus)")
    for args in (["check", "rules", RULES.name], ["test", "rules", "chronyctl6.rules.test.yml"]):
        done = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120,
                              check=False, cwd=RULES.parent)
        assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr
    text = RULES.read_text()
    assert "alert: ClockCheckStale" in text and "alert: ClockCheckMissing" in text
