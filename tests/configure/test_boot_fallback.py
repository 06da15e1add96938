"""The boot step never leaves chronyd without a source: whatever fails, it writes the last good
endpoint (else IPv4), says why, and succeeds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chronyctl6.configure import boot as boot_mod
from chronyctl6.configure.plan import Request
from chronyctl6.effects import host, metadata
from tests.helpers import stock_root, write_settings

SOURCES = "run/chronyctl6/timesync.sources"
DUAL = host.HostNetwork(("2600:1f18:aaaa::5",), ("10.0.0.5",))


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(host, "read_network", lambda: DUAL)
    monkeypatch.setattr(metadata, "instance_hint", lambda network, **_: host.InstanceHint("nitro", True))
    monkeypatch.setattr(boot_mod, "_chronyd_answers", lambda: False)
    as_root(monkeypatch)
    return stock_root(tmp_path, "debian12")


def as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """boot refuses to run unless root (it writes under /run); here it writes under a temporary
    root only, which any user may: the check is passed so these tests run as any user."""
    monkeypatch.setattr(boot_mod, "is_root", lambda: True)


def _server(root: Path) -> str:
    return next(ln for ln in (root / SOURCES).read_text().splitlines() if ln.startswith("server "))


def test_a_good_boot_records_its_choice(root: Path) -> None:
    result = boot_mod.boot(Request(root=root), settle=0)
    assert result.endpoint == "fd00:ec2::123" and not result.fallback and result.warnings == []
    state = json.loads((root / "var/lib/chronyctl6/state.json").read_text())
    assert state["last_boot"]["address"] == "fd00:ec2::123"


@pytest.mark.parametrize("bad", ["ipv6 = 'sometimes'\n", "not toml = = =\n", "\xff\xfe garbage\n",
                                 "[[servers]]\nhost = 'a\\u2028server evil'\n"],
                         ids=["bad-value", "bad-toml", "non-utf8", "u2028"])
def test_bad_settings_fall_back_to_ipv4_naming_the_file(root: Path, bad: str) -> None:
    path = write_settings(root, "")
    path.write_bytes(bad.encode("utf-8", "surrogateescape") if "\xff" not in bad else b"\xff\xfe garbage\n")
    result = boot_mod.boot(Request(root=root), settle=0)
    assert result.fallback and result.endpoint == "169.254.169.123"
    assert str(path) in result.warnings[0], result.warnings
    assert _server(root).startswith("server 169.254.169.123 prefer iburst")
    assert "evil" not in (root / SOURCES).read_text()


def test_bad_settings_take_the_last_good_choice_when_there_is_one(root: Path) -> None:
    boot_mod.boot(Request(root=root), settle=0)  # a good boot: IPv6
    write_settings(root, "ipv6 = 'sometimes'\n")
    (root / SOURCES).unlink()  # /run is empty at the next boot
    result = boot_mod.boot(Request(root=root), settle=0)
    assert result.fallback and result.endpoint == "fd00:ec2::123"
    assert "the last good choice" in result.warnings[0]
    assert _server(root).startswith("server fd00:ec2::123 prefer iburst")


def test_metadata_that_fails_falls_back(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(network: host.HostNetwork, **_: Any) -> host.InstanceHint:
        raise ConnectionResetError(104, "Connection reset by peer")

    monkeypatch.setattr(metadata, "instance_hint", broken)
    result = boot_mod.boot(Request(root=root), settle=0)
    assert result.fallback and result.endpoint == "169.254.169.123"
    assert "ConnectionResetError" in result.warnings[0]


def test_an_unreadable_network_falls_back(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host, "read_network", lambda: (_ for _ in ()).throw(PermissionError(13, "denied")))
    result = boot_mod.boot(Request(root=root), settle=0)
    assert result.fallback and _server(root).startswith("server 169.254.169.123")
    # The reason names the network, never the settings file (which was fine).
    assert any("network could not be read" in w and "settings" not in w for w in result.warnings), result.warnings


def test_slow_metadata_is_bounded(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """boot gives the real client a 2 s deadline for instance metadata (that the client holds to its
    deadline is tests/effects/test_metadata.py's: a trickling server is cut off in time). The
    metadata service here never answers: reach is asked once, with total=2.0, and boot goes on
    without it. Nothing sleeps: the deadline is checked as the value boot passes, not raced."""
    monkeypatch.undo()
    as_root(monkeypatch)
    monkeypatch.setattr(host, "read_network", lambda: DUAL)
    monkeypatch.setattr(boot_mod, "_chronyd_answers", lambda: False)
    calls: list[float] = []
    real = metadata.reach

    def never(host_: str, **kwargs: Any) -> Any:
        calls.append(kwargs.get("total", 0))
        return real("::1", total=0.01, timeout=0.01)  # loopback, nothing listens: a prompt failure

    monkeypatch.setattr(metadata, "reach", never)
    result = boot_mod.boot(Request(root=root), settle=5)
    assert calls == [2.0]
    # No metadata: the local addresses decide (an IPv6 address: IPv6), nothing to wait for.
    assert result.endpoint == "fd00:ec2::123" and not result.fallback


def test_a_read_only_state_directory_is_no_fallback(root: Path) -> None:
    state = root / "var/lib/chronyctl6"
    state.parent.mkdir(parents=True)
    state.write_text("a file where the directory should be\n")
    result = boot_mod.boot(Request(root=root), settle=0)
    assert result.endpoint == "fd00:ec2::123" and not result.fallback
    assert any("could not record this boot's choice" in w for w in result.warnings), result.warnings
    assert any(w.startswith("ran without the lock") for w in result.warnings), result.warnings  # it lives there


@pytest.mark.root
def test_a_last_ipv6_choice_is_not_written_on_a_launch_without_usable_ipv6(root: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    boot_mod.boot(Request(root=root), settle=0)  # a good boot on a dual-stack launch: IPv6
    write_settings(root, "ipv6 = 'sometimes'\n")  # then the settings break
    (root / SOURCES).unlink()
    monkeypatch.setattr(host, "read_network", lambda: host.HostNetwork((), ("10.0.0.5",)))  # an IPv4-only launch
    result = boot_mod.boot(Request(root=root), settle=0)
    assert result.fallback and result.endpoint == "169.254.169.123"
    assert _server(root).startswith("server 169.254.169.123 prefer iburst")


@pytest.mark.root
def test_the_boot_step_takes_apply_s_bounded_lock(root: Path) -> None:
    from chronyctl6.configure import executor
    from chronyctl6.errors import Busy

    with executor.locked(root, timeout=0), pytest.raises(Busy):
        boot_mod.boot(Request(root=root), settle=0, lock_timeout=0.2)
    assert not (root / SOURCES).exists()


@pytest.mark.root
def test_the_boot_step_resolves_its_path_inside_the_root(root: Path) -> None:
    """An image whose /run is an absolute symlink: written under the root, never on the host."""
    (root / "run").mkdir(exist_ok=True)
    (root / "var/run").mkdir(parents=True, exist_ok=True)
    (root / "run").rmdir()
    (root / "run").symlink_to("/var/run")
    boot_mod.boot(Request(root=root), settle=0)
    assert (root / "var/run/chronyctl6/timesync.sources").is_file()
