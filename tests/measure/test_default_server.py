"""Which server `check` asks without --server: the Time Sync endpoint chronyd uses, from chronyd's
own sources or the one traversal of the configuration chronyd reads (chronyconf.servers), never
from fixed files; a FIFO where a file should be never hangs it."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

from chronyctl6.chronyconf import servers
from chronyctl6.effects.chrony_tools import Source
from chronyctl6.measure import gather
from chronyctl6.measure import report as fmt
from tests.helpers import cli_json, stock_root
from tests.ntp_fixtures import require_isolated_netns

STOCK = Path(__file__).resolve().parents[1] / "fixtures" / "stock"


def source(name: str, state: str = "+") -> Source:
    return Source("^", state, name, 1, 4, 0o377, 10, 0.0, 0.0, 0.0001)


# ---- the resolver, pure ----------------------------------------------------------------------


def test_chronyds_selected_time_sync_source_comes_first() -> None:
    view = [("192.0.2.1", True), ("fd00:ec2::123", False), ("169.254.169.123", False)]
    assert servers.from_chronyd(view) == "fd00:ec2::123"  # the first Time Sync one it lists
    view[2] = ("169.254.169.123", True)
    view[0] = ("192.0.2.1", False)
    assert servers.from_chronyd(view) == "169.254.169.123"  # the one it selected
    assert servers.from_chronyd([("192.0.2.1", True)]) is None


def test_configuration_gives_the_first_server_or_pool_line_naming_time_sync() -> None:
    lines = [("pool", ("2.debian.pool.ntp.org", "iburst")), ("peer", ("fd00:ec2::123",)),
             ("server", ("169.254.169.123", "prefer")), ("server", ("fd00:ec2::123",))]
    assert servers.from_config(lines) == "169.254.169.123"  # a peer is no source to check
    assert servers.from_config([("server", ("fd00:ec2:0:0::123",))]) == "fd00:ec2::123"  # any spelling
    assert servers.from_config([("pool", ("time.aws.com",))]) is None


def test_chronyd_first_then_configuration_then_the_default() -> None:
    conf = [("server", ("169.254.169.123",))]
    assert servers.timesync_endpoint([("fd00:ec2::123", True)], conf)[0] == "fd00:ec2::123"
    assert servers.timesync_endpoint([("192.0.2.1", True)], conf)[0] == "169.254.169.123"
    assert servers.timesync_endpoint(None, None) == (servers.FALLBACK, servers.timesync_endpoint(None, [])[1])


def test_every_platform_main_file_is_one_the_resolver_reads() -> None:
    from chronyctl6.configure.platforms import PLATFORMS

    assert {p.config_path for p in PLATFORMS} <= set(servers.MAIN_CONFIGS)


# ---- through the traversal of real configurations -------------------------------------------


def test_amazon_linux_2_as_shipped_asks_the_ipv4_endpoint(tmp_path: Path) -> None:
    """AL2 keeps Time Sync in /etc/chrony.d/link-local.sources (a sourcedir): not in chrony.conf."""
    root = tmp_path / "amzn2"
    shutil.copytree(STOCK / "amzn2", root, symlinks=True)
    assert gather.default_server(str(root)) == ("169.254.169.123", "chrony's configuration")


def test_chronyds_own_view_wins_over_its_files(tmp_path: Path) -> None:
    root = tmp_path / "amzn2"
    shutil.copytree(STOCK / "amzn2", root, symlinks=True)
    chosen = gather.default_server(str(root), (source("192.0.2.9", "-"), source("fd00:ec2::123", "*")))
    assert chosen == ("fd00:ec2::123", "chronyd's sources")


@pytest.mark.root
def test_a_stale_boot_file_is_not_read_after_apply_fixed_ipv6_off(tmp_path: Path) -> None:
    """Baked for boot-time choice, then fixed to IPv4: /run/chronyctl6/timesync.sources is left
    from the last boot, but chronyd no longer reads that directory, and neither does check."""
    root = stock_root(tmp_path, "debian12")
    cli_json("apply", "--root", str(root), "--at-boot")
    stale = root / "run/chronyctl6/timesync.sources"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text("server fd00:ec2::123 prefer iburst minpoll 4 maxpoll 4\n")
    assert gather.default_server(str(root))[0] == "fd00:ec2::123"  # read while chronyd reads it
    cli_json("apply", "--root", str(root), "--fixed", "--ipv6", "off")
    assert stale.exists()
    assert gather.default_server(str(root)) == ("169.254.169.123", "chrony's configuration")


def test_a_fifo_where_the_boot_file_should_be_does_not_hang_check(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc/chrony").mkdir(parents=True)
    (root / "etc/chrony/chrony.conf").write_text("sourcedir /run/chronyctl6\nserver 169.254.169.123 iburst\n")
    (root / "run/chronyctl6").mkdir(parents=True)
    os.mkfifo(root / "run/chronyctl6/timesync.sources")
    found: list[tuple[str, str]] = []
    reader = threading.Thread(target=lambda: found.append(gather.default_server(str(root))), daemon=True)
    reader.start()
    reader.join(timeout=30)  # a hang detector, not a race: the read never blocks at all
    assert found == [("169.254.169.123", "chrony's configuration")]


def test_no_configuration_at_all_falls_back_to_the_ipv6_endpoint(tmp_path: Path) -> None:
    assert gather.default_server(str(tmp_path)) == (servers.FALLBACK,
                                                    "the default: no Time Sync source is configured")


def test_check_without_server_measures_the_configured_endpoint(tmp_path: Path) -> None:
    """End to end through gather.run: the IPv4 endpoint of an AL2 root is the one asked. In this
    namespace nothing routes there: the kernel refuses to send, no packet leaves."""
    require_isolated_netns()
    root = tmp_path / "amzn2"
    shutil.copytree(STOCK / "amzn2", root, symlinks=True)
    result = gather.run(None, timeout=0.5, ask_chronyd=False, root=str(root))
    assert [m.target.address for m in result.measurements] == ["169.254.169.123"]
    assert result.server_from == "chrony's configuration"
    assert fmt.to_data(result)["server_from"] == "chrony's configuration"
    assert result.measurements[0].sent == 0 and result.measurements[0].error
