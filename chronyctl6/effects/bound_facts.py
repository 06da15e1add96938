"""What chronyd's error bound needs besides `chronyc tracking`: the maxclockerror in force in the
configuration chronyd reads, and the ENA PHC's own error bound when the PHC is the reference.
The arithmetic is measure/clockbound.py's (pure). `check` asks this every minute: plain records,
and the PHC's sysfs read only when the PHC is the reference."""

from __future__ import annotations

import math
from pathlib import Path

from chronyctl6.chronyconf import servers
from chronyctl6.effects import configtree
from chronyctl6.errors import ChronyCtlError
from chronyctl6.plain import Frozen

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: check's start-up (mypy reads it so)
if TYPE_CHECKING:
    from typing import Final

CHRONY_DEFAULT_MAXCLOCKERROR = 1.0  # ppm, chrony.conf(5)
CONFIG_PATHS = servers.MAIN_CONFIGS  # the one list of where chronyd's main file is
PHC0_REFID = "50484330"  # "PHC0", chronyd's default refid for the first PHC refclock


class BoundFacts(Frozen):
    __slots__ = ("maxclockerror_from", "maxclockerror_ppm", "phc_error_bound", "phc_reference")
    maxclockerror_ppm: Final[float]
    maxclockerror_from: Final[str]  # where that value comes from
    phc_reference: Final[bool]  # the reference is a PHC refclock and this host has the ENA clock
    phc_error_bound: Final[float | None]  # seconds, from sysfs; None: not read (or unreadable)

    def __init__(self, maxclockerror_ppm: float, maxclockerror_from: str, phc_reference: bool,
                 phc_error_bound: float | None) -> None:
        self.maxclockerror_ppm = maxclockerror_ppm
        self.maxclockerror_from = maxclockerror_from
        self.phc_reference = phc_reference
        self.phc_error_bound = phc_error_bound


def is_phc_reference(ref_id: str, ref_name: str) -> bool:
    return ref_name.upper().startswith("PHC") or ref_id.upper().lstrip("0") == PHC0_REFID


def gather(ref_id: str, ref_name: str, config_path: str | None = None, root: Path = Path("/")) -> BoundFacts:
    ppm, where = maxclockerror(config_path, root)
    if not is_phc_reference(ref_id, ref_name):
        return BoundFacts(ppm, where, False, None)
    from chronyctl6.effects import phc

    found = phc.discover(root).phc
    if found is None:  # a PHC that is not the ENA clock (KVM's): it publishes no error bound
        return BoundFacts(ppm, where, False, None)
    return BoundFacts(ppm, where, True, phc.read_error_bound(root, found))


def maxclockerror(config_path: str | None, root: Path = Path("/")) -> tuple[float, str]:
    """The last valid maxclockerror in the files chronyd reads (chrony's default when none)."""
    paths = [config_path] if config_path else [p for p in CONFIG_PATHS if (root / p.lstrip("/")).is_file()][:1]
    for path in paths:
        try:
            tree = configtree.load(path, root)
        except (ChronyCtlError, OSError):
            continue
        value, where = CHRONY_DEFAULT_MAXCLOCKERROR, f"chrony's default (none in {path})"
        for located in tree.keyword("maxclockerror"):
            args = located.directive.args
            try:
                parsed = float(args[0]) if args else math.nan
            except ValueError:
                continue
            if math.isfinite(parsed) and parsed >= 0:
                value, where = parsed, f"{located.file}:{located.directive.lineno}"
        return value, where
    return CHRONY_DEFAULT_MAXCLOCKERROR, "chrony's default (no configuration found)"
