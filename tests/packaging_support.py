"""Builds shared by the packaging tests: each package is built at most once per pytest run.

The .deb and the .rpm take a few seconds each on two cores; several test modules look at them,
so the builds are cached for the whole run (functools.cache) in one scratch directory that is
removed when the run ends. The Debian 12 root the .deb is installed into is cached across runs,
keyed by its package list, because building it needs Debian's mirror (so it is built by
`packaging/test-root` outside the tests' network namespace, see packaging/README.md).
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGING = REPO / "packaging"
IN_CI = os.environ.get("CI") == "true"
# How long each build took in this run, for the report the tests print with -rA / -s.
TIMINGS: dict[str, float] = {}


def require(condition: bool, why: str) -> None:
    """Skip loudly when a real dependency is truly absent; under CI that is a failure.

    The same rule as tests/conftest.py's `require`, kept here so this module stands alone.
    """
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI installs every real dependency, yet: {why}")
    pytest.skip(f"MISSING DEPENDENCY: {why}")


def require_tools(*names: str) -> None:
    missing = [name for name in names if shutil.which(name) is None]
    require(not missing, f"not installed: {', '.join(missing)} (see packaging/README.md)")


def run(
    argv: Sequence[str | Path],
    *,
    timeout: float = 300,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a program with a deadline; on failure the assertion shows its whole output."""
    proc = subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, argv))} exited {proc.returncode}\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc


@functools.cache
def scratch() -> Path:
    path = Path(tempfile.mkdtemp(prefix="chronyctl6-pkg-"))
    atexit.register(shutil.rmtree, path, True)
    return path


@functools.cache
def built_deb() -> Path:
    require_tools("dpkg-buildpackage", "dh", "pybuild")
    started = time.monotonic()
    proc = run([PACKAGING / "build-deb", scratch() / "deb"], timeout=600)
    TIMINGS["build-deb"] = time.monotonic() - started
    deb = Path(proc.stdout.strip().splitlines()[-1])
    assert deb.is_file(), proc.stdout
    return deb


@functools.cache
def built_rpm() -> Path:
    require_tools("rpmbuild")
    started = time.monotonic()
    # --nodeps: this rpm's database knows none of the dpkg-installed build dependencies.
    nodeps = ["--nodeps"] if Path("/etc/debian_version").exists() else []
    proc = run([PACKAGING / "build-rpm", scratch() / "rpm", *nodeps], timeout=600)
    TIMINGS["build-rpm"] = time.monotonic() - started
    rpm = Path(proc.stdout.strip().splitlines()[-1])
    assert rpm.is_file(), proc.stdout
    return rpm


def debian_root_tarball() -> Path:
    """The cached Debian 12 root (python3 deps, chrony, systemd's tools), built by test-root."""
    proc = run([PACKAGING / "test-root", "--path"], timeout=30)
    tarball = Path(proc.stdout.strip())
    require(
        tarball.is_file(),
        f"no cached Debian 12 test root at {tarball}: run `packaging/test-root` once outside "
        "the tests' network namespace (it needs Debian's mirror)",
    )
    return tarball


def chroot(root: Path, *argv: str, timeout: float = 120, check: bool = True,
           ) -> subprocess.CompletedProcess[str]:
    """Run a program inside the throwaway root, in a network namespace of its own.

    The suite already runs in a fresh namespace; a second one costs nothing and keeps the rule
    even when a single test is run by hand.
    """
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}
    return run(["unshare", "-n", "--", "chroot", root, *argv], timeout=timeout, env=env,
               check=check)
