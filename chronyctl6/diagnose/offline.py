"""`doctor --root DIR`: an image examined offline. The checks that read this host (metadata,
addresses, routes, Time Sync's answers, the firewall, the PTP clock) are not applicable and say
so; chrony's, chronyd's and the other daemons' checks read the image's files instead (its chronyd
binary, its units' links: facts.gather_offline); the configuration checks are doctor's own, on the
configuration the image's chronyd will read.
"""

from __future__ import annotations

from collections.abc import Callable

from chronyctl6.diagnose import doctor
from chronyctl6.diagnose.doctor import Check, Status, q
from chronyctl6.diagnose.facts import Facts

# What only a running instance can say, by check.
NOT_OFFLINE = {
    "ec2": "instance metadata", "nitro": "instance metadata", "imds-ipv6": "instance metadata",
    "ipv6-address": "the instance's addresses", "route-ipv6": "the instance's routes",
    "timesync-ipv6": "Time Sync's answers", "timesync-ipv4": "Time Sync's answers",
    "firewall": "the instance's firewall", "phc": "the ENA PTP hardware clock (an image decides it at every boot)",
}


def not_applicable(c: Check, f: Facts) -> Check:
    what = NOT_OFFLINE.get(c.id)
    if f.offline is None or what is None:
        return c
    return Check(c.id, Status.SKIP, f"not applicable offline: {what}")


def _install_in_image(f: Facts) -> str:
    command, _, comment = doctor._install_fix(f.platform).partition("  # ")
    return f"{command}  # inside the image" + (f"; {comment}" if comment else "")


def image_chrony(f: Facts) -> Check:
    if f.image_chronyd is None:
        return Check("chrony", Status.FAIL, "chronyd is not installed in the image", _install_in_image(f))
    return Check("chrony", Status.PASS, f"chronyd is in the image at {f.image_chronyd} (not run offline)")


def image_chronyd(f: Facts) -> Check:
    """The image's chrony unit: enabled, so chronyd starts at the first boot."""
    unit = f.image_chrony_unit
    if unit is None:
        return Check("chronyd", Status.SKIP, "no distribution known: cannot tell chrony's unit")
    root = q(f.offline or "/")
    if unit.state == "enabled":
        return Check("chronyd", Status.PASS, f"{unit.unit} is enabled in the image: chronyd starts at boot")
    if unit.state == "masked":
        fix = f"sudo systemctl --root {root} unmask {unit.unit} && sudo systemctl --root {root} enable {unit.unit}"
    elif unit.state == "not installed":
        fix = _install_in_image(f)
    else:
        fix = f"sudo systemctl --root {root} enable {unit.unit}"
    return Check("chronyd", Status.FAIL, f"{unit.unit} is {unit.state} in the image: chronyd will not start at boot",
                 fix)


def image_other_daemons(f: Facts) -> Check:
    if not f.image_rivals:
        return Check("other-daemons", Status.PASS, "no other time daemon's unit is enabled in the image")
    names = " ".join(u.unit for u in f.image_rivals)
    return Check("other-daemons", Status.FAIL,
                 f"enabled in the image beside chrony: {names}: they fight over the clock",
                 f"sudo systemctl --root {q(f.offline or '/')} disable {names}")


# doctor's check -> the one that answers it from the image's files.
INSTEAD: dict[Callable[[Facts], Check], Callable[[Facts], Check]] = {
    doctor.check_chrony: image_chrony, doctor.check_chronyd: image_chronyd,
    doctor.check_other_daemons: image_other_daemons,
}
