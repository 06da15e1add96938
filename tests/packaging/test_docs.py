"""The documentation the packages ship, generated from the code: chronyctl6-settings(5) and the
example settings from the settings schema, the ENVIRONMENT section of chronyctl6(1)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from chronyctl6.configure import settings as schema
from tests.packaging_support import PACKAGING, require_tools, run


def _gen_docs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_docs", PACKAGING / "gen_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _man(page: Path) -> str:
    require_tools("man", "groff")
    proc = run(["man", "--warnings", "-l", "-Tutf8", page],
               env={"PATH": "/usr/bin:/bin", "MANWIDTH": "200", "LANG": "C.UTF-8"})
    assert proc.stderr == "", proc.stderr
    return re.sub(r".\x08", "", proc.stdout)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pages and the example as the package build writes them (completions left out)."""
    from chronyctl6.cli import app

    gen = _gen_docs()
    out = tmp_path_factory.mktemp("docs")
    (out / "chronyctl6.1").write_text(gen.render_man(app, "0.1.0", "2026-11-29"), encoding="utf-8")
    (out / "chronyctl6-settings.5").write_text(gen.render_settings_man("0.1.0", "2026-11-29"),
                                               encoding="utf-8")
    (out / "examples").mkdir()
    (out / "examples" / "settings.toml").write_text(gen.example_settings(), encoding="utf-8")
    return out


@pytest.mark.tools  # man, groff
def test_settings_page_documents_every_key_with_the_schemas_values(generated: Path) -> None:
    text = _man(generated / "chronyctl6-settings.5")
    for key in schema._KNOWN_KEYS:
        assert re.search(rf"^\s+{key}\b", text, re.M), key
    assert "auto | on | off; default: auto" in text
    assert " | ".join(schema.SERVICE_MANAGERS) in text
    lo, hi = schema.POLL_RANGE
    assert f"integers {lo} to {hi}" in text
    for directive in ("maxclockerror", "hwtimestamp", "makestep"):
        assert directive in text
    assert "leapsectz," not in text.split("DIRECTIVES")[1].split("EXAMPLE")[0].replace("leapsectz cannot", "")


def test_settings_page_fails_the_build_when_a_key_is_undocumented(monkeypatch: pytest.MonkeyPatch) -> None:
    gen = _gen_docs()
    monkeypatch.setattr(schema, "_KNOWN_KEYS", {*schema._KNOWN_KEYS, "new_key"})
    with pytest.raises(SystemExit, match="new_key"):
        gen.render_settings_man("0", "2026-01-01")


def test_example_settings_parse_and_show_every_top_level_key(generated: Path) -> None:
    text = (generated / "examples" / "settings.toml").read_text(encoding="utf-8")
    parsed = schema.parse(text)
    assert parsed.timesync_options == ("prefer", "iburst", "minpoll 4", "maxpoll 4")
    for key in schema._KNOWN_KEYS - {"pools"}:
        assert re.search(rf"^(# )?\[*{key}\b", text, re.M), key


@pytest.mark.tools  # man, groff
def test_main_page_has_an_environment_section(generated: Path) -> None:
    text = _man(generated / "chronyctl6.1")
    environment = text.split("ENVIRONMENT")[1].split("FILES")[0]
    from chronyctl6.effects.service import CHRONYD_ARGS_ENV

    assert CHRONYD_ARGS_ENV in environment and "CHRONYCTL6_TEXTFILE_DIR" in environment
    assert "chronyctl6-settings(5)" in text
