"""The RPM for Amazon Linux and the RHEL family: built by rpmbuild from the spec, linted, run.

rpmbuild runs here on Debian with `--nodeps`: Debian's rpm database knows none of the
dpkg-installed build dependencies (python3-setuptools, -wheel, -typer), which are installed by
dpkg all the same. The payload is then unpacked into a throwaway Debian 12 root (python 3.11,
Debian's typer 0.7.0) and run from there, pointing Python at the RHEL site-packages directory
the RPM installs into.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from chronyctl6 import __version__
from tests.conftest import REPO
from tests.packaging_support import (
    PACKAGING,
    built_rpm,
    built_vendored_rpm,
    chroot,
    fresh_root,
    require_tools,
    run,
)

# Packages installed into chroots of cached roots: root.
pytestmark = pytest.mark.root

FIXTURES = REPO / "tests" / "fixtures"
SPEC = PACKAGING / "rpm" / "chronyctl6.spec"
UNITDIR = "/usr/lib/systemd/system"
SITE = "/usr/lib/python3.11/site-packages"


@pytest.fixture(scope="module")
def rpm() -> Path:
    return built_rpm()


def _query(rpm: Path, fmt: str) -> str:
    return run(["rpm", "-qp", "--queryformat", fmt, rpm]).stdout


def _unpack_payload(rpm: Path, root: Path) -> None:
    require_tools("rpm2cpio", "cpio")
    cpio = subprocess.run(["rpm2cpio", rpm], capture_output=True, check=True, timeout=60)
    subprocess.run(["cpio", "-idm", "--quiet"], input=cpio.stdout, cwd=root, check=True,
                   timeout=60)


@pytest.fixture(scope="module")
def payload_root(rpm: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh Debian 12 root with the RPM's payload unpacked over it (no rpm database)."""
    with fresh_root(tmp_path_factory.mktemp("rpmroot")) as root:
        _unpack_payload(rpm, root)
        yield root


def test_spec_version_is_the_package_version() -> None:
    version = re.search(r"^Version:\s*(\S+)", SPEC.read_text(encoding="utf-8"), re.M)
    assert version is not None and version.group(1) == __version__


def test_rpm_header(rpm: Path) -> None:
    assert _query(rpm, "%{NAME} %{VERSION} %{ARCH}") == f"chronyctl6 {__version__} noarch"
    requires = set(run(["rpm", "-qpR", rpm]).stdout.split())
    for needed in ("chrony", "python3-typer", "python3-jinja2", "python3-psutil",
                   "python3-ntplib"):
        assert needed in requires, requires


def test_rpm_contents(rpm: Path) -> None:
    files = set(run(["rpm", "-qpl", rpm]).stdout.split())
    expected = {
        "/usr/bin/chronyctl6",
        "/usr/bin/check_timesync",
        f"{SITE}/chronyctl6/cli.py",
        "/usr/share/man/man1/chronyctl6.1.gz",
        "/usr/share/man/man1/check_timesync.1.gz",
        "/usr/share/man/man5/chronyctl6-settings.5.gz",
        "/usr/share/bash-completion/completions/chronyctl6",
        "/usr/share/zsh/site-functions/_chronyctl6",
        "/usr/share/fish/vendor_completions.d/chronyctl6.fish",
        f"{UNITDIR}/chronyctl6-boot.service",
        f"{UNITDIR}/chronyctl6-check.service",
        f"{UNITDIR}/chronyctl6-check.timer",
        f"{UNITDIR}/chronyctl6-wait.service",
    }
    assert expected <= files, sorted(expected - files)
    templates = sorted((REPO / "templates").glob("*.j2"))
    assert templates
    for template in templates:
        assert f"{SITE}/chronyctl6/templates/{template.name}" in files
    # %doc and %license, where the distribution keeps them (docdir with or without the version).
    docs = run(["rpm", "-qpd", rpm]).stdout.split()
    licenses = run(["rpm", "-qpL", rpm]).stdout.split()
    assert any(p.endswith("/README.md") for p in docs), docs
    assert any(p.endswith("/examples/settings.toml") for p in docs), docs
    assert [p.rsplit("/", 1)[-1] for p in licenses] == ["LICENSE"], licenses
    assert not any("/libexec/" in p for p in files), sorted(files)  # removal runs the CLI itself


def test_rpmlint_clean(rpm: Path) -> None:
    """No error or warning on the package or the spec, beyond the filters justified in
    packaging/rpm/rpmlint.toml."""
    require_tools("rpmlint")
    proc = run(["rpmlint", "-c", PACKAGING / "rpm" / "rpmlint.toml", rpm, SPEC], check=False)
    # (The spec is linted once here; it covers the --with vendor branches too.)
    findings = [line for line in proc.stdout.splitlines() if re.search(r": [EW]: ", line)]
    assert proc.returncode == 0 and findings == [], proc.stdout + proc.stderr


def test_payload_runs_with_python311_and_typer_070(payload_root: Path) -> None:
    env = f"PYTHONPATH={SITE}"
    version = chroot(payload_root, "env", env, "chronyctl6", "--version").stdout.strip()
    assert version == f"chronyctl6 {__version__}"
    where = chroot(payload_root, "env", env, "python3", "-c",
                   "import chronyctl6, typer; print(chronyctl6.__file__, typer.__version__)")
    module, typer_version = where.stdout.split()
    assert module.startswith(f"{SITE}/chronyctl6/") and typer_version == "0.7.0"
    plugin = chroot(payload_root, "env", env, "check_timesync", "-V", check=False)
    assert plugin.returncode == 3 and plugin.stdout.startswith(f"check_timesync v{__version__}"), plugin
    # The launcher runs check without typer (no reply from a closed port: UNKNOWN).
    fast = chroot(payload_root, "env", env, "python3", "-X", "importtime", "/usr/bin/chronyctl6", "check",
                  "--no-chronyd", "-s", "::1", "--port", "9", "-t", "0.2", "-o", "nagios", check=False)
    assert fast.returncode == 3 and "chronyctl6.measure.exchange" in fast.stderr, fast
    assert "typer" not in fast.stderr
    # An Amazon Linux 2023 image (the stock files it ships), as an image build would render it.
    image = payload_root / "srv" / "image"
    shutil.copytree(FIXTURES / "stock" / "amzn2023", image, symlinks=True)
    rendered = chroot(payload_root, "env", env, "chronyctl6", "render", "--root", "/srv/image",
                      "--ipv6", "off", "--phc", "off").stdout
    assert rendered.count("server 169.254.169.123 prefer iburst minpoll 4 maxpoll 4") == 1
    active = [line for line in rendered.splitlines() if not line.lstrip().startswith("#")]
    assert not any("fd00:ec2::123" in line for line in active), rendered


def test_rpm_units_verify(payload_root: Path) -> None:
    require_tools("systemd-analyze")
    units = [f"{UNITDIR}/{u}" for u in
             ("chronyctl6-boot.service", "chronyctl6-check.service", "chronyctl6-check.timer",
              "chronyctl6-wait.service")]
    proc = run(["systemd-analyze", "verify", "--man=no", f"--root={payload_root}", *units],
               check=False)
    assert proc.returncode == 0 and proc.stdout + proc.stderr == "", proc.stdout + proc.stderr


def test_rpm_man_page(payload_root: Path) -> None:
    require_tools("man")
    page = payload_root / "usr/share/man/man1/chronyctl6.1.gz"
    assert gzip.decompress(page.read_bytes()).startswith(b".TH CHRONYCTL6 1 ")
    proc = run(["man", "--warnings", "-l", "-Tutf8", page],
               env={"PATH": "/usr/bin:/bin", "MANWIDTH": "100", "LANG": "C.UTF-8"})
    assert proc.stderr == ""


def test_vendored_rpm_runs_without_any_distro_python_package(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """--with vendor (Amazon Linux 2023, RHEL 9): only python3 >= 3.11 and chrony required, and
    it runs in a root from which Debian's typer, click, jinja2, markupsafe, psutil and ntplib
    have been purged."""
    rpm = built_vendored_rpm()
    requires = set(run(["rpm", "-qpR", rpm]).stdout.split())
    assert not any("typer" in r or "jinja2" in r or "ntplib" in r or "psutil" in r
                   for r in requires), requires
    assert _query(rpm, "%{ARCH}") == os.uname().machine
    require_tools("rpmlint")
    lint = run(["rpmlint", "-c", PACKAGING / "rpm" / "rpmlint.toml", rpm], check=False)
    assert lint.returncode == 0 and not re.search(r": [EW]: ", lint.stdout), lint.stdout

    with fresh_root(tmp_path_factory.mktemp("vendorroot")) as root:
        chroot(root, "dpkg", "--purge", "--force-depends", "python3-typer", "python3-click",
               "python3-jinja2", "python3-markupsafe", "python3-psutil", "python3-ntplib")
        _unpack_payload(rpm, root)
        # The private directory (%{_libdir}/chronyctl6): where the bundled chronyctl6 sits.
        (cli,) = [f for f in run(["rpm", "-qpl", rpm]).stdout.split()
                  if f.endswith("/chronyctl6/cli.py")]
        vendordir = cli.removesuffix("/chronyctl6/cli.py")
        assert vendordir in ("/usr/lib64/chronyctl6", "/usr/lib/chronyctl6"), vendordir
        version = chroot(root, "chronyctl6", "--version").stdout.strip()
        assert version == f"chronyctl6 {__version__}"
        image = root / "srv" / "image"
        shutil.copytree(FIXTURES / "stock" / "amzn2023", image, symlinks=True)
        rendered = chroot(root, "chronyctl6", "render", "--root", "/srv/image", "--ipv6", "off",
                          "--phc", "off").stdout
        assert rendered.count("server 169.254.169.123 prefer iburst minpoll 4 maxpoll 4") == 1
        # The launcher runs -I: PYTHONPATH cannot swap a bundled module for another.
        where = chroot(root, "env", "PYTHONPATH=/nonexistent", "python3", "-I", "-c",
                       f"import sys; sys.path.insert(0, {vendordir!r}); "
                       "import typer, psutil, ntplib, jinja2; "
                       "print(typer.__file__, psutil.__file__, ntplib.__file__, jinja2.__file__)")
        assert all(p.startswith(vendordir + "/") for p in where.stdout.split())


def test_rpm_preun_releases_chrony_only_on_the_last_removal(rpm: Path) -> None:
    scripts = run(["rpm", "-qp", "--scripts", rpm]).stdout
    preun = scripts.split("preuninstall scriptlet")[1].split("scriptlet")[0]
    assert re.search(r'if \[ "\$1" -eq 0 \]; then\s+/usr/bin/chronyctl6 release >&2 \|\| :', preun), preun
    # After the files are gone (the last removal only): the state directory goes, saying what stays.
    postun = scripts.split("postuninstall scriptlet")[1].split("scriptlet")[0]
    assert re.search(r'if \[ "\$1" -eq 0 \]; then\s+if \[ -e /var/lib/chronyctl6 \]', postun), postun
    assert "rm -rf /var/lib/chronyctl6" in postun and "kept chrony's configuration" in postun
