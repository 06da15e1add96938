"""The README's first screen, read as a newcomer reads it: the install line, the commands to run
and the healthy output it shows. Shared by tests/test_readme.py (its shape, as any user) and
tests/e2e/test_readme_first_screen.py (followed for real on a booted instance, as root).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tests.conftest import REPO

README = REPO / "README.md"
INSTALL = "Install on an instance"
USE = "Use it"
# Where the contributors' material starts: the user's sections must all come before it.
CONTRIBUTORS = "Set up"
# A newcomer reads this many lines before scrolling (a 50-line terminal, give or take).
FIRST_SCREEN_LINES = 75
_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class FirstScreen:
    install_deb: str  # the .deb line of "Install on an instance", as written (with sudo)
    commands: list[str]  # "Use it"'s commands, in order, as written
    healthy: dict[str, list[str]]  # each command shown in the healthy output -> its lines
    last_line: int  # the line number (from 1) on which "Use it" ends


def sections(text: str) -> dict[str, tuple[int, str]]:
    """Each `## ` section's title -> (its heading's line number, its body)."""
    found: dict[str, tuple[int, str]] = {}
    heads = [(n, line[3:].strip()) for n, line in enumerate(text.splitlines(), 1) if line.startswith("## ")]
    lines = text.splitlines()
    for i, (n, title) in enumerate(heads):
        end = heads[i + 1][0] - 1 if i + 1 < len(heads) else len(lines)
        found[title] = (n, "\n".join(lines[n:end]))
    return found


def blocks(body: str, language: str) -> list[list[str]]:
    """The fenced code blocks of one language, each as its lines."""
    return [m.group(1).splitlines() for m in re.finditer(rf"^```{language}\n(.*?)^```$", body, re.M | re.S)]


def command(line: str) -> str:
    """A shell line without its trailing comment (none of ours has a # inside a word)."""
    return line.split("  #", 1)[0].strip()


def first_screen(text: str | None = None) -> FirstScreen:
    text = README.read_text(encoding="utf-8") if text is None else text
    parts = sections(text)
    install = [command(line) for block in blocks(parts[INSTALL][1], "sh") for line in block]
    debs = [line for line in install if line.startswith("sudo apt-get install ./") and line.endswith(".deb")]
    assert len(debs) == 1, f"one `sudo apt-get install ./X.deb` line in {INSTALL!r}: {install}"
    use_at, use = parts[USE]
    use_blocks = blocks(use, "sh")
    assert len(use_blocks) == 1, f"one sh block in {USE!r}"
    commands = [command(line) for line in use_blocks[0] if command(line)]
    healthy: dict[str, list[str]] = {}
    shown = blocks(use, "text")
    assert len(shown) == 1, f"one text block (the healthy output) in {USE!r}"
    current: list[str] | None = None
    for line in shown[0]:
        if line.startswith("$ "):
            current = healthy.setdefault(line[2:].strip(), [])
        else:
            assert current is not None, f"the healthy output starts with `$ command`: {line!r}"
            current.append(line)
    last = use_at + len(use.rstrip("\n").splitlines())
    return FirstScreen(debs[0], commands, healthy, last)


def masked(line: str) -> str:
    """A line of output with its numbers (pids, offsets, times, percentages) made alike."""
    return _NUMBER.sub("N", line)


def cut(lines: list[str]) -> bool:
    """Whether the README shows only the start of an output: its last line is `  ... (why)`."""
    return bool(lines) and lines[-1].strip().startswith("...")


def labels(lines: list[str]) -> list[str]:
    """What each line is about: its first word (`config:`, `tracking:`, `^*`, `offset`, ...)."""
    return [line.split()[0] for line in lines if line.strip()]
