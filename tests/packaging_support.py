"""Builds shared by the packaging tests: each package is built at most once per pytest run.

The .deb and the .rpm take a few seconds each on two cores; several test modules look at them,
so the builds are cached for the whole run (functools.cache) in one scratch directory that is
removed when the run ends. The Debian 12 root the .deb is installed into (and the Debian 13 one
the booted-instance tests also boot) is cached across runs, keyed by suite and package list,
because building it needs Debian's mirror (so it is built by `packaging/test-root` outside the
tests' network namespace, see packaging/README.md).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib.util
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from tests.conftest import REPO, require

if TYPE_CHECKING:
    from sandbox.booted import BootedInstance

PACKAGING = REPO / "packaging"
# How long each build took in this run, for the report the tests print with -rA / -s.
TIMINGS: dict[str, float] = {}


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
def gen_docs() -> ModuleType:
    """packaging/gen_docs.py (a script, not a package: the docs generator), loaded as a module once."""
    spec = importlib.util.spec_from_file_location("gen_docs", PACKAGING / "gen_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def wheelhouse() -> Path:
    """The wheels the vendored RPM bundles, fetched by prepare-tests (PyPI, outside the netns)."""
    cache = Path(os.environ.get("CHRONYCTL6_TEST_CACHE", "/var/cache/chronyctl6-test"))
    path = cache / f"wheels-cp311-{os.uname().machine}"
    require(
        len(list(path.glob("*.whl"))) >= 6,
        f"no wheels in {path}: run `packaging/prepare-tests` (or packaging/fetch-wheels {path}) "
        "outside the tests' network namespace",
    )
    return path


@functools.cache
def built_vendored_rpm() -> Path:
    require_tools("rpmbuild")
    wheels = wheelhouse()
    started = time.monotonic()
    nodeps = ["--nodeps"] if Path("/etc/debian_version").exists() else []
    env = {**os.environ, "CHRONYCTL6_WHEELHOUSE": str(wheels)}
    proc = run([PACKAGING / "build-rpm", scratch() / "rpm-vendor", *nodeps], timeout=600, env=env)
    TIMINGS["build-rpm --with vendor"] = time.monotonic() - started
    rpm = Path(proc.stdout.strip().splitlines()[-1])
    assert rpm.is_file(), proc.stdout
    return rpm


# The Debian releases packaging/test-root builds a root for: suite -> Debian's release number.
DEBIAN_RELEASES = {"bookworm": 12, "trixie": 13}


@contextlib.contextmanager
def booted_debian(workdir: Path, suite: str = "bookworm") -> Iterator[BootedInstance]:
    """A Debian root of its own, prepared for systemd-nspawn to boot (the test boots it into the
    simulated instance's namespaces); closed and removed at the end."""
    from sandbox.booted import BootedInstance

    for tool in ("systemd-nspawn", "nsenter"):
        require(shutil.which(tool) is not None, f"{tool} (apt-get install systemd-container)")
    instance = BootedInstance(debian_root_tarball(suite), workdir)
    try:
        instance.prepare()
        yield instance
    finally:
        instance.close()
        shutil.rmtree(instance.workdir, ignore_errors=True)


def debian_root_tarball(suite: str = "bookworm") -> Path:
    """A cached Debian root (python3 deps, chrony, systemd's tools), built by test-root:
    Debian 12 (bookworm) unless another suite is asked for (trixie: Debian 13)."""
    release = DEBIAN_RELEASES[suite]
    proc = run([PACKAGING / "test-root", suite, "--path"], timeout=30)
    tarball = Path(proc.stdout.strip())
    require(
        tarball.is_file(),
        f"no cached Debian {release} test root at {tarball}: run `packaging/test-root {suite}` once "
        "outside the tests' network namespace (it needs Debian's mirror)",
    )
    return tarball


@functools.cache
def pristine_root() -> Path:
    """The cached Debian 12 root, unpacked once per run; tests only ever see overlays of it."""
    require(Path("/usr/sbin/chroot").exists(), "chroot (coreutils)")
    tarball = debian_root_tarball()
    root = scratch() / "pristine"
    root.mkdir()
    run(["tar", "-C", root, "-xf", tarball], timeout=180)
    return root


@contextlib.contextmanager
def fresh_root(base: Path) -> Iterator[Path]:
    """A throwaway Debian 12 root at base/root: an overlay over the pristine one, so each test
    module starts from the same untouched tree without unpacking 300 MB again."""
    lower = pristine_root()
    upper, work, merged = base / "upper", base / "work", base / "root"
    for path in (upper, work, merged):
        path.mkdir()
    options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    run(["mount", "-t", "overlay", "overlay", "-o", options, merged], timeout=30)
    try:
        yield merged
    finally:
        if run(["umount", merged], check=False, timeout=30).returncode != 0:
            run(["umount", "--lazy", merged], check=False, timeout=30)


def install_deb(root: Path, deb: Path) -> None:
    """dpkg -i, not apt: every Depends must already be met by Debian's own packages."""
    if chroot(root, "dpkg-query", "-W", "chronyctl6", check=False).returncode == 0:
        return
    shutil.copy(deb, root / "root" / deb.name)
    chroot(root, "dpkg", "-i", f"/root/{deb.name}")


def chroot(root: Path, *argv: str, timeout: float = 120, check: bool = True,
           ) -> subprocess.CompletedProcess[str]:
    """Run a program inside the throwaway root, in namespaces of its own.

    A network namespace (the suite already runs in a fresh one; a second costs nothing and
    keeps the rule when a single test is run by hand), and mount and PID namespaces so that a
    private /proc (psutil needs it) is mounted in the root and vanishes with the namespace.
    """
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}
    script = 'mount -t proc proc "$0/proc" && exec chroot "$0" "$@"'
    return run(["unshare", "--net", "--mount", "--pid", "--fork", "--", "sh", "-c", script,
                root, *argv], timeout=timeout, env=env, check=check)
