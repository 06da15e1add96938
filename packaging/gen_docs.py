#!/usr/bin/env python3
"""Generate chronyctl6's man pages, example settings and shell completions from the code itself.

Run at package build time (debian/rules, the RPM spec) with the chronyctl6 source importable:
    python3 packaging/gen_docs.py --out DIR
writes DIR/chronyctl6.1, DIR/chronyctl6-settings.5, DIR/check_timesync.1, DIR/examples/settings.toml and
DIR/completions/{bash/chronyctl6,zsh/_chronyctl6,fish/chronyctl6.fish}.

chronyctl6-settings(5) and the example come from the settings schema (chronyctl6.configure.settings:
its keys, allowed values, ranges, defaults, server options and directives): a key the schema has
and SETTINGS_KEYS below does not describe (or the other way round) stops the build, and the
example is parsed by chronyctl6's own settings parser before it is written.

Exit statuses come from chronyctl6/errors.py, the one table: each command's --help epilog (and so
the man page), the man page's EXIT STATUS, and the README's tables (`gen_docs.py --readme README.md`
rewrites them, and the README's settings example; a test holds the README to them). Defaults and
limits come from the code (chronyctl6/defaults.py, the settings schema, the options' own defaults);
tests/test_doc_defaults.py holds every default the docs state to them.

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
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import typer

PROG = "chronyctl6"
# Each file is named as its shell looks it up: bash-completion loads completions/NAME, zsh autoloads
# _NAME from $fpath, fish loads NAME.fish from vendor_completions.d.
SHELLS = {"bash": "chronyctl6", "zsh": "_chronyctl6", "fish": "chronyctl6.fish"}

def files() -> list[tuple[str, str]]:
    """chronyctl6(1)'s FILES: (path, what it is), each path from the code that uses it."""
    # Modules the package build can import with only click and typer (no jinja2, no ntplib).
    from chronyctl6.configure.platforms import BY_NAME
    from chronyctl6.configure.settings import SETTINGS_PATH
    from chronyctl6.diagnose.wait import RECORD
    from chronyctl6.effects.history import STATE_DIR

    runtime = {platform.runtime_sourcedir for platform in BY_NAME.values()}
    if len(runtime) != 1:
        raise SystemExit(f"gen_docs: the platforms' boot-time source directories differ: {sorted(runtime)}")
    (BOOT_SOURCEDIR,) = runtime
    return [
        (SETTINGS_PATH, "Settings that pin choices; command-line flags override them. See chronyctl6-settings(5)."),
        (f"{BOOT_SOURCEDIR}/timesync.sources",
         "The Time Sync source chosen on this boot by chronyctl6 boot (read through a sourcedir)."),
        (f"{BOOT_SOURCEDIR}/phc.conf", "The ENA PTP hardware clock's refclock line, when this launch has the clock."),
        (RECORD, "When chronyctl6 wait saw the clock synchronised (seconds since boot); status and check's metrics "
                 "report it."),
        (STATE_DIR, "apply's state (the kept intent), the history restore puts back, and the lock (0700, root's)."),
        ("/var/lib/prometheus/node-exporter/chronyctl6.prom",
         "Metrics written by chronyctl6-check.service for node_exporter's textfile collector."),
        ("/usr/share/doc/chronyctl6/examples/settings.toml",
         "An example settings file with every key; see chronyctl6-settings(5)."),
    ]

# (name, what it does): the environment chronyctl6 and its units read.
ENVIRONMENT = [
    (
        "CHRONYCTL6_CHRONYD_ARGS",
        "Extra chronyd arguments (split like a shell would, without expansion) when the direct "
        "service manager (--service-manager direct, or service_manager = \"direct\") starts "
        "chronyd as a plain process on hosts without systemd, e.g. -x to leave the clock alone.",
    ),
    (
        "CHRONYCTL6_TEXTFILE_DIR",
        "node_exporter's textfile directory for check's Prometheus metrics; set by "
        "chronyctl6-check.service (default /var/lib/prometheus/node-exporter) and by the Ansible "
        "role's drop-in from chronyctl6_textfile_dir. The unit may write only there "
        "(ReadWritePaths=): a drop-in that moves it adds ReadWritePaths= for the new directory.",
    ),
]

# One line per settings.toml key: what it is for. The rest (type, allowed values, range, default)
# is read from the schema. Checked against the schema's key set when the page is built.
SETTINGS_KEYS = {
    "distro": "Override os-release detection: the platform whose chrony layout applies.",
    "ipv6": "Which Time Sync endpoint: on is fd00:ec2::123, off is 169.254.169.123, auto takes "
            "IPv6 when the host has a global IPv6 address (and never IPv4 on an IPv6-only host).",
    "phc": "The ENA PTP hardware clock as a refclock (auto: where /dev/ptp_ena exists).",
    "at_boot": "Choose the endpoint at every boot (baked images): chrony.conf gets "
               "sourcedir /run/chronyctl6 and chronyctl6-boot.service is enabled.",
    "service_manager": "How apply restarts chronyd: systemd, direct (a plain process, for hosts "
                       "without systemd), or auto (systemd where it runs, else refuse).",
    "wait": "Seconds apply and restore wait by default (their --wait) for chronyd to select Time Sync "
            "on a live host (0: no verification); --root never waits.",
    "timesync": "A table: minpoll and maxpoll of the Time Sync line.",
    "servers": "An array of tables, each host and options: extra server lines. A source that "
               "does not smear leap seconds is accepted with a warning.",
    "pools": "As servers, for pool lines.",
    "directives": "An array of extra chrony directives, one per string, from the allowed list below.",
}

# The example settings (chronyctl6-settings(5)'s EXAMPLES, the packages' examples/settings.toml and
# the README's Settings block). {apply_wait} is the code's default, filled in by example_settings().
EXAMPLE_SETTINGS = """\
# chronyctl6 settings: /etc/chronyctl6/settings.toml (under --root DIR for an image).
# Every key is optional; command-line flags override them. See chronyctl6-settings(5).
ipv6 = "auto"             # auto | on | off
phc = "auto"              # auto | on | off
at_boot = false           # choose the endpoint at every boot (baked images)
service_manager = "auto"  # auto | systemd | direct
wait = 30                 # apply's --wait default, seconds (not set: {apply_wait} on a live host; 0: no verification)
directives = ["maxclockerror 50"]
# distro = "debian"       # override os-release detection

[timesync]
minpoll = 4
maxpoll = 4

[[servers]]               # extra sources; a non-smeared one is accepted with a warning
host = "time.aws.com"
options = ["iburst"]
"""


def number(value: float) -> str:
    """A limit as the code holds it, in plain decimal: 4294967295, not 4.29497e+09 (%g)."""
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


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
        for para in paragraphs(getattr(command, "epilog", None)):  # its exit statuses
            lines += [".PP", para]
    lines += [".SH EXIT STATUS", *exit_status_roff(), ".SH ENVIRONMENT"]
    for name, what in ENVIRONMENT:
        lines += [".TP", f"\\fB{name}\\fR", roff_escape(what)]
    lines += [".SH FILES"]
    for path, what in files():
        lines += [".TP", f"\\fI{path}\\fR", roff_escape(what)]
    lines += [".SH EXAMPLES", *examples_roff(group, root_ctx)]
    lines += [
        ".SH SEE ALSO",
        ".BR chronyctl6-settings (5),",
        ".BR chronyd (8),",
        ".BR chronyc (1),",
        ".BR chrony.conf (5)",
    ]
    return "\n".join(lines) + "\n"


def examples_roff(group: Any, root_ctx: Any) -> list[str]:
    """EXAMPLES: every command's examples from its --help, in one place, each under its summary."""
    lines: list[str] = []
    for name in group.list_commands(root_ctx):
        command = group.get_command(root_ctx, name)
        if command is None or command.hidden:
            continue
        block = [para for para in (command.help or "").split("\n\n") if para.startswith("\b\nExamples:")]
        if not block:
            continue
        rows = [line.strip() for line in block[0].splitlines()[2:] if line.strip()]
        lines += [".TP", f"\\fB{PROG} {roff_escape(name)}\\fR: "
                  + roff_escape(command.get_short_help_str(limit=200)),
                  ".nf", *(roff_escape(row) for row in rows), ".fi"]
    return lines


def exit_status_roff() -> list[str]:
    """EXIT STATUS: each status word of the JSON envelope with its exit code per command family,
    from chronyctl6.errors' one table (each command's own words are under COMMANDS)."""
    from chronyctl6 import errors

    lines = [roff_escape(f"Every run ends with one status word (the status of -o json) and the exit code it "
                         f"maps to: for {', '.join(errors.CHANGE)} as the first number, for "
                         f"{', '.join(errors.MONITORING)} (the Nagios plugin convention) as the second; "
                         "- where the command never says that word.")]
    for row in errors.EXITS:
        code = " / ".join("-" if c is None else str(c) for c in (row.change, row.monitoring))
        meaning = roff_escape(row.meaning.replace("`", ""))
        lines += [".TP", f"\\fB{roff_escape(str(row.status))}\\fR ({code})", meaning]
    return lines


README_BEGIN = "<!-- exit statuses: generated by packaging/gen_docs.py --readme from chronyctl6/errors.py -->"
README_END = "<!-- end of generated exit statuses -->"


def readme_exit_tables() -> str:
    """The README's exit tables (per command, and per status word), from chronyctl6.errors."""
    from chronyctl6 import errors

    def cell(command: str) -> str:
        return " · ".join(f"{code} {meaning}" for code, meaning in errors.MEANINGS[command])

    lines = ["| command | statuses |", "| --- | --- |"]
    lines += [f"| `{c}` | {cell(c)} |" for c in (*errors.CHANGE, *errors.MONITORING)]
    lines += ["", "The status word of `-o json` and its exit code, per family (the one table, "
              "`chronyctl6/errors.py`):", "",
              f"| `status` | meaning | {' '.join(f'`{c}`' for c in errors.CHANGE)} | "
              f"{' '.join(f'`{c}`' for c in errors.MONITORING)} |", "| --- | --- | --- | --- |"]
    for row in errors.EXITS:
        codes = " | ".join("" if c is None else str(c) for c in (row.change, row.monitoring))
        lines.append(f"| `{row.status}` | {row.meaning} | {codes} |")
    return "\n".join([README_BEGIN, *lines, README_END])


SETTINGS_BEGIN = "<!-- example settings: generated by packaging/gen_docs.py --readme (the packages' example) -->"
SETTINGS_END = "<!-- end of generated example settings -->"


def readme_settings_example() -> str:
    """The README's settings example: the one the packages ship, with the code's defaults."""
    return "\n".join([SETTINGS_BEGIN, "```toml", example_settings().rstrip("\n"), "```", SETTINGS_END])


def readme_sections() -> list[tuple[str, str, str]]:
    """(begin marker, end marker, text) of each README part this generator owns."""
    return [(README_BEGIN, README_END, readme_exit_tables()),
            (SETTINGS_BEGIN, SETTINGS_END, readme_settings_example())]


def update_readme(path: Path, *, check: bool) -> bool:
    """Put each generated part between its README markers; with check, only say whether they
    are all already there as generated. Only the marked parts are touched."""
    text = path.read_text(encoding="utf-8")
    new = text
    for begin, end, generated in readme_sections():
        if new.count(begin) != 1 or new.count(end) != 1:
            raise SystemExit(f"gen_docs: {path}: expected one {begin!r} and one {end!r}")
        start, stop = new.index(begin), new.index(end) + len(end)
        new = new[:start] + generated + new[stop:]
    if not check and new != text:
        path.write_text(new, encoding="utf-8")
    return new == text


def _settings_rows() -> list[tuple[str, str, str]]:
    """(key, allowed values and default, what it is for), from the schema."""
    from chronyctl6 import defaults
    from chronyctl6.configure import platforms
    from chronyctl6.configure import settings as schema

    known = set(schema._KNOWN_KEYS)
    if known != set(SETTINGS_KEYS):
        raise SystemExit(f"gen_docs: settings keys in the schema but not described: "
                         f"{sorted(known - set(SETTINGS_KEYS))}; described but unknown: "
                         f"{sorted(set(SETTINGS_KEYS) - known)}")
    default = schema.Settings()
    lo, hi = schema.POLL_RANGE
    minpoll, maxpoll = (int(o.split()[1]) for o in default.timesync_options if o.startswith(("minpoll", "maxpoll")))
    kinds = {
        "distro": "string: " + " | ".join(sorted(platforms.BY_NAME)) + "; default: from /etc/os-release",
        "ipv6": "string: " + " | ".join(schema.MODES) + f"; default: {default.ipv6}",
        "phc": "string: " + " | ".join(schema.MODES) + f"; default: {default.phc}",
        "at_boot": f"boolean; default: {str(default.at_boot).lower()}",
        "service_manager": "string: " + " | ".join(schema.SERVICE_MANAGERS) + f"; default: {default.service_manager}",
        "wait": f"number of seconds, 0 to {defaults.WAIT_MAX}; default: not set, which is "
                f"{number(defaults.APPLY_WAIT)} on a live host",
        "timesync": f"table: minpoll, maxpoll, integers {lo} to {hi}, minpoll <= maxpoll; "
                    f"default: minpoll = {minpoll}, maxpoll = {maxpoll}",
        "servers": "array of tables: host (a host name or IP address), options (array of strings); default: none",
        "pools": "array of tables, as servers; default: none",
        "directives": "array of strings; default: none",
    }
    return [(key, kinds[key], SETTINGS_KEYS[key]) for key in sorted(known, key=list(SETTINGS_KEYS).index)]


def allowed_directives() -> list[str]:
    """The directives `directives` may hold: each word of the schema's list that its own check
    lets through (include, confdir and sourcedir are on the list but refused: they read files)."""
    from chronyctl6.configure import settings as schema
    from chronyctl6.errors import BadInput

    def accepted(word: str) -> bool:
        try:
            schema.validate_directive(f"{word} 1", "directives")
        except BadInput:
            return False
        return True

    return sorted(word for word in schema.DIRECTIVES if accepted(word))


def refused_directives() -> list[str]:
    """What `directives` refuses by name, with the schema's reason for each."""
    from chronyctl6.configure import settings as schema

    return sorted({*schema.READS_FILES, "leapsectz", "leapseclist", "refclock", "server", "pool", "peer"}
                  - set(allowed_directives()))


def render_settings_man(version: str, date: str) -> str:
    from chronyctl6 import errors
    from chronyctl6.configure import settings as schema

    lines = [
        f'.TH CHRONYCTL6-SETTINGS 5 "{date}" "{PROG} {version}" "File Formats"',
        ".SH NAME",
        "chronyctl6-settings \\- the choices chronyctl6 apply makes, pinned in a TOML file",
        ".SH SYNOPSIS",
        f"\\fI{schema.SETTINGS_PATH}\\fR",
        ".SH DESCRIPTION",
        "A TOML file read by \\fBchronyctl6 render\\fR, \\fBapply\\fR, \\fBrestore\\fR and \\fBboot\\fR "
        "(under \\fB\\-\\-root\\fR \\fIDIR\\fR for an image; \\fB\\-\\-settings\\fR \\fIFILE\\fR "
        "names another). Every key is optional and command-line flags override it. Every value is "
        "validated before anything is rendered; an unknown key or a bad value is a one-line error "
        f"naming the key, and nothing is written. The file must be UTF-8 text of at most "
        f"{number(schema.MAX_BYTES)} bytes.",
        ".SH KEYS",
    ]
    for key, kind, what in _settings_rows():
        lines += [".TP", f"\\fB{roff_escape(key)}\\fR", roff_escape(what), ".br", roff_escape(kind)]
    flags = sorted(k for k, v in schema.OPTIONS.items() if v[0] == "flag")
    valued = [f"{k} ({'integer' if v[0] == 'int' else 'number'} {number(v[1])} to {number(v[2])})"
              for k, v in sorted(schema.OPTIONS.items()) if v[0] != "flag"]
    usage = {c: errors.exit_code(c, errors.Status.USAGE) for c in ("render", "apply", "restore")}
    lines += [
        ".SH SOURCE OPTIONS",
        "The options a servers or pools entry may carry, as chrony.conf(5) spells them: "
        "the flags " + ", ".join(flags) + "; and with a value: " + ", ".join(valued) + ".",
        ".SH DIRECTIVES",
        "The chrony directives directives may hold: " + ", ".join(allowed_directives()) + ".",
        ".PP",
        "Refused: " + ", ".join(refused_directives()) + " (sources have their own keys; leapsectz and "
        "leapseclist cannot sit beside smeared Time Sync; include, confdir and sourcedir would read "
        "files chronyctl6 cannot take conflicting sources out of; refclock and sourcedir are "
        "chronyctl6's to manage).",
        ".SH EXIT STATUS",
        roff_escape("; ".join(f"{', '.join(c for c in usage if usage[c] == code)} exit {code}"
                              for code in sorted(set(usage.values())))
                    + f" (status {errors.Status.USAGE}) when the file cannot be read or a value is bad, "
                    "having written nothing; boot never fails for it (it warns and uses the defaults), "
                    "nor does release (package removal). See chronyctl6(1), EXIT STATUS."),
        ".SH ENVIRONMENT",
    ]
    for name, what in ENVIRONMENT:
        if name == "CHRONYCTL6_CHRONYD_ARGS":  # the one that goes with a key here (service_manager)
            lines += [".TP", f"\\fB{name}\\fR", roff_escape(what)]
    lines += [
        ".SH FILES",
        ".TP",
        f"\\fI{schema.SETTINGS_PATH}\\fR",
        "This file; \\fIDIR\\fR" + f"\\fI{schema.SETTINGS_PATH}\\fR for an image under \\fB\\-\\-root\\fR "
        "\\fIDIR\\fR (symbolic links followed inside the image only).",
        ".TP",
        "\\fI/usr/share/doc/chronyctl6/examples/settings.toml\\fR",
        "The example below.",
        ".SH EXAMPLES",
        ".nf",
        *(roff_escape(line) or "\\&" for line in example_settings().splitlines()),
        ".fi",
        ".PP",
        "To see what a settings file makes of a host or an image before applying it:",
        ".PP",
        ".nf",
        roff_escape("chronyctl6 render --settings ./settings.toml"),
        roff_escape("sudo chronyctl6 apply --settings ./settings.toml --dry-run --diff"),
        ".fi",
        ".SH SEE ALSO",
        ".BR chronyctl6 (1),",
        ".BR chrony.conf (5)",
    ]
    return "\n".join(lines) + "\n"


# check_timesync(1)'s EXAMPLES: (command line, what it does).
PLUGIN_EXAMPLES = (
    ("check_timesync -H fd00:ec2::123 -w 0.5 -c 1", "as check_ntp_time, against Time Sync over IPv6"),
    ("check_timesync -H 169.254.169.123 -w 0.5 -c 1 -C 4 --bound-critical 1",
     "over IPv4, also CRITICAL beyond stratum 4 or a max error of 1 s"),
    ("check_timesync -H fd00:ec2::123 -v", "every reply and why one was refused, before the status line"),
)


def plugin_files() -> list[tuple[str, str]]:
    """Where the plugin is installed: /usr/bin, and the .debs' link for Nagios (debian/*.links)."""
    out = [("/usr/bin/check_timesync", "The plugin.")]
    links = Path(__file__).parent / "debian" / "chronyctl6.links"
    for line in links.read_text(encoding="utf-8").splitlines() if links.is_file() else ():
        words = line.split()
        if len(words) == 2 and words[0] == "usr/bin/check_timesync":
            out.append((f"/{words[1]}", "A link to it where Nagios looks for plugins (the Debian and Ubuntu "
                                        "packages)."))
    return out


def render_plugin_man(version: str, date: str) -> str:
    """check_timesync(1): its own help text (the plugin prints it with -h), as a man page, with its
    exit statuses from the one table and the meanings the plugin gives them."""
    from chronyctl6.errors import exit_code
    from chronyctl6.measure import check_timesync

    lines = [
        f'.TH CHECK_TIMESYNC 1 "{date}" "{PROG} {version}" "User Commands"',
        ".SH NAME",
        "check_timesync \\- a drop-in for check_ntp_time: this clock's offset against an NTP server",
        ".SH DESCRIPTION",
        ".nf",
        *(roff_escape(line) or "\\&" for line in check_timesync.help_text().splitlines()),
        ".fi",
        ".SH EXIT STATUS",
        "The monitoring-plugins convention (as check_ntp_time and \\fBchronyctl6 check\\fR):",
    ]
    for status, meaning in check_timesync.EXIT_MEANINGS:
        lines += [".TP", f"\\fB{exit_code('check', status)}\\fR", roff_escape(meaning)]
    lines += [".SH ENVIRONMENT", "None: every setting is an option (as check_ntp_time, without --extra-opts).",
              ".SH FILES"]
    for path, what in plugin_files():
        lines += [".TP", f"\\fI{path}\\fR", roff_escape(what)]
    lines += [".SH EXAMPLES"]
    for command, what in PLUGIN_EXAMPLES:
        lines += [".TP", roff_option(command), roff_escape(what)]
    lines += [".SH SEE ALSO", ".BR chronyctl6 (1)"]
    return "\n".join(lines) + "\n"


def example_settings() -> str:
    from chronyctl6 import defaults
    from chronyctl6.configure import settings as schema

    text = EXAMPLE_SETTINGS.format(apply_wait=number(defaults.APPLY_WAIT))
    schema.parse(text, where="the example settings")  # raises on a bad example
    return text


def completion_script(shell: str, env: dict[str, str]) -> str:
    """The script the program itself prints for `--show-completion` (so it matches the installed
    typer's protocol), from the function that option calls. Not by running the option: typer
    0.28 with shellingham takes no shell name there and guesses the shell from the calling
    process tree, which a build (make, sh) or a detached process does not have."""
    from typer._completion_shared import get_completion_script  # typer 0.7 through 0.28

    complete_var = "_{}_COMPLETE".format(PROG.replace("-", "_").upper())
    script = get_completion_script(prog_name=PROG, complete_var=complete_var, shell=shell) + "\n"  # as echo
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
    parser.add_argument("--out", type=Path, help="output directory")
    parser.add_argument("--readme", type=Path, metavar="README",
                        help="write the generated parts (exit tables, example settings) into README, "
                             "between their markers, instead")
    args = parser.parse_args(argv)
    if args.readme is not None:
        update_readme(args.readme, check=False)
        return 0
    if args.out is None:
        parser.error("--out is required")

    import chronyctl6
    from chronyctl6 import __version__
    from chronyctl6.cli import app

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{PROG}.1").write_text(render_man(app, __version__, build_date()), encoding="utf-8")
    (out / f"{PROG}-settings.5").write_text(render_settings_man(__version__, build_date()), encoding="utf-8")
    (out / "check_timesync.1").write_text(render_plugin_man(__version__, build_date()), encoding="utf-8")
    (out / "examples").mkdir(exist_ok=True)
    (out / "examples" / "settings.toml").write_text(example_settings(), encoding="utf-8")
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
