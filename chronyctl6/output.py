"""One output contract for every command: the JSON envelope, the status words and their exit codes.

Every command's `-o json` (and every error under `-o json`, usage errors included) is one object:

    {"schema": "chronyctl6/v1", "command": "apply", "status": "ok", "exit_code": 0,
     "data": {...}, "messages": [{"level": "warning", "text": "..."}]}

described by the JSON Schema shipped beside this module (chronyctl6/schema/output-v1.json).
`status` is one word from one vocabulary (`Status`); `exit_code` is the process's exit status,
which follows from the status word and the command's family (`exit_code`): the change commands
(render, apply, boot, restore) keep their own statuses, the monitoring commands (check, doctor,
status) follow the Nagios plugin convention, so a fleet aggregates them the same way.

Pure: no printing (cli.py prints), no I/O but reading the schema file.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

from chronyctl6.errors import ChronyCtlError, ExitStatus

SCHEMA_ID = "chronyctl6/v1"
SCHEMA_FILE = "output-v1.json"


class Status(str, Enum):
    """The one status vocabulary. What each word means for each command is in README's
    "Output contract"."""

    OK = "ok"  # done, nothing to do, healthy, within thresholds
    WARNING = "warning"  # works, with something to look at
    CRITICAL = "critical"  # does not work: clock not kept by Time Sync, a doctor check failed
    UNKNOWN = "unknown"  # could not find out (no reply, chronyc unreadable, unexpected error)
    FAILED = "failed"  # a change failed: nothing written, or rolled back
    USAGE = "usage"  # bad flags, settings or input: nothing done
    BUSY = "busy"  # another apply holds the lock
    DENIED = "denied"  # needs root
    PENDING = "pending"  # apply --check: the host differs from what apply would make it
    ROLLBACK_FAILED = "rollback-failed"  # a change failed and putting things back failed too

    def __str__(self) -> str:  # as StrEnum (3.11+) would print it
        return str(self.value)


MONITORING = frozenset({"check", "doctor", "status", "wait"})
_CHANGE_EXIT = {Status.OK: 0, Status.FAILED: 1, Status.USAGE: 2, Status.BUSY: 3, Status.DENIED: 4,
                Status.PENDING: 5, Status.ROLLBACK_FAILED: 6, Status.WARNING: 0, Status.UNKNOWN: 1, Status.CRITICAL: 1}
_MONITOR_EXIT = {Status.OK: 0, Status.WARNING: 1, Status.CRITICAL: 2}  # anything else: 3 UNKNOWN
_FROM_ERROR = {ExitStatus.FAILED: Status.FAILED, ExitStatus.BAD_INPUT: Status.USAGE, ExitStatus.BUSY: Status.BUSY,
               ExitStatus.NOT_PERMITTED: Status.DENIED, ExitStatus.CHANGES_PENDING: Status.PENDING,
               ExitStatus.ROLLBACK_FAILED: Status.ROLLBACK_FAILED,
               ExitStatus.OK: Status.OK}


def exit_code(command: str, status: Status) -> int:
    """The exit status for this command and status word: the one place they are tied together."""
    if command in MONITORING:
        return _MONITOR_EXIT.get(status, 3)
    return _CHANGE_EXIT[status]


def error_status(error: ChronyCtlError) -> Status:
    return _FROM_ERROR.get(error.status, Status.FAILED)


class Level(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"
    HINT = "hint"

    def __str__(self) -> str:
        return str(self.value)


@dataclass(frozen=True)
class Message:
    level: Level
    text: str

    def as_dict(self) -> dict[str, str]:
        return {"level": str(self.level), "text": self.text}


def error_messages(error: ChronyCtlError) -> list[Message]:
    return [Message(Level.ERROR, error.message)] + ([Message(Level.HINT, error.hint)] if error.hint else [])


def envelope(command: str, status: Status, data: dict[str, Any] | None = None,
             messages: list[Message] | None = None) -> dict[str, Any]:
    return {
        "schema": SCHEMA_ID,
        "command": command,
        "status": str(status),
        "exit_code": exit_code(command, status),
        "data": json_safe(data or {}),
        "messages": [m.as_dict() for m in messages or ()],
    }


def dumps(document: dict[str, Any]) -> str:
    # allow_nan=False: NaN and inf are not JSON; json_safe has already made them null.
    import json  # here: the plugins import this module for Status and exit_code, not JSON

    return json.dumps(document, indent=2, sort_keys=True, allow_nan=False)


def json_safe(value: Any) -> Any:
    """Plain JSON: NaN/inf become null, tuples lists, keys strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def with_units(value: Any, names: dict[str, str]) -> Any:
    """Rename keys (at any depth) to carry their unit: `offset` -> `offset_seconds`. A key that
    already has its unit is left alone, so this is a no-op once a builder uses the names itself."""
    if isinstance(value, dict):
        return {names.get(k, k): with_units(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [with_units(v, names) for v in value]
    return value


def load_schema() -> dict[str, Any]:
    from importlib import resources  # only here: `check` prints envelopes, every minute, without it

    text = resources.files("chronyctl6").joinpath("schema").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    import json

    schema: dict[str, Any] = json.loads(text)
    return schema


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str) -> str:
    """Text safe to print on one line (a Nagios line, a terminal): control characters go."""
    return _CONTROL.sub(" ", text).strip()
