"""Property-based: whatever a settings value holds, it never renders a second directive."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from chronyctl6.chronyconf import directives
from chronyctl6.configure import render
from chronyctl6.configure import settings as chronyctl6_settings
from chronyctl6.configure.platforms import by_name
from chronyctl6.effects.host import HostNetwork
from chronyctl6.errors import BadInput

NETWORK = HostNetwork(("2001:db8::10%eth0",), ("192.0.2.10%eth0",))
# Text that favours what breaks line-oriented formats.
HOSTILE = st.text(
    alphabet=st.sampled_from(list("ab.-:1 \t\n\r\x0b\x0c\x00#;!%\u2028\u2029\x85\"'\\{}[]=server pool")),
    max_size=40,
) | st.text(max_size=40)


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


@settings(max_examples=300, deadline=None)
@given(host=HOSTILE)
def test_hostile_host(host: str) -> None:
    ds = _rendered_directives(f"[[servers]]\nhost = {_toml_string(host)}\n")
    if ds is not None:
        assert len(ds) == BASELINE + 1
        assert ds[1].keyword == "server" and "\n" not in ds[1].line


@settings(max_examples=300, deadline=None)
@given(option=HOSTILE)
def test_hostile_option(option: str) -> None:
    ds = _rendered_directives(f"[[pools]]\nhost = 'a.example'\noptions = [{_toml_string(option)}]\n")
    if ds is not None:
        assert len(ds) == BASELINE + 1
        assert ds[1].keyword == "pool"


@settings(max_examples=300, deadline=None)
@given(directive=HOSTILE)
def test_hostile_directive(directive: str) -> None:
    ds = _rendered_directives(f"directives = [{_toml_string(directive)}]\n")
    if ds is not None:
        assert len(ds) == BASELINE + 1
        assert ds[-1].keyword in chronyctl6_settings.DIRECTIVES


@settings(max_examples=100, deadline=None)
@given(word=st.sampled_from(["allow", "log", "maxclockerror"]), tail=HOSTILE)
def test_hostile_tail_of_a_good_directive(word: str, tail: str) -> None:
    ds = _rendered_directives(f"directives = [{_toml_string(word + ' ' + tail)}]\n")
    if ds is not None:
        assert len(ds) == BASELINE + 1
        assert ds[-1].keyword == word
