from __future__ import annotations

import pytest

from chronyctl6.configure import platforms
from chronyctl6.errors import BadInput
from tests.conftest import FIXTURES

STOCK = FIXTURES / "stock"


@pytest.mark.parametrize(
    ("root", "name", "config", "unit"),
    [
        ("debian11", "debian", "/etc/chrony/chrony.conf", "chrony"),
        ("debian12", "debian", "/etc/chrony/chrony.conf", "chrony"),
        ("debian13", "debian", "/etc/chrony/chrony.conf", "chrony"),
        ("ubuntu2204", "ubuntu", "/etc/chrony/chrony.conf", "chrony"),
        ("ubuntu2404", "ubuntu", "/etc/chrony/chrony.conf", "chrony"),
        ("ubuntu2510", "ubuntu", "/etc/chrony/chrony.conf", "chrony"),
        ("amzn2", "amzn2", "/etc/chrony.conf", "chronyd"),
        ("amzn2legacy", "amzn2", "/etc/chrony.conf", "chronyd"),
        ("fedora43", "rhel", "/etc/chrony.conf", "chronyd"),
        ("amzn2023", "amzn2023", "/etc/chrony.conf", "chronyd"),
        ("rhel9", "rhel", "/etc/chrony.conf", "chronyd"),
        ("sles15", "sles", "/etc/chrony.conf", "chronyd"),
    ],
)
def test_detects_each_stock_root(root: str, name: str, config: str, unit: str) -> None:
    platform = platforms.detect((STOCK / root / "etc/os-release").read_text())
    assert (platform.name, platform.config_path, platform.unit) == (name, config, unit)


@pytest.mark.parametrize("os_id", ["rhel", "centos", "rocky", "almalinux", "ol", "fedora"])
def test_rhel_family(os_id: str) -> None:
    assert platforms.detect(f'ID="{os_id}"\nVERSION_ID="9.3"\n').name == "rhel"


def test_amazon_linux_versions_are_told_apart() -> None:
    assert platforms.detect('ID="amzn"\nVERSION_ID="2"').name == "amzn2"
    assert platforms.detect('ID="amzn"\nVERSION_ID="2023"').name == "amzn2023"


def test_unknown_distro_names_the_flag() -> None:
    with pytest.raises(BadInput) as err:
        platforms.detect('ID=gentoo\nPRETTY_NAME="Gentoo Linux"\n')
    assert "Gentoo Linux" in err.value.message
    assert err.value.hint is not None and "--distro" in err.value.hint


def test_missing_os_release_names_the_flag() -> None:
    with pytest.raises(BadInput) as err:
        platforms.detect(None)
    assert err.value.hint is not None and "--distro" in err.value.hint


def test_by_name_rejects_unknown() -> None:
    with pytest.raises(BadInput):
        platforms.by_name("windows")


def test_os_release_quoting() -> None:
    fields = platforms.parse_os_release("ID='debian'\n# c\nNAME=\"Debian GNU/Linux\"\nBROKEN\n")
    assert fields == {"ID": "debian", "NAME": "Debian GNU/Linux"}


def test_every_stock_fixture_is_detected() -> None:
    for root in sorted(p for p in STOCK.iterdir() if p.is_dir()):
        platforms.detect((root / "etc/os-release").read_text())  # raises when unknown
