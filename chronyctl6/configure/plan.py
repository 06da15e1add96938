"""Work out a change before making it: read the host, decide, render, diff.

Nothing here writes. `render`, `apply --dry-run` and `apply` all start from `make_plan`.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from chronyctl6.chronyconf import directives, sources
from chronyctl6.configure import platforms, render, settings
from chronyctl6.configure.platforms import Platform
from chronyctl6.effects import configtree, files, history, host
from chronyctl6.errors import BadInput
from chronyctl6.text import shown


@dataclass(frozen=True)
class Request:
    """What the operator asked for. None: take it from settings.toml, else the default."""

    root: Path = Path("/")
    distro: str | None = None
    ipv6: str | None = None
    phc: str | None = None
    at_boot: bool | None = None
    service_manager: str | None = None
    settings_path: Path | None = None

    @property
    def live(self) -> bool:
        """Changing the running host (not an image mounted at --root)."""
        return self.root.resolve() == Path("/")

    def under_root(self, path: str) -> Path:
        return self.root / path.lstrip("/")


@dataclass(frozen=True)
class FileChange:
    path: Path  # the real path (under --root)
    shown: str  # the path as the instance sees it
    old: bytes | None
    new: bytes
    kind: str  # "config": restart needed; "sources": a reload is enough

    @property
    def changed(self) -> bool:
        return self.old != self.new

    def diff(self) -> str:
        old = [f"{ln.text}\n" for ln in directives.split_lines(directives.decode(self.old or b""))]
        new = [f"{ln.text}\n" for ln in directives.split_lines(directives.decode(self.new))]
        name = shown(self.shown)  # a line break in a drop-in's name must not start a diff line of its own
        fromfile = name if self.old is not None else "/dev/null"
        return "".join(difflib.unified_diff(old, new, fromfile, name))


@dataclass(frozen=True)
class Plan:
    request: Request
    settings: settings.Settings
    platform: Platform
    choices: render.Choices
    rendered: render.Rendered
    changes: tuple[FileChange, ...]
    boot_endpoint: render.Endpoint | None = None
    warnings: tuple[str, ...] = field(default=())
    enable_unit: str | None = None  # the boot unit to enable (it is not yet)
    intent: dict[str, Any] = field(default_factory=dict)  # the choices to record for later runs
    notes: tuple[str, ...] = field(default=())  # recorded choices a flag changes

    @property
    def up_to_date(self) -> bool:
        """Files and state as apply would make them (what `apply --check` answers)."""
        return not self.pending and self.enable_unit is None

    @property
    def config(self) -> FileChange:
        return self.changes[0]

    @property
    def pending(self) -> tuple[FileChange, ...]:
        return tuple(c for c in self.changes if c.changed)

    @property
    def expected_source(self) -> str | None:
        """The Time Sync address chronyd should end up selecting."""
        endpoint = self.choices.endpoint or self.boot_endpoint
        return endpoint.address if endpoint else None

    def diff(self) -> str:
        return "".join(c.diff() for c in self.pending)


# ---- facts: everything read from the host, each thing once ---------------------------------

INTENT_KEYS = ("ipv6", "phc", "at_boot")


@dataclass(frozen=True)
class Basics:
    """Read before the lock (they say where the lock is): settings, os-release, recorded intent."""

    settings_text: str | None
    settings_where: str
    os_release: str | None
    os_release_where: str
    intent: dict[str, Any] = field(default_factory=dict)
    intent_problem: str | None = None


@dataclass(frozen=True)
class Facts:
    """The host as it is, gathered once (under the lock when applying); `plan` decides from it."""

    basics: Basics
    network: host.HostNetwork | None
    phc: str | None
    hint: host.InstanceHint | None
    config: bytes | None
    boot_sources: bytes | None
    boot_unit: str | None
    boot_enabled: bool


def read_basics(request: Request) -> Basics:
    if not request.root.is_dir():
        raise BadInput(f"--root {request.root} is not a directory")
    if request.settings_path is not None:
        where = str(request.settings_path)
        data = files.read_bounded(request.settings_path, limit=settings.MAX_BYTES)
    else:  # an image's settings, read inside the image
        where = str(request.under_root(settings.SETTINGS_PATH))
        data = configtree.read_one(request.root, settings.SETTINGS_PATH)
    text = settings.decode(data, where=where) if data is not None else None
    os_where = request.under_root("/etc/os-release")
    # Read inside the image (an absolute symlink must not name the build host's file), bounded.
    os_data = configtree.read_one(request.root, "/etc/os-release")
    if os_data is None:  # os-release(5): /usr/lib/os-release is the fallback
        os_data = configtree.read_one(request.root, "/usr/lib/os-release")
    os_text = directives.decode(os_data) if os_data is not None else None
    intent, problem = history.Store(request.root).intent()
    return Basics(text, where, os_text, str(os_where), intent, problem)


def gather(request: Request, basics: Basics) -> Facts:
    chosen, _ = choose_settings(request, basics)
    platform = platform_of(chosen, basics)
    network = host.read_network() if request.live else None
    phc = host.find_phc(request.root) if request.live else None
    # Under --root the directory is resolved inside the image; the file itself is read as chronyd
    # would (through a symlink, inside the image) but replaced where it is, never written through.
    config_path = configtree.write_path(request.root, platform.config_path)
    if not config_path.parent.is_dir():
        raise BadInput(
            f"{config_path.parent} does not exist: is chrony installed"
            + ("" if request.live else " in this image") + "?",
            hint="install chrony first" + ("" if platform.name == (chosen.distro or "") else
                                            ", or pass --distro if the distribution is misdetected"),
        )
    boot_shown = f"{platform.runtime_sourcedir}/{render.BOOT_SOURCES_NAME}"
    link = configtree.write_path(request.root, BOOT_LINK)
    return Facts(basics, network, phc, _instance_hint(chosen, network),
                 configtree.read_one(request.root, platform.config_path),
                 configtree.read_one(request.root, boot_shown), boot_unit(request),
                 link.is_symlink() or link.exists())


# ---- pure: the decision, from facts and request ----------------------------------------------

def choose_settings(request: Request, basics: Basics) -> tuple[settings.Settings, tuple[str, ...]]:
    """Flags win over settings.toml, which wins over the intent an earlier run recorded, which
    wins over the defaults. Returns the notes saying which recorded choice a flag changes."""
    text = basics.settings_text
    base = settings.parse(text, where=basics.settings_where) if text is not None else settings.Settings()
    explicit = settings.explicit_keys(text) if text is not None else frozenset()
    recorded = {k: v for k, v in _valid_intent(basics.intent).items() if k not in explicit}
    base = replace(base, **recorded)
    flags = {"ipv6": request.ipv6, "phc": request.phc, "at_boot": request.at_boot}
    notes = tuple(
        f"{_flag(key, value)} changes the recorded choice ({key} was {_shown(recorded[key])})"
        for key, value in flags.items() if value is not None and key in recorded and recorded[key] != value
    )
    chosen = base.override(distro=request.distro, service_manager=request.service_manager, **flags)
    return chosen, notes


def settings_wait(basics: Basics, chosen: settings.Settings, default: float) -> float:
    """settings.toml's `wait` where the file sets it (0 too: no verification), else default."""
    text = basics.settings_text
    return chosen.wait if text is not None and "wait" in settings.explicit_keys(text) else default


def _valid_intent(intent: dict[str, Any]) -> dict[str, Any]:
    """Only well-formed values: a hand-edited or damaged state file never reaches chrony.conf."""
    out: dict[str, Any] = {}
    for key in ("ipv6", "phc"):
        if intent.get(key) in settings.MODES:
            out[key] = intent[key]
    if isinstance(intent.get("at_boot"), bool):
        out["at_boot"] = intent["at_boot"]
    return out


def _flag(key: str, value: Any) -> str:
    if key == "at_boot":
        return "--at-boot" if value else "--fixed"
    return f"--{key} {value}"


def _shown(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def platform_of(chosen: settings.Settings, basics: Basics) -> Platform:
    if chosen.distro:
        return platforms.by_name(chosen.distro)
    return platforms.detect(basics.os_release, where=basics.os_release_where)


def plan(request: Request, facts: Facts) -> Plan:
    """The change, decided from the facts. Reads nothing of its own but the files chronyd reads
    beside the main one (`_dropin_changes`, through the one traversal)."""
    chosen, notes = choose_settings(request, facts.basics)
    platform = platform_of(chosen, facts.basics)
    network, hint = facts.network, facts.hint
    choices = render.decide(chosen, platform, network=network, phc_device=facts.phc, hint=hint)
    config_path = configtree.write_path(request.root, platform.config_path)
    old = facts.config
    rendered = render.render_config(choices, directives.decode(old) if old is not None else None)
    changes = [FileChange(config_path, platform.config_path, old, directives.encode(rendered.text), "config")]

    at_boot = choices.endpoint is None
    boot_endpoint = None
    if at_boot and request.live and network is not None:
        boot_endpoint = render.choose_endpoint(chosen.ipv6, network, hint)
        shown = f"{platform.runtime_sourcedir}/{render.BOOT_SOURCES_NAME}"
        changes.append(FileChange(configtree.write_path(request.root, shown), shown, facts.boot_sources,
                                  render.render_boot_sources(boot_endpoint, chosen.timesync_options).encode(),
                                  "sources"))

    warnings = list(choices.warnings)
    if facts.basics.intent_problem:
        warnings.append(f"{facts.basics.intent_problem}: recorded choices ignored")
    if at_boot and facts.boot_unit is None:
        warnings.append("the Time Sync endpoint is chosen at every boot, but chronyctl6-boot.service is not "
                        "installed here: install the chronyctl6 package, or run `chronyctl6 boot` before chronyd")
    dropins, dropin_warnings = _dropin_changes(request, rendered.text, platform)
    changes.extend(dropins)
    warnings.extend(dropin_warnings)
    enable = facts.boot_unit if at_boot and not facts.boot_enabled else None
    intent = {"ipv6": chosen.ipv6, "phc": chosen.phc, "at_boot": at_boot}
    return Plan(request, chosen, platform, choices, rendered, tuple(changes), boot_endpoint,
                tuple(warnings), enable_unit=enable, intent=intent, notes=notes)


def make_plan(request: Request) -> Plan:
    """Read the host once and decide: what render, status and apply --dry-run show."""
    return plan(request, gather(request, read_basics(request)))


def load_settings(request: Request) -> settings.Settings:
    return choose_settings(request, read_basics(request))[0]


def load_platform(request: Request, chosen: settings.Settings) -> Platform:
    return platform_of(chosen, read_basics(request))


BOOT_UNIT = "chronyctl6-boot.service"
BOOT_LINK = f"/etc/systemd/system/multi-user.target.wants/{BOOT_UNIT}"
UNIT_DIRS = ("/usr/lib/systemd/system", "/lib/systemd/system", "/etc/systemd/system")


def boot_unit(request: Request) -> str | None:
    """Where the boot step's unit is installed (as the host sees it), or None."""
    return next((f"{d}/{BOOT_UNIT}" for d in UNIT_DIRS if request.under_root(f"{d}/{BOOT_UNIT}").is_file()), None)


def _instance_hint(chosen: settings.Settings, network: host.HostNetwork | None) -> host.InstanceHint | None:
    """Asked only where it can change the choice: a live host with `--ipv6 auto`."""
    if network is None or chosen.ipv6 != "auto":
        return None
    from chronyctl6.effects import metadata

    return metadata.instance_hint(network)


DISABLED_MARK = "# disabled by chronyctl6"


def _dropin_changes(request: Request, text: str, platform: Platform) -> tuple[list[FileChange], list[str]]:
    """Conflicting lines in the other files chronyd reads beside the new main file (its include,
    confdir and sourcedir files, found by the one traversal chronyd's own order follows): a
    second Time Sync line, a non-smeared server/pool/peer, leapsectz/leapseclist. Amazon Linux
    ships its sources that way, Ubuntu 24.04 its pools, SUSE its pool (/etc/chrony.d/pool.conf).

    In a file under /etc the line is commented out, with the reason, as part of the same change
    (so it is diffed, backed up in memory and rolled back like the rest). A file under /run is
    written again at every boot by whoever owns it, one under /usr by its package: there, only a
    warning helps (README: "What apply does with other sources, per distro")."""
    tree = configtree.load(platform.config_path, request.root, main_data=directives.encode(text))
    if tree.problems:
        raise BadInput(tree.problems[0], hint="chronyctl6 reads only regular files inside the root")
    changes: list[FileChange] = []
    warnings: list[str] = []
    own = platform.runtime_sourcedir.rstrip("/") + "/"  # the boot step's Time Sync line lives there
    for read in tree.read:
        if read.role == "main" or read.shown.startswith(own):
            continue
        old = directives.decode(read.data)
        new_lines, why = [], []
        raw = old.split("\n")  # every byte kept, even past a NUL chronyd stops at
        if raw[-1] == "":
            raw.pop()
        for line, kept in zip(directives.split_lines(old), raw, strict=True):
            reason = _dropin_conflict(line.text) if read.role != "sourcedir" or line.terminated else None
            if reason:
                why.append(f"{directives.strip(line.text)} ({reason})")
                new_lines += [f"{DISABLED_MARK}: {reason}", f"# {kept}"]
            else:
                new_lines.append(kept)
        if not why:
            continue
        if not sources.takeover_edits(read.shown):
            later = ("it is rewritten at every boot, so disable whatever writes it" if read.shown.startswith("/run/")
                     else "it belongs to a package, outside /etc: `chronyctl6 doctor` gives the durable fix")
            warnings.append(f"{read.shown} adds {'; '.join(why)}; {later}")
        else:
            new = "\n".join(new_lines) + ("\n" if old.endswith("\n") else "")
            # Replaced where it is: a symlink is replaced by the edited file, never written through.
            changes.append(FileChange(configtree.write_path(request.root, read.shown), read.shown, read.data,
                                      directives.encode(new),
                                      "sources" if read.role == "sourcedir" else "config"))
    return changes, warnings


def _dropin_conflict(line: str) -> str | None:
    parsed = directives.parse(line)
    if not parsed:
        return None
    return sources.takeover_reason(parsed[0].keyword, parsed[0].args)


def is_root() -> bool:
    return os.geteuid() == 0
