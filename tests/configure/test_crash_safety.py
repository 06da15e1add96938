"""SIGKILL apply at every point where it changes the file system: the file is always the old one or
the new one, whole; the next apply repairs whatever the kill left; the original kept at first
takeover survives.

The fault is injected at a seam, not raced against a timer: a forked child runs the real CLI with
the os functions that change files (open for writing, write-through, fsync, fchmod, replace, unlink,
mkdir, symlink, ...) wrapped, and kills itself with SIGKILL just before the Nth such call. A first
run counts the calls; then N runs through every one of them, so each kill point is hit exactly once.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.helpers import apply_root, cli, stock_root

# os functions through which apply changes files (tempfile and pathlib call them by attribute).
MUTATING = ("replace", "rename", "unlink", "rmdir", "mkdir", "symlink", "link", "fsync", "fchmod",
            "fchown", "chmod", "chown", "truncate", "ftruncate", "utime")
WRITING = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC


def _count_or_kill(kill_at: int | None, calls: list[str]) -> None:
    """In the child: wrap MUTATING and writing os.open; SIGKILL just before call number kill_at."""

    def wrap(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def seam(*args: Any, **kwargs: Any) -> Any:
            writes = name != "open" or (len(args) > 1 and args[1] & WRITING)
            if writes:
                calls.append(name)
                if len(calls) == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)

        return seam

    for name in (*MUTATING, "open"):
        setattr(os, name, wrap(name, getattr(os, name)))


def _apply_in_child(root: Path, mode: str, kill_at: int | None) -> tuple[int, int]:
    """(how the child ended: an exit status, or -signal), and how many seam calls it made."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns to pytest
        status = 70
        try:
            os.close(read)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            calls: list[str] = []
            _count_or_kill(kill_at, calls)
            sys.argv = ["chronyctl6", "apply", "--root", str(root), "--ipv6", mode]
            from chronyctl6.__main__ import main

            try:
                main()
                status = 0
            except SystemExit as exc:
                status = exc.code if isinstance(exc.code, int) else 1
            os.write(write, str(len(calls)).encode())
        finally:
            os._exit(status)
    os.close(write)
    with os.fdopen(read) as pipe:
        reported = pipe.read()
    _, wait_status = os.waitpid(pid, 0)
    ended = -os.WTERMSIG(wait_status) if os.WIFSIGNALED(wait_status) else os.WEXITSTATUS(wait_status)
    return ended, int(reported or 0)


def test_sigkill_at_every_write_never_leaves_a_partial_file(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    conf = root / "etc/chrony/chrony.conf"
    stock = conf.read_bytes()
    apply_root(root, "--ipv6", "off")
    off = conf.read_bytes()
    apply_root(root, "--ipv6", "on")
    on = conf.read_bytes()
    assert on != off

    # How many changing calls an apply that rewrites the file makes (on -> off), then back to on.
    ended, total = _apply_in_child(root, "off", None)
    assert ended == 0 and conf.read_bytes() == off
    print(f"\n{total} kill points")
    assert total >= 5, total  # at least: temp file, fsync, fchmod, replace, the directory's fsync
    apply_root(root, "--ipv6", "on")

    for n in range(1, total + 1):
        ended, _ = _apply_in_child(root, "off", n)
        assert ended == -signal.SIGKILL, f"kill point {n} of {total} was not reached"
        assert conf.read_bytes() in (on, off), f"kill point {n} of {total}: partial or foreign file"
        # Whatever the kill left (a temp file, a half-made history entry, a held lock), the next
        # apply repairs it and succeeds.
        again = cli("apply", "--root", str(root), "--ipv6", "on")
        assert again.returncode == 0, f"after kill point {n} of {total}: {again.stderr}"
        assert conf.read_bytes() == on
        assert not [p.name for p in conf.parent.iterdir() if p.name.endswith(".tmp")], n

    # Whatever the kills interrupted, the distribution's file is still kept as it was.
    assert cli("restore", "--root", str(root), "--original").returncode == 0
    assert conf.read_bytes() == stock
