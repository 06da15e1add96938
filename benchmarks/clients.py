"""The Python clients the benchmarks run, and the one interpreter they run on.

A fair comparison runs every Python client on the interpreter the package runs on: the .deb's
`/usr/bin/chronyctl6` and `/usr/bin/check_timesync` start `/usr/bin/python3` (Debian's), as
Debian's `sntp` (ntpsec's ntpdig, a Python script) does. Another interpreter can cost tens of
milliseconds before any of our code runs (a pyenv python whose site-packages hold an editable
install's finder and other `.pth` hooks: `python -X importtime` shows `site` itself at 40-60 ms),
which is the interpreter's cost, not chronyctl6's. So the benchmarks use Debian's python3 when it
can import what a check needs (scripts/setup installs ntplib and the rest as python3-* packages),
else the interpreter running the benchmark; `--python` overrides either.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEBIAN_PYTHON = "/usr/bin/python3"  # the .deb's console scripts' interpreter
# What a check imports from outside the standard library (on the fast path and check_timesync's).
_PROBE = "import ntplib, chronyctl6.measure.command, chronyctl6.measure.check_timesync"

# As the console scripts run them: `chronyctl6 = chronyctl6.__main__:main` and `check_timesync =
# chronyctl6.measure.check_timesync:main` (pyproject.toml's [project.scripts]); `python -c`, not
# `python -m`, which adds runpy's start-up. Under -c, sys.argv[1:] is the arguments that follow.
CHECK_SCRIPT = "import sys; from chronyctl6.__main__ import main; sys.exit(main())"
TIMESYNC_SCRIPT = "from chronyctl6.measure.check_timesync import main; main()"


def ntplib_script(server: str) -> str:
    """One bare ntplib request, its offset printed."""
    return f"import ntplib\nprint(ntplib.NTPClient().request('{server}', version=4, timeout=2).offset)\n"


def check_argv(python: str, server: str) -> list[str]:
    """`chronyctl6 check` as the benchmarks run it: JSON (offset and error_bound_seconds), no chronyd,
    thresholds no path reaches."""
    return [python, "-c", CHECK_SCRIPT, "check", "--server", server, "--no-chronyd", "-o", "json",
            "--warn", "100", "--crit", "200"]


def timesync_argv(python: str, server: str) -> list[str]:
    """`check_timesync` as check_ntp_time is run (-H, -6, -w, -c), plus its bound thresholds, which
    make it print the max error (|offset| + error bound) in its line with ten digits (perfdata
    has six decimals): the error bound is that less |offset|."""
    return [python, "-c", TIMESYNC_SCRIPT, "-H", server, "-6", "-w", "100", "-c", "200",
            "--bound-warning", "100", "--bound-critical", "200"]


def parse_timesync(text: str) -> tuple[float, float | None]:
    """check_timesync's `NTP OK: Offset X secs, max error Y secs|...`: the offset, and the bound on
    it (max error less |offset|; None when no max error is printed)."""
    import re

    offset = re.search(r"Offset (-?\d+(?:\.\d+)?(?:e[-+]?\d+)?) secs", text)
    if offset is None:
        raise ValueError(f"no offset in {text[-300:]!r}")
    value = float(offset.group(1))
    bound = re.search(r"max error (\d+(?:\.\d+)?(?:e[-+]?\d+)?) secs", text)
    return value, (float(bound.group(1)) - abs(value)) if bound else None


def package_python(requested: str | None = None) -> tuple[str, str]:
    """The interpreter for the Python clients, and why that one: `requested` (--python) if given,
    else Debian's python3 when it imports what a check needs from this repository, else the one
    running now."""
    if requested:
        return requested, "--python"
    if os.access(DEBIAN_PYTHON, os.X_OK):
        probe = subprocess.run([DEBIAN_PYTHON, "-c", _PROBE], cwd=REPO, capture_output=True, timeout=60,
                               env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)
        if probe.returncode == 0:
            return DEBIAN_PYTHON, "Debian's, as the .deb's console scripts"
        return sys.executable, f"this benchmark's own: {DEBIAN_PYTHON} cannot import ntplib and chronyctl6"
    return sys.executable, f"this benchmark's own: no {DEBIAN_PYTHON}"


def describe(python: str, why: str) -> str:
    """The line printed beside the tables: which interpreter ran the Python clients, and why."""
    version = subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"],
                             capture_output=True, text=True, timeout=60, check=False).stdout.strip()
    return (f"Python clients (chronyctl6 check, check_timesync, ntplib, same burst) ran on {python} "
            f"(Python {version or '?'}; {why}); sntp on its own #! interpreter")
