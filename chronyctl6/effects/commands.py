"""The one place chronyctl6 runs other programs: argv lists, a timeout, captured output.

`check` runs chronyc through here every minute: no dataclasses (Completed is a chronyctl6.plain
record) and no shutil (which() is its own few lines: shutil pulls bz2, lzma and fnmatch).
"""

from __future__ import annotations

import os
import subprocess

from chronyctl6.errors import CommandFailed
from chronyctl6.plain import Frozen

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy reads it so)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Final

DEFAULT_TIMEOUT = 30.0


class Completed(Frozen):
    __slots__ = ("argv", "returncode", "stderr", "stdout")
    argv: Final[tuple[str, ...]]
    returncode: Final[int]
    stdout: Final[str]
    stderr: Final[str]

    def __init__(self, argv: tuple[str, ...], returncode: int, stdout: str, stderr: str) -> None:
        self.argv = argv
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def brief(self) -> str:
        """The last line of what the program said, for one-line error messages."""
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return text[-1] if text else f"exit status {self.returncode}"


def which(program: str) -> str | None:
    # sbin is not on a non-root PATH on Debian, and chronyd lives there.
    return _which(program, None) or _which(program, "/usr/sbin:/sbin:/usr/bin:/bin")


def _which(program: str, path: str | None) -> str | None:
    """shutil.which(program, path=path) on POSIX, as Python 3.10-3.12 have it: a name with a
    slash is taken as it is; else the first directory of PATH (the system's default path when
    PATH is unset) holding an executable non-directory of that name."""
    if os.path.dirname(program):
        return program if _executable(program) else None
    if path is None:
        path = os.environ.get("PATH")
        if path is None:
            try:
                path = os.confstr("CS_PATH") or os.defpath
            except (AttributeError, ValueError):
                path = os.defpath
    seen: set[str] = set()
    for directory in path.split(os.pathsep) if path else ():
        if directory not in seen:
            seen.add(directory)
            if _executable(candidate := os.path.join(directory, program)):
                return candidate
    return None


def _executable(path: str) -> bool:
    return os.path.exists(path) and os.access(path, os.F_OK | os.X_OK) and not os.path.isdir(path)


def run(
    argv: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    check: bool = False,
    input_text: str | None = None,
) -> Completed:
    """Run argv without a shell. A missing program or a time-out is a CommandFailed."""
    program = which(argv[0]) or argv[0]
    args = (program, *argv[1:])
    try:
        proc = subprocess.run(
            args,
            capture_output=True,
            text=True,
            errors="replace",  # chronyd -p echoes configuration bytes that need not be UTF-8
            timeout=timeout,
            input=input_text,
            check=False,
        )
    except FileNotFoundError as exc:
        raise CommandFailed(f"{argv[0]} is not installed", hint=f"install the package that provides {argv[0]}") from exc
    except subprocess.TimeoutExpired as exc:
        raise CommandFailed(f"{' '.join(argv)} did not finish within {timeout:g} s") from exc
    done = Completed(tuple(argv), proc.returncode, proc.stdout, proc.stderr)
    if check and not done.ok:
        raise CommandFailed(f"{' '.join(argv)} failed: {done.brief()}")
    return done
