"""pytest fixtures for the simulated EC2 instance; register with
`pytest_plugins = ["sandbox.pytest_plugin"]` in tests/conftest.py.

    def test_x(ec2_factory):
        ec2 = ec2_factory(ipv6=False, timesync="silent")
        ec2.instance.run([...])

Every sandbox a test makes is closed at teardown, also when the test fails. Where the sandbox
cannot run (not root, chrony or iproute2 missing, not in an isolated network namespace) the
test is skipped with the reason, and fails instead under CI=true: CI must run every e2e test.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sandbox.ec2 import Ec2
from sandbox.namespaces import SandboxError, refuse_real_network

REQUIRED_PROGRAMS = ("chronyd", "chronyc", "ip", "nsenter", "unshare", "mount")


def sandbox_unavailable() -> str | None:
    """Why the sandbox cannot run here, or None."""
    if os.geteuid() != 0:
        return "the sandbox needs root (network namespaces, overlay mounts)"
    path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    missing = [p for p in REQUIRED_PROGRAMS if shutil.which(p, path=path) is None]
    if missing:
        return f"missing programs: {', '.join(missing)} (apt-get install chrony iproute2 util-linux)"
    try:
        refuse_real_network()
    except SandboxError as exc:
        return f"{exc} (run pytest under `unshare -n`)"
    return None


def require_sandbox() -> None:
    reason = sandbox_unavailable()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"end-to-end test cannot run in CI: {reason}")
    pytest.skip(f"SANDBOX UNAVAILABLE: {reason}")


@pytest.fixture
def ec2_factory() -> Iterator[Callable[..., Ec2]]:
    made: list[Ec2] = []

    def make(**options: Any) -> Ec2:
        require_sandbox()
        sandbox = Ec2(**options)
        made.append(sandbox)
        sandbox.start()
        return sandbox

    try:
        yield make
    finally:
        for sandbox in made:
            sandbox.close()


@pytest.fixture
def ec2(ec2_factory: Callable[..., Ec2]) -> Ec2:
    """A healthy Nitro instance with IPv6, IMDS over IPv6, tokens required, Time Sync serving."""
    return ec2_factory()
