"""The ENA PTP hardware clock as this launch has it: found through sysfs, never through a name alone.

The ENA driver (2.10+, module parameter `phc_enable=1`) registers a PTP clock whose
/sys/class/ptp/ptpN/clock_name is `ena-ptp-NN`. The N of /dev/ptpN can change between boots
(another PTP clock, e.g. KVM's, may register first); Amazon Linux's udev rule adds the stable
name /dev/ptp_ena. A name proves nothing, so a device node is used only when it is a character
device whose device number is the one sysfs gives the ENA clock (/sys/class/ptp/ptpN/dev).

Everything is read under an injected root (an image, a test tree); `pick` is the pure decision.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from chronyctl6.effects import files
from chronyctl6.errors import ChronyCtlError
from chronyctl6.plain import Frozen

TYPE_CHECKING = False  # typing's, without importing typing: `check` reads the PHC's bound (mypy reads it so)
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Final

STABLE_NAME = "/dev/ptp_ena"  # Amazon Linux's udev rule
ENA_PREFIX = "ena-ptp"  # what the ENA driver names its clock (clock_name)
ENA_MODULE = "/sys/module/ena"
_SMALL = 4096  # sysfs attributes are a page at most


class Clock(Frozen):
    """One /sys/class/ptp/ptpN entry."""

    __slots__ = ("clock_name", "dev", "pci_slot", "ptp")
    ptp: Final[str]  # ptpN
    clock_name: Final[str]
    dev: Final[tuple[int, int] | None]  # major, minor from its `dev` attribute
    pci_slot: Final[str | None]  # PCI_SLOT_NAME of the device it belongs to

    def __init__(self, ptp: str, clock_name: str, dev: tuple[int, int] | None, pci_slot: str | None = None) -> None:
        self.ptp = ptp
        self.clock_name = clock_name
        self.dev = dev
        self.pci_slot = pci_slot

    @property
    def ena(self) -> bool:
        return self.clock_name.strip().lower().startswith(ENA_PREFIX)


class Node(Frozen):
    """What a /dev path is: None in `nodes` means it does not exist."""

    __slots__ = ("char", "rdev")
    char: Final[bool]
    rdev: Final[tuple[int, int]]

    def __init__(self, char: bool, rdev: tuple[int, int]) -> None:
        self.char = char
        self.rdev = rdev


class Phc(Frozen):
    __slots__ = ("clock", "device")
    device: Final[str]  # what chronyd opens: /dev/ptp_ena or /dev/ptpN
    clock: Final[Clock]

    def __init__(self, device: str, clock: Clock) -> None:
        self.device = device
        self.clock = clock

    @property
    def error_bound_path(self) -> str | None:
        """Where the driver publishes its error bound (ns), as ClockBound reads it
        (aws/clock-bound clock-bound-d/src/phc_utils.rs: /sys/bus/pci/devices/BDF/phc_error_bound)."""
        slot = self.clock.pci_slot
        return f"/sys/bus/pci/devices/{slot}/phc_error_bound" if slot else None


class PhcFacts(Frozen):
    """The PHC and what doctor needs to explain its absence."""

    __slots__ = ("clocks", "driver_loaded", "driver_version", "phc", "phc_enable", "problems")
    phc: Final[Phc | None]
    driver_loaded: Final[bool]  # /sys/module/ena exists
    driver_version: Final[str | None]  # /sys/module/ena/version (out-of-tree builds have it)
    phc_enable: Final[str | None]  # /sys/module/ena/parameters/phc_enable; None: no such parameter
    clocks: Final[tuple[Clock, ...]]
    problems: Final[tuple[str, ...]]  # names that were not what they claimed

    def __init__(self, phc: Phc | None, driver_loaded: bool = False, driver_version: str | None = None,
                 phc_enable: str | None = None, clocks: tuple[Clock, ...] = (), problems: tuple[str, ...] = ()) -> None:
        self.phc = phc
        self.driver_loaded = driver_loaded
        self.driver_version = driver_version
        self.phc_enable = phc_enable
        self.clocks = clocks
        self.problems = problems


def pick(clocks: Sequence[Clock], nodes: Mapping[str, Node | None]) -> tuple[Phc | None, list[str]]:
    """The ENA clock's device: /dev/ptp_ena when it is that clock's character device, else its
    /dev/ptpN when that is. Anything else named like it is reported, never used."""
    problems: list[str] = []
    for clock in sorted((c for c in clocks if c.ena), key=lambda c: c.ptp):
        if clock.dev is None:
            problems.append(f"/sys/class/ptp/{clock.ptp} has no device number")
            continue
        for device in (STABLE_NAME, f"/dev/{clock.ptp}"):
            node = nodes.get(device)
            if node is None:
                continue
            if not node.char:
                problems.append(f"{device} is not a character device: not used")
            elif node.rdev != clock.dev:
                problems.append(f"{device} is device {node.rdev[0]}:{node.rdev[1]}, not the ENA clock "
                                f"{clock.ptp} ({clock.dev[0]}:{clock.dev[1]}): not used")
            else:
                return Phc(device, clock), problems
    if not any(c.ena for c in clocks) and nodes.get(STABLE_NAME) is not None:
        problems.append(f"{STABLE_NAME} exists, but no /sys/class/ptp clock is the ENA driver's: not used")
    return None, problems


def discover(root: Path = Path("/")) -> PhcFacts:
    """Read sysfs and /dev under root and pick the ENA clock. Never fails: what cannot be read
    is absent."""
    clocks = read_clocks(root)
    paths = [STABLE_NAME, *(f"/dev/{c.ptp}" for c in clocks if c.ena)]
    nodes = {p: _node(root, p) for p in paths}
    phc, problems = pick(clocks, nodes)
    module = root / ENA_MODULE.lstrip("/")
    return PhcFacts(phc, module.is_dir(), _attr(module / "version"),
                    _attr(module / "parameters" / "phc_enable"), tuple(clocks), tuple(problems))


def read_clocks(root: Path) -> list[Clock]:
    base = root / "sys/class/ptp"
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return []
    clocks = []
    for name in names:
        if not (name.startswith("ptp") and name[3:].isdigit()):
            continue  # only ptpN: the name becomes a /dev path
        entry = base / name
        clock_name = _attr(entry / "clock_name")
        if clock_name is None:
            continue
        clocks.append(Clock(name, clock_name, _dev(_attr(entry / "dev")), _slot(_attr(entry / "device" / "uevent"))))
    return clocks


def read_error_bound(root: Path, phc: Phc) -> float | None:
    """The driver's current error bound in seconds (the file holds nanoseconds), or None."""
    path = phc.error_bound_path
    value = _attr(root / path.lstrip("/")) if path else None
    try:
        ns = int(value) if value is not None else None
    except ValueError:
        return None
    return ns / 1e9 if ns is not None and 0 <= ns < 10**12 else None


def _node(root: Path, device: str) -> Node | None:
    """The node a /dev path leads to, its symlinks followed inside root (udev's /dev/ptp_ena is
    a relative link to ptpN); a link out of root or a loop counts as no node."""
    try:
        st = os.stat(files.resolve_in_root(root, device))
    except (OSError, ChronyCtlError):
        return None
    return Node(stat.S_ISCHR(st.st_mode), (os.major(st.st_rdev), os.minor(st.st_rdev)))


def _attr(path: Path) -> str | None:
    """A small sysfs attribute, stripped; None if absent or not a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = os.read(fd, _SMALL)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data.decode("utf-8", "replace").strip()


def _dev(text: str | None) -> tuple[int, int] | None:
    major, sep, minor = (text or "").partition(":")
    if not sep or not major.isdigit() or not minor.isdigit():
        return None
    return int(major), int(minor)


def _slot(uevent: str | None) -> str | None:
    for line in (uevent or "").splitlines():
        if line.startswith("PCI_SLOT_NAME="):
            slot = line.split("=", 1)[1].strip()
            # a PCI address (0000:00:05.0): it becomes part of a path
            if slot and all(c in "0123456789abcdefABCDEF:." for c in slot):
                return slot
    return None
