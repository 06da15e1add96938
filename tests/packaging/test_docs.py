"""The documentation the packages ship, generated from the code: chronyctl6-settings(5) and the
example settings from the settings schema, the ENVIRONMENT section of chronyctl6(1)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chronyctl6.configure import settings as schema
from chronyctl6.errors import BadInput
from tests.packaging_support import PACKAGING, gen_docs, require_tools, run


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

    gen = gen_docs()
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
    allowed, refused = text.split("DIRECTIVES")[1].split("EXIT STATUS")[0].split("Refused:")
    assert "leapsectz" not in allowed and "include" not in allowed
    assert "leapsectz," in refused and "include," in refused
    assert "e+" not in text  # limits in plain decimal (4294967295, not 4.29497e+09)
    assert "key (integer 1 to 4294967295)" in " ".join(text.split())


def test_settings_page_fails_the_build_when_a_key_is_undocumented(monkeypatch: pytest.MonkeyPatch) -> None:
    gen = gen_docs()
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


# ---- in process (no man, no groff): what the pages say, from the code

def _sections(roff: str) -> list[str]:
    return [line[4:].strip('"') for line in roff.splitlines() if line.startswith(".SH ")]


def test_both_pages_have_exit_status_environment_files_and_examples() -> None:
    from chronyctl6.cli import app

    gen = gen_docs()
    for page in (gen.render_man(app, "0", "2026-01-01"), gen.render_settings_man("0", "2026-01-01")):
        sections = _sections(page)
        for wanted in ("EXIT STATUS", "ENVIRONMENT", "FILES", "EXAMPLES", "SEE ALSO"):
            assert wanted in sections, (wanted, sections)
        assert sections.index("EXIT STATUS") < sections.index("ENVIRONMENT") < sections.index("FILES") \
            < sections.index("EXAMPLES") < sections.index("SEE ALSO")


def test_the_settings_page_lists_exactly_the_directives_settings_accept() -> None:
    gen = gen_docs()
    allowed = gen.allowed_directives()
    for word in allowed:
        schema.validate_directive(f"{word} 1", "directives")  # raises if the page promised too much
    for word in sorted(schema.DIRECTIVES - set(allowed)) + gen.refused_directives():
        with pytest.raises(BadInput):
            schema.validate_directive(f"{word} 1", "directives")
    assert {"include", "confdir", "sourcedir"} <= set(gen.refused_directives())
    page = gen.render_settings_man("0", "2026-01-01")
    listed = page.split("The chrony directives directives may hold: ")[1].split(".\n")[0].split(", ")
    assert listed == allowed


def test_the_settings_pages_limits_are_the_schemas_in_plain_decimal() -> None:
    gen = gen_docs()
    page = gen.render_settings_man("0", "2026-01-01")
    assert not re.search(r"\de[+-]\d", page)
    for name, (kind, lo, hi) in schema.OPTIONS.items():
        if kind != "flag":
            assert f"{name} ({'integer' if kind == 'int' else 'number'} {gen.number(lo)} to {gen.number(hi)})" in page
    assert gen.number(2**32 - 1) == "4294967295" and gen.number(1e6) == "1000000" and gen.number(0.5) == "0.5"


def test_the_settings_page_says_the_waits_default_the_code_uses() -> None:
    from chronyctl6 import defaults
    from chronyctl6.configure import apply

    page = " ".join(gen_docs().render_settings_man("0", "2026-01-01").split())
    assert f"number of seconds, 0 to {defaults.WAIT_MAX}; default: not set, which is " \
           f"{defaults.APPLY_WAIT:g} on a live host" in page
    assert apply.DEFAULT_WAIT == defaults.APPLY_WAIT  # restore uses apply's
    assert schema.Settings().wait == 0  # the dataclass's placeholder, used only where the file sets it
    with pytest.raises(BadInput):
        schema.parse(f"wait = {defaults.WAIT_MAX + 1}")
    assert schema.parse(f"wait = {defaults.WAIT_MAX}").wait == defaults.WAIT_MAX


def test_the_main_pages_files_are_the_paths_the_code_uses() -> None:
    from chronyctl6.cli import app
    from chronyctl6.configure.settings import SETTINGS_PATH
    from chronyctl6.diagnose.wait import RECORD
    from chronyctl6.effects.history import STATE_DIR

    page = gen_docs().render_man(app, "0", "2026-01-01")
    files = page.split(".SH FILES")[1].split(".SH ")[0]
    for path in (SETTINGS_PATH, RECORD, STATE_DIR, "/run/chronyctl6/timesync.sources"):
        assert f"\\fI{path}\\fR" in files, path
    unit = (PACKAGING / "systemd/chronyctl6-check.service").read_text(encoding="utf-8")
    textfile_dir = re.search(r"^Environment=CHRONYCTL6_TEXTFILE_DIR=(\S+)$", unit, re.M)
    assert textfile_dir is not None
    assert f"\\fI{textfile_dir[1]}/chronyctl6.prom\\fR" in files
    assert f"(default {textfile_dir[1]})" in page.split(".SH ENVIRONMENT")[1]


def test_the_main_pages_examples_are_every_commands_help_examples() -> None:
    from typer.testing import CliRunner

    from chronyctl6.cli import SUMMARIES, app

    gen = gen_docs()
    page = gen.render_man(app, "0", "2026-01-01")
    examples = page.split(".SH EXAMPLES")[1].split(".SH ")[0]
    for command, summary in SUMMARIES.items():
        shown = CliRunner().invoke(app, [command, "--help"]).output
        rows = shown.split("Examples:\n")[1].split("\n\n")[0].splitlines()
        assert rows, command
        for row in rows:
            assert gen.roff_escape(row.strip()) in examples, (command, row)
        assert f"\\fBchronyctl6 {command}\\fR: {summary}" in examples


def test_the_readmes_generated_parts_are_what_gen_docs_makes_now() -> None:
    """README.md keeps the generator's exit tables and example settings verbatim (run
    packaging/gen_docs.py --readme README.md after changing errors.py, the defaults or the example)."""
    gen = gen_docs()
    readme = PACKAGING.parent / "README.md"
    text = readme.read_text(encoding="utf-8")
    for begin, end, generated in gen.readme_sections():
        assert text.count(begin) == text.count(end) == 1, begin
        assert generated in text, f"{begin}: stale; run packaging/gen_docs.py --readme README.md"
    assert gen.update_readme(readme, check=True)
    assert "```toml\n" + gen.example_settings() + "```" in text


def test_each_command_has_a_whole_sentence_summary_on_one_help_line() -> None:
    """chronyctl6 --help lists every command with its summary whole (click cut the docstrings'
    first sentences mid-word: "Render, validate with chronyd, write atomically (with a...")."""
    from typer.testing import CliRunner

    from chronyctl6.cli import SUMMARIES, app

    shown = CliRunner().invoke(app, ["--help"], terminal_width=80).output
    listed = shown.split("Commands:\n")[1].splitlines()
    # in declaration order (current typer) or sorted (Debian 12's typer 0.7.0)
    assert sorted(line.split()[0] for line in listed if line.strip()) == sorted(SUMMARIES)
    for command, summary in SUMMARIES.items():
        assert f"  {command.ljust(7)}  {summary}" in listed, command
        assert summary.endswith(".") and "..." not in summary
    assert not [line for line in listed if line.endswith("...")]


def test_the_schemas_description_names_each_familys_commands() -> None:
    import json

    from chronyctl6 import errors

    schema_file = PACKAGING.parent / "chronyctl6/schema/output-v1.json"
    description = json.loads(schema_file.read_text(encoding="utf-8"))["description"]
    assert f"{'/'.join(errors.CHANGE)}: ok 0," in description
    assert f"{'/'.join(errors.MONITORING)} (Nagios convention)" in description


def test_the_package_build_generates_the_docs_with_only_click_and_typer(tmp_path: Path) -> None:
    """debian/control's Build-Depends has python3-click and python3-typer, not jinja2 or ntplib:
    gen_docs must not import the modules that need them."""
    import subprocess
    import sys

    script = ("import runpy, sys\n"
              "for name in ('jinja2', 'markupsafe', 'ntplib'):\n"
              "    sys.modules[name] = None  # an import of it fails\n"
              f"sys.argv = ['gen_docs', '--out', {str(tmp_path)!r}]\n"
              f"runpy.run_path({str(PACKAGING / 'gen_docs.py')!r}, run_name='__main__')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          check=False, env={"PYTHONPATH": str(PACKAGING.parent), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    for page in ("chronyctl6.1", "chronyctl6-settings.5", "check_timesync.1"):
        assert ".SH EXIT STATUS" in (tmp_path / page).read_text(encoding="utf-8"), page


def test_the_plugin_page_has_its_exit_statuses_files_and_examples() -> None:
    from chronyctl6.errors import exit_code
    from chronyctl6.measure import check_timesync

    gen = gen_docs()
    page = gen.render_plugin_man("0", "2026-01-01")
    assert {"EXIT STATUS", "ENVIRONMENT", "FILES", "EXAMPLES"} <= set(_sections(page))
    exits = page.split(".SH EXIT STATUS")[1].split(".SH ")[0]
    assert [int(c) for c in re.findall(r"^\\fB(\d)\\fR$", exits, re.M)] == [0, 1, 2, 3]
    for status, meaning in check_timesync.EXIT_MEANINGS:
        assert f"\\fB{exit_code('check', status)}\\fR\n{meaning}" in exits
        assert f"{exit_code('check', status)} {meaning}" in " ".join(check_timesync.help_text().split())
    assert "\\fI/usr/lib/nagios/plugins/check_timesync\\fR" in page  # packaging/debian/chronyctl6.links
    readme = (PACKAGING.parent / "README.md").read_text(encoding="utf-8")
    for command, _ in gen.PLUGIN_EXAMPLES:  # options the plugin takes
        assert check_timesync.parse_args(command.split()[1:]) is not None, command
        assert command.split()[1] in readme


def test_the_readmes_refused_directives_are_refused() -> None:
    readme = " ".join((PACKAGING.parent / "README.md").read_text(encoding="utf-8").split())
    said = re.search(r"no control characters, no (.*?)\), and bad input", readme)
    assert said is not None
    words = re.findall(r"`(\w+)`", said[1])
    assert set(words) == {"include", "confdir", "sourcedir", "leapsectz", "leapseclist"}
    assert set(words) <= set(gen_docs().refused_directives())
    for word in words:
        with pytest.raises(BadInput):
            schema.validate_directive(f"{word} /etc/chrony/x", "directives")
