"""Errors the CLI turns into one line, a hint and an exit status."""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """Exit statuses of the change commands (`render`, `apply`, `boot`, `restore`), and the kind of
    an error for every command: chronyctl6.output turns it into a status word (`usage`, `busy`, ...)
    and, with the command, into the exit code (output.exit_code is the one table; check, doctor and
    status exit 3 for any error, the Nagios convention)."""

    OK = 0
    FAILED = 1  # the change failed: nothing was written, or it was rolled back
    BAD_INPUT = 2  # bad flags or settings, unknown distro: nothing was written
    BUSY = 3  # another apply holds the lock
    NOT_PERMITTED = 4  # a live apply needs root
    CHANGES_PENDING = 5  # apply --check: the host differs from what apply would make it
    ROLLBACK_FAILED = 6  # the change failed and rolling it back failed too: the message says what is on disk


class ChronyCtlError(Exception):
    """An expected failure: one line for the operator, and what to do about it."""

    status: ExitStatus = ExitStatus.FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class BadInput(ChronyCtlError):
    status = ExitStatus.BAD_INPUT


class Busy(ChronyCtlError):
    status = ExitStatus.BUSY


class NotPermitted(ChronyCtlError):
    status = ExitStatus.NOT_PERMITTED


class CommandFailed(ChronyCtlError):
    """A program we ran (chronyd, chronyc, systemctl) failed or timed out."""
