"""Work out a change before making it: read the host, decide, render, diff.

Nothing here writes. `render`, `apply --dry-run` and `apply` all start from `make_plan`.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path

from chronyctl6.chronyconf import directives, sources, traversal
from chronyctl6.configure import platforms, render, settings
from chronyctl6.configure.platforms import Platform
from chronyctl6.effects import files, host
from chronyctl6.errors import BadInput


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
        fromfile = self.shown if self.old is not None else "/dev/null"
        return "".join(difflib.unified_diff(old, new, fromfile, self.shown))


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


def load_settings(request: Request) -> settings.Settings:
    if request.settings_path is not None:
        where = str(request.settings_path)
        data = files.read_bounded(request.settings_path, limit=settings.MAX_BYTES)
    else:  # an image's settings, read inside the image
        where = str(request.under_root(settings.SETTINGS_PATH))
        data = traversal.read_one(request.root, settings.SETTINGS_PATH)
    base = settings.parse_bytes(data, where=where) if data is not None else settings.Settings()
    return base.override(
        distro=request.distro,
        ipv6=request.ipv6,
        phc=request.phc,
        at_boot=request.at_boot,
        service_manager=request.service_manager,
    )


def load_platform(request: Request, chosen: settings.Settings) -> Platform:
    if chosen.distro:
        return platforms.by_name(chosen.distro)
    where = request.under_root("/etc/os-release")
    # Read inside the image (an absolute symlink must not name the build host's file), bounded.
    data = traversal.read_one(request.root, "/etc/os-release")
    if data is None:  # os-release(5): /usr/lib/os-release is the fallback
        data = traversal.read_one(request.root, "/usr/lib/os-release")
    return platforms.detect(directives.decode(data) if data is not None else None, where=str(where))


def make_plan(request: Request) -> Plan:
    if not request.root.is_dir():
        raise BadInput(f"--root {request.root} is not a directory")
    chosen = load_settings(request)
    platform = load_platform(request, chosen)
    network = host.read_network() if request.live else None
    phc = host.find_phc(request.root) if request.live else None
    hint = _instance_hint(chosen, network)
    choices = render.decide(chosen, platform, network=network, phc_device=phc, hint=hint)

    # Under --root the directory is resolved inside the image; the file itself is read as chronyd
    # would (through a symlink, inside the image) but replaced where it is, never written through.
    config_path = traversal.write_path(request.root, platform.config_path)
    if not config_path.parent.is_dir():
        raise BadInput(
            f"{config_path.parent} does not exist: is chrony installed"
            + ("" if request.live else " in this image") + "?",
            hint="install chrony first" + ("" if platform.name == (chosen.distro or "") else
                                            ", or pass --distro if the distribution is misdetected"),
        )
    old = traversal.read_one(request.root, platform.config_path)
    rendered = render.render_config(choices, directives.decode(old) if old is not None else None)
    changes = [FileChange(config_path, platform.config_path, old, directives.encode(rendered.text), "config")]

    boot_endpoint = None
    if choices.at_boot and request.live and network is not None:
        boot_endpoint = render.choose_endpoint(chosen.ipv6, network, hint)
        changes.append(boot_sources_change(request, platform, boot_endpoint, chosen.timesync_options))

    warnings = list(choices.warnings)
    if choices.at_boot and boot_unit(request) is None:
        warnings.append("the Time Sync endpoint is chosen at every boot, but chronyctl6-boot.service is not "
                        "installed here: install the chronyctl6 package, or run `chronyctl6 boot` before chronyd")
    dropins, dropin_warnings = _dropin_changes(request, rendered.text, platform)
    changes.extend(dropins)
    warnings.extend(dropin_warnings)
    return Plan(request, chosen, platform, choices, rendered, tuple(changes), boot_endpoint,
                tuple(warnings))


BOOT_UNIT = "chronyctl6-boot.service"
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


def boot_sources_change(
    request: Request, platform: Platform, endpoint: render.Endpoint, options: tuple[str, ...]
) -> FileChange:
    shown = f"{platform.runtime_sourcedir}/{render.BOOT_SOURCES_NAME}"
    path = traversal.write_path(request.root, shown)
    return FileChange(path, shown, traversal.read_one(request.root, shown),
                      render.render_boot_sources(endpoint, options).encode(), "sources")


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
    tree = traversal.load(platform.config_path, request.root, main_data=directives.encode(text))
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
            changes.append(FileChange(traversal.write_path(request.root, read.shown), read.shown, read.data,
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
