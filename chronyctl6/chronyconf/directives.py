"""chrony.conf as data: split lines and words as chronyd does, parse directives, and decide what
a takeover keeps.

Pure. Confirmed in chrony's source (conf.c CNF_ReadFile / CNF_ParseLine, cmdparse.c
CPS_NormalizeLine) and with chronyd 4.3 `-p`:
- lines end at `\n` only (fgets); `\r`, `\v` and form feed are white space inside a line, like
  space and tab (isspace in the C locale), so `# x\rcmdallow all` is one comment;
  `\x1c`-`\x1e`, `\x85`, U+2028 are neither: they are part of a word;
- a line is a comment when its first non-blank character is one of `!;#%`;
- a NUL ends the line (strlen): what follows it up to the `\n` is not read;
- a line of 2048 bytes or more is an error in a configuration file ("String too long"); a
  *.sources file stops at such a line, and at a last line with no `\n`;
- keywords are matched without regard to case.
Text is bytes decoded with surrogateescape, so bytes that are not UTF-8 round-trip exactly.
"""

from __future__ import annotations

import re
from enum import Enum

from chronyctl6.chronyconf import sources
from chronyctl6.plain import Frozen

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: check's start-up (mypy reads it so)
if TYPE_CHECKING:
    from typing import Final

# The source policy's names, where other layers have always imported them from.
PHC_DEVICES = sources.PHC_DEVICES
SMEARED_HOSTS = sources.SMEARED_HOSTS
SOURCE_KEYWORDS = sources.SOURCE_KEYWORDS
TIMESYNC_ADDRESSES = sources.TIMESYNC_ADDRESSES
TIMESYNC_IPV4 = sources.TIMESYNC_IPV4
TIMESYNC_IPV6 = sources.TIMESYNC_IPV6
is_smeared = sources.is_smeared
is_timesync = sources.is_timesync

COMMENT_CHARS = "#%;!"
WHITESPACE = " \t\n\v\f\r"  # C isspace() in the C locale
MAX_LINE_BYTES = 2047  # chronyd's buffer is 2048 bytes with the line break
_WORD_SEP = re.compile(f"[{re.escape(WHITESPACE)}]+")
ENCODING = "utf-8"
ERRORS = "surrogateescape"


def decode(data: bytes) -> str:
    """Configuration bytes as text that encodes back to the very same bytes."""
    return data.decode(ENCODING, ERRORS)


def encode(text: str) -> bytes:
    return text.encode(ENCODING, ERRORS)


class Line(Frozen):
    __slots__ = ("lineno", "terminated", "text")
    text: Final[str]  # without its `\n`, cut at a NUL as chronyd cuts it
    lineno: Final[int]
    terminated: Final[bool]  # ended by `\n` (a *.sources file ignores a last line without one)

    def __init__(self, text: str, lineno: int, terminated: bool) -> None:
        self.text = text
        self.lineno = lineno
        self.terminated = terminated

    @property
    def too_long(self) -> bool:
        return len(self.text) > MAX_LINE_BYTES // 4 and len(encode(self.text)) > MAX_LINE_BYTES - 1


def split_lines(text: str) -> list[Line]:
    """The lines chronyd reads: split at `\n` and nothing else."""
    if not text:
        return []
    parts = text.split("\n")
    last_terminated = parts[-1] == ""
    if last_terminated:
        parts.pop()
    return [Line(part.split("\0", 1)[0], i, i < len(parts) or last_terminated)
            for i, part in enumerate(parts, start=1)]


def words(line: str) -> list[str]:
    """A line's words as chronyd splits them (only C white space separates)."""
    return [w for w in _WORD_SEP.split(line) if w]


def strip(line: str) -> str:
    return line.strip(WHITESPACE)


# Directives chrony accepts more than once; any other one set twice means the last one wins,
# so an operator's value of it replaces the distro's stock value.
MULTI_KEYWORDS = frozenset({
    "server", "pool", "peer", "refclock", "allow", "deny", "cmdallow", "cmddeny", "bindaddress",
    "bindcmdaddress", "include", "confdir", "sourcedir", "hwtimestamp", "log", "ntsservercert",
    "ntsserverkey", "ntstrustedcerts", "initstepslew", "broadcast", "ratelimit", "local",
})


class Directive(Frozen):
    __slots__ = ("args", "keyword", "line", "lineno")
    keyword: Final[str]
    args: Final[tuple[str, ...]]
    line: Final[str]  # as written, without the line break
    lineno: Final[int]

    def __init__(self, keyword: str, args: tuple[str, ...], line: str, lineno: int = 0) -> None:
        self.keyword = keyword
        self.args = args
        self.line = line
        self.lineno = lineno

    @property
    def normalized(self) -> str:
        return " ".join((self.keyword, *self.args))

    @property
    def multi(self) -> bool:
        return self.keyword in MULTI_KEYWORDS


def parse(text: str, *, sources_file: bool = False) -> list[Directive]:
    """The directives of one file. sources_file: read as chronyd reads a *.sources file (it
    stops at an over-long line or a last line without a line break)."""
    found = []
    for line in split_lines(text):
        if sources_file and (not line.terminated or line.too_long):
            break
        ws = words(line.text)
        if not ws or ws[0][0] in COMMENT_CHARS:
            continue
        shown = strip(line.text)
        if any(c in shown for c in "\r\v\f"):
            shown = " ".join(ws)  # never carry a character some readers take for a line break
        found.append(Directive(ws[0].lower(), tuple(ws[1:]), shown, line.lineno))
    return found


class Fate(Enum):
    KEEP = "keep"
    DROP = "drop"


class Verdict(Frozen):
    __slots__ = ("directive", "fate", "reason")
    directive: Final[Directive]
    fate: Final[Fate]
    reason: Final[str]

    def __init__(self, directive: Directive, fate: Fate, reason: str = "") -> None:
        self.directive = directive
        self.fate = fate
        self.reason = reason


def judge(directive: Directive, *, runtime_sourcedir: str,
          replaced_sourcedirs: tuple[tuple[str, str], ...] = ()) -> Verdict:
    """What a takeover does with one directive of a file chronyctl6 is about to replace."""
    kw, args = directive.keyword, directive.args
    kind = sources.classify(kw, args)
    if kw in SOURCE_KEYWORDS and not args:
        return Verdict(directive, Fate.DROP, f"{kw} without an address: chronyd refuses it")
    reason = sources.takeover_reason(kw, args)  # the same policy as for every other file
    if reason is not None:
        return Verdict(directive, Fate.DROP, reason)
    if kind is sources.Kind.PHC:
        return Verdict(directive, Fate.DROP, "ENA PTP hardware clock: chronyctl6 manages it (--phc)")
    if kw == "sourcedir" and args and args[0].rstrip("/") == runtime_sourcedir:
        return Verdict(directive, Fate.DROP, "boot-time source directory: chronyctl6 manages it")
    for directory, why in replaced_sourcedirs:
        if kw == "sourcedir" and args and args[0].rstrip("/") == directory:
            return Verdict(directive, Fate.DROP, why)
    return Verdict(directive, Fate.KEEP)


MANAGED_MARK = "managed by chronyctl6"


def is_managed(text: str) -> bool:
    """chronyctl6 wrote this file (its header says so in the first lines)."""
    return any(MANAGED_MARK in line.text for line in split_lines(text)[:3])


INCLUDE_KEYWORDS = frozenset({"include", "confdir", "sourcedir"})


def rebase_includes(text: str, root: str) -> str:
    """The same configuration with the files it pulls in taken under root: how an image's
    chrony.conf is validated on the machine that builds the image."""
    out = []
    for line in split_lines(text):
        ws = words(line.text)
        if ws and ws[0].lower() in INCLUDE_KEYWORDS:
            out.append(" ".join([ws[0], *(root.rstrip("/") + w if w.startswith("/") else w for w in ws[1:])]))
        else:
            out.append(line.text)
    return "\n".join(out) + "\n"
