"""One JSON envelope for every command (schema chronyctl6/v1, shipped in the package) and for
every error, usage errors included; one status vocabulary; one table of exit codes. Commands that
send packets (check, doctor, status, boot) are validated where they run: tests/diagnose and
tests/e2e, inside network namespaces; here, only what sends nothing (or only over loopback)."""

from __future__ import annotations

import importlib.util
import json
import math
import socket
from pathlib import Path
from types import ModuleType

import pytest

from chronyctl6 import errors, output
from chronyctl6.effects import commands
from chronyctl6.errors import BadInput, Busy, ChronyCtlError, ExitStatus, NotPermitted
from tests.conftest import require
from tests.contract import envelope, validate
from tests.helpers import apply_root, cli, put, stock_root


def test_the_schema_ships_inside_the_package_and_is_valid() -> None:
    import jsonschema

    schema = output.load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["schema"]["const"] == output.SCHEMA_ID
    assert set(schema["$defs"]["status"]["enum"]) == {str(s) for s in output.Status}


def test_the_wheel_carries_the_schema(tmp_path: Path) -> None:
    """Built for real (offline, from a copy of the source), as pybuild and the RPM build do."""
    import shutil
    import subprocess
    import sys

    repo = Path(__file__).resolve().parent.parent
    src = tmp_path / "src"
    for name in ("chronyctl6", "templates"):
        shutil.copytree(repo / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(repo / name, src / name)
    # setuptools' build_py is the step of every build (wheel, pybuild, %pyproject) that copies package data.
    done = subprocess.run([sys.executable, "-c", "import setuptools; setuptools.setup()", "-q", "build_py",
                           "--build-lib", str(tmp_path / "lib")], cwd=src, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    shipped = json.loads((tmp_path / "lib/chronyctl6/schema/output-v1.json").read_text())
    assert shipped == output.load_schema()
    assert (tmp_path / "lib/chronyctl6/output.py").is_file()


@pytest.mark.parametrize(("command", "status", "code"), [
    ("apply", output.Status.OK, 0), ("apply", output.Status.FAILED, 1), ("apply", output.Status.USAGE, 2),
    ("apply", output.Status.BUSY, 3), ("apply", output.Status.DENIED, 4), ("apply", output.Status.PENDING, 5),
    ("render", output.Status.UNKNOWN, 1), ("restore", output.Status.BUSY, 3),
    ("check", output.Status.OK, 0), ("check", output.Status.WARNING, 1), ("check", output.Status.CRITICAL, 2),
    ("check", output.Status.UNKNOWN, 3), ("check", output.Status.USAGE, 3), ("doctor", output.Status.FAILED, 3),
    ("status", output.Status.CRITICAL, 2), ("doctor", output.Status.DENIED, 3)])
def test_one_table_ties_status_words_to_exit_codes(command: str, status: output.Status, code: int) -> None:
    assert output.exit_code(command, status) == code
    if status not in (output.Status.OK, output.Status.WARNING, output.Status.CRITICAL):  # those need data
        messages = [output.Message(output.Level.ERROR, "x")]
        assert validate(output.envelope(command, status, {}, messages))["exit_code"] == code


@pytest.mark.parametrize(("error", "word"), [
    (ChronyCtlError("x"), "failed"), (BadInput("x"), "usage"), (Busy("x"), "busy"), (NotPermitted("x"), "denied")])
def test_errors_map_to_status_words(error: ChronyCtlError, word: str) -> None:
    assert str(output.error_status(error)) == word
    assert error.status is output.Status(word)  # one type: an error's kind is its status word
    assert output.Status("pending") is ExitStatus.CHANGES_PENDING  # the older names are the same members


def test_the_schema_refuses_what_the_contract_forbids() -> None:
    import jsonschema

    good = output.envelope("check", output.Status.UNKNOWN, {"offset_seconds": 0.1})
    validate(good)
    for bad in (
        {**good, "exit_code": 2},  # unknown is 3
        output.envelope("check", output.Status.OK, {"offset_seconds": 0.1}),  # an ok check has its report
        {**good, "data": {"offset": 0.1}},  # a bare quantity, no unit
        {**good, "data": {"chronyd": {"system_offset_seconds": 0.1}}},  # one name per quantity, at any depth
        {**good, "status": "UNKNOWN"},  # one vocabulary, lower case
        {**good, "extra": 1},
        output.envelope("apply", output.Status.FAILED, {}),  # a failure must say why
    ):
        with pytest.raises(jsonschema.ValidationError):
            validate(bad)


def test_nan_and_inf_become_null_and_the_document_stays_json() -> None:
    doc = output.envelope("status", output.Status.OK, {"x_seconds": math.nan, "y": [math.inf, -math.inf, 1.5]})
    text = output.dumps(doc)
    assert json.loads(text)["data"] == {"x_seconds": None, "y": [None, None, 1.5]}


def test_render_json(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    done = cli("render", "--root", str(root), "--ipv6", "on", "-o", "json")
    doc = envelope(done, "render")
    assert doc["status"] == "ok" and doc["exit_code"] == 0
    assert "\nserver fd00:ec2::123 prefer iburst minpoll 4 maxpoll 4\n" in doc["data"]["config"]
    assert doc["data"]["path"] == "/etc/chrony/chrony.conf"
    assert any("pool 2.debian.pool.ntp.org" in d["line"] for d in doc["data"]["dropped"])


def test_apply_json_on_an_image_and_dry_run(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    dry = envelope(cli("apply", "--root", str(root), "--dry-run", "-o", "json"), "apply")
    assert dry["status"] == "ok" and dry["data"]["dry_run"] and dry["data"]["changed"]
    done = envelope(cli("apply", "--root", str(root), "--ipv6", "on", "-o", "json"), "apply")
    assert done["data"]["changed"] and done["data"]["files"] == ["/etc/chrony/chrony.conf"]
    assert done["data"]["validated"] and done["data"]["validated_by"].startswith("chronyd ")
    again = envelope(cli("apply", "--root", str(root), "--ipv6", "on", "-o", "json"), "apply")
    assert again["status"] == "ok" and not again["data"]["changed"]
    assert again["data"]["validated_by"] is None  # nothing to write: nothing validated


def test_validated_by_names_which_chronyd_judged_or_null() -> None:
    import jsonschema

    def apply_ok(validated_by: object) -> dict[str, object]:
        data = {"changed": True, "path": "/etc/chrony.conf", "action": "none", "dry_run": False,
                "files": ["/etc/chrony.conf"], "dropped": [], "validated": validated_by is not None,
                "validated_by": validated_by}
        return output.envelope("apply", output.Status.OK, data)

    for fine in ("chronyd 4.6.1 from the image", "chronyd 4.3 from this host", None):
        validate(apply_ok(fine))
    for bad in ("4.3", "chronyd 4.3", True):
        with pytest.raises(jsonschema.ValidationError):
            validate(apply_ok(bad))


@pytest.mark.parametrize("command", ["render", "apply"])
def test_bad_input_is_a_usage_envelope(tmp_path: Path, command: str) -> None:
    done = cli(command, "--root", str(tmp_path / "nope"), "-o", "json")
    doc = envelope(done, command)
    assert (doc["status"], doc["exit_code"]) == ("usage", 2)
    assert doc["messages"][0]["level"] == "error" and "not a directory" in doc["messages"][0]["text"]
    assert "not a directory" in done.stderr  # people still read stderr


@pytest.mark.parametrize(("argv", "command", "code"), [
    (("render", "--ipv6", "maybe"), "render", 2),
    (("apply", "--phc", "sometimes"), "apply", 2),
    (("apply", "--service-manager", "upstart"), "apply", 2),
    (("apply", "--distro", "plan9"), "apply", 2),
    (("apply", "--no-such-flag"), "apply", 2),
    (("boot", "--settle", "-1"), "boot", 2),
    (("check", "--samples"), "check", 3),
    (("check", "--port", "0"), "check", 3),
    (("doctor", "--bogus"), "doctor", 3),
    (("status", "--bogus"), "status", 3),
])
def test_usage_errors_with_json_are_an_envelope_on_stdout(argv: tuple[str, ...], command: str, code: int) -> None:
    # -o json first: the bad argument comes after it, so parsing fails with -o already seen.
    done = cli(argv[0], "-o", "json", *argv[1:])
    doc = envelope(done, command)
    assert (doc["status"], done.returncode) == ("usage", code), done.stderr
    assert doc["messages"][0]["level"] == "error"
    assert "Traceback" not in done.stderr and "chronyctl6: error:" in done.stderr


@pytest.mark.parametrize(("command", "code"), [
    ("render", 2), ("apply", 2), ("boot", 2), ("check", 3), ("doctor", 3), ("status", 3)])
def test_a_bad_output_format_is_a_usage_error(command: str, code: int) -> None:
    done = cli(command, "-o", "yaml")
    assert done.returncode == code, done.stderr
    assert done.stdout == "" and "yaml" in done.stderr and "Traceback" not in done.stderr


def test_check_bad_thresholds_are_a_usage_envelope() -> None:
    done = cli("check", "-s", "127.0.0.1", "--no-chronyd", "--warn", "2", "--crit", "1", "-o", "json")
    doc = envelope(done, "check")
    assert (doc["status"], done.returncode) == ("usage", 3)


def test_check_usage_error_with_nagios_is_one_unknown_line() -> None:
    done = cli("check", "-o", "nagios", "--samples", "many")
    assert done.returncode == 3
    [line] = done.stdout.splitlines()
    assert line.startswith("NTP UNKNOWN: ") and "|" not in line and "many" in line
    done = cli("check", "-o", "nagios", "--textfile", "metrics.txt")
    assert done.returncode == 3 and done.stdout.startswith("NTP UNKNOWN: --textfile")


def test_check_json_against_a_loopback_server_that_never_answers() -> None:
    """Sends only to 127.0.0.1 (a bound port nobody reads): UNKNOWN, as an envelope."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        done = cli("check", "-s", "127.0.0.1", "--port", str(port), "--timeout", "0.3", "--no-chronyd",
                   "-o", "json")
    doc = envelope(done, "check")
    assert (doc["status"], doc["exit_code"]) == ("unknown", 3)
    data = doc["data"]
    assert data["offset_seconds"] is None and data["sent"] >= 1 and data["valid"] == 0
    assert "offset" not in data and "thresholds" in data and set(data["thresholds"]) == {"warn_seconds",
                                                                                          "crit_seconds"}


def test_hostile_text_in_an_error_stays_on_one_line(tmp_path: Path) -> None:
    weird = tmp_path / "a\x1b[2Jb\u2028c"
    done = cli("render", "--root", str(weird), "-o", "json")
    doc = envelope(done, "render")
    assert doc["status"] == "usage"
    err = done.stderr.splitlines()[0]
    assert "\x1b" not in done.stderr and "\u2028" not in done.stderr and err.startswith("chronyctl6: error:")


# ---- one exit-status type: the table in chronyctl6/errors.py, and everything that shows it

def _gen_docs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_docs", Path(__file__).parent.parent / "packaging/gen_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_exit_tables_are_the_generated_ones() -> None:
    readme = Path(__file__).parent.parent / "README.md"
    gen = _gen_docs()
    assert gen.readme_exit_tables() in readme.read_text(encoding="utf-8"), (
        "README's exit tables differ from chronyctl6/errors.py: run packaging/gen_docs.py --readme README.md")
    assert gen.update_readme(readme, check=True)


def test_every_help_and_the_man_page_show_the_tables_exit_codes(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from chronyctl6.cli import app

    gen = _gen_docs()
    man = gen.render_man(app, "0", "2026-01-01")
    for command in (*errors.CHANGE, *errors.MONITORING):
        shown = CliRunner().invoke(app, [command, "--help"]).output
        section = man.split(f'.SS "chronyctl6 {command} ')[1].split(".SS")[0]
        for code, meaning in errors.MEANINGS[command]:
            line = f"{code}  {meaning.replace('`', '')}"
            assert line in shown, (command, line)
            assert gen.roff_escape(line) in section, (command, line)
    assert man.count(".SH EXIT STATUS") == 1
    for row in errors.EXITS:
        assert f"\\fB{row.status}\\fR" in man.split(".SH EXIT STATUS")[1]


def test_each_commands_meanings_are_the_codes_its_status_words_map_to() -> None:
    for command, meanings in errors.MEANINGS.items():
        listed = [code for code, _ in meanings]
        assert listed == sorted(set(listed)), command
        assert set(listed) <= errors.codes(command), command
        if command in errors.MONITORING:
            assert {0, 3} <= set(listed), command  # every monitoring command can be OK and UNKNOWN
    assert set(errors.MEANINGS) == {*errors.CHANGE, *errors.MONITORING}
    assert {str(s) for s in output.Status} == {str(e.status) for e in errors.EXITS}


@pytest.mark.parametrize("command", [*errors.CHANGE, *errors.MONITORING])
def test_the_schema_says_what_the_table_says(command: str) -> None:
    """Every status word a command's family says validates with the table's exit code; the change
    commands never say warning or critical, and the schema refuses them."""
    import jsonschema

    monitoring = command in errors.MONITORING
    data: dict[str, object] = {}
    for row in errors.EXITS:
        code = row.monitoring if monitoring else row.change
        document = output.envelope(command, row.status, data, [output.Message(output.Level.ERROR, "x")])
        assert document["exit_code"] == (code if code is not None else (3 if monitoring else 1))
        if code is None and not monitoring:
            with pytest.raises(jsonschema.ValidationError):
                validate(document)
        elif code is not None and row.status not in (output.Status.OK, output.Status.WARNING,
                                                     output.Status.CRITICAL):  # those need the command's data
            validate(document)
            wrong = {**document, "exit_code": (code + 1) % 7}
            with pytest.raises(jsonschema.ValidationError):
                validate(wrong)


def test_checks_nagios_states_are_the_tables_codes() -> None:
    from chronyctl6.measure.check import CheckStatus

    for state in CheckStatus:
        assert output.exit_code("check", output.Status(state.name.lower())) == int(state)
        assert errors.monitoring_status(int(state)) is output.Status(state.name.lower())
    for code in (0, 1, 2):  # doctor's verdicts
        assert output.exit_code("doctor", errors.monitoring_status(code)) == code


# ---- what comes from files reaches the terminal and JSON only through the one sanitiser (issue 18)

CONF = "etc/chrony/chrony.conf"


def test_a_non_utf8_byte_in_a_carried_directive_is_kept_in_the_file_and_escaped_in_output(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    with open(root / CONF, "ab") as f:
        f.write(b"logdir /var/log/chr\xffony\n")
    doc = envelope(cli("render", "--root", str(root), "-o", "json"), "render")
    assert "logdir /var/log/chr\\xffony\n" in doc["data"]["config"]
    text = cli("render", "--root", str(root))
    assert text.returncode == 0, text.stderr
    assert "logdir /var/log/chr\\xffony" in text.stdout.splitlines()
    done = cli("apply", "--root", str(root), "--ipv6", "on", "--diff", "-o", "json")
    assert envelope(done, "apply")["status"] == "ok"
    assert b"\nlogdir /var/log/chr\xffony\n" in (root / CONF).read_bytes()  # bytes kept as bytes


HOSTILE_NAME = "evil\x1b]0;owned\x07\nwrote everything\u202e.sources"


def test_escape_sequences_and_line_breaks_in_dropin_names_never_reach_the_terminal(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    dropins = root / "etc/chrony/sources.d"
    dropins.mkdir(parents=True, exist_ok=True)
    (dropins / HOSTILE_NAME).write_bytes(b"pool 2.debian.pool.ntp.org iburst\n")
    for args in (("--dry-run", "--diff"), ("--diff",)):
        done = apply_root(root, "--ipv6", "on", *args)
        printed = done.stdout + done.stderr
        assert not {"\x1b", "\x07", "\u202e"} & set(printed)
        assert not [ln for ln in printed.splitlines() if ln.startswith("wrote everything")]
        assert "evil\\e]0;owned\\x07\\nwrote everything\\u202e.sources" in printed
    doc = envelope(cli("apply", "--root", str(root), "--ipv6", "on", "--check", "-o", "json"), "apply")
    assert "\x1b" not in json.dumps(doc, ensure_ascii=False)


def test_a_directive_chronyd_refuses_is_named_by_file_and_line(tmp_path: Path) -> None:
    """An unbalanced quote is no syntax of chronyd's: `logbanner "20` is refused by chronyd itself,
    and the error names the line in the operator's file (issue 18), not a traceback."""
    require(commands.which("chronyd") is not None, "chronyd is not installed")
    root = stock_root(tmp_path, "debian12")
    before = (root / CONF).read_text() + 'logbanner "20\n'
    (root / CONF).write_text(before)
    lineno = before.count("\n")
    done = cli("apply", "--root", str(root), "--ipv6", "on", "-o", "json")
    doc = envelope(done, "apply")
    assert (doc["status"], done.returncode) == ("failed", 1)
    error = doc["messages"][0]["text"]
    assert f'rejects `logbanner "20`, line {lineno} of the existing /etc/chrony/chrony.conf' in error
    assert "Traceback" not in done.stderr and "ValueError" not in done.stderr
    assert (root / CONF).read_text() == before


@pytest.mark.parametrize("where", ["main", "dropin"])
def test_an_unbalanced_quote_in_a_directive_is_an_ordinary_line(tmp_path: Path, where: str) -> None:
    """chronyd has no quoting: a quote is part of a word. Nothing of ours may trip on one."""
    root = stock_root(tmp_path, "debian12")
    if where == "main":
        with open(root / CONF, "a") as f:
            f.write('server "time.example iburst\nlogbanner "20\n')
    else:
        put(root, "etc/chrony/sources.d/q.sources", 'pool "2.pool.ntp.org iburst\n')
    doc = envelope(cli("render", "--root", str(root), "-o", "json"), "render")
    assert doc["status"] == "ok"
    done = cli("apply", "--root", str(root), "--ipv6", "on", "--dry-run", "-o", "json")
    data = envelope(done, "apply")["data"]
    assert any('"' in d["line"] for d in data["dropped"]) or where == "dropin"
