"""One executor under apply, restore, the boot step and package removal.

1. Statically: outside configure/executor.py, transaction.py and validation.py (its validate
   step) no configure module (nor the CLI) writes, removes or links a file, takes the lock, or
   restarts/reloads chronyd.
2. Dynamically: a failure injected at each executor step, for each of the four commands, leaves
   every file and link byte for byte as before, and no history entry (the live-looking image root
   and stand-in services of tests/configure/test_transaction.py).
"""

from __future__ import annotations

import ast
import errno
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chronyctl6.configure import boot as boot_mod
from chronyctl6.configure import executor, release, restore, transaction
from chronyctl6.configure.plan import Request
from chronyctl6.effects import chrony_tools, history, service
from chronyctl6.errors import ChronyCtlError, CommandFailed
from tests.configure.test_transaction import LINK, Host, live  # noqa: F401 (the fixture)

PACKAGE = Path(__file__).resolve().parents[2] / "chronyctl6"
# validation.py is the executor's validate step (it stages the candidate beside chrony.conf); the
# executor is its only caller (checked below).
THE_EXECUTOR = {"executor.py", "transaction.py", "validation.py"}
# What only the executor may call: writing, removing or linking chrony's files, the lock, chronyd.
# (module.function for the effects modules; .method for a call on any object.)
EFFECTS = {"files.atomic_write", "files.backup", "files.locked", "history.put_back", "transaction.make_link",
           "Transaction", "guarded", "make_link", ".restart", ".reload_sources", "chrony_tools.reload_sources",
           ".symlink_to", ".unlink", ".write_bytes", ".write_text", ".rename", "os.replace", "os.rename",
           "os.unlink", "os.remove", "os.symlink", "shutil.rmtree"}


def _calls(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute):
                owner = func.value.id if isinstance(func.value, ast.Name) else ""
                names.add(f"{owner}.{func.attr}" if owner in ("files", "history", "transaction", "os",
                                                                "shutil", "chrony_tools") else f".{func.attr}")
            elif isinstance(func, ast.Name):
                names.add(func.id)
    return names


def test_only_the_executor_writes_locks_or_moves_chronyd() -> None:
    modules = [p for p in (PACKAGE / "configure").glob("*.py") if p.name not in THE_EXECUTOR]
    modules.append(PACKAGE / "cli.py")
    found = {p.name: sorted(_calls(p) & EFFECTS) for p in modules}
    assert {name: calls for name, calls in found.items() if calls} == {}
    assert [p.name for p in modules if ".validate_candidate" in _calls(p)] == []
    # ... and the executor does call them (the check above looks at the right names).
    assert {"files.locked", ".restart", ".reload_sources"} <= _calls(PACKAGE / "configure/executor.py")
    assert {"files.atomic_write", "history.put_back", "make_link"} <= _calls(PACKAGE / "configure/transaction.py")


# ---- a failure at each step, for each command -------------------------------------------------

class Service:
    name = "stand-in"

    def __init__(self, log: list[str], label: str, fail: bool) -> None:
        self.log, self.label, self.fail = log, label, fail

    def restart(self) -> None:
        self.log.append(f"{self.label}:restart")
        if self.fail:
            raise CommandFailed("injected: chronyd did not start")

    def reload_sources(self) -> None:
        self.log.append(f"{self.label}:reload")
        if self.fail:
            raise CommandFailed("injected: chronyc reload sources failed")

    def is_active(self) -> bool:
        return True

    def main_pid(self) -> int | None:
        return None


def _raise(exc: BaseException) -> Callable[..., Any]:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return fail


def _after(real: Callable[..., Any], when: Callable[..., bool] = lambda *a: True) -> Callable[..., Any]:
    """Do the real thing, then fail: the worst moment (the file is already replaced)."""

    def fail(self: Any, path: Path, *args: Any, **kwargs: Any) -> Any:
        real(self, path, *args, **kwargs)
        if when(path):
            raise OSError(errno.EIO, "injected after the rename", str(path))

    return fail


def _inject(step: str, mp: pytest.MonkeyPatch, log: list[str], fail: dict[str, bool]) -> None:
    tx = transaction.Transaction
    if step == "validate":
        mp.setattr(executor, "validate", _raise(executor.ValidationFailed("injected: chronyd rejects it")))
    elif step == "back-up":
        mp.setattr(history.Store, "record", _raise(OSError(errno.ENOSPC, "No space left on device")))
    elif step == "write":
        for name in ("write", "remove", "symlink"):
            mp.setattr(tx, name, _after(getattr(tx, name), lambda p: not str(p).endswith(".service")))
    elif step == "units":
        mp.setattr(transaction, "make_link", _raise(PermissionError(errno.EACCES, "Permission denied")))
        mp.setattr(tx, "remove", _after(tx.remove, lambda p: str(p).endswith(".service")))
    elif step == "activate":
        fail["service"] = True

        def reload_once() -> None:  # chronyc: fails onto the change, works back
            log.append("chronyc:reload")
            if len(log) == 1:
                raise CommandFailed("injected: chronyc reload sources failed")

        mp.setattr(chrony_tools, "reload_sources", reload_once)
    elif step == "verify":
        fail["verify"] = True


def _run(command: str, root: Path) -> Any:
    if command == "apply":
        from chronyctl6.configure import apply

        return apply.apply(Request(root=root, ipv6="on", at_boot=False), apply.Options(wait=5))
    if command == "restore":
        return restore.restore(Request(root=root), original=True, wait=5)
    if command == "boot":
        return boot_mod.boot(Request(root=root), settle=0)
    return release.release(Request(root=root), wait=5)


# Which steps each command has: boot writes /run only (no history, no unit) and only reloads.
STEPS = {
    "apply": ["validate", "back-up", "write", "activate", "verify"],
    "restore": ["validate", "back-up", "write", "activate", "verify"],
    "boot": ["validate", "write", "activate"],
    "release": ["validate", "back-up", "write", "units", "activate", "verify"],
}
CASES = [(command, step) for command, steps in STEPS.items() for step in steps]


@pytest.mark.root
@pytest.mark.parametrize(("command", "step"), CASES, ids=[f"{c}-{s}" for c, s in CASES])
def test_a_failure_at_each_step_of_each_command_puts_everything_back(
    live: Host, monkeypatch: pytest.MonkeyPatch, command: str, step: str  # noqa: F811
) -> None:
    log: list[str] = []
    fail = {"service": False, "verify": False}

    def verify(changes: Any) -> tuple[str | None, float | None]:
        if fail["verify"]:
            raise CommandFailed("injected: chronyd did not select Time Sync")
        return None, 0.1

    def seams(changes: Any, **kw: Any) -> executor.Seams:
        return executor.Seams(Service(log, "new", fail["service"]), Service(log, "back", False), verify,
                              kw.get("chronyd"))

    monkeypatch.setattr(executor, "live_seams", seams)
    monkeypatch.setattr(service, "systemd_running", lambda: True)  # release: a host whose chronyd restarts
    monkeypatch.setattr(boot_mod, "_chronyd_answers", lambda: True)  # boot run by hand: chronyd reloads
    monkeypatch.setattr(chrony_tools, "reload_sources", lambda: log.append("chronyc:reload"))
    if command != "apply":  # what restore, boot and removal find: a host apply baked to choose at boot
        live.apply(at_boot=True)
        (live.root / "run/chronyctl6/timesync.sources").unlink()  # a new launch: boot writes it again
        if command != "boot":
            boot_mod.boot(Request(root=live.root), settle=0)
    before, entries = live.snapshot(), history.Store(live.root).entries()
    log.clear()
    _inject(step, monkeypatch, log, fail)
    with pytest.raises(ChronyCtlError) as failed:
        _run(command, live.root)
    assert live.snapshot() == before, f"{command} {step}: a file differs after the rollback"
    assert history.Store(live.root).entries() == entries  # no entry for a change that never happened
    assert isinstance(failed.value, (transaction.RolledBack, executor.ValidationFailed)), failed.value.message
    assert "injected" in failed.value.message or "No space" in failed.value.message \
        or "Permission denied" in failed.value.message
    if step in ("activate", "verify"):
        assert len(log) == 2, log  # moved onto the change, then back


@pytest.mark.root
@pytest.mark.parametrize("command", list(STEPS))
def test_without_a_failure_each_command_changes_something(live: Host, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                                                          command: str) -> None:
    """The cases above would pass for a command that does nothing: each does change the files."""
    monkeypatch.setattr(executor, "live_seams", lambda changes, **kw: executor.Seams(
        Service([], "new", False), Service([], "back", False), lambda c: (None, 0.1), kw.get("chronyd")))
    monkeypatch.setattr(service, "systemd_running", lambda: True)
    monkeypatch.setattr(boot_mod, "_chronyd_answers", lambda: True)
    monkeypatch.setattr(chrony_tools, "reload_sources", lambda: None)
    if command != "apply":
        live.apply(at_boot=True)
        (live.root / "run/chronyctl6/timesync.sources").unlink()
        if command != "boot":
            boot_mod.boot(Request(root=live.root), settle=0)
    before = live.snapshot()
    _run(command, live.root)
    assert live.snapshot() != before
