"""The boot step's PHC half: write /run/chronyctl6/phc.conf when this launch has the ENA PTP
hardware clock, remove it when it has not. Decided from facts by `decide` (pure); `run` reads
the facts and carries the decision out. The policy is in configure/phc.py.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chronyctl6.chronyconf import traversal
from chronyctl6.configure import phc as policy
from chronyctl6.effects import files
from chronyctl6.effects import phc as phc_effects
from chronyctl6.errors import ChronyCtlError
from chronyctl6.text import shown


@dataclass(frozen=True)
class PhcBoot:
    path: str  # as the instance sees it
    content: str | None  # None: no PHC on this launch (or none wanted): no file
    device: str | None
    reason: str
    warning: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"path": self.path, "device": self.device, "written": self.content is not None,
                "reason": self.reason}


def options_from(mode: str, intent: dict[str, Any]) -> tuple[tuple[str, ...] | None, str | None]:
    """What the boot-time PHC line takes: the options apply recorded (its own, or an operator's
    line it moved here), else the defaults where settings ask for the PHC. None: no PHC line."""
    if "phc_boot_options" not in intent:  # no record (an older apply, a lost state directory)
        return (policy.DEFAULT_OPTIONS if mode != "off" else None), None
    recorded = intent["phc_boot_options"]
    if recorded is None:
        return None, None
    options = policy.safe_options(recorded)
    if options is None:
        return ((policy.DEFAULT_OPTIONS if mode != "off" else None),
                "state.json's phc_boot_options are not plain words: the default PHC options are used")
    return options, None


def decide(runtime_dir: str, options: tuple[str, ...] | None, facts: phc_effects.PhcFacts) -> PhcBoot:
    path = policy.boot_file(runtime_dir)
    found = facts.phc
    if options is None:
        return PhcBoot(path, None, None, "the PHC is not asked for (--phc off)")
    if found is None:
        why = "this launch has no ENA PTP hardware clock"
        if facts.problems:
            why += f" ({shown('; '.join(facts.problems), 300)})"
        return PhcBoot(path, None, None, why)
    reason = (f"{shown(found.clock.clock_name, 64)} at /dev/{found.clock.ptp}"
              + (f", as {found.device}" if found.device != f"/dev/{found.clock.ptp}" else ""))
    return PhcBoot(path, policy.render_boot_file(found.device, options, reason), found.device, reason)


def run(root: Path, runtime_dir: str, mode: str, intent: dict[str, Any]) -> tuple[PhcBoot, bool]:
    """Carry the decision out under root. Returns it and whether the file changed."""
    options, warning = options_from(mode, intent)
    decision = decide(runtime_dir, options, phc_effects.discover(root))
    if warning:
        decision = PhcBoot(decision.path, decision.content, decision.device, decision.reason, warning)
    target = traversal.write_path(root, decision.path)
    try:
        old = traversal.read_one(root, decision.path)
    except ChronyCtlError:  # not a regular file (a FIFO, a device): replaced or removed
        old = b""
    if decision.content is None:
        if old is None and not target.is_symlink():
            return decision, False
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
        return decision, True
    new = decision.content.encode()
    if old == new and not target.is_symlink():
        return decision, False
    target.parent.mkdir(parents=True, exist_ok=True)
    files.atomic_write(target, new)
    return decision, True
