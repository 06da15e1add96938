"""One JSON envelope for every command (schema chronyctl6/v1, shipped in the package) and for
every error, usage errors included; one status vocabulary; one table of exit codes. Commands that
send packets (check, doctor, status, boot) are validated where they run: tests/diagnose and
tests/e2e, inside network namespaces; here, only what sends nothing (or only over loopback)."""

from __future__ import annotations

import json
import math
import socket
from pathlib import Path

import pytest

from chronyctl6 import output
from chronyctl6.errors import BadInput, Busy, ChronyCtlError, ExitStatus, NotPermitted
from tests.contract import envelope, validate
from tests.helpers import cli, stock_root


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
    assert output.exit_code("apply", output.error_status(error)) == int(error.status)
    assert output.exit_code("apply", output.Status.PENDING) == int(ExitStatus.CHANGES_PENDING)


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
