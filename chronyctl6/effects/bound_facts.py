"""What chronyd's error bound needs besides `chronyc tracking`: the maxclockerror in force in the
configuration chronyd reads, and the ENA PHC's own error bound when the PHC is the reference.
The arithmetic is measure/clockbound.py's (pure)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from chronyctl6.chronyconf import servers
from chronyctl6.effects import configtree, phc
from chronyctl6.errors import ChronyCtlError

CHRONY_DEFAULT_MAXCLOCKERROR = 1.0  # ppm, chrony.conf(5)
CONFIG_PATHS = servers.MAIN_CONFIGS  # the one list of where chronyd's main file is
PHC0_REFID = "50484330"  # "PHC0", chronyd's default refid for the first PHC refclock


@dataclass(frozen=True)
class BoundFacts:
    maxclockerror_ppm: float
    maxclockerror_from: str  # where that value comes from
    phc_reference: bool  # the reference is a PHC refclock and this host has the ENA clock
    phc_error_bound: float | None  # seconds, from sysfs; None: not read (or unreadable)


def is_phc_reference(ref_id: str, ref_name: str) -> bool:
    return ref_name.upper().startswith("PHC") or ref_id.upper().lstrip("0") == PHC0_REFID


def gather(ref_id: str, ref_name: str, config_path: str | None = None, root: Path = Path("/")) -> BoundFacts:
    ppm, where = maxclockerror(config_path, root)
    if not is_phc_reference(ref_id, ref_name):
        return BoundFacts(ppm, where, False, None)
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
