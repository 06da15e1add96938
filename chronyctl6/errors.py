"""Errors the CLI turns into one line and a hint, and the one exit-status type.

`Status` is the one vocabulary of outcomes (the JSON envelope's `status` word) and `EXITS` the one
table that ties each word to its exit code, for the change commands (render, apply, boot, restore, release)
and the monitoring commands (check, doctor, status, wait: the Nagios plugin convention, so a fleet
aggregates them alike). The CLI, check's fast path, the Nagios line, the JSON envelope, `--help`,
the man page and the README's exit tables all come from here (packaging/gen_docs.py renders the
docs; tests hold the README and the JSON Schema to it). Standard library only: `check` imports it
at start-up, every minute.
"""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    """The one status vocabulary; each word's meaning is in EXITS."""

    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"
    UNKNOWN = "unknown"
    FAILED = "failed"
    USAGE = "usage"
    BUSY = "busy"
    DENIED = "denied"
    PENDING = "pending"
    ROLLBACK_FAILED = "rollback-failed"
    UNAVAILABLE = "unavailable"
    # The names an error's kind has always been given: the same members.
    BAD_INPUT = "usage"
    NOT_PERMITTED = "denied"
    CHANGES_PENDING = "pending"

    def __str__(self) -> str:  # as StrEnum (3.11+) would print it
        return str(self.value)


ExitStatus = Status  # the older name of the one type


class Exit:
    """One row of the table. A plain class: `dataclasses` costs `check` start-up time."""

    __slots__ = ("change", "meaning", "monitoring", "status")

    def __init__(self, status: Status, meaning: str, change: int | None, monitoring: int | None) -> None:
        self.status = status
        self.meaning = meaning
        self.change = change  # exit code of the CHANGE commands; None: they never say it
        self.monitoring = monitoring  # exit code of the MONITORING commands; None: they never say it


EXITS: tuple[Exit, ...] = (
    Exit(Status.OK, "done / nothing to do / healthy / within thresholds", 0, 0),
    Exit(Status.WARNING, "works, with something to look at", None, 1),
    Exit(Status.CRITICAL, "does not work (offset beyond `--crit`, a doctor check failed, chronyd not "
                          "synchronised)", None, 2),
    Exit(Status.UNKNOWN, "could not find out (no valid reply, chronyc unreadable, an unexpected error)", 1, 3),
    Exit(Status.FAILED, "the change failed: nothing written, or rolled back", 1, 3),
    Exit(Status.USAGE, "bad flags, `-o`, settings or input: nothing done", 2, 3),
    Exit(Status.BUSY, "another apply holds the lock", 3, 3),
    Exit(Status.DENIED, "needs root", 4, 3),
    Exit(Status.PENDING, "`apply --check`: the host differs from what apply would make it", 5, None),
    Exit(Status.ROLLBACK_FAILED, "the change failed and so did its rollback: the error message says what is "
                                 "on disk", 6, None),
    Exit(Status.UNAVAILABLE, "what the command needs is not on this host (systemd is not running): nothing done",
         7, 3),
)
CHANGE = ("render", "apply", "boot", "restore", "release")
MONITORING = ("check", "doctor", "status", "wait")
_BY_STATUS = {e.status: e for e in EXITS}


def exit_code(command: str, status: Status) -> int:
    """The exit status for this command and status word: the one place they are tied together.
    A word the command's family never says exits as its family's failure (1, or 3 UNKNOWN)."""
    row = _BY_STATUS[status]
    if command in MONITORING:
        return row.monitoring if row.monitoring is not None else 3
    return row.change if row.change is not None else 1


def monitoring_status(code: int) -> Status:
    """The status word a monitoring verdict's Nagios code stands for (0 OK, 1 WARNING, 2 CRITICAL,
    anything else UNKNOWN): doctor's and check's verdicts are kept as those codes."""
    for row in EXITS[:3]:
        if row.monitoring == code:
            return row.status
    return Status.UNKNOWN


# What each exit code means for each command, in its own words (help, man page, README).
MEANINGS: dict[str, tuple[tuple[int, str], ...]] = {
    "render": ((0, "rendered"), (1, "an unexpected error"),
               (2, "bad input (flags, settings, unknown distro, a file chronyctl6 must not read)")),
    "apply": ((0, "done, or nothing to do"), (1, "failed: nothing written, or rolled back"),
              (2, "bad input (flags, `-o`, settings, unknown distro, NaN/inf/negative seconds)"),
              (3, "another apply holds the lock"), (4, "a live apply needs root"),
              (5, "`--check`: changes pending"),
              (6, "the change failed and so did its rollback (the message says what is on disk now)"),
              (7, "systemd is not running here: nothing done (--service-manager direct runs chronyd without it)")),
    "boot": ((0, "written, or already right"), (1, "failed"), (2, "bad input"), (4, "not root")),
    "restore": ((0, "restored, or nothing to restore"), (1, "failed (rolled back)"), (2, "bad input"),
                (3, "another apply holds the lock"), (4, "not root"), (6, "failed, and so did the rollback"),
                (7, "systemd is not running here: nothing done")),
    "release": ((0, "done, or nothing to do"), (1, "failed (rolled back)"), (2, "bad input (NaN/inf/negative seconds)"),
                (3, "another apply holds the lock"), (4, "not root"), (6, "failed, and so did the rollback"),
                (7, "systemd is not running here: nothing done")),
    "check": ((0, "OK"), (1, "WARNING"), (2, "CRITICAL"), (3, "UNKNOWN, bad arguments included")),
    "doctor": ((0, "healthy (for the instance's intent)"), (1, "a warning"), (2, "a failure"),
               (3, "doctor could not run (bad arguments, an unexpected error)")),
    "status": ((0, "chronyd synchronised to Time Sync (or the ENA PTP clock), config as chronyctl6 renders it "
                   "(`--root`: the image's config as chronyctl6 renders it, chrony enabled)"),
               (1, "synchronised, but to another source, or with config drift, another time daemon or a "
                   "second chronyd, or chronyd's error bound at `--warn` (`--root`: drift, chrony not enabled, "
                   "another time daemon enabled)"),
               (2, "chronyd not running, or not synchronised, or its error bound at `--crit`"),
               (3, "chronyd runs but cannot be read (`--root`: the image's config cannot be read)")),
    "wait": ((0, "synchronised within `--max-error`"), (2, "not by `--timeout` (the reason is printed)"),
             (3, "bad arguments or an unexpected error")),
}


def codes(command: str) -> frozenset[int]:
    """Every exit code this command can end with: what its status words map to."""
    family = "monitoring" if command in MONITORING else "change"
    return frozenset(c for e in EXITS if (c := getattr(e, family)) is not None)


class ChronyCtlError(Exception):
    """An expected failure: one line for the operator, and what to do about it. `status` is its
    kind: the status word (and so, with the command, the exit code) it ends with."""

    status: Status = Status.FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class BadInput(ChronyCtlError):
    status = Status.USAGE


class Busy(ChronyCtlError):
    status = Status.BUSY


class NotPermitted(ChronyCtlError):
    status = Status.DENIED


class Unavailable(ChronyCtlError):
    """A fact of this host, not a mistake in the command line: what the command needs is not
    there (systemd is not running). Its own status word and exit code, never `usage`."""

    status = Status.UNAVAILABLE


class CommandFailed(ChronyCtlError):
    """A program we ran (chronyd, chronyc, systemctl) failed or timed out."""
