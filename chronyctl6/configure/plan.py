"""Work out a change before making it: read the host, decide, render, diff.

Nothing here writes. `render`, `apply --dry-run` and `apply` all start from `make_plan`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from chronyctl6.chronyconf import directives, traversal
from chronyctl6.configure import phc as phc_policy
from chronyctl6.configure import platforms, render, settings, takeover
from chronyctl6.configure.changeset import BACKUP_SUFFIX, CONFIG, OTHER, ChangeSet, FileChange, UnitLink, Verify
from chronyctl6.configure.platforms import Platform
from chronyctl6.effects import configtree, files, history, host
from chronyctl6.effects import phc as phc_effects
from chronyctl6.errors import BadInput, ChronyCtlError


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
    dropped: tuple[takeover.Dropped, ...] = field(default=())  # every line dropped or disabled, any file

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
    phc_present: frozenset[str] = frozenset()  # the ENA PHC's device paths on this live host
    phc_file: bytes | None = None  # the boot-time /run/chronyctl6/phc.conf as it is


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
    found = phc_effects.discover(request.root).phc if request.live else None
    phc = found.device if found else None
    present = frozenset({found.device, f"/dev/{found.clock.ptp}"}) if found else frozenset()
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
                 link.is_symlink() or link.exists(), present,
                 configtree.read_one(request.root, phc_policy.boot_file(platform.runtime_sourcedir)))


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
    beside the main one (configure/takeover.py, through the one traversal)."""
    chosen, notes = choose_settings(request, facts.basics)
    platform = platform_of(chosen, facts.basics)
    network, hint = facts.network, facts.hint
    own_line = facts.basics.intent.get("phc_line")  # what chronyctl6 wrote itself, from its state
    # Where a PHC line's device may be missing when chronyd starts (an image, a host without the
    # clock), an operator's ENA PHC line in a drop-in moves to the boot-time file too.
    phc_move = not (request.live and facts.phc)
    dropin_phc, refclock_notes = _dropin_refclocks(request, platform, facts.config) if phc_move else ((), [])
    choices = render.decide(chosen, platform, network=network, phc_device=facts.phc, hint=hint,
                            own_refclocks=frozenset({own_line} if isinstance(own_line, str) else ()),
                            phc_present=facts.phc_present,
                            dropin_phc=dropin_phc[0].directive.args[2:] if dropin_phc else None)
    config_path = configtree.write_path(request.root, platform.config_path)
    old = facts.config
    moved_to = phc_policy.boot_file(platform.runtime_sourcedir)

    def moved(keyword: str, words: Sequence[str]) -> str | None:
        # An operator's ENA PHC line in a drop-in goes to the boot-time file (with its options).
        if dropin_phc and keyword == "refclock" and phc_policy.is_ena_phc(tuple(words)):
            return phc_policy.MOVED_REASON.format(moved_to)
        return None

    rendered, taken = takeover.render(choices, old, lambda text: configtree.load(
        platform.config_path, request.root, main_data=directives.encode(text)), extra=moved)
    changes = [FileChange(config_path, platform.config_path, old, directives.encode(rendered.text), "config")]

    at_boot = choices.endpoint is None
    boot_endpoint = None
    if at_boot and request.live and network is not None:
        boot_endpoint = render.choose_endpoint(chosen.ipv6, network, hint)
        shown = f"{platform.runtime_sourcedir}/{render.BOOT_SOURCES_NAME}"
        changes.append(FileChange(configtree.write_path(request.root, shown), shown, facts.boot_sources,
                                  render.render_boot_sources(boot_endpoint, chosen.timesync_options).encode(),
                                  "sources"))

    if at_boot and request.live and facts.phc and rendered.phc_boot_options is not None:
        shown = phc_policy.boot_file(platform.runtime_sourcedir)
        changes.append(FileChange(configtree.write_path(request.root, shown), shown, facts.phc_file,
                                  phc_policy.render_boot_file(facts.phc, rendered.phc_boot_options,
                                                              "found by `chronyctl6 apply`").encode(),
                                  "config"))  # a confdir is read at start only: a restart

    warnings = list(choices.warnings) + list(rendered.warnings)
    if facts.basics.intent_problem:
        warnings.append(f"{facts.basics.intent_problem}: recorded choices ignored")
    if at_boot and facts.boot_unit is None:
        warnings.append("the Time Sync endpoint is chosen at every boot, but chronyctl6-boot.service is not "
                        "installed here: install the chronyctl6 package, or run `chronyctl6 boot` before chronyd")
    changes.extend(FileChange(configtree.write_path(request.root, e.shown), e.shown, e.old, e.new, e.kind)
                   for e in taken.edits if not e.shown.endswith(BACKUP_SUFFIX))  # removed instead:
    changes.extend(_old_backups(request, rendered.text, platform))
    # A file chronyd reads twice (a confdir and an `include DIR/*` both naming it) is one change.
    changes = list({c.shown: c for c in reversed(changes)}.values())[::-1]
    warnings.extend(taken.warnings)
    warnings.extend(refclock_notes)
    enable = facts.boot_unit if at_boot and not facts.boot_enabled else None
    # The distribution too: restore must find the same files where os-release names no known one.
    intent = {"ipv6": chosen.ipv6, "phc": chosen.phc, "at_boot": at_boot, "distro": platform.name,
              # chronyctl6's own refclock line (known later from here, not from the line) and
              # what the boot step writes where a launch has the PHC
              "phc_line": rendered.phc_line,
              "phc_boot_options": None if rendered.phc_boot_options is None else list(rendered.phc_boot_options)}
    return Plan(request, chosen, platform, choices, rendered, tuple(changes), boot_endpoint,
                tuple(warnings), enable_unit=enable, intent=intent,
                notes=notes + rendered.notes + tuple(_moved_note(r, platform) for r in dropin_phc),
                dropped=tuple(d for d in taken.dropped if not d.file.endswith(BACKUP_SUFFIX)))


def change_set(plan: Plan) -> ChangeSet:
    """What apply changes: the files whose bytes differ, the boot unit to enable; on a live host,
    chronyd must then select the Time Sync endpoint chosen (or, at boot, this launch's)."""
    root = plan.request.root
    enable: tuple[UnitLink, ...] = ()
    if plan.enable_unit is not None:
        enable = (UnitLink(configtree.write_path(root, BOOT_LINK), BOOT_LINK, plan.enable_unit),)
    live = plan.request.live
    return ChangeSet(root, plan.config.shown, plan.config.path, plan.config.old, plan.config.new,
                     files=plan.pending, enable=enable, live=live,
                     verify=Verify.SELECTED if live else Verify.NONE, wanted=plan.expected_source)


def _moved_note(r: traversal.Located, platform: Platform) -> str:
    return (f"your `{r.directive.line}` ({r.file}:{r.directive.lineno}) moved to "
            f"{phc_policy.boot_file(platform.runtime_sourcedir)}, written at every boot only when the launch has "
            "the ENA PTP hardware clock, with its options (a refclock whose device is missing stops chronyd)")


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


def _dropin_refclocks(request: Request, platform: Platform,
                      config: bytes | None) -> tuple[tuple[traversal.Located, ...], list[str]]:
    """The refclock lines of the files the current configuration pulls in (not the main file, not
    the boot-time directory): ENA PHC lines, which move to the boot-time file, and a warning for
    every other one, kept as written, whose device a launch may lack."""
    try:
        tree = configtree.load(platform.config_path, request.root, main_data=config)
    except ChronyCtlError:
        return (), []
    own = platform.runtime_sourcedir.rstrip("/") + "/"
    theirs = [r for r in tree.refclocks() if r.file != platform.config_path and not r.file.startswith(own)]
    ena = tuple(r for r in theirs if phc_policy.is_ena_phc(r.directive.args))
    warnings = [f"{r.file}:{r.directive.lineno}: `{r.directive.line}` is kept as written: on a launch without its "
                "device chronyd stops at start (a missing refclock device is fatal)"
                for r in theirs if r not in ena]
    return ena, warnings


def _old_backups(request: Request, text: str, platform: Platform) -> list[FileChange]:
    """The `*.chronyctl6.bak` copies earlier versions left beside the files they edited: chronyd may
    read them (`include /etc/chrony/conf.d/*` has no suffix), so a public pool kept there would go
    on running. The history in the state directory is the backup now: they go, as part of the
    change (kept in its history entry, undone on rollback)."""
    tree = configtree.load(platform.config_path, request.root, main_data=directives.encode(text))
    out: list[FileChange] = []
    read = {r.shown for r in tree.read}
    for shown in dict.fromkeys([r.shown for r in tree.read] + [r.shown + BACKUP_SUFFIX for r in tree.read
                                                               if not r.shown.endswith(BACKUP_SUFFIX)]):
        if not shown.endswith(BACKUP_SUFFIX):
            continue
        try:
            data = configtree.read_one(request.root, shown)
        except ChronyCtlError:
            continue  # not a regular file: not one of ours
        if data is not None:
            kind = CONFIG if shown in read else OTHER  # chronyd reads it: a restart, else nothing
            out.append(FileChange(configtree.write_path(request.root, shown), shown, data, b"", kind, removed=True))
    return out


def is_root() -> bool:
    return os.geteuid() == 0
