"""The apply transaction in-process: a failure injected at every step, and every signal, leaves
every file as it was (bytes, mode, owner), no boot-unit link, no history entry, and chronyd moved
back; a rollback that fails says so with its own status and what is on disk.

The host is an image root made to look live (Request.live): facts come from a fixed network and a
counted instance-metadata stand-in; chronyd is a recording stand-in for the service seam. The files,
the validation (real `chronyd -p`), the lock and the history are real.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chronyctl6.configure import apply as apply_mod
from chronyctl6.configure import executor, transaction
from chronyctl6.configure import plan as planning
from chronyctl6.configure.plan import Request
from chronyctl6.effects import history, host, metadata
from chronyctl6.errors import ChronyCtlError, CommandFailed, ExitStatus, exit_code
from tests.helpers import FakeClock, stock_root

UNIT = "usr/lib/systemd/system/chronyctl6-boot.service"
LINK = "etc/systemd/system/multi-user.target.wants/chronyctl6-boot.service"
REAL_LIVE_SEAMS = executor.live_seams  # the fixture replaces it; a test may want the real one back
NETWORK = host.HostNetwork(("2600:1f18:aaaa::5",), ("10.0.0.5",))


class FakeService:
    """Stands in for systemd/direct: records what it was asked, fails where told."""

    name = "fake"

    def __init__(self, log: list[str], label: str, fail: str | None = None) -> None:
        self.log, self.label, self.fail = log, label, fail

    def restart(self) -> None:
        self.log.append(f"{self.label}:restart")
        if self.fail == "restart":
            raise ProcessLookupError(errno.ESRCH, "No such process")  # os.kill on a chronyd that is gone

    def reload_sources(self) -> None:
        self.log.append(f"{self.label}:reload")

    def is_active(self) -> bool:
        return True

    def main_pid(self) -> int | None:
        return None


class Host:
    def __init__(self, root: Path, log: list[str], imds_calls: list[int]) -> None:
        self.root, self.log, self.imds_calls = root, log, imds_calls
        self.fail_service: str | None = None
        self.verify: Any = lambda changes: ("fd00:ec2::123", 0.1)

    def apply(self, **request: Any) -> apply_mod.ApplyResult:
        return apply_mod.apply(Request(root=self.root, **request), apply_mod.Options(wait=5))

    def snapshot(self) -> dict[str, Any]:
        """Every file and link under the root, except what chronyctl6 keeps for itself."""
        out: dict[str, Any] = {}
        for path in sorted(self.root.rglob("*")):
            rel = str(path.relative_to(self.root))
            if rel.startswith("var/lib/chronyctl6"):
                continue
            st = path.lstat()
            if path.is_symlink():
                out[rel] = ("link", os.readlink(path))
            elif path.is_file():
                out[rel] = (path.read_bytes(), st.st_mode & 0o7777, st.st_uid, st.st_gid)
        return out

    def history_entries(self) -> list[Path]:
        return history.Store(self.root).entries()


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Host]:
    root = stock_root(tmp_path, "amzn2023")
    (root / "etc/chrony.d").mkdir()  # the operator's: AL2023's stock image has no /etc/chrony.d
    (root / "etc/chrony.d/link-local.sources").write_text("server 169.254.169.123 prefer iburst\n")
    os.chown(root / "etc/chrony.conf", 1234, 4321)
    (root / "etc/chrony.conf").chmod(0o640)
    (root / UNIT).parent.mkdir(parents=True)
    (root / UNIT).write_text("[Service]\nExecStart=/usr/bin/chronyctl6 boot\n")
    log: list[str] = []
    imds: list[int] = []
    h = Host(root, log, imds)
    monkeypatch.setattr(Request, "live", property(lambda self: True))
    monkeypatch.setattr(host, "read_network", lambda: NETWORK)

    def hint(network: host.HostNetwork, **_: Any) -> host.InstanceHint:
        imds.append(1)
        return host.InstanceHint("nitro", True)

    monkeypatch.setattr(metadata, "instance_hint", hint)
    monkeypatch.setattr(executor, "live_seams", lambda changes, **kw: executor.Seams(
        FakeService(log, "new", h.fail_service), FakeService(log, "back"), h.verify, kw.get("chronyd")))
    yield h


@pytest.mark.root  # a live host's files with their owner (chown) and apply's root check
def test_a_live_apply_gathers_once_and_changes_every_file_and_the_unit(live: Host) -> None:
    result = live.apply(at_boot=True)
    assert live.imds_calls == [1]  # one instance-metadata round trip for the whole apply
    assert result.files == ["/etc/chrony.conf", "/run/chronyctl6/timesync.sources", "/etc/chrony.d/link-local.sources"]
    assert result.enabled == "/usr/lib/systemd/system/chronyctl6-boot.service"
    assert live.log == ["new:restart"] and result.selected == "fd00:ec2::123"
    assert os.readlink(live.root / LINK) == "/usr/lib/systemd/system/chronyctl6-boot.service"
    assert "server fd00:ec2::123" in (live.root / "run/chronyctl6/timesync.sources").read_text()
    st = (live.root / "etc/chrony.conf").stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1234, 4321, 0o640)
    assert len(live.history_entries()) == 1


def test_the_plan_is_a_pure_function_of_facts_and_request(tmp_path: Path) -> None:
    """No network, no metadata, no root: facts built by hand decide the endpoint."""
    root = stock_root(tmp_path, "debian12")
    basics = planning.Basics(None, "settings.toml", "ID=debian\nVERSION_ID=12\n", "os-release")
    conf = (root / "etc/chrony/chrony.conf").read_bytes()

    def decide(network: host.HostNetwork, hint: host.InstanceHint | None, **request: Any) -> str:
        facts = planning.Facts(basics, network, None, hint, conf, None, None, False)
        made = planning.plan(Request(root=root, **request), facts)
        return made.config.new.decode()

    assert "server fd00:ec2::123 prefer" in decide(NETWORK, host.InstanceHint("nitro", True))
    assert "server 169.254.169.123 prefer" in decide(NETWORK, host.InstanceHint("xen", True))
    assert "server 169.254.169.123 prefer" in decide(host.HostNetwork((), ("10.0.0.5",)), None)
    assert "server 169.254.169.123 prefer" in decide(NETWORK, None, ipv6="off")
    # The same facts twice: the same plan (nothing is read behind the facts' back).
    assert decide(NETWORK, None) == decide(NETWORK, None)


# ---- a failure at every step -----------------------------------------------------------------

def _fail_nth_write(monkeypatch: pytest.MonkeyPatch, n: int, *, after: bool) -> None:
    real = transaction.Transaction.write
    count = [0]

    def write(self: transaction.Transaction, path: Path, shown: str, data: bytes, **kw: Any) -> None:
        count[0] += 1
        if count[0] == n and not after:
            raise OSError(errno.EIO, "Input/output error", str(path))
        real(self, path, shown, data, **kw)
        if count[0] == n:
            raise OSError(errno.EIO, "Input/output error (after the rename)", str(path))

    monkeypatch.setattr(transaction.Transaction, "write", write)


def _raise(exc: BaseException) -> Any:
    def fail(*args: Any, **kwargs: Any) -> None:
        raise exc

    return fail


def _signal_during_verify(signum: int) -> Any:
    def verify(changes: Any) -> tuple[str | None, float | None]:
        os.kill(os.getpid(), signum)
        time.sleep(5)  # the handler raises long before
        raise AssertionError("the signal did not interrupt the wait")

    return verify


STEPS = ["validate", "keep-original", "history", "write-config", "write-bootsources",
         "write-dropin", "write-dropin-after-rename", "enable", "restart", "verify", "verify-bug",
         "ctrl-c", "SIGTERM", "SIGHUP", "SIGINT"]
TOUCHES_CHRONYD = {"restart", "verify", "verify-bug", "ctrl-c", "SIGTERM", "SIGHUP", "SIGINT"}


@pytest.mark.root  # a live host's files with their owner (chown) and apply's root check
@pytest.mark.parametrize("step", STEPS)
def test_a_failure_at_any_step_puts_everything_back(live: Host, monkeypatch: pytest.MonkeyPatch,
                                                     step: str) -> None:
    before = live.snapshot()
    handlers = {s: signal.getsignal(s) for s in transaction.SIGNALS}
    if step == "validate":
        monkeypatch.setattr(executor, "validate", _raise(
            apply_mod.ValidationFailed("chronyd rejects the new configuration: injected")))
    elif step == "keep-original":
        monkeypatch.setattr(history.Store, "keep_original", _raise(OSError(errno.ENOSPC, "No space left")))
    elif step == "history":
        monkeypatch.setattr(history.Store, "record", _raise(OSError(errno.EROFS, "Read-only file system")))
    elif step.startswith("write-"):
        n = {"config": 1, "bootsources": 2, "dropin": 3}[step.split("-")[1]]
        _fail_nth_write(monkeypatch, n, after=step.endswith("after-rename"))
    elif step == "enable":
        monkeypatch.setattr(transaction, "make_link", _raise(PermissionError(errno.EACCES, "Permission denied")))
    elif step == "restart":
        live.fail_service = "restart"
    elif step == "verify":
        live.verify = _raise(CommandFailed("chronyd did not select fd00:ec2::123 within 5 s"))
    elif step == "verify-bug":
        live.verify = _raise(ValueError("an unmapped error"))
    elif step == "ctrl-c":
        live.verify = _raise(KeyboardInterrupt())
    else:
        live.verify = _signal_during_verify(getattr(signal, step))

    with pytest.raises(ChronyCtlError) as failed:
        live.apply(at_boot=True)

    assert live.snapshot() == before, f"{step}: a file differs after the rollback"
    assert not (live.root / LINK).is_symlink()
    assert live.history_entries() == []  # a change that never happened leaves nothing to restore to
    assert {s: signal.getsignal(s) for s in transaction.SIGNALS} == handlers  # handlers given back
    assert failed.value.status == ExitStatus.FAILED
    if step in TOUCHES_CHRONYD:
        assert live.log == ["new:restart", "back:restart"]
        assert "previous configuration is restored and chronyd restarted on it" in failed.value.message
    else:
        assert live.log == []
    if step.startswith("SIG"):
        assert f"interrupted by {step}" in failed.value.message


@pytest.mark.root  # a live host's files with their owner (chown) and apply's root check
def test_a_failed_rollback_has_its_own_status_and_says_what_is_on_disk(live: Host,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    live.verify = _raise(CommandFailed("chronyd did not select fd00:ec2::123 within 5 s"))
    monkeypatch.setattr(history, "put_back", _raise(OSError(errno.EROFS, "Read-only file system")))
    with pytest.raises(transaction.RollbackFailed) as failed:
        live.apply(at_boot=True)
    assert failed.value.status == ExitStatus.ROLLBACK_FAILED and exit_code("apply", failed.value.status) == 6
    message = failed.value.message
    assert message.startswith("chronyd did not select fd00:ec2::123 within 5 s; rolling back failed too")
    assert "/etc/chrony.conf: Read-only file system" in message
    assert "on disk now: /etc/chrony.conf: the new version or a mix" in message
    assert "boot unit enabled" not in message  # the link itself came out


@pytest.mark.root  # a live host's files with their owner (chown) and apply's root check
def test_an_up_to_date_host_is_left_alone(live: Host) -> None:
    live.apply(at_boot=True)
    conf = live.root / "etc/chrony.conf"
    before = conf.stat()
    live.log.clear()
    again = live.apply()
    assert again.changed is False and again.action == "none" and live.log == []
    assert conf.stat().st_ino == before.st_ino


@pytest.mark.root  # a live host's files with their owner (chown) and apply's root check
def test_waiting_prints_progress_for_a_person_and_fails_in_time(live: Host,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from chronyctl6.effects import chrony_tools

    monkeypatch.setattr(chrony_tools, "sources", _raise(CommandFailed("506 Cannot talk to daemon")))
    # A clock of the test's own at the seam (the module's `time`): each sleep moves it on exactly,
    # so the 5.5 s are waited in no time and a loaded machine cannot stretch them.
    clock = FakeClock()
    began = clock.now
    monkeypatch.setattr(executor, "time", clock)
    made = planning.make_plan(Request(root=live.root, ipv6="on"))
    lines: list[str] = []
    with pytest.raises(CommandFailed) as failed:
        executor.wait_selected(made.expected_source, 5.5, lines.append)
    assert 5.5 <= clock.now - began < 5.5 + 0.25 + 1e-9  # stopped at the first look past the deadline
    assert clock.slept and all(0 < s <= 0.25 for s in clock.slept)
    assert "did not select fd00:ec2::123 within 5.5 s (no sources)" in failed.value.message
    assert lines[0] == "waiting for chronyd to select fd00:ec2::123: 0 of 5.5 s (no sources yet)"
    assert lines[1].startswith("waiting for chronyd to select fd00:ec2::123: 5 of 5.5 s")
    assert len(lines) == 2


def test_progress_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from chronyctl6 import cli

    run = cli._Run("apply", "text")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert cli._progress(run) is None
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert callable(cli._progress(run))
    assert cli._progress(cli._Run("apply", "text", quiet=True)) is None  # -q: no progress either


@pytest.mark.root  # a live host's files with their owner (chown) and apply's root check
def test_a_second_sigterm_during_the_rollback_does_not_cut_it_short(live: Host,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    before = live.snapshot()

    class Impatient(FakeService):
        def restart(self) -> None:
            os.kill(os.getpid(), signal.SIGTERM)  # systemd or SSM insisting, mid-rollback
            super().restart()

    monkeypatch.setattr(executor, "live_seams", lambda changes, **kw: executor.Seams(
        FakeService(live.log, "new"), Impatient(live.log, "back"), _signal_during_verify(signal.SIGTERM)))
    with pytest.raises(transaction.RolledBack) as failed:
        live.apply(at_boot=True)
    assert "interrupted by SIGTERM" in failed.value.message
    assert live.log == ["new:restart", "back:restart"]
    assert live.snapshot() == before


@pytest.mark.root  # a live host's files with their owner (chown) and apply's root check
@pytest.mark.parametrize(("settings_text", "flag", "expected"),
                         [(None, None, 60.0), ("wait = 0\n", None, 0.0), ("wait = 12\n", None, 12.0),
                          ("wait = 12\n", 3.0, 3.0), (None, 0.0, 0.0)],
                         ids=["default", "settings-0", "settings-12", "flag-wins", "no-wait"])
def test_how_long_a_live_apply_waits(live: Host, monkeypatch: pytest.MonkeyPatch, settings_text: str | None,
                                     flag: float | None, expected: float) -> None:
    if settings_text is not None:
        path = live.root / "etc/chronyctl6/settings.toml"
        path.parent.mkdir(parents=True)
        path.write_text(settings_text)
    asked: list[float] = []

    def seams(changes: Any, *, wait: float, **kw: Any) -> executor.Seams:
        asked.append(wait)
        return executor.Seams(FakeService(live.log, "new"), FakeService(live.log, "back"), live.verify)

    monkeypatch.setattr(executor, "live_seams", seams)
    apply_mod.apply(Request(root=live.root, ipv6="on"), apply_mod.Options(wait=flag))
    assert asked == [expected]
