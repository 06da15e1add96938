"""The one sanitiser. Every string that came from outside this program (a file, a file name, a
server's reply, a process's output, instance metadata) passes through `shown` on its way to a
terminal, a log line, JSON, a Nagios line or a Prometheus label.

Pure and cheap to import (the check fast path uses it): no I/O, the standard library's `re` only.
"""

from __future__ import annotations

import re

# C0 and C1 controls and DEL; line and paragraph separators; bidirectional overrides and marks
# (they reorder what a terminal shows); zero-width characters and the BOM (they hide text inside a
# name); lone surrogates, which is how undecodable bytes arrive under surrogateescape.
_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028\u2029\u202a-\u202e"
                     "\u2060-\u2064\u2066-\u2069\ufeff\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\x1b": "\\e"}
ELLIPSIS = "..."


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, kept by surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def shown(value: str | bytes, limit: int | None = None) -> str:
    """`value` as one line that is safe to print anywhere: control characters, separators, bidi
    controls and undecodable bytes become visible escapes (`\\n`, `\\e`, `\\xff`, `\\u202e`); tab
    stays. `limit` cuts the result to that many characters (an ellipsis marks the cut)."""
    text = value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value
    out = _UNSAFE.sub(_escape, text)
    if limit is not None and len(out) > limit:
        out = out[: max(limit - len(ELLIPSIS), 0)] + ELLIPSIS
    return out


def shown_lines(value: str | bytes) -> str:
    """Text of several lines (a configuration, a diff, a report) made safe as `shown` makes one
    line, line by line: its `\n` line breaks are kept, everything else is escaped. Only for text
    whose lines are meant as lines: a name or a value that should be one line goes through `shown`
    (a line break in a file name must never start a line of its own)."""
    text = value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value
    return "\n".join(shown(line) for line in text.split("\n"))
