"""The one sanitiser (chronyctl6.text): every string from outside reaches a terminal, JSON or a
monitoring line through it, and nothing that could drive a terminal or forge a line survives."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chronyctl6.text import shown, shown_lines


@pytest.mark.parametrize(("raw", "safe"), [
    ("plain text\twith a tab", "plain text\twith a tab"),
    ("a\x1b[1;31mb\x1b[0m", "a\\e[1;31mb\\e[0m"),
    ("title\x1b]0;pwned\x07done", "title\\e]0;pwned\\x07done"),
    ("line\nbreak\rcr\x0cff\u2028ls\u2029ps", "line\\nbreak\\rcr\\x0cff\\u2028ls\\u2029ps"),
    ("bidi\u202eevil\u2066", "bidi\\u202eevil\\u2066"),
    ("nul\x00del\x7fc1\x9b", "nul\\x00del\\x7fc1\\x9b"),
    ("zero\u200bwidth\ufeffbom", "zero\\u200bwidth\\ufeffbom"),
    ("\ufffdreplaced é", "\ufffdreplaced é"),
    (b"not utf-8 \xff\xfe", "not utf-8 \\xff\\xfe"),
    ("not utf-8 \udcff", "not utf-8 \\xff"),  # how surrogateescape carries the byte
])
def test_shown(raw: str | bytes, safe: str) -> None:
    assert shown(raw) == safe


def test_shown_cuts_at_the_limit_with_a_mark() -> None:
    assert shown("x" * 300, 256) == "x" * 253 + "..."
    assert shown("x" * 256, 256) == "x" * 256


def test_shown_lines_keeps_only_line_breaks() -> None:
    assert shown_lines(b"server a\n\x1b]0;x\x07\nlogdir /\xff\n") == "server a\n\\e]0;x\\x07\nlogdir /\\xff\n"


# Everything a terminal or a line-based reader could take for a control: nothing of it survives.
_DANGEROUS = {chr(c) for c in [*range(0x00, 0x09), *range(0x0A, 0x20), *range(0x7F, 0xA0)]} | set(
    "\u061c\u200b\u200c\u200d\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff")


@given(st.text(alphabet=st.characters(blacklist_categories=()), min_size=1))
def test_nothing_dangerous_survives(value: str) -> None:
    out = shown(value)
    assert not _DANGEROUS & set(out)
    assert not any(0xD800 <= ord(c) <= 0xDFFF for c in out)
    out.encode("utf-8")  # always writable to any stream


@given(st.binary(min_size=1))
def test_any_bytes_become_printable_text(value: bytes) -> None:
    out = shown(value)
    assert not _DANGEROUS & set(out)
    out.encode("utf-8")
