"""Suite-wide rules: the suite runs in its own network namespace, and under CI a skip fails."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from sandbox.booted import BootedInstance

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
IN_CI = os.environ.get("CI") == "true"
# The simulated EC2 instance's fixtures (ec2, ec2_factory): see sandbox/pytest_plugin.py.
# Debian roots with each release's chrony, unpacked once per session (chrony_root): tests/chrony_roots.py.
pytest_plugins = ["sandbox.pytest_plugin", "tests.chrony_roots"]
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


# Tests in these folders send packets (NTP, instance metadata, the simulated instance): they run only
# where this machine's network cannot be reached. The others send none and run anywhere; a socket
# guard holds them to loopback in case one ever tries.
SENDS_PACKETS = {"measure", "diagnose", "effects", "e2e", "packaging"}


def _has_default_route() -> bool:
    for family in ("-4", "-6"):
        out = subprocess.run(["ip", family, "route", "show", "default"], capture_output=True,
                             text=True, check=False).stdout
        if out.strip():
            return True
    return False


def _sends_packets(item: pytest.Item) -> bool:
    parts = Path(str(item.path)).resolve().relative_to(Path(__file__).resolve().parent).parts
    return len(parts) > 1 and parts[0] in SENDS_PACKETS


# Fixtures that need root (they chown, mknod or start chronyd): a test that uses one is marked root
# here, so that forgetting the marker cannot put it in the set that runs as nobody.
ROOT_FIXTURES = {"live", "vm"}


@pytest.fixture
def vm(tmp_path: Path) -> Iterator[BootedInstance]:
    """A booted Debian 12 root of this test's own (systemd-nspawn, the .deb's prerequisites in it):
    tests/packaging_support.booted_debian. Root, and a network namespace the test joins it to."""
    from tests.packaging_support import booted_debian

    with booted_debian(tmp_path / "vm") as instance:
        yield instance


# Run in parallel (scripts/test: pytest-xdist, --dist loadgroup), tests that share something costly
# to make stay on one worker, so it is made once: the packages built and the Debian roots they are
# installed in, the booted systemd disks, the Debian roots with each release's chrony.
def _shared_group(item: pytest.Item) -> str | None:
    parts = Path(str(item.path)).resolve().relative_to(Path(__file__).resolve().parent).parts
    if parts[0] == "packaging":  # the booted ones apart: they are most of its time
        return "packaging-booted" if parts[-1] == "test_booted.py" else "packaging"
    if parts[-1] == "test_booted.py":  # a golden disk a release, made once
        callspec = getattr(item, "callspec", None)
        return f"booted-{callspec.params.get('release') if callspec is not None else ''}"
    if "chrony_root" in getattr(item, "fixturenames", ()):
        return "chrony-roots"
    return None


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    for item in items:
        if ROOT_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.root)
        group = _shared_group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
    if any(_sends_packets(item) for item in items) and _has_default_route():
        raise pytest.UsageError("tests that send packets must run in a fresh network namespace "
                                "(this one has a default route): use scripts/test")


def _loopback_only(address: object) -> None:
    host = address[0] if isinstance(address, tuple) else address
    import ipaddress

    try:
        if host == "localhost" or ipaddress.ip_address(str(host).split("%")[0]).is_loopback:
            return
    except ValueError:
        pass
    raise AssertionError(f"a test outside {sorted(SENDS_PACKETS)} tried to reach {host!r}")


@pytest.fixture(autouse=True)
def _no_packets_off_loopback(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests that send no packets by design are held to that in-process."""
    if _sends_packets(request.node):
        return
    import socket

    for name in ("connect", "connect_ex", "sendto"):
        real = getattr(socket.socket, name)

        def guarded(self: socket.socket, *args: object, _real: object = real) -> object:
            if self.family in (socket.AF_INET, socket.AF_INET6):
                _loopback_only(args[-1] if args else None)
            return _real(self, *args)  # type: ignore[operator]

        monkeypatch.setattr(socket.socket, name, guarded)
