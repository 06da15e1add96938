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
from chronyctl6.configure.changeset import CONFIG, OTHER, SOURCES, ChangeSet, FileChange, Verify

if TYPE_CHECKING:  # plain data the boot step's facts carry; nothing of effects runs here
    from chronyctl6.effects.host import HostNetwork, InstanceHint


@dataclass(frozen=True)
class FileState:
    """A file as it is or as it was kept: data None when absent (or, with link, a symlink)."""

    shown: str
    data: bytes | None
    mode: int = 0o644
    uid: int = -1
    gid: int = -1
    link: str | None = None


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
        if facts.now.get(kept.shown) == kept:
            continue
        now = facts.now.get(kept.shown)
        present = kept.data is not None
        changes.append(FileChange(
            facts.paths[kept.shown], kept.shown, now.data if now else None, kept.data or b"",
            restore_kind(kept.shown), removed=not present and kept.link is None,
            mode=kept.mode if present else None, uid=kept.uid, gid=kept.gid,
            link=kept.link, reads=facts.link_reads.get(kept.shown)))
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
    files = (FileChange(facts.path, facts.shown, facts.current, new, SOURCES),) if facts.current != new else ()
    changes = ChangeSet(facts.root, facts.shown, facts.path, None, None, files=files, live=facts.chronyd_running,
                        verify=Verify.NONE, keep_originals=False, record_history=False)
    return BootPlan(endpoint, bool(warnings), tuple(warnings), changes)


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
