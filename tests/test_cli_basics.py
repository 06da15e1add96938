"""The command line's surface: version, help that teaches, render to stdout, bad flags."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chronyctl6 import __version__
from tests.conftest import require
from tests.helpers import cli, cli_subprocess, stock_root


def test_version() -> None:
    done = cli("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"chronyctl6 {__version__}"


def test_help_lists_every_command() -> None:
    done = cli("--help")
    assert done.returncode == 0
    for command in ("render", "apply", "boot", "check"):
        assert command in done.stdout


def test_apply_help_teaches_exit_statuses_and_choices() -> None:
    text = cli("apply", "--help").stdout
    for needle in ("--root", "--ipv6", "--wait", "--dry-run", "fd00:ec2::123", "169.254.169.123", "Exit statuses:"):
        assert needle in text, needle


def test_render_prints_the_file_apply_would_write(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "ubuntu2204")
    before = (root / "etc/chrony/chrony.conf").read_bytes()
    done = cli("render", "--root", str(root), "--ipv6", "on")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# This file is managed by chronyctl6.")
    assert "\nserver fd00:ec2::123 prefer iburst minpoll 4 maxpoll 4\n" in done.stdout
    assert (root / "etc/chrony/chrony.conf").read_bytes() == before


def test_smoke_the_real_process(tmp_path: Path) -> None:
    """The rest of the suite runs the CLI in process (helpers.cli); this runs `python -m chronyctl6`
    itself: start-up, the typer app, the exit status and the streams of a real process."""
    assert cli_subprocess("--version").stdout.strip() == f"chronyctl6 {__version__}"
    root = stock_root(tmp_path, "debian12")
    rendered = cli_subprocess("render", "--root", str(root), "--ipv6", "on")
    assert rendered.returncode == 0 and rendered.stdout == cli("render", "--root", str(root), "--ipv6", "on").stdout
    bad = cli_subprocess("render", "--root", str(root), "--ipv6", "maybe")
    assert bad.returncode == 2 and "--ipv6" in bad.stderr and bad.stdout == ""
    # check's fast path (no typer): a usage error is its one UNKNOWN line
    nagios = cli_subprocess("check", "-o", "nagios", "--warn", "nan")
    assert nagios.returncode == 3 and nagios.stdout.startswith("NTP UNKNOWN: "), nagios


def test_bad_flag_value_is_bad_input(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    done = cli("render", "--root", str(root), "--ipv6", "maybe")
    assert done.returncode == 2
    assert "--ipv6" in done.stderr and "Traceback" not in done.stderr


def test_missing_root_is_bad_input(tmp_path: Path) -> None:
    done = cli("render", "--root", str(tmp_path / "nope"))
    assert done.returncode == 2 and "not a directory" in done.stderr


def test_root_without_chrony_says_so(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "rhel9")
    (root / "etc/chrony.conf").unlink()
    # /etc exists, so this is a root where chrony's file is simply missing: render from the template.
    done = cli("render", "--root", str(root), "--ipv6", "off")
    assert done.returncode == 0 and "server 169.254.169.123" in done.stdout
    done = cli("render", "--root", str(root), "--distro", "debian")
    assert done.returncode == 2 and "is chrony installed" in done.stderr


# ---- CLI conventions: -h and -V, choices as enums, an example in every --help, -q, the man page

COMMANDS = ("render", "apply", "boot", "check", "doctor", "status")


def test_short_help_and_version() -> None:
    assert cli("-V").stdout.strip() == f"chronyctl6 {__version__}"
    top = cli("-h")
    assert top.returncode == 0 and "Commands" in top.stdout and "-h, --help" in top.stdout
    for command in COMMANDS:
        done = cli(command, "-h")
        assert done.returncode == 0 and f"Usage: chronyctl6 {command}" in done.stdout, command
        assert done.stdout == cli(command, "--help").stdout


def test_every_command_help_has_an_example_and_its_exit_statuses() -> None:
    for command in COMMANDS:
        text = cli(command, "--help").stdout
        assert "Example" in text and f"chronyctl6 {command}" in text.split("Example", 1)[1], command
        assert "Exit statuses:" in text and "  0  " in text.split("Exit statuses:")[1], command


@pytest.mark.parametrize(("command", "option", "choices"), [
    ("render", "--ipv6", ("auto", "on", "off")), ("apply", "--phc", ("auto", "on", "off")),
    ("apply", "--service-manager", ("auto", "systemd", "direct")), ("apply", "-o", ("text", "json")),
    ("check", "-o", ("text", "json", "nagios", "prometheus")), ("doctor", "-o", ("text", "json")),
    ("render", "--distro", ("amzn2", "amzn2023", "rhel", "debian", "ubuntu", "sles")),
])
def test_choices_are_listed_in_help_and_offered_by_completion(command: str, option: str,
                                                              choices: tuple[str, ...]) -> None:
    assert '|'.join(choices) in cli(command, "--help").stdout  # [a|b] (click 8.1) or <a|b> (typer 0.28)
    # What bash completion asks the program (typer's protocol: _CHRONYCTL6_COMPLETE, COMP_WORDS/CWORD).
    words = f"chronyctl6 {command} {option} "
    done = cli(env={"_CHRONYCTL6_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": "3"})
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split()) == sorted(choices), done.stdout


def test_distro_choices_are_the_platform_table() -> None:
    from chronyctl6.cli import Distro
    from chronyctl6.configure.platforms import BY_NAME

    assert [d.value for d in Distro] == list(BY_NAME)


def test_quiet_keeps_only_what_matters(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    loud = cli("apply", "--root", str(root), "--ipv6", "on", "--dry-run")
    quiet = cli("apply", "--root", str(root), "--ipv6", "on", "--dry-run", "-q")
    assert loud.returncode == quiet.returncode == 0
    assert "dropped: /etc/chrony/chrony.conf:8: pool 2.debian.pool.ntp.org" in loud.stdout
    assert "dropped:" not in quiet.stdout
    assert quiet.stdout.strip() == "would change: /etc/chrony/chrony.conf (dry run, nothing written)"
    assert cli("render", "--root", str(root), "--ipv6", "on", "--quiet").stdout == cli(
        "render", "--root", str(root), "--ipv6", "on").stdout  # the file itself is what matters


def test_apply_with_an_unknown_output_format_is_bad_input_not_a_failure(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    before = (root / "etc/chrony/chrony.conf").read_bytes()
    done = cli("apply", "--root", str(root), "-o", "yaml")
    assert done.returncode == 2 and "'yaml' is not one of 'text', 'json'" in done.stderr
    assert (root / "etc/chrony/chrony.conf").read_bytes() == before  # nothing done


@pytest.mark.parametrize("python", [sys.executable, "/usr/bin/python3"])
def test_the_man_page_documents_no_powershell(tmp_path: Path, python: str) -> None:
    """Debian's typer 0.7.0 lists PowerShell for --install-completion; the package ships bash, zsh, fish."""
    require(Path(python).exists(), f"{python} (Debian's python3 with python3-typer)")
    repo = Path(__file__).resolve().parent.parent
    done = subprocess.run([python, str(repo / "packaging/gen_docs.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "PYTHONPATH": str(repo)})
    assert done.returncode == 0, done.stderr
    man = (tmp_path / "chronyctl6.1").read_text()
    assert "powershell" not in man.lower() and "pwsh" not in man.lower()
    assert "\\-\\-install\\-completion" in man and "\\-V, \\-\\-version" in man
    assert "Examples:" in man.split('.SS "chronyctl6 check')[1].split(".SS")[0]


def test_the_conventions_hold_with_debian_12s_typer_0_7() -> None:
    """The .deb runs on Debian's python3-typer 0.7.0 (click 8.1): -h, -V, enum choices in help and
    completion, usage errors as the JSON envelope."""
    debian = "/usr/bin/python3"
    require(Path(debian).exists(), "Debian's python3 (apt-get install python3-typer)")
    repo = Path(__file__).resolve().parent.parent

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([debian, "-m", "chronyctl6", *args], capture_output=True, text=True, timeout=60,
                              check=False, env={**os.environ, "PYTHONPATH": str(repo), **(env or {})})

    version = subprocess.run([debian, "-c", "import typer; print(typer.__version__)"], capture_output=True,
                             text=True, check=False).stdout.strip()
    require(version.startswith("0.7"), f"Debian 12's typer 0.7 (found {version!r})")
    assert run("-V").stdout.strip() == f"chronyctl6 {__version__}"
    assert "[auto|on|off]" in run("apply", "-h").stdout
    completed = run(env={"_CHRONYCTL6_COMPLETE": "complete_bash", "COMP_WORDS": "chronyctl6 check -o ",
                         "COMP_CWORD": "3"})
    assert sorted(completed.stdout.split()) == ["json", "nagios", "prometheus", "text"]
    bad = run("apply", "-o", "json", "--ipv6", "maybe")
    assert bad.returncode == 2 and '"status": "usage"' in bad.stdout
    nagios = run("check", "-o", "nagios", "--port", "0")
    assert nagios.returncode == 3 and nagios.stdout.startswith("NTP UNKNOWN: ")
