"""Work out a change before making it: read the host, decide, render, diff.

Nothing here writes. `render`, `apply --dry-run` and `apply` all start from `make_plan`.
"""

from __future__ import annotations

import difflib
import glob
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from chronyctl6.chronyconf import directives
from chronyctl6.configure import platforms, render, settings
from chronyctl6.configure.platforms import Platform
from chronyctl6.effects import host
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
        old = (self.old or b"").decode(errors="replace").splitlines(keepends=True)
        new = self.new.decode().splitlines(keepends=True)
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
    path = request.settings_path or request.under_root(settings.SETTINGS_PATH)
    text = host.read_text(path)
    base = settings.parse(text, where=str(path)) if text is not None else settings.Settings()
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
    text = host.read_text(where)
    if text is None:  # os-release(5): /usr/lib/os-release is the fallback
        text = host.read_text(request.under_root("/usr/lib/os-release"))
    return platforms.detect(text, where=str(where))


def make_plan(request: Request) -> Plan:
    if not request.root.is_dir():
        raise BadInput(f"--root {request.root} is not a directory")
    chosen = load_settings(request)
    platform = load_platform(request, chosen)
    network = host.read_network() if request.live else None
    phc = host.find_phc(request.root) if request.live else None
    hint = _instance_hint(chosen, network)
    choices = render.decide(chosen, platform, network=network, phc_device=phc, hint=hint)

    config_path = request.under_root(platform.config_path)
    if not config_path.parent.is_dir():
        raise BadInput(
            f"{config_path.parent} does not exist: is chrony installed"
            + ("" if request.live else " in this image") + "?",
            hint="install chrony first" + ("" if platform.name == (chosen.distro or "") else
                                            ", or pass --distro if the distribution is misdetected"),
        )
    old = _read_bytes(config_path)
    rendered = render.render_config(choices, old.decode(errors="replace") if old is not None else None)
    changes = [FileChange(config_path, platform.config_path, old, rendered.text.encode(), "config")]

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
    path = request.under_root(shown)
    return FileChange(path, shown, _read_bytes(path), render.render_boot_sources(endpoint, options).encode(),
                      "sources")


DISABLED_MARK = "# disabled by chronyctl6"


MAX_DROPIN_BYTES = 1 << 20  # a chrony drop-in is a few lines; anything larger is not one


def _dropin_changes(request: Request, text: str, platform: Platform) -> tuple[list[FileChange], list[str]]:
    """Sources that other drop-ins add beside ours: a second Time Sync line, or a non-smeared
    pool (Amazon Linux ships its sources as *.sources, Ubuntu 24.10+ its pools; Ubuntu's EC2 images
    put the IPv4 Time Sync line in conf.d/00-cpc.conf, SLES its pool in /etc/chrony.d/pool.conf),
    and a leapsectz/leapseclist in a *.conf drop-in.

    In a persistent directory the line is commented out, with the reason, as part of the same
    change (so it is diffed, backed up in memory and rolled back like the rest). A directory under
    /run is filled again at every boot by whoever owns it: there, only a warning helps. Links,
    FIFOs and other non-regular files are never followed or read: only warned about."""
    changes: list[FileChange] = []
    warnings: list[str] = []
    for shown, dropin, kind in _dropin_files(request, text, platform):
        try:
            info = dropin.lstat()
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_DROPIN_BYTES:
            if shown.startswith("/run/"):
                continue  # rewritten at boot anyway; its owner links it there (Amazon Linux 2023)
            warnings.append(f"{shown} is not a regular file of a drop-in's size: chronyctl6 does not "
                            "read or edit it; check what it adds")
            continue
        old = dropin.read_bytes()
        new_lines: list[bytes] = []
        why: list[str] = []
        for raw in old.split(b"\n"):  # chrony's line break; other bytes stay as they are
            line = raw.decode(errors="replace")
            reason = _dropin_conflict(line, conf=kind == "conf")
            if reason:
                why.append(f"{line.strip()} ({reason})")
                new_lines += [f"{DISABLED_MARK}: {reason}".encode(), b"# " + raw]
            else:
                new_lines.append(raw)
        if not why:
            continue
        if shown.startswith("/run/"):
            warnings.append(f"{shown} adds {'; '.join(why)}; it is rewritten at every boot, so disable "
                            "whatever writes it")
        else:
            changes.append(FileChange(dropin, shown, old, b"\n".join(new_lines), kind))
    return changes, warnings


def _dropin_files(request: Request, text: str, platform: Platform) -> list[tuple[str, Path, str]]:
    """(path as the instance sees it, path under the root, kind) of each drop-in the rendered
    configuration pulls in: *.sources of each sourcedir, *.conf of each confdir, include globs."""
    found: dict[str, tuple[str, Path, str]] = {}
    for d in directives.parse(text):
        if not d.args or d.keyword not in ("sourcedir", "confdir", "include"):
            continue
        where = d.args[0]
        if d.keyword == "sourcedir" and where.rstrip("/") == platform.runtime_sourcedir:
            continue
        if d.keyword == "include":
            # The root taken literally, the pattern as chronyd globs it.
            pattern = glob.escape(str(request.root).rstrip("/")) + "/" + where.lstrip("/")
            paths = [Path(m) for m in sorted(glob.glob(pattern))]
        else:
            directory = request.under_root(where)
            if directory.is_symlink() or not directory.is_dir():
                continue
            suffix = ".sources" if d.keyword == "sourcedir" else ".conf"
            paths = sorted(p for p in directory.iterdir() if p.name.endswith(suffix))
        inside = request.root.resolve()
        for path in paths:
            if not path.parent.resolve().is_relative_to(inside):
                continue  # a linked directory leading out of the image: not the image's file
            shown = "/" + str(path.relative_to(request.root))
            found.setdefault(shown, (shown, path, "sources" if shown.endswith(".sources") else "conf"))
    return list(found.values())


def _dropin_conflict(line: str, *, conf: bool = False) -> str | None:
    parsed = directives.parse(line)
    if not parsed or not parsed[0].args:
        return None
    if conf and parsed[0].keyword in ("leapsectz", "leapseclist"):
        return "Time Sync smears leap seconds; chronyd must not apply them on top"
    if parsed[0].keyword not in directives.SOURCE_KEYWORDS:
        return None
    host = parsed[0].args[0]
    if directives.is_timesync(host):
        return "a second Time Sync line: chronyctl6 writes the one this instance uses"
    if not directives.is_smeared(host):
        return "non-smeared time beside Time Sync's leap-smeared time"
    return None


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise BadInput(f"{path} is a directory, not a chrony configuration") from None


def is_root() -> bool:
    return os.geteuid() == 0
