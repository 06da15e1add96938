#!/usr/bin/env python3
"""Generate chronyctl6's man page and shell completions from the typer app itself.

Run at package build time (debian/rules, the RPM spec) with the chronyctl6 source importable:
    python3 packaging/gen_docs.py --out DIR
writes DIR/chronyctl6.1 and DIR/completions/{bash/chronyctl6,zsh/_chronyctl6,fish/chronyctl6.fish}.

The man page is built from click's command tree (the one typer builds), so every command and
option the program has is documented and nothing else. The completion scripts are the ones the
program prints for `--show-completion SHELL`: they call back into chronyctl6, so completions follow
the installed version. Uses only the click command API (duck-typed: typer 0.7.0 builds on click
8.1, current typer on its own vendored copy of click), so it works with Debian 12's typer and with
current releases alike.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import typer

PROG = "chronyctl6"
# Each file is named as its shell looks it up: bash-completion loads completions/NAME, zsh autoloads
# _NAME from $fpath, fish loads NAME.fish from vendor_completions.d.
SHELLS = {"bash": "chronyctl6", "zsh": "_chronyctl6", "fish": "chronyctl6.fish"}

FILES = [
    (
        "/etc/chronyctl6/settings.toml",
        "Settings that pin choices; command-line flags override them.",
    ),
    (
        "/run/chronyctl6/timesync.sources",
        "The Time Sync source chosen on this boot by chronyctl6 boot (read through a sourcedir).",
    ),
    (
        "/var/lib/prometheus/node-exporter/chronyctl6.prom",
        "Metrics written by chronyctl6-check.service for node_exporter's textfile collector.",
    ),
]


def roff_escape(text: str) -> str:
    """Escape text for roff: backslashes, and a leading control character on any line."""
    text = text.replace("\\", "\\e")
    return "\n".join(
        "\\&" + line if line.startswith((".", "'")) else line for line in text.splitlines()
    )


def roff_option(names: str) -> str:
    """Bold option names with real minus signs, so they can be copied and searched for."""
    return "\\fB" + roff_escape(names).replace("-", "\\-") + "\\fR"


def paragraphs(text: str | None) -> list[str]:
    """Help text as roff: typer keeps the docstring's blank lines between paragraphs, and click
    marks a paragraph that must keep its line breaks (an examples table) with a \\b line."""
    if not text:
        return []
    out = []
    for para in text.split("\n\n"):
        if para.startswith("\b\n"):
            lines = para[2:].splitlines()
            out.append("\n".join([".nf", *(roff_escape(line) or "\\&" for line in lines), ".fi"]))
        elif para.strip():
            out.append(roff_escape(" ".join(para.split())))
    return out


# The shells the installed completions are for. typer 0.7.0 (Debian 12) lists PowerShell too in
# --install-completion/--show-completion; the man page of a Linux package does not.
NOT_SHIPPED_SHELLS = ("|powershell", "|pwsh")


# The click objects are typed Any: they come from click or from typer's vendored copy of it.
def option_records(command: Any, ctx: Any) -> list[tuple[str, str]]:
    records = []
    for param in command.get_params(ctx):
        if getattr(param, "hidden", False):
            continue
        record = param.get_help_record(ctx)
        if record is not None:
            names = record[0]
            for shell in NOT_SHIPPED_SHELLS:
                names = names.replace(shell, "")
            records.append((names, record[1]))
    return records


def usage(command: Any, ctx: Any) -> str:
    return " ".join(command.collect_usage_pieces(ctx))


def render_options(records: Iterable[tuple[str, str]]) -> list[str]:
    out = []
    for names, help_text in records:
        out += [".TP", roff_option(names), roff_escape(" ".join(help_text.split()) or "")]
    return out


def render_man(app: typer.Typer, version: str, date: str) -> str:
    group: Any = typer.main.get_command(app)
    root_ctx = group.context_class(group, info_name=PROG, **(group.context_settings or {}))
    summary = paragraphs(group.help)
    lines = [
        f'.TH CHRONYCTL6 1 "{date}" "{PROG} {version}" "User Commands"',
        ".SH NAME",
        # whatis(1) wants one short line: the summary up to its parenthesis.
        f"{PROG} \\- {summary[0].split(' (')[0] if summary else PROG}",
        ".SH SYNOPSIS",
        f".B {PROG}",
        roff_escape(usage(group, root_ctx)).replace("-", "\\-"),
        ".SH DESCRIPTION",
    ]
    for para in summary[1:] or summary:
        lines += [para, ".PP"]
    lines += [
        "Every command is listed under COMMANDS with its options;",
        f"\\fB{PROG} \\fICOMMAND\\fB \\-\\-help\\fR prints the same text.",
        ".SH OPTIONS",
        *render_options(option_records(group, root_ctx)),
        ".SH COMMANDS",
    ]
    for name in group.list_commands(root_ctx):
        command = group.get_command(root_ctx, name)
        if command is None or command.hidden:
            continue
        ctx = command.context_class(command, info_name=name, parent=root_ctx)
        lines += [f'.SS "{PROG} {name} {roff_escape(usage(command, ctx))}"']
        for para in paragraphs(command.help) or [
            roff_escape(command.get_short_help_str(limit=200))
        ]:
            lines += [para, ".PP"]
        lines += render_options(option_records(command, ctx))
    lines += [".SH FILES"]
    for path, what in FILES:
        lines += [".TP", f"\\fI{path}\\fR", roff_escape(what)]
    lines += [
        ".SH SEE ALSO",
        ".BR chronyd (8),",
        ".BR chronyc (1),",
        ".BR chrony.conf (5)",
    ]
    return "\n".join(lines) + "\n"


def completion_script(shell: str, env: dict[str, str]) -> str:
    """The script the program itself prints, so it matches the installed typer's protocol."""
    proc = subprocess.run(
        [sys.executable, "-m", PROG, "--show-completion", shell],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    script = proc.stdout
    if shell == "zsh":
        # Installed as an autoloaded function file (#compdef), the body runs on the first <TAB>:
        # it must complete right away, not merely register itself with compdef as typer's
        # interactive snippet does (which would make the first <TAB> do nothing).
        script = script.replace(
            f"compdef _{PROG}_completion {PROG}", f'_{PROG}_completion "$@"'
        )
    if not script.strip():
        raise SystemExit(f"gen_docs: empty {shell} completion script")
    return script


def build_date() -> str:
    # Reproducible builds: Debian and rpmbuild set SOURCE_DATE_EPOCH from the changelog.
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc) if epoch else dt.datetime.now(dt.timezone.utc)
    return when.strftime("%Y-%m-%d")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    args = parser.parse_args(argv)

    import chronyctl6
    from chronyctl6 import __version__
    from chronyctl6.cli import app

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{PROG}.1").write_text(render_man(app, __version__, build_date()), encoding="utf-8")
    env = dict(os.environ)
    # The child must import the same chronyctl6 this process did (the build tree, not a stray one).
    source_root = str(Path(chronyctl6.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [source_root, env.get("PYTHONPATH")]))
    for shell, filename in SHELLS.items():
        target = out / "completions" / shell / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(completion_script(shell, env), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
