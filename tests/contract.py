"""The output contract, for every test that reads a command's JSON: validate against the shipped
JSON Schema, and check what a schema cannot say (exit code = the process's exit status)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from chronyctl6 import output


def validate(document: Any) -> dict[str, Any]:
    import jsonschema

    schema = output.load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(document)
    assert isinstance(document, dict)
    return document


def envelope(done: subprocess.CompletedProcess[str], command: str) -> dict[str, Any]:
    """The one JSON document a command printed on stdout, valid, and agreeing with its exit status."""
    doc = validate(json.loads(done.stdout))
    assert doc["command"] == command, doc
    assert doc["exit_code"] == done.returncode, (doc, done.stderr)
    return doc
