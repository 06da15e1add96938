"""Distributions whose os-release ID is not known but whose ID_LIKE names a known family are
recognised as that family, as Rocky (ID=rocky, also an ID_LIKE of "rhel centos fedora") is: real
os-release files with provenance in tests/fixtures/os-release."""

from __future__ import annotations

from pathlib import Path

import pytest

from chronyctl6.configure import platforms
from chronyctl6.errors import BadInput
from tests.conftest import FIXTURES

OS_RELEASE = FIXTURES / "os-release"


@pytest.mark.parametrize(("name", "platform"), [
    ("rhcos-4.13", "rhel"), ("scos-4.12", "rhel"), ("raspbian-9", "debian"), ("raspbian-12", "debian"),
    ("sle-micro-5.5", "sles"),
])
def test_a_known_id_like_family_is_recognised(name: str, platform: str) -> None:
    text = (OS_RELEASE / name).read_text()
    assert "ID_LIKE=" in text
    assert platforms.detect(text).name == platform


@pytest.mark.parametrize(("text", "platform"), [
    ('ID=linuxmint\nID_LIKE="ubuntu debian"\n', "ubuntu"),  # the closest family first
    ('ID=nobara\nID_LIKE="fedora rhel"\n', "rhel"),
    ('ID="opensuse-microos"\nID_LIKE="suse opensuse opensuse-tumbleweed"\n', "sles"),
    ('ID=armbian\nID_LIKE="nothing debian"\n', "debian"),  # an unknown word is passed over
    ('ID="rocky"\nID_LIKE="rhel centos fedora"\n', "rhel"),
])
def test_id_like_words_in_order(text: str, platform: str) -> None:
    assert platforms.detect(text).name == platform


def test_amazon_linux_is_never_matched_by_family() -> None:
    # Only ID=amzn with VERSION_ID 2 or 2023 is Amazon Linux; ID_LIKE "amzn" names no layout.
    with pytest.raises(BadInput):
        platforms.detect('ID=cloudos\nID_LIKE="amzn"\n')
    assert platforms.detect('ID="amzn"\nVERSION_ID="2023"\nID_LIKE="fedora"\n').name == "amzn2023"
    with pytest.raises(BadInput):  # a release not known is not guessed from its family
        platforms.detect('ID="amzn"\nVERSION_ID="2027"\nID_LIKE="fedora"\n')


def test_no_known_family_is_still_refused_naming_the_system() -> None:
    with pytest.raises(BadInput, match="Arch Linux"):
        platforms.detect('NAME="Arch Linux"\nPRETTY_NAME="Arch Linux"\nID=arch\n')
    with pytest.raises(BadInput):
        platforms.detect('ID=manjaro\nID_LIKE=arch\n')


def test_an_rhcos_image_is_rendered_like_rhel(tmp_path: Path) -> None:
    from tests.helpers import cli, stock_root

    root = stock_root(tmp_path, "rhel9")
    (root / "etc/os-release").write_bytes((OS_RELEASE / "rhcos-4.13").read_bytes())
    done = cli("render", "--root", str(root), "--ipv6", "on")
    assert done.returncode == 0, done.stderr
    assert done.stdout == cli("render", "--root", str(root), "--ipv6", "on", "--distro", "rhel").stdout
