"""A real chronyd (-x: it never touches the clock) started by a test with every path in a temp
dir, and chronyc pointed at its command socket: one way to start, watch and stop it, so that a
test waits on what chronyd says (helpers.wait_for), never on a fixed sleep."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

from chronyctl6.effects import chrony_tools, commands
from tests.helpers import wait_for


@contextlib.contextmanager
def running(conf: Path, *, ttl: int = 60, log: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """chronyd -x -d on `conf`, as root without a privilege drop; `-t ttl` is a backstop so it can
    never outlive the test. Its stderr goes to `log` (else nowhere); stopped at the end."""
    chronyd = commands.which("chronyd") or "chronyd"
    with contextlib.ExitStack() as stack:
        # The child holds its own copy of the log's descriptor: ours is closed once it started.
        err = stack.enter_context(log.open("wb")) if log is not None else subprocess.DEVNULL
        proc = subprocess.Popen([chronyd, "-x", "-u", "root", "-d", "-t", str(ttl), "-f", str(conf)],
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def chronyc(sock: Path | str, *args: str) -> subprocess.CompletedProcess[str]:
    """chronyc -n -c ARGS against the command socket `sock`."""
    return subprocess.run(["chronyc", "-h", str(sock), "-n", "-c", *args], capture_output=True, text=True,
                          timeout=10, check=False)


def tracking(sock: Path | str) -> chrony_tools.Tracking | None:
    """chronyd's tracking, or None while it does not answer."""
    done = chronyc(sock, "tracking")
    return chrony_tools.parse_tracking(done.stdout) if done.returncode == 0 else None


def sources(sock: Path | str) -> list[chrony_tools.Source]:
    """chronyd's sources, or [] while it does not answer."""
    done = chronyc(sock, "sources")
    return chrony_tools.parse_sources(done.stdout) if done.returncode == 0 else []


def log_of(proc: subprocess.Popen[bytes], log: Path | None) -> str:
    state = "running" if proc.poll() is None else f"exited {proc.returncode}"
    return f"chronyd {state}; its log: {log.read_text(errors='replace') if log is not None else '(none kept)'}"


def wait_tracking(sock: Path | str, proc: subprocess.Popen[bytes], ready: Callable[[chrony_tools.Tracking], bool],
                  *, what: str, timeout: float = 60.0, log: Path | None = None) -> chrony_tools.Tracking:
    """Poll chronyd's tracking until `ready(tracking)`; fails with the last tracking and chronyd's
    log when chronyd exits or at the (generous) deadline."""
    found = wait_for(lambda: tracking(sock), lambda t: t is not None and ready(t), what=what, timeout=timeout,
                     every=0.1, alive=lambda: proc.poll() is None, context=lambda: log_of(proc, log))
    assert found is not None
    return found
