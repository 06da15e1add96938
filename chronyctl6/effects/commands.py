"""The one place chronyctl6 runs other programs: argv lists, a timeout, captured output."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from chronyctl6.errors import CommandFailed

DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def brief(self) -> str:
        """The last line of what the program said, for one-line error messages."""
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return text[-1] if text else f"exit status {self.returncode}"


def which(program: str) -> str | None:
    # sbin is not on a non-root PATH on Debian, and chronyd lives there.
    return shutil.which(program) or shutil.which(program, path="/usr/sbin:/sbin:/usr/bin:/bin")


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
