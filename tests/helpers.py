"""Small shared helpers for tests that run the CLI (in process, or as a real process)."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.conftest import FIXTURES, REPO

T = TypeVar("T")


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run chronyctl6 in this process, exactly as `python -m chronyctl6 ARGS` would (the same entry,
    chronyctl6.__main__.main: check's fast path, then typer), with its output captured: a process
    start costs ~0.3 s, 287 of them were most of the suite's time. `timeout` is kept for the
    signature's sake: an in-process run is bounded by the test's own deadline.
    Use cli_subprocess where the process itself is under test (exit on a signal, a lock held by
    another process, the interpreter's start-up)."""
    del timeout
    from chronyctl6.__main__ import main

    return _captured(main, args, env)


def cli_typer(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """As cli, but straight into the typer app: `check` without its fast path, for comparing the two."""
    from chronyctl6.cli import app

    return _captured(lambda: app(prog_name="chronyctl6"), args, env)


def _captured(main: Callable[[], None], args: tuple[str, ...],
              env: dict[str, str] | None) -> subprocess.CompletedProcess[str]:
    with _in_process(env) as (stdout, stderr):
        code = _run_main(main, ["chronyctl6", *args], stderr)
    return subprocess.CompletedProcess(["chronyctl6", *args], code, stdout.getvalue(), stderr.getvalue())


def cli_subprocess(*args: str, env: dict[str, str] | None = None,
                   timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the real chronyctl6 as a separate process (smoke tests of the real entry point)."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "chronyctl6", *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, check=False)


# What a check must never import at start-up (issue 19 item 6): dataclasses alone pulled inspect,
# ast, dis and tokenize into every run (~10 ms); typing costs ~2.5 ms. chronyctl6.plain's records
# and a TYPE_CHECKING of each module's own stand in for them. tempfile and shutil (~2.5 ms each,
# with random, weakref, bz2, lzma) serve writing and validating, which a check without --textfile
# never does.
START_UP_NEVER = ("dataclasses", "inspect", "ast", "dis", "tokenize", "typing", "copy", "tempfile", "shutil")


def modules_run_imports(module: str, func: str, argv: list[str]) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    """The modules `module.func()` imports when run as its console script with `argv`: run by this
    interpreter with -S (no site: a pyenv python's .pth hooks load typing, enum, re and contextlib
    before any of our code, which would hide them), ntplib found where this process finds it; what
    is in sys.modules at the end and was not before the entry point's import. Its output is the
    process's (the module list goes to a file descriptor of its own)."""
    import ntplib

    read, write = os.pipe()
    probe = (f"import os, sys\nbefore = set(sys.modules)\nfrom {module} import {func}\n"
             f"sys.argv = {argv!r}\n"
             f"try:\n    {func}()\nexcept SystemExit:\n    pass\n"
             f"os.write({write}, ' '.join(sorted(set(sys.modules) - before)).encode())\n")
    path = os.pathsep.join([str(REPO), os.path.dirname(ntplib.__file__)])
    try:
        done = subprocess.run([sys.executable, "-S", "-c", probe], capture_output=True, text=True, timeout=30,
                              cwd=REPO, check=False, pass_fds=(write,), env={**os.environ, "PYTHONPATH": path})
    finally:
        os.close(write)
    with os.fdopen(read) as stream:
        return set(stream.read().split()), done


def _run_main(main: Callable[[], None], argv: list[str], stderr: io.StringIO) -> int:
    saved_argv = sys.argv
    sys.argv = argv
    try:
        main()
    except SystemExit as exc:
        return _exit_status(exc.code, stderr)
    except BaseException:  # as the interpreter does with an uncaught exception: traceback, status 1
        stderr.write(traceback.format_exc())
        return 1
    finally:
        sys.argv = saved_argv
    return 0


def _exit_status(code: object, stderr: io.StringIO) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    stderr.write(f"{code}\n")  # sys.exit("message"): printed, status 1
    return 1


@contextlib.contextmanager
def _in_process(env: dict[str, str] | None) -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """What a process would not share with the next one: environment, streams, cwd, umask, signal
    handlers, the root logger (--debug configures it), the loaded command-line module's flags."""
    import logging

    saved_env = dict(os.environ)
    saved_streams = sys.stdin, sys.stdout, sys.stderr
    saved_cwd, saved_umask = os.getcwd(), os.umask(0o022)
    os.umask(saved_umask)
    saved_signals = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    root_logger = logging.getLogger()
    saved_handlers, saved_level = root_logger.handlers[:], root_logger.level
    root_logger.handlers = []
    stdout, stderr = io.StringIO(), io.StringIO()
    os.environ.update(env or {})
    sys.stdin, sys.stdout, sys.stderr = io.StringIO(""), stdout, stderr
    try:
        yield stdout, stderr
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
        os.umask(saved_umask)
        for number, handler in saved_signals.items():
            signal.signal(number, handler)
        root_logger.handlers, root_logger.level = saved_handlers, saved_level


def cli_json(*args: str) -> dict[str, Any]:
    """The `data` of a command's chronyctl6/v1 envelope (validated against the shipped schema)."""
    from tests.contract import envelope

    done = cli(*args, "-o", "json")
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = envelope(done, args[0])["data"]
    return result


def stock_root(tmp_path: Path, distro: str, name: str | None = None) -> Path:
    root = tmp_path / (name or distro)
    shutil.copytree(FIXTURES / "stock" / distro, root, symlinks=True)  # absolute links stay in the image
    return root


def apply_root(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`chronyctl6 apply --root ROOT ARGS`, which must succeed (else its output is the failure)."""
    done = cli("apply", "--root", str(root), *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def put(base: Path, path: str, data: str | bytes) -> Path:
    """Lay a file at `path` under `base` (an image's absolute path is taken under it), making its
    directories; str is written as UTF-8. Its path."""
    target = base / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return target


def write_settings(root: Path, text: str) -> Path:
    return put(root, "etc/chronyctl6/settings.toml", text)


def cli_runner() -> Any:
    """typer's CliRunner with stderr apart from stdout, on click 8.1 (Debian 12's typer 0.7.0
    mixes them unless told not to) and on click 8.2+ (always apart, no mix_stderr)."""
    from typer.testing import CliRunner

    apart: dict[str, Any] = {"mix_stderr": False}  # a keyword only click 8.1's runner has
    try:
        return CliRunner(**apart)
    except TypeError:
        return CliRunner()


class FakeClock:
    """time.monotonic and time.sleep on a clock that moves only when slept on: a wait under test
    reaches its deadline in no time, exactly, and a loaded machine cannot stretch it."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def wait_for(probe: Callable[[], T], ready: Callable[[T], object] = bool, *, what: str, timeout: float = 60.0,
             every: float = 0.05, alive: Callable[[], bool] | None = None,
             context: Callable[[], str] | None = None) -> T:
    """Poll `probe` until `ready(seen)`; return what it saw then. A real process under test gets
    there when it gets there: `timeout` is a generous bound on a broken one, never the expectation,
    so nothing here races a timer. Fails with `what`, the last thing seen and `context()` (a log)
    at the deadline, or at once when `alive()` says the process under test has ended."""
    deadline = time.monotonic() + timeout
    while True:
        seen = probe()
        if ready(seen):
            return seen
        ended = alive is not None and not alive()
        if ended or time.monotonic() > deadline:
            why = "the process under test ended" if ended else f"not within {timeout:g} s"
            extra = f"\n{context()}" if context is not None else ""
            pytest.fail(f"{what}: {why}; last seen: {seen!r}{extra}")
        time.sleep(every)
