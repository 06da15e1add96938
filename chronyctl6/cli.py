"""The command line: the only module that imports typer or prints.

Each command turns its options into a request, calls the core, renders the returned result
as text or JSON, and maps errors to exit statuses in one place (`_guard`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import typer

from chronyctl6 import __version__
from chronyctl6.errors import ChronyCtlError, ExitStatus

app = typer.Typer(
    name="chronyctl6",
    help=(
        "Keep this EC2 instance's clock on the Amazon Time Sync Service over IPv6 "
        "(server fd00:ec2::123), and prove that it does."
    ),
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)

T = TypeVar("T")
_debug = False


def _version(value: bool) -> None:
    if value:
        typer.echo(f"chronyctl6 {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of unexpected errors."),
) -> None:
    global _debug
    _debug = debug


def fail(error: ChronyCtlError) -> NoReturn:
    typer.echo(f"chronyctl6: error: {error.message}", err=True)
    if error.hint:
        typer.echo(f"chronyctl6: hint: {error.hint}", err=True)
    raise typer.Exit(int(error.status))


def _guard(call: Callable[[], T]) -> T:
    """Known errors: one line and a hint. Unexpected ones say so; traceback only with --debug."""
    try:
        return call()
    except ChronyCtlError as exc:
        fail(exc)
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except Exception as exc:
        if _debug:
            raise
        typer.echo(f"chronyctl6: unexpected error: {exc!r} (run with --debug for a traceback)", err=True)
        raise typer.Exit(int(ExitStatus.FAILED)) from exc


def emit_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, sort_keys=True))


def main() -> None:
    app(prog_name="chronyctl6")


if __name__ == "__main__":
    sys.exit(main())
