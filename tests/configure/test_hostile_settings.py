"""Property-based: whatever a settings value holds, it never renders a second directive.

Most hostile text is refused outright, and a refused value proves nothing about the render: each
property draws from values that are valid or one hostile character away from valid as well as from
raw hostile text, counts the examples that were accepted and rendered, and fails when fewer than
CHECKED_AT_LEAST of them were (hypothesis' statistics show the split: `pytest --hypothesis-show-statistics`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from chronyctl6.chronyconf import directives
from chronyctl6.configure import render
from chronyctl6.configure import settings as chronyctl6_settings
from chronyctl6.configure.platforms import by_name
from chronyctl6.effects.host import HostNetwork
from chronyctl6.errors import BadInput

NETWORK = HostNetwork(("2001:db8::10%eth0",), ("192.0.2.10%eth0",))
# What breaks line-oriented formats.
BREAKERS = list("\t\n\r\x0b\x0c\x00#;!%\u2028\u2029\x85\"'\\{}[]= ")
HOSTILE = st.text(
    alphabet=st.sampled_from(list("ab.-:1") + BREAKERS + list("server pool")), max_size=40,
) | st.text(max_size=40)
EXAMPLES = 300
CHECKED_AT_LEAST = EXAMPLES // 5  # accepted and rendered (about half are); the rest were refused
checked: Counter[str] = Counter()


def near(valid: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A valid value (three draws in four), or the same with one hostile character put in somewhere."""
    def spoil(value: str, char: str, at: int) -> str:
        at %= len(value) + 1
        return value[:at] + char + value[at:]

    # sampled_from draws evenly; one_of would not hold to a ratio
    spoiler = st.sampled_from([""] * 3 * len(BREAKERS) + BREAKERS)
    return st.builds(spoil, valid, spoiler, st.integers(0, 80))


LABEL = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?\Z")
HOSTS = near(st.lists(LABEL, min_size=1, max_size=4).map(".".join)
             | st.ip_addresses().map(str)
             | st.tuples(st.ip_addresses(v=6).map(str), st.sampled_from(["eth0", "ens5", "x"])).map("%".join))
NUMBER = st.integers(-10, 70).map(str) | st.sampled_from(["nan", "inf", "1e999", "0x10", "4.5"])
OPTION_WORDS = sorted(chronyctl6_settings.OPTIONS)


def option(word: str) -> st.SearchStrategy[str]:
    """The option as the table allows it (a flag alone, a number in its range), or with any number."""
    kind, lo, hi = chronyctl6_settings.OPTIONS[word]
    if kind == "flag":
        return st.one_of(st.just(word), st.just(word), st.just(word), st.tuples(st.just(word), NUMBER).map(" ".join))
    inside = st.integers(int(lo), int(hi)).map(str) if kind == "int" else st.floats(lo, hi).map(repr)
    return st.tuples(st.just(word), st.one_of(inside, inside, inside, NUMBER)).map(" ".join)


OPTIONS = near(st.sampled_from(OPTION_WORDS).flatmap(option))
WORD = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=10)
ARGS = st.lists(WORD | NUMBER, max_size=3).map(" ".join)
DIRECTIVE_WORDS = sorted(chronyctl6_settings.DIRECTIVES - chronyctl6_settings.READS_FILES)
DIRECTIVES = near(st.tuples(st.sampled_from(DIRECTIVE_WORDS), ARGS).map(" ".join).map(str.strip))


def count(name: str, checked_now: bool) -> None:
    event("accepted and rendered: checked" if checked_now else "refused")
    if checked_now:
        checked[name] += 1


def run_counting(name: str, prop: Callable[[], None]) -> None:
    checked[name] = 0
    prop()
    print(f"{name}: {checked[name]} generated values accepted and rendered, the others refused")
    assert checked[name] >= CHECKED_AT_LEAST, (
        f"{name}: only {checked[name]} generated values were accepted and rendered: the property was "
        "barely checked")


def _baseline() -> list[directives.Directive]:
    choices = render.decide(chronyctl6_settings.Settings(), by_name("debian"), network=NETWORK, phc_device=None)
    return directives.parse(render.render_config(choices, None).text)


BASELINE = len(_baseline())


def _toml_string(value: str) -> str:
    escaped = "".join(c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}" for c in value)
    return f'"{escaped}"'


def _rendered_directives(toml: str) -> list[directives.Directive] | None:
    try:
        chosen = chronyctl6_settings.parse(toml)
    except BadInput:
        return None
    choices = render.decide(chosen, by_name("debian"), network=NETWORK, phc_device=None)
    return directives.parse(render.render_config(choices, None).text)


def _one_more(name: str, toml: str) -> list[directives.Directive] | None:
    """The directives rendered from settings `toml`: counted as checked, exactly one more than the
    defaults render; None, counted as refused, where the settings are refused."""
    ds = _rendered_directives(toml)
    count(name, ds is not None)
    if ds is not None:
        assert len(ds) == BASELINE + 1
    return ds


@settings(max_examples=EXAMPLES, deadline=None)
@given(host=st.one_of(HOSTS, HOSTS, HOSTILE))
def _host(host: str) -> None:
    ds = _one_more("host", f"[[servers]]\nhost = {_toml_string(host)}\n")
    if ds is not None:
        assert ds[1].keyword == "server" and "\n" not in ds[1].line


def test_hostile_host() -> None:
    run_counting("host", _host)


@settings(max_examples=EXAMPLES, deadline=None)
@given(option=st.one_of(OPTIONS, OPTIONS, HOSTILE))
def _option(option: str) -> None:
    ds = _one_more("option", f"[[pools]]\nhost = 'a.example'\noptions = [{_toml_string(option)}]\n")
    if ds is not None:
        assert ds[1].keyword == "pool"


def test_hostile_option() -> None:
    run_counting("option", _option)


@settings(max_examples=EXAMPLES, deadline=None)
@given(directive=st.one_of(DIRECTIVES, DIRECTIVES, HOSTILE))
def _directive(directive: str) -> None:
    ds = _one_more("directive", f"directives = [{_toml_string(directive)}]\n")
    if ds is not None:
        assert ds[-1].keyword in chronyctl6_settings.DIRECTIVES


def test_hostile_directive() -> None:
    run_counting("directive", _directive)


@settings(max_examples=EXAMPLES, deadline=None)
@given(word=st.sampled_from(["allow", "log", "maxclockerror"]), tail=st.one_of(near(ARGS), near(ARGS), HOSTILE))
def _tail_of_a_good_directive(word: str, tail: str) -> None:
    ds = _one_more("tail", f"directives = [{_toml_string(word + ' ' + tail)}]\n")
    if ds is not None:
        assert ds[-1].keyword == word


def test_hostile_tail_of_a_good_directive() -> None:
    run_counting("tail", _tail_of_a_good_directive)


def test_a_generator_that_yields_only_refused_values_fails_the_count() -> None:
    @settings(max_examples=20, deadline=None, database=None)
    @given(host=st.just("a\nserver evil"))
    def refused_only(host: str) -> None:
        count("refused only", _rendered_directives(f"[[servers]]\nhost = {_toml_string(host)}\n") is not None)

    with pytest.raises(AssertionError, match="barely checked"):
        run_counting("refused only", refused_only)
