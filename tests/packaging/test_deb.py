"""The Debian package: built with Debian's tooling, lintian clean, and working when installed.

The .deb is installed with dpkg into a throwaway Debian 12 root that holds only Debian's own
python3 packages (typer 0.7.0, click 8.1.3, jinja2, psutil, ntplib 0.3.3) and chrony, and run
from there with chroot, in a network namespace of its own. Nothing is ever booted.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from chronyctl6 import __version__
from tests.conftest import REPO
from tests.helpers import put
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

UNITS = ("chronyctl6-boot.service", "chronyctl6-check.service", "chronyctl6-check.timer", "chronyctl6-wait.service")
TIME_SYNC_V6 = "server fd00:ec2::123 prefer iburst minpoll 4 maxpoll 4"
# What Debian 12 ships, and so what the package must work with.
DEBIAN12_PYTHON = {"python3-typer": "0.7.0", "python3-click": "8.1.3", "python3-ntplib": "0.3.3"}


@pytest.fixture(scope="module")
def deb() -> Path:
    return built_deb()


@pytest.fixture(scope="module")
def root(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh Debian 12 root from the cached tarball, with the .deb installed by dpkg."""
    with fresh_root(tmp_path_factory.mktemp("debroot")) as target:
        install_deb(target, deb)
        yield target


def test_changelog_version_is_the_package_version() -> None:
    require_tools("dpkg-parsechangelog")
    changelog = PACKAGING / "debian" / "changelog"
    version = run(["dpkg-parsechangelog", "-l", changelog, "-SVersion"]).stdout.strip()
    assert version == __version__


def test_deb_fields_and_contents(deb: Path) -> None:
    fields = {
        name: run(["dpkg-deb", "-f", deb, name]).stdout.strip()
        for name in ("Package", "Version", "Architecture", "Depends")
    }
    assert fields["Package"] == "chronyctl6"
    assert fields["Version"] == __version__
    assert fields["Architecture"] == "all"
    depends = {d.strip().split(" ")[0] for d in fields["Depends"].split(",")}
    for needed in ("chrony", "python3-typer", "python3-jinja2", "python3-psutil", "python3-ntplib"):
        assert needed in depends, fields["Depends"]

    listing = run(["dpkg-deb", "-c", deb]).stdout
    paths = {line.split(" -> ")[0].split()[-1].lstrip(".") for line in listing.splitlines()}  # a link by its name
    expected = {
        "/usr/bin/chronyctl6",
        "/usr/bin/check_timesync",
        "/usr/lib/nagios/plugins/check_timesync",
        "/usr/lib/python3/dist-packages/chronyctl6/cli.py",
        "/usr/share/man/man1/chronyctl6.1.gz",
        "/usr/share/man/man1/check_timesync.1.gz",
        "/usr/share/man/man5/chronyctl6-settings.5.gz",
        "/usr/share/doc/chronyctl6/README.md.gz",
        "/usr/share/doc/chronyctl6/examples/settings.toml",
        "/usr/share/bash-completion/completions/chronyctl6",
        "/usr/share/zsh/vendor-completions/_chronyctl6",
        "/usr/share/fish/vendor_completions.d/chronyctl6.fish",
        *(f"/lib/systemd/system/{unit}" for unit in UNITS),
    }
    assert expected <= paths, sorted(expected - paths)
    assert not [p for p in paths if p.startswith("/usr/libexec/")]  # removal runs the CLI itself
    # Every template in the repository ships, inside the package as chronyctl6.templates.
    templates = sorted((REPO / "templates").glob("*.j2"))
    assert templates, "the repository has no templates/*.j2"
    for template in templates:
        assert f"/usr/lib/python3/dist-packages/chronyctl6/templates/{template.name}" in paths


def test_lintian_clean(deb: Path) -> None:
    """No error, warning, info or pedantic tag, except the overrides justified in the package.

    The tags are read from the output: lintian 2.116's --fail-on also counts hints its own
    screens mask (M:, e.g. dist-info/top_level.txt), so --fail-on info cannot be used.
    """
    require_tools("lintian")
    proc = run(["lintian", "--pedantic", "--display-info", "--fail-on", "error,warning", deb],
               check=False, timeout=300)
    tags = [line for line in proc.stdout.splitlines() if re.match(r"^[EWIPX]: ", line)]
    assert proc.returncode == 0 and not tags, proc.stdout + proc.stderr


def test_installed_against_debians_own_python_packages(root: Path) -> None:
    versions = dict(
        line.split("\t")
        for line in chroot(root, "dpkg-query", "-W", *DEBIAN12_PYTHON, "chronyctl6")
        .stdout.splitlines()
    )
    for package, version in DEBIAN12_PYTHON.items():
        assert versions[package].startswith(version), versions
    assert versions["chronyctl6"] == __version__
    where = chroot(root, "python3", "-c",
                   "import typer, chronyctl6; print(typer.__file__); print(chronyctl6.__file__)")
    assert all(p.startswith("/usr/lib/python3/dist-packages/") for p in where.stdout.split())


def test_check_timesync_from_installed_package(root: Path) -> None:
    """The drop-in for check_ntp_time runs with Debian's python3, from /usr/bin and from where
    Nagios looks for plugins; -V exits 3 as monitoring-plugins 2.3's plugins do."""
    for path in ("check_timesync", "/usr/lib/nagios/plugins/check_timesync"):
        proc = chroot(root, path, "-V", check=False)
        assert proc.returncode == 3 and proc.stdout.strip().startswith(f"check_timesync v{__version__}"), proc
    proc = chroot(root, "check_timesync", "-H", "::1", "-p", "9", "-t", "2", check=False)
    assert proc.returncode == 2 and proc.stdout.startswith("NTP CRITICAL: No response"), proc


def test_version_from_installed_package(root: Path) -> None:
    assert chroot(root, "chronyctl6", "--version").stdout.strip() == f"chronyctl6 {__version__}"
    proc = chroot(root, "python3", "-m", "chronyctl6", "--version")
    assert proc.stdout.strip() == f"chronyctl6 {__version__}"


def test_render_from_installed_package(root: Path) -> None:
    """Render against the root's own Debian 12 stock chrony.conf; its chronyd accepts it."""
    proc = chroot(root, "chronyctl6", "render", "--root", "/", "--ipv6", "on", "--phc", "off")
    assert proc.stdout.count(TIME_SYNC_V6) == 1, proc.stdout
    assert "169.254.169.123" not in proc.stdout
    active = [line for line in proc.stdout.splitlines() if line.strip().startswith("leapsectz")]
    assert active == [], "Time Sync smears leap seconds: no active leapsectz beside it"
    (root / "root" / "rendered.conf").write_text(proc.stdout, encoding="utf-8")
    chroot(root, "chronyd", "-p", "-f", "/root/rendered.conf")


def test_units_verify_as_installed(root: Path) -> None:
    """systemd-analyze accepts the installed units against the root's own systemd and chrony."""
    require_tools("systemd-analyze")
    proc = run(
        ["systemd-analyze", "verify", "--man=no", f"--root={root}",
         *(f"/lib/systemd/system/{unit}" for unit in UNITS)],
        check=False,
        timeout=120,
    )
    # verify exits 0 on unknown keys and bad dependencies too: any message is a failure.
    assert proc.returncode == 0 and proc.stdout + proc.stderr == "", proc.stdout + proc.stderr
    boot = (root / "lib/systemd/system/chronyctl6-boot.service").read_text(encoding="utf-8")
    for line in ("Type=oneshot", "RemainAfterExit=yes", "After=network-online.target",
                 "Wants=network-online.target", "ExecStart=/usr/bin/chronyctl6 boot",
                 "WantedBy=multi-user.target"):
        assert line in boot.splitlines()
    assert any(line.startswith("Before=") and {"chrony.service", "chronyd.service"}
               <= set(line[len("Before="):].split()) for line in boot.splitlines())
    # Installing must not turn the boot step or the timer on (image builds and fleets do).
    wants = root / "etc/systemd/system/multi-user.target.wants/chronyctl6-boot.service"
    assert not wants.exists()


def _installed_commands(root: Path) -> list[str]:
    code = ("import click, typer.main, chronyctl6.cli as c; g = typer.main.get_command(c.app); "
            "ctx = click.Context(g); print('\\n'.join(g.list_commands(ctx)))")
    return chroot(root, "python3", "-c", code).stdout.split()


def test_bash_completion_as_installed(root: Path) -> None:
    script = (
        "source /usr/share/bash-completion/completions/chronyctl6; "
        'COMP_WORDS=(chronyctl6 "$1"); COMP_CWORD=1; _chronyctl6_completion chronyctl6; '
        'printf "%s\\n" "${COMPREPLY[@]}"'
    )
    version = chroot(root, "bash", "-c", script, "complete", "--vers").stdout.split()
    assert version == ["--version"]
    commands = chroot(root, "bash", "-c", script, "complete", "").stdout.split()
    installed = _installed_commands(root)
    assert {"render", "apply", "boot"} <= set(installed)
    assert set(installed) <= set(commands), commands


def test_zsh_and_fish_completions_parse(root: Path) -> None:
    require_tools("zsh", "fish")
    run(["zsh", "-n", root / "usr/share/zsh/vendor-completions/_chronyctl6"])
    run(["fish", "--no-execute", root / "usr/share/fish/vendor_completions.d/chronyctl6.fish"])
    zsh = (root / "usr/share/zsh/vendor-completions/_chronyctl6").read_text(encoding="utf-8")
    assert zsh.startswith("#compdef chronyctl6\n")


def test_man_page_documents_every_command(root: Path) -> None:
    require_tools("man", "groff")
    page = root / "usr/share/man/man1/chronyctl6.1.gz"
    roff = gzip.decompress(page.read_bytes()).decode("utf-8")
    assert roff.startswith(".TH CHRONYCTL6 1 ")
    proc = run(["man", "--warnings", "-l", "-Tutf8", page],
               env={"PATH": "/usr/bin:/bin", "MANWIDTH": "100", "LANG": "C.UTF-8"})
    assert proc.stderr == "", proc.stderr
    text = re.sub(r".\x08", "", proc.stdout)
    for command in _installed_commands(root):
        assert f"chronyctl6 {command}" in text, command
    assert "--root" in text and "/etc/chronyctl6/settings.toml" in text
    assert "ENVIRONMENT" in text and "CHRONYCTL6_CHRONYD_ARGS" in text
    settings_page = root / "usr/share/man/man5/chronyctl6-settings.5.gz"
    settings_text = run(["man", "--warnings", "-l", "-Tutf8", settings_page],
                        env={"PATH": "/usr/bin:/bin", "MANWIDTH": "100", "LANG": "C.UTF-8"})
    assert settings_text.stderr == "" and "service_manager" in settings_text.stdout
    # The example the page points to parses with the installed chronyctl6.
    example = "/usr/share/doc/chronyctl6/examples/settings.toml"
    assert example in re.sub(r".\x08", "", settings_text.stdout)
    chroot(root, "chronyctl6", "render", "--root", "/", "--settings", example)


def test_purge_leaves_nothing_behind(root: Path, deb: Path) -> None:
    """dpkg --purge: the package's files go, then postrm takes chronyctl6's state and settings,
    saying what it removed and what it kept (chrony's configuration)."""
    owned = chroot(root, "dpkg", "-L", "chronyctl6").stdout.split()
    files = [p for p in owned if (root / p.lstrip("/")).is_file()]
    assert files
    for made in ("var/lib/chronyctl6/history/x/manifest.json", "etc/chronyctl6/settings.toml"):
        put(root, made, "{}\n")
    conf = (root / "etc/chrony/chrony.conf").read_bytes()
    purged = chroot(root, "dpkg", "--purge", "chronyctl6")
    assert [p for p in files if (root / p.lstrip("/")).exists()] == []
    assert not (root / "var/lib/chronyctl6").exists() and not (root / "etc/chronyctl6").exists()
    said = purged.stdout + purged.stderr
    assert "removed /var/lib/chronyctl6" in said and "kept chrony's configuration" in said, said
    assert (root / "etc/chrony/chrony.conf").read_bytes() == conf
    # Leave the root as the other tests expect it, whatever order they run in.
    chroot(root, "dpkg", "-i", f"/root/{deb.name}")


def test_image_bake_with_installed_package(root: Path) -> None:
    """What the image builders run: `apply --root` on an image, then nothing left to change."""
    image = root / "srv" / "image"
    shutil.rmtree(image, ignore_errors=True)
    shutil.copytree(REPO / "tests" / "fixtures" / "stock" / "debian12", image, symlinks=True)
    first = json.loads(chroot(root, "chronyctl6", "apply", "--root", "/srv/image",
                              "--ipv6", "on", "--phc", "off", "-o", "json").stdout)["data"]
    assert first["changed"] is True
    written = (image / "etc" / "chrony" / "chrony.conf").read_text(encoding="utf-8")
    assert written.count(TIME_SYNC_V6) == 1
    again = json.loads(chroot(root, "chronyctl6", "apply", "--root", "/srv/image",
                              "--ipv6", "on", "--phc", "off", "-o", "json").stdout)["data"]
    assert again["changed"] is False


def test_prerm_gives_chrony_back_its_config_on_remove_not_on_upgrade(root: Path) -> None:
    """The installed prerm, as dpkg calls it: `upgrade` leaves chronyctl6's chrony.conf alone;
    `remove` runs `chronyctl6 release` (the installed CLI, through its planner and executor), which
    replaces the boot step's `sourcedir /run/chronyctl6` by a Time Sync line chrony keeps once
    nothing fills /run/chronyctl6 at boot, and disables the boot unit."""
    conf = root / "etc/chrony/chrony.conf"
    stock = conf.read_text(encoding="utf-8")
    link = root / "etc/systemd/system/multi-user.target.wants/chronyctl6-boot.service"
    managed = ("# This file is managed by chronyctl6.\nsourcedir /run/chronyctl6\n"
               "sourcedir /etc/chrony/sources.d\n")
    try:
        conf.write_text(managed, encoding="utf-8")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to("/lib/systemd/system/chronyctl6-boot.service")
        chroot(root, "/var/lib/dpkg/info/chronyctl6.prerm", "upgrade", __version__)
        assert conf.read_text(encoding="utf-8") == managed and link.is_symlink()
        removed = chroot(root, "/var/lib/dpkg/info/chronyctl6.prerm", "remove")
        active = [ln for ln in conf.read_text(encoding="utf-8").splitlines() if ln and not ln.startswith("#")]
        assert active == ["server 169.254.169.123 prefer iburst minpoll 4 maxpoll 4",
                          "sourcedir /etc/chrony/sources.d"], removed.stderr
        assert not link.is_symlink()
        assert "so that chrony keeps a source" in removed.stderr, removed.stderr
    finally:
        conf.write_text(stock, encoding="utf-8")
        link.unlink(missing_ok=True)
