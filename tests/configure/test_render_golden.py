"""Every distro x {ipv6 on, ipv6 off, phc on, at boot}, rendered over the distro's stock file,
compared with a golden file. chronyd reads every golden file in test_chrony_versions (chrony 4.0, 4.3
and 4.6.1, each in its Debian release's root): one matrix of parses, not one per chronyd.

Regenerate after an intended change (as a user who may write the checkout; scripts/test runs these
as nobody): UPDATE_GOLDEN=1 python3 -m pytest tests/configure/test_render_golden.py -k test_golden,
then read the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chronyctl6.configure.plan import Request, make_plan
from chronyctl6.errors import BadInput
from tests.conftest import FIXTURES
from tests.helpers import stock_root

STOCK = FIXTURES / "stock"
GOLDEN = FIXTURES / "golden"
DISTROS = sorted(p.name for p in STOCK.iterdir() if p.is_dir())
VARIANTS: dict[str, tuple[str, str]] = {  # name: (ipv6, phc)
    "ipv6-on": ("on", "off"),
    "ipv6-off": ("off", "off"),
    "phc-on": ("on", "on"),
    "at-boot": ("auto", "off"),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("distro", DISTROS)
def test_golden(tmp_path: Path, distro: str, variant: str) -> None:
    root = stock_root(tmp_path, distro)
    ipv6, phc = VARIANTS[variant]
    plan = make_plan(Request(root=root, ipv6=ipv6, phc=phc))
    text = plan.config.new.decode()
    golden = GOLDEN / f"{distro}-{variant}.conf"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text()


def test_every_golden_has_exactly_one_timesync_line() -> None:
    for golden in GOLDEN.glob("*.conf"):
        lines = [ln for ln in golden.read_text().splitlines() if not ln.startswith("#")]
        timesync = [ln for ln in lines if "fd00:ec2::123" in ln or "169.254.169.123" in ln]
        boot = [ln for ln in lines if ln == "sourcedir /run/chronyctl6"]
        assert len(timesync) + len(boot) == 1, golden.name
        assert not any(ln.startswith(("pool ", "leapsectz")) for ln in lines), golden.name


def test_golden_set_is_complete() -> None:
    assert {p.stem for p in GOLDEN.glob("*.conf")} == {f"{d}-{v}" for d in DISTROS for v in VARIANTS}


def test_the_endpoint_is_chosen_from_facts_as_plain_data() -> None:
    """render takes the host's facts as data (its Network and Hint protocols): no effects needed."""
    from dataclasses import dataclass

    from chronyctl6.configure.render import choose_endpoint

    @dataclass(frozen=True)
    class Network:
        global_ipv6: tuple[str, ...]
        has_ipv4: bool
        unusable_ipv6: tuple[str, ...] = ()

        @property
        def has_global_ipv6(self) -> bool:
            return bool(self.global_ipv6)

    @dataclass(frozen=True)
    class Hint:
        xen: bool
        ipv6_assigned: bool | None = None

    assert choose_endpoint("auto", Network(("2001:db8::10%eth0",), True)).address == "fd00:ec2::123"
    assert choose_endpoint("auto", Network((), True)).address == "169.254.169.123"
    assert choose_endpoint("auto", Network(("2001:db8::10%eth0",), True), Hint(xen=True)).address == "169.254.169.123"


def test_endpoint_choice_rules() -> None:
    from chronyctl6.configure.render import choose_endpoint
    from chronyctl6.effects.host import HostNetwork, InstanceHint

    dual = HostNetwork(("2001:db8::10%eth0",), ("192.0.2.10%eth0",))
    v4only = HostNetwork((), ("192.0.2.10%eth0",))
    v6only = HostNetwork(("2001:db8::10%eth0",), ())
    nothing = HostNetwork((), ())
    assert choose_endpoint("auto", dual).address == "fd00:ec2::123"
    assert choose_endpoint("auto", v4only).address == "169.254.169.123"
    assert choose_endpoint("auto", v6only).address == "fd00:ec2::123"
    assert choose_endpoint("auto", nothing).address == "fd00:ec2::123"  # never IPv4 without IPv4
    assert choose_endpoint("auto", dual, InstanceHint(system="xen")).address == "169.254.169.123"
    assert choose_endpoint("auto", v6only, InstanceHint(system="xen")).address == "fd00:ec2::123"
    assert choose_endpoint("auto", dual, InstanceHint(system="nitro")).address == "fd00:ec2::123"
    assert choose_endpoint("on", v4only).address == "fd00:ec2::123"
    assert choose_endpoint("off", dual).address == "169.254.169.123"
    with pytest.raises(BadInput):
        choose_endpoint("off", v6only)
