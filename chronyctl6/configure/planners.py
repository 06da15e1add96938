"""The pure planners besides apply's (configure/plan.py): restore (previous or original), the boot
step and package removal. Each takes facts gathered by its command and returns one ChangeSet for
the one executor. Plain data in, plain data out: no I/O, no effects imported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from chronyctl6.chronyconf import directives
from chronyctl6.configure import render
from chronyctl6.configure.changeset import (
    BACKUP_SUFFIX,
    CONFIG,
    OTHER,
    SOURCES,
    ChangeSet,
    FileChange,
    UnitLink,
    Verify,
)
from chronyctl6.configure.phc import PhcBoot
from chronyctl6.filestate import FileState

if TYPE_CHECKING:  # plain data the boot step's facts carry; nothing of effects runs here
    from chronyctl6.effects.host import HostNetwork, InstanceHint


# ---- restore -------------------------------------------------------------------------------

@dataclass(frozen=True)
class RestoreFacts:
    root: Path
    config_shown: str
    config_path: Path
    config_now: bytes | None  # the main file chronyd runs on now
    kept: tuple[FileState, ...]  # what to put back (history entry or originals)
    now: dict[str, FileState]  # each kept path as it is now
    paths: dict[str, Path]  # each kept path, resolved under the root
    link_reads: dict[str, bytes | None] = field(default_factory=dict)  # what a kept link leads to
    live: bool = False
    runtime: FileState | None = None  # the boot step's file in /run (restore --original removes it)
    runtime_path: Path | None = None


def restore_kind(shown: str) -> str:
    """How chronyd reads a restored file: a unit link it does not; a *.sources file from a
    sourcedir (a reload); anything else at start (a restart)."""
    if shown.startswith("/etc/systemd/"):
        return OTHER
    return SOURCES if shown.endswith(".sources") else CONFIG


def plan_restore(facts: RestoreFacts) -> ChangeSet:
    """Every kept file that differs from what is there now (bytes, mode, owner, link or absence)
    put back as kept. Verified by chronyd answering: a restored file may name its own sources."""
    changes = []
    for kept in facts.kept:
        if facts.now.get(kept.shown) == kept or kept.shown.endswith(BACKUP_SUFFIX):
            continue  # as kept; or a copy an older chronyctl6 left beside a file: never brought back
        now = facts.now.get(kept.shown)
        present = kept.data is not None
        changes.append(FileChange(
            facts.paths[kept.shown], kept.shown, now.data if now else None, kept.data or b"",
            restore_kind(kept.shown), removed=not present and kept.link is None,
            mode=kept.mode if present else None, uid=kept.uid, gid=kept.gid,
            link=kept.link, reads=facts.link_reads.get(kept.shown)))
    runtime = facts.runtime
    if runtime is not None and facts.runtime_path is not None and (runtime.data is not None or runtime.link):
        # The boot step's file: nothing of chronyctl6's stays where chronyd may read it.
        changes.append(FileChange(facts.runtime_path, runtime.shown, runtime.data, b"", OTHER, removed=True))
    main = next((c for c in changes if c.shown == facts.config_shown), None)
    final = main.final if main is not None else facts.config_now
    return ChangeSet(facts.root, facts.config_shown, facts.config_path, facts.config_now, final,
                     files=tuple(changes), live=facts.live,
                     verify=Verify.ANSWERS if facts.live else Verify.NONE, keep_originals=False)


# ---- the boot step -------------------------------------------------------------------------

@dataclass(frozen=True)
class BootFacts:
    """What the boot step could learn. `problem` says what failed (settings, os-release, metadata,
    the network); `network` is this launch's, read even then (None: unreadable too)."""

    root: Path
    path: Path  # the sources file, resolved under the root
    shown: str  # e.g. /run/chronyctl6/timesync.sources
    current: bytes | None
    options: tuple[str, ...]  # the Time Sync line's options
    mode: str | None  # ipv6 on | off | auto from the settings (None: they failed)
    network: HostNetwork | None
    hint: InstanceHint | None
    last_boot: dict[str, object] = field(default_factory=dict)
    problem: str | None = None
    chronyd_running: bool = False  # run by hand on a running instance: chronyd reloads its sources
    phc: PhcBoot | None = None  # this launch's PTP hardware clock file, decided (configure/phc.py)
    phc_path: Path | None = None  # ... and where it is (under the root)
    phc_current: bytes | None = None


@dataclass(frozen=True)
class BootPlan:
    endpoint: render.Endpoint
    fallback: bool
    warnings: tuple[str, ...]
    changes: ChangeSet


def plan_boot(facts: BootFacts) -> BootPlan:
    """This launch's one endpoint. Facts missing: the last good choice, but IPv6 only where this
    launch's network has a usable IPv6 address (a last boot's IPv6 means nothing on an IPv4-only
    launch), else the IPv4 endpoint every instance reaches. Never fails for lack of facts."""
    warnings: list[str] = []
    if facts.problem is None and facts.mode is not None and facts.network is not None:
        endpoint = render.choose_endpoint(facts.mode, facts.network, facts.hint)
    else:
        endpoint, why = _fallback(facts)
        warnings.append(f"{facts.problem or 'no network facts'}; using {endpoint.address} ({why})")
    new = render.render_boot_sources(endpoint, facts.options).encode()
    files: tuple[FileChange, ...] = (
        (FileChange(facts.path, facts.shown, facts.current, new, SOURCES),) if facts.current != new else ())
    phc_files, phc_warnings = _boot_phc(facts)
    files += phc_files
    warnings += phc_warnings
    changes = ChangeSet(facts.root, facts.shown, facts.path, None, None, files=files, live=facts.chronyd_running,
                        verify=Verify.NONE, keep_originals=False, record_history=False)
    return BootPlan(endpoint, bool(warnings), tuple(warnings), changes)


def _boot_phc(facts: BootFacts) -> tuple[tuple[FileChange, ...], list[str]]:
    """phc.conf written where this launch has the clock, removed where it has not. Its kind is
    OTHER for the executor: chronyd reads a confdir at start only and the boot step runs before
    it; run by hand, the only seam is chronyc (a reload), so the restart is said, not done."""
    d, path = facts.phc, facts.phc_path
    if d is None or path is None:
        return (), []
    warnings = [d.warning] if d.warning else []
    new = d.content.encode() if d.content is not None else b""
    if (d.content is None and facts.phc_current is None) or (d.content is not None and facts.phc_current == new):
        return (), warnings
    if facts.chronyd_running:
        warnings.append(f"{d.path} changed while chronyd runs: restart chronyd to apply it (a confdir is read "
                        "at start only; `chronyc reload sources` does not read it)")
    return (FileChange(path, d.path, facts.phc_current, new, OTHER, removed=d.content is None),), warnings


def _fallback(facts: BootFacts) -> tuple[render.Endpoint, str]:
    last = facts.last_boot.get("address")
    usable_v6 = facts.network is None or facts.network.has_global_ipv6  # unknown: trust the last boot
    if last == directives.TIMESYNC_IPV4 or (last == directives.TIMESYNC_IPV6 and usable_v6):
        reason = facts.last_boot.get("reason", "an earlier boot")
        return render.Endpoint(str(last), f"the last good choice ({reason})"), "the last good choice"
    if last == directives.TIMESYNC_IPV6:
        return (render.Endpoint(directives.TIMESYNC_IPV4, "fallback: this launch has no usable IPv6 address"),
                "fallback: the last boot chose IPv6, this launch has no usable IPv6 address")
    return render.Endpoint(directives.TIMESYNC_IPV4, "fallback: every instance reaches IPv4"), "fallback"


# ---- package removal -----------------------------------------------------------------------

@dataclass(frozen=True)
class ReleaseFacts:
    root: Path
    config_shown: str
    config_path: Path
    config_now: bytes | None
    runtime_sourcedir: str  # the boot step's directory (/run/chronyctl6)
    runtime: FileState  # the boot step's sources file: this launch's Time Sync line
    runtime_path: Path
    boot_link: UnitLink | None  # the boot unit's enable link, where there is one
    options: tuple[str, ...]
    last_boot: dict[str, object] = field(default_factory=dict)
    network: HostNetwork | None = None
    live: bool = False


@dataclass(frozen=True)
class ReleasePlan:
    changes: ChangeSet
    said: tuple[str, ...]  # what removal does, and why, for the maintainer script's output
    endpoint: str | None = None


RELEASED_NOTE = "# chronyctl6 was removed: nothing fills {dir} any more. This launch's Time Sync line instead:"


def plan_release(facts: ReleaseFacts) -> ReleasePlan:
    """Removing the tool is no request to leave Time Sync: chrony.conf stays as chronyctl6 wrote
    it, except that a `sourcedir` of the boot step's directory (which nothing fills once the boot
    step is gone) becomes this launch's Time Sync line, the boot step's sources file goes, and its
    unit is disabled. A chrony.conf chronyctl6 does not manage is left alone."""
    said: list[str] = []
    files: list[FileChange] = []
    disable = (facts.boot_link,) if facts.boot_link is not None else ()
    text = directives.decode(facts.config_now) if facts.config_now is not None else None
    endpoint = None
    if text is None or not directives.is_managed(text):
        said.append(f"{facts.config_shown} is not managed by chronyctl6: left as it is")
    else:
        endpoint = _launch_endpoint(facts)
        line = next(ln for ln in render.render_boot_sources(endpoint, facts.options).splitlines()
                    if ln.startswith("server "))
        new = _without_runtime_sourcedir(text, facts.runtime_sourcedir, line)
        if new is None:
            said.append(f"{facts.config_shown} stays as chronyctl6 wrote it: its Time Sync line is in it")
        else:
            files.append(FileChange(facts.config_path, facts.config_shown, facts.config_now,
                                    directives.encode(new), CONFIG))
            said.append(f"{facts.config_shown} stays as chronyctl6 wrote it, but `sourcedir "
                        f"{facts.runtime_sourcedir}` (filled at boot by chronyctl6) is replaced by this "
                        f"launch's '{line}' ({endpoint.reason}), so that chrony keeps a source after the next boot")
            if facts.runtime.data is not None or facts.runtime.link is not None:
                files.append(FileChange(facts.runtime_path, facts.runtime.shown, facts.runtime.data, b"", OTHER,
                                        removed=True))
    if disable:
        said.append(f"disabled {disable[0].target.rsplit('/', 1)[-1]}")
    main = next((c for c in files if c.shown == facts.config_shown), None)
    changes = ChangeSet(facts.root, facts.config_shown, facts.config_path, facts.config_now,
                        main.new if main is not None else facts.config_now, files=tuple(files), disable=disable,
                        live=facts.live, verify=Verify.ANSWERS if facts.live else Verify.NONE,
                        keep_originals=False)
    return ReleasePlan(changes, tuple(said), endpoint.address if endpoint else None)


def _launch_endpoint(facts: ReleaseFacts) -> render.Endpoint:
    """The endpoint chronyd uses now (the boot step's file), else the last boot's where this launch
    can use it, else IPv4."""
    for d in directives.parse(directives.decode(facts.runtime.data or b""), sources_file=True):
        if d.keyword == "server" and d.args and d.args[0] in (directives.TIMESYNC_IPV4, directives.TIMESYNC_IPV6):
            return render.Endpoint(d.args[0], "the one this launch's boot step chose")
    last = facts.last_boot.get("address")
    usable_v6 = facts.network is not None and facts.network.has_global_ipv6
    if last == directives.TIMESYNC_IPV4 or (last == directives.TIMESYNC_IPV6 and usable_v6):
        return render.Endpoint(str(last), "the last boot's choice")
    return render.Endpoint(directives.TIMESYNC_IPV4, "the IPv4 endpoint, which every instance reaches")


def _without_runtime_sourcedir(text: str, runtime: str, line: str) -> str | None:
    """text with each `sourcedir` naming `runtime` replaced by `line` (once); None if none does."""
    raw = text.split("\n")  # every byte kept
    out: list[str] = []
    placed = False
    for kept in raw:
        parsed = directives.parse(kept)
        d = parsed[0] if parsed else None
        if d is None or d.keyword != "sourcedir" or runtime.rstrip("/") not in [a.rstrip("/") for a in d.args]:
            out.append(kept)
            continue
        others = [a for a in d.args if a.rstrip("/") != runtime.rstrip("/")]
        if not placed:
            out += [RELEASED_NOTE.format(dir=runtime), line]
            placed = True
        if others:
            out.append("sourcedir " + " ".join(others))
    return "\n".join(out) if placed else None
