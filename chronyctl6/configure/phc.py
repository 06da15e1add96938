"""The ENA PTP hardware clock's policy (pure): where its refclock line goes, what the boot step
writes, whose refclock lines are whose, and the leap-second policy beside smeared NTP.

A refclock whose device is missing is fatal to chronyd ("Fatal error : Could not open PHC",
chrony 4.3), so a baked image never carries a PHC line of ours: its chrony.conf says
`confdir /run/chronyctl6`, and `chronyctl6 boot`, before chronyd starts, writes
/run/chronyctl6/phc.conf only when this launch has the clock. chrony's rules decide the shape:
a refclock in a sourcedir *.sources file is ignored (only server, pool and peer belong there);
`include` of a missing directory's glob is fatal, a missing `confdir` is not; a confdir is read
at start only, so the boot step run by hand needs a restart of chronyd, not `reload sources`.

Leap seconds (AWS, "Set the time reference on your EC2 instance to use the local Amazon Time
Sync Service", https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configure-ec2-ntp.html:
"The NTP connection to the Amazon Time Sync Service supports leap smearing while the PTP
connection to the PTP hardware clock does not smear time"; "Leap seconds",
https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/set-time.html#leap-seconds). AWS's PHC
recipe adds `refclock PHC ... prefer` beside the NTP endpoint's line. Around a leap second the
two then disagree by up to half a second for the smear's duration, and with two sources that
disagree chronyd has no majority and may select neither. The policy (LEAP_POLICY) is that the
PHC is the reference and is trusted (`trust`): chronyd marks the smeared NTP endpoint a
falseticker while they disagree and keeps following the PHC; the NTP endpoint is the fallback
for a launch or a moment without the PHC. leapsectz and leapseclist stay off (chronyd would
apply the leap on top of smeared time whenever it falls back to NTP).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chronyctl6.chronyconf import directives, sources
from chronyctl6.text import shown

if TYPE_CHECKING:  # plain data from the discovery; nothing of effects runs here
    from chronyctl6.effects.phc import PhcFacts

BOOT_PHC_NAME = "phc.conf"  # in the platform's runtime directory, read through `confdir`
DEFAULT_OPTIONS = ("poll", "0", "delay", "0.000010", "prefer", "trust")
AWS_PHC_DOC = "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configure-ec2-ntp.html"
AWS_LEAP_DOC = "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/set-time.html#leap-seconds"
LEAP_POLICY = ("the ENA PTP hardware clock (not smeared) is chronyd's trusted reference; the "
               "leap-smeared Time Sync NTP endpoint is its fallback, and a falseticker while they "
               "disagree around a leap second; no leapsectz or leapseclist")
ENABLE_FIX = ("load the ENA driver 2.10 or newer with phc_enable=1 (echo 'options ena phc_enable=1' "
              "> /etc/modprobe.d/ena.conf, then reload the driver or reboot) on an instance type "
              "with the PTP hardware clock")


MOVED_REASON = ("ENA PTP hardware clock: moved to the boot-time {}, with these options (a refclock whose device "
                "is missing stops chronyd)")


def boot_file(runtime_dir: str) -> str:
    return f"{runtime_dir.rstrip('/')}/{BOOT_PHC_NAME}"


def refclock_line(device: str, options: Sequence[str]) -> str:
    return " ".join(("refclock", "PHC", device, *options))


def render_boot_file(device: str, options: Sequence[str], why: str) -> str:
    """/run/chronyctl6/phc.conf for a launch that has the clock; `why` is one safe line."""
    return (f"# Written by `chronyctl6 boot` on every boot: this launch has the ENA PTP hardware clock\n"
            f"# ({why}). Read by chronyd at start through `confdir`.\n"
            f"{refclock_line(device, options)}\n")


def safe_options(value: object) -> tuple[str, ...] | None:
    """Refclock options recorded in state.json, or None when they are not a list of plain words
    (a damaged or hand-edited state file never reaches chrony's configuration)."""
    if not isinstance(value, list) or len(value) > 32:
        return None
    out = []
    for word in value:
        if (not isinstance(word, str) or not word or len(word) > 256 or not word.isprintable()
                or any(c.isspace() for c in word) or word[0] in directives.COMMENT_CHARS):
            return None
        out.append(word)
    return tuple(out)


def device_of(args: Sequence[str]) -> str:
    """The device a `refclock PHC DEVICE[:opts]` line opens."""
    return args[1].split(":", 1)[0] if len(args) >= 2 else ""


def is_ena_phc(args: Sequence[str]) -> bool:
    """A `refclock PHC` line for a device the ENA clock goes by (AWS's recipe names /dev/ptp0)."""
    return len(args) >= 2 and args[0].upper() == "PHC" and device_of(args) in sources.PHC_DEVICES


@dataclass(frozen=True)
class RefclockVerdict:
    keep: bool
    reason: str  # why dropped, or what to know about keeping it
    moved: tuple[str, ...] | None = None  # the options the boot-time PHC takes over
    warning: str | None = None
    note: str | None = None


def judge_refclock(directive: directives.Directive, *, own: Iterable[str], live: bool,
                   present: Iterable[str], boot_file_shown: str) -> RefclockVerdict:
    """A refclock line of the file being replaced. chronyctl6's own lines are known from its
    state (`own`, normalised lines it recorded writing), never guessed from the text. An
    operator's line is never rewritten: an ENA PHC line stays as written on a live host whose
    device exists, else moves to the boot-time PHC with its options; any other refclock stays
    as written (warned about in an image, where the device may be absent at launch)."""
    if directive.normalized in set(own):
        return RefclockVerdict(False, "chronyctl6's own PHC line: written again as settings say")
    args = directive.args
    if is_ena_phc(args):
        device = device_of(args)
        if live and device in set(present):
            return RefclockVerdict(True, "", note=f"your `{directive.line}` is kept as written ({device} exists)")
        where = "this image" if not live else f"this host, where {device} is missing,"
        options = args[2:]
        return RefclockVerdict(
            False, f"ENA PTP hardware clock: moved to the boot-time {boot_file_shown}, with your options",
            moved=tuple(options),
            note=(f"your `{directive.line}` moved to {boot_file_shown}, written at every boot only when the "
                  f"launch has the ENA PTP hardware clock (as /dev/ptp_ena or its /dev/ptpN), with your options "
                  f"`{' '.join(options)}`: in {where} a refclock whose device is missing stops chronyd"))
    if not live:
        return RefclockVerdict(True, "", warning=(
            f"`{directive.line}` (line {directive.lineno}) is kept as written: on a launch without its "
            "device chronyd stops at start (a missing refclock device is fatal)"))
    return RefclockVerdict(True, "")


def leap_problem(refclock_args: Sequence[str], smeared_ntp: bool) -> str | None:
    """Why an ENA PHC line beside smeared NTP goes against the leap policy, or None."""
    if not smeared_ntp or not is_ena_phc(refclock_args):
        return None
    options = {a.lower() for a in refclock_args[2:]}
    if "trust" in options or "noselect" in options:
        return None
    return ("the PHC does not smear leap seconds and the Time Sync NTP endpoint does: around a leap "
            "second they disagree by up to 0.5 s and, with neither trusted, chronyd may select neither")


# ---- the boot step's decision ----------------------------------------------------------------

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
        return (DEFAULT_OPTIONS if mode != "off" else None), None
    recorded = intent["phc_boot_options"]
    if recorded is None:
        return None, None
    options = safe_options(recorded)
    if options is None:
        return ((DEFAULT_OPTIONS if mode != "off" else None),
                "state.json's phc_boot_options are not plain words: the default PHC options are used")
    return options, None


def decide(runtime_dir: str, options: tuple[str, ...] | None, facts: PhcFacts) -> PhcBoot:
    """phc.conf for this launch: the refclock line where sysfs shows the ENA clock, else none."""
    path = boot_file(runtime_dir)
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
    return PhcBoot(path, render_boot_file(found.device, options, reason), found.device, reason)
