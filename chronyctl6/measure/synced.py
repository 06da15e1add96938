"""The record `chronyctl6 wait` keeps of this boot's synchronisation: how many seconds from boot
until chronyd kept the clock on Time Sync within the bound (/run/chronyctl6/synchronised.json),
read back by `status` and exported by `check`'s metrics.

Pure: bytes in, a record or the reason it is ignored out. The file is data from disk, so it is
judged as hostile: anything but a small JSON object whose numbers are finite, non-negative and
plausible (at most MAX_SECONDS) is ignored with a note, never trusted; the source's name is
shown through the one sanitiser wherever it is printed.
"""

from __future__ import annotations

import json
import math

from chronyctl6.plain import Frozen

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: check reads the record (mypy reads it so)
if TYPE_CHECKING:
    from typing import Any, Final

RECORD = "/run/chronyctl6/synchronised.json"
MAX_BYTES = 4096  # the record is ~150 bytes; anything larger is not ours
MAX_SECONDS = 10 * 365 * 86400.0  # longer than any uptime: a larger figure is not a measurement
MAX_NAME = 255  # a source's name (an address, a refclock, a host name)


class Synchronised(Frozen):
    __slots__ = ("bound_seconds", "since_boot_seconds", "since_init_seconds", "source")
    since_boot_seconds: Final[float]  # CLOCK_BOOTTIME when `wait` found the clock synchronised
    since_init_seconds: Final[float | None]  # since this PID namespace's init started (a container's boot)
    source: Final[str | None]
    bound_seconds: Final[float | None]  # chronyd's bound on the clock's error then

    def __init__(self, since_boot_seconds: float, since_init_seconds: float | None = None,
                 source: str | None = None, bound_seconds: float | None = None) -> None:
        self.since_boot_seconds = since_boot_seconds
        self.since_init_seconds = since_init_seconds
        self.source = source
        self.bound_seconds = bound_seconds

    def as_dict(self) -> dict[str, object]:
        return {"since_boot_seconds": self.since_boot_seconds, "since_init_seconds": self.since_init_seconds,
                "source": self.source, "bound_seconds": self.bound_seconds}


class _Refused(ValueError):
    pass


def _refuse_constant(name: str) -> float:
    raise _Refused(f"{name} is not a number")  # json accepts NaN and Infinity; we do not


def _seconds(data: dict[str, Any], key: str, *, required: bool = False) -> float | None:
    value = data.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Refused(f"{key} is not a number")
    number = float(value)
    if not math.isfinite(number) or not 0.0 <= number <= MAX_SECONDS:
        raise _Refused(f"{key} is out of range")
    return number


def parse(data: bytes) -> tuple[Synchronised | None, str | None]:
    """The record, or None and why it is ignored."""
    if len(data) > MAX_BYTES:
        return None, f"over {MAX_BYTES} bytes"
    try:
        doc = json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
        if not isinstance(doc, dict):
            raise _Refused("not a JSON object")
        since_boot = _seconds(doc, "since_boot_seconds", required=True)
        assert since_boot is not None
        source = doc.get("source")
        if source is not None and (not isinstance(source, str) or not 0 < len(source) <= MAX_NAME):
            raise _Refused("source is not a name")
        return Synchronised(since_boot, _seconds(doc, "since_init_seconds"), source,
                            _seconds(doc, "bound_seconds")), None
    except UnicodeDecodeError:
        return None, "not UTF-8"
    except _Refused as exc:
        return None, str(exc)
    except (ValueError, RecursionError):
        return None, "not JSON"
