"""The README's first screen is the user's: what it does, how to install it on an instance, the
commands to run, and what healthy looks like, all before the contributors' material. Pure: it
reads files. That these lines work is tests/e2e/test_readme_first_screen.py's business (root)."""

from __future__ import annotations

import re

import yaml

from tests import readme
from tests.conftest import REPO
from tests.helpers import cli


def _text() -> str:
    return readme.README.read_text(encoding="utf-8")


def test_the_users_sections_come_first_and_fit_on_a_screen() -> None:
    parts = readme.sections(_text())
    order = [readme.INSTALL, readme.USE, readme.CONTRIBUTORS]
    assert [parts[title][0] for title in order] == sorted(parts[title][0] for title in order)
    screen = readme.first_screen()
    assert screen.last_line <= readme.FIRST_SCREEN_LINES, screen.last_line


def test_the_package_the_readme_installs_is_the_one_packaging_builds() -> None:
    version = re.match(r"chronyctl6 \(([^)]+)\)", (REPO / "packaging/debian/changelog").read_text())
    assert version is not None
    assert readme.first_screen().install_deb == f"sudo apt-get install ./chronyctl6_{version.group(1)}_all.deb"


def test_the_ssm_one_liner_names_the_shipped_document() -> None:
    install = readme.sections(_text())[readme.INSTALL][1]
    assert "packaging/ssm/chronyctl6-apply.yml" in install and (REPO / "packaging/ssm/chronyctl6-apply.yml").is_file()
    lines = [readme.command(line) for block in readme.blocks(install, "sh") for line in block]
    ssm = [line for line in lines if line.startswith("aws ssm send-command")]
    assert len(ssm) == 1 and "--document-name chronyctl6-apply" in ssm[0], lines
    # The document's own usage comment creates it under that name; every parameter given is one
    # of its parameters, with a value it allows.
    document_text = (REPO / "packaging/ssm/chronyctl6-apply.yml").read_text(encoding="utf-8")
    assert "create-document --name chronyctl6-apply" in " ".join(document_text.split())
    document = yaml.safe_load(document_text)
    given = dict(item.split("=", 1) for item in ssm[0].split("--parameters ", 1)[1].split()[0].split(","))
    assert given, ssm[0]
    for name, value in given.items():
        spec = document["parameters"][name]
        assert value in spec.get("allowedValues", [value]), (name, value)
        assert re.fullmatch(spec.get("allowedPattern", ".*"), value), (name, value)


def test_the_commands_to_run_are_chronyctl6_commands_and_each_shows_healthy_output() -> None:
    screen = readme.first_screen()
    names = []
    for line in screen.commands:
        words = line.removeprefix("sudo ").split()
        assert words[0] == "chronyctl6", line
        names.append(words[1])
    assert names[0] == "apply" and {"status", "check"} <= set(names), names
    assert set(screen.healthy) <= set(screen.commands)
    assert any(line.endswith("chronyctl6 status") for line in screen.healthy), screen.healthy


def test_each_command_the_first_screen_runs_exists() -> None:
    for line in readme.first_screen().commands:
        name = line.removeprefix("sudo ").split()[1]
        done = cli(name, "--help")
        assert done.returncode == 0, (line, done.stderr)
