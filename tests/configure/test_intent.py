"""Choices given on the command line persist in /var/lib/chronyctl6/state.json: a later plain
apply keeps them (a flag changes them, and says so), and the boot step reads them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from chronyctl6.configure import boot as boot_mod
from chronyctl6.configure.phc import DEFAULT_OPTIONS
from chronyctl6.configure.plan import Request
from chronyctl6.effects import host, metadata
from tests.configure.test_boot_fallback import as_root
from tests.configure.test_transaction import NETWORK, Host, live  # noqa: F401 (the fixture)
from tests.helpers import apply_root, cli, cli_json, cli_subprocess, stock_root, write_settings

CONF = "etc/chrony/chrony.conf"
STATE = "var/lib/chronyctl6/state.json"


def _active(root: Path, path: str = CONF) -> list[str]:
    return [ln for ln in (root / path).read_text().splitlines() if ln and not ln.startswith("#")]


def test_at_boot_then_a_plain_apply_keeps_at_boot(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    apply_root(root, "--ipv6", "on", "--at-boot")
    assert "sourcedir /run/chronyctl6" in _active(root)
    apply_root(root, "--ipv6", "on")
    assert "sourcedir /run/chronyctl6" in _active(root)
    assert not [ln for ln in _active(root) if ln.startswith("server ")]
    intent = json.loads((root / STATE).read_text())["intent"]
    assert {k: intent[k] for k in ("at_boot", "ipv6", "phc", "distro")} == {
        "at_boot": True, "ipv6": "on", "phc": "auto", "distro": "debian"}
    # an image: no PHC line of chronyctl6's own in the file; the boot step's options recorded
    assert intent["phc_line"] is None and intent["phc_boot_options"] == list(DEFAULT_OPTIONS)
    # An explicit flag changes it, and says so.
    fixed = apply_root(root, "--fixed")
    assert "--fixed changes the recorded choice (at_boot was true)" in fixed.stderr
    assert "server fd00:ec2::123 prefer iburst minpoll 4 maxpoll 4" in _active(root)  # ipv6 on, kept
    assert json.loads((root / STATE).read_text())["intent"]["at_boot"] is False


def test_settings_toml_wins_over_the_recorded_choice(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    apply_root(root, "--ipv6", "on")
    write_settings(root, "ipv6 = 'off'\n")
    apply_root(root)
    assert "server 169.254.169.123 prefer iburst minpoll 4 maxpoll 4" in _active(root)


@pytest.mark.root  # a live host's files with their owner (chown) and apply's root check
def test_a_plain_bake_then_a_live_apply_keeps_choosing_at_boot(live: Host) -> None:  # noqa: F811
    # ipv6 auto under --root: chosen at boot. A process of its own: `live` patches this one to be live.
    baked = cli_subprocess("apply", "--root", str(live.root))
    assert baked.returncode == 0, baked.stderr
    assert json.loads((live.root / STATE).read_text())["intent"]["at_boot"] is True
    result = live.apply()  # on the launched instance, no flags
    assert "sourcedir /run/chronyctl6" in _active(live.root, "etc/chrony.conf")
    assert not [ln for ln in _active(live.root, "etc/chrony.conf") if ln.startswith("server ")]
    assert "/run/chronyctl6/timesync.sources" in result.files
    assert result.notes == []


@pytest.mark.parametrize("content", [b"\xff\xfe not json", b"[1, 2]", b'{"intent": {"ipv6": "on\\nserver evil"}}',
                                     b"{" * 100, b"x" * (2 << 20)],
                         ids=["non-utf8", "not-an-object", "injected-value", "unbalanced", "huge"])
def test_a_damaged_state_file_is_ignored_with_a_warning(tmp_path: Path, content: bytes) -> None:
    root = stock_root(tmp_path, "debian12")
    state = root / STATE
    state.parent.mkdir(parents=True)
    state.write_bytes(content)
    done = cli_json("apply", "--root", str(root), "--ipv6", "on")
    assert "evil" not in (root / CONF).read_text()
    assert "server fd00:ec2::123 prefer iburst minpoll 4 maxpoll 4" in _active(root)
    if content.startswith(b'{"intent"'):
        return  # well-formed JSON whose bad value is dropped
    assert any("recorded choices ignored" in w for w in done["warnings"])


def test_a_fifo_as_state_file_does_not_hang(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    state = root / STATE
    state.parent.mkdir(parents=True)
    os.mkfifo(state)
    done = cli("apply", "--root", str(root), "--ipv6", "on", "--dry-run", timeout=30)
    assert done.returncode == 0 and "not a regular file" in done.stderr


def test_the_boot_step_reads_the_recorded_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = stock_root(tmp_path, "debian12")
    apply_root(root, "--ipv6", "off", "--at-boot")
    monkeypatch.setattr(host, "read_network", lambda: NETWORK)  # dual stack: auto would take IPv6
    monkeypatch.setattr(metadata, "instance_hint", lambda network, **_: host.InstanceHint("nitro", True))
    monkeypatch.setattr(boot_mod, "_chronyd_answers", lambda: False)
    as_root(monkeypatch)
    result = boot_mod.boot(Request(root=root), settle=0)
    assert result.endpoint == "169.254.169.123" and result.warnings == []
    assert "server 169.254.169.123" in (root / "run/chronyctl6/timesync.sources").read_text()


