"""Nagios threshold ranges (`[@]start:end`), read and applied as the monitoring plugins' C library
does (plugins/utils_base.c: parse_range_string, check_range, get_status), so a threshold means
the same to check_timesync as to check_ntp_time. Pure, standard library only.

- `10` is 0..10, `10:` is 10..infinity, `~:10` is -infinity..10, `10:20` is 10..20;
- an alert is raised when the value is OUTSIDE the range (endpoints included in the range),
  or INSIDE it with a leading `@`;
- numbers are read like C's strtod: the longest leading number, 0 when there is none (`abc`
  is 0, so `-c abc` alerts on anything but 0, as check_ntp_time does);
- start above end is refused ("Range format incorrect", UNKNOWN), unless one end is infinite.
"""

from __future__ import annotations

import math
import re

TYPE_CHECKING = False  # typing's, without importing typing: check_timesync imports this at start-up
if TYPE_CHECKING:
    from typing import Final

# What strtod accepts at the start of a string (decimal and the words inf, infinity, nan).
_STRTOD = re.compile(r"\s*([+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan))",
                     re.IGNORECASE)


class RangeError(ValueError):
    """A range the plugins' library refuses: the plugin says "Range format incorrect", UNKNOWN."""


class Range:
    """A plain class, not a NamedTuple (typing costs check_timesync's start-up) nor a
    chronyctl6.plain record (this module stays standard library only): equal, hashed and shown by
    its fields."""

    __slots__ = ("end", "end_infinite", "inside", "start", "start_infinite")
    start: Final[float]
    end: Final[float]
    start_infinite: Final[bool]
    end_infinite: Final[bool]
    inside: Final[bool]  # `@`: alert when the value is inside

    def __init__(self, start: float = 0.0, end: float = 0.0, start_infinite: bool = False,
                 end_infinite: bool = True, inside: bool = False) -> None:
        self.start = start
        self.end = end
        self.start_infinite = start_infinite
        self.end_infinite = end_infinite
        self.inside = inside

    def _values(self) -> tuple[float, float, bool, bool, bool]:
        return self.start, self.end, self.start_infinite, self.end_infinite, self.inside

    def __eq__(self, other: object) -> bool:
        return self._values() == other._values() if isinstance(other, Range) else NotImplemented

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        return "Range(start={!r}, end={!r}, start_infinite={!r}, end_infinite={!r}, inside={!r})".format(
            *self._values())

    def alerts(self, value: float) -> bool:
        """check_range: True when `value` calls for this range's alert."""
        if not self.start_infinite and not self.end_infinite:
            within = self.start <= value <= self.end
        elif not self.start_infinite:
            within = self.start <= value
        elif not self.end_infinite:
            within = value <= self.end
        else:
            within = True
        return within if self.inside else not within

    @property
    def perf_end(self) -> float:
        """What the plugins print for this range in perfdata: its end (0 when unbounded)."""
        return 0.0 if self.end_infinite else self.end


def strtod(text: str) -> float:
    match = _STRTOD.match(text)
    return float(match.group(1)) if match else 0.0


def parse(text: str) -> Range:
    """parse_range_string."""
    inside = text.startswith("@")
    if inside:
        text = text[1:]
    start, start_infinite, end, end_infinite = 0.0, False, 0.0, True
    head, colon, tail = text.partition(":")
    if colon:
        if head.startswith("~"):
            start_infinite = True
        else:
            start = strtod(head)
        end_text = tail
    else:
        end_text = text
    if end_text != "":
        end, end_infinite = strtod(end_text), False
    # `not <=`: NaN compares false, and the library refuses it just the same.
    if not (start_infinite or end_infinite or start <= end):
        raise RangeError(text)
    return Range(start, end, start_infinite, end_infinite, inside)


def status(value: float, warning: Range | None, critical: Range | None) -> int:
    """get_status: 2 when the critical range alerts, else 1 when the warning range does, else 0.
    A NaN value alerts on every range with ends (every comparison with it is false)."""
    if critical is not None and critical.alerts(value):
        return 2
    if warning is not None and warning.alerts(value):
        return 1
    return 0


def fperfdata(label: str, value: float, uom: str = "", warn: Range | None = None,
              crit: Range | None = None, minimum: float | None = None,
              maximum: float | None = None) -> str:
    """One perfdata item printed as the plugins' fperfdata does: `label=value[uom];warn;crit;[min][;max]`,
    numbers with six decimals (%f), ranges by their end; an int value (a stratum) is printed
    with its bounds as integers, as their perfdata() does."""
    name = f"'{label}'" if any(c in label for c in "'= ") else label
    integer = isinstance(value, int)

    def number(x: float) -> str:
        if integer and math.isfinite(x):
            return str(int(x))
        return f"{x:f}"  # C's %f: six decimals; nan, inf and -inf as glibc prints them

    text = f"{name}={number(value)}{uom};"
    text += (number(warn.perf_end) if warn else "") + ";"
    text += (number(crit.perf_end) if crit else "") + ";"
    text += number(minimum) if minimum is not None else ""
    if maximum is not None:
        text += ";" + number(maximum)
    return text
