"""One output contract for every command: the JSON envelope, the status words and their exit codes.

Every command's `-o json` (and every error under `-o json`, usage errors included) is one object:

    {"schema": "chronyctl6/v1", "command": "apply", "status": "ok", "exit_code": 0,
     "data": {...}, "messages": [{"level": "warning", "text": "..."}]}

described by the JSON Schema shipped beside this module (chronyctl6/schema/output-v1.json).
`status` is one word from one vocabulary (`Status`); `exit_code` is the process's exit status,
which follows from the status word and the command's family: chronyctl6.errors holds the one
table (`EXITS`, `exit_code`), re-exported here.

Pure: no printing (cli.py prints), no I/O but reading the schema file.
"""

from __future__ import annotations

import math
from enum import Enum

from chronyctl6.errors import MONITORING, ChronyCtlError, Status, exit_code
from chronyctl6.plain import Frozen
from chronyctl6.text import shown, shown_lines

TYPE_CHECKING = False  # typing's, without importing typing: `check` imports this module at start-up
if TYPE_CHECKING:
    from typing import Any, Final

# Status, exit_code and MONITORING are chronyctl6.errors' (the one table), re-exported.
__all__ = ["MONITORING", "SCHEMA_FILE", "SCHEMA_ID", "Level", "Message", "Status", "dumps", "envelope",
           "error_messages", "error_status", "exit_code", "json_safe", "load_schema", "with_units"]

SCHEMA_ID = "chronyctl6/v1"
SCHEMA_FILE = "output-v1.json"


def error_status(error: ChronyCtlError) -> Status:
    return error.status


class Level(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"
    HINT = "hint"

    def __str__(self) -> str:
        return str(self.value)


class Message(Frozen):
    __slots__ = ("level", "text")
    level: Final[Level]
    text: Final[str]

    def __init__(self, level: Level, text: str) -> None:
        self.level = level
        self.text = text

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
        "messages": json_safe([m.as_dict() for m in messages or ()]),
    }


def dumps(document: dict[str, Any]) -> str:
    # allow_nan=False: NaN and inf are not JSON; json_safe has already made them null.
    import json  # here: the plugins import this module for Status and exit_code, not JSON

    return json.dumps(document, indent=2, sort_keys=True, allow_nan=False)


def json_safe(value: Any) -> Any:
    """Plain JSON: NaN/inf become null, tuples lists, keys strings; every string through the one
    sanitiser (text.shown_lines: line breaks are JSON's to escape, anything else that could reach
    a terminal raw, and bytes that were not UTF-8, become visible escapes)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str):
        return shown_lines(value)
    if isinstance(value, dict):
        return {shown(str(k)): json_safe(v) for k, v in value.items()}
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

