"""Suite-wide rules: the suite runs in its own network namespace, and under CI a skip fails."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
IN_CI = os.environ.get("CI") == "true"
# The simulated EC2 instance's fixtures (ec2, ec2_factory): see sandbox/pytest_plugin.py.
pytest_plugins = ["sandbox.pytest_plugin"]
_skipped: list[str] = []


def require(condition: bool, why: str) -> None:
    """Skip loudly when a real dependency is truly absent; under CI that is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI installs every real dependency, yet: {why}")
    pytest.skip(f"MISSING DEPENDENCY: {why}")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if IN_CI and _skipped:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print(f"\nCI=true: {len(_skipped)} skipped test(s) count as failures: {', '.join(_skipped)}")


def _has_default_route() -> bool:
    for family in ("-4", "-6"):
        out = subprocess.run(["ip", family, "route", "show", "default"], capture_output=True,
                             text=True, check=False).stdout
        if out.strip():
            return True
    return False


@pytest.fixture(scope="session", autouse=True)
def _isolated_network() -> Iterator[None]:
    """The safety rule: nothing here may reach this machine's network."""
    if _has_default_route():
        pytest.exit("the tests must run in a fresh network namespace: use scripts/test", returncode=2)
    yield
