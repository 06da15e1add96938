"""settings.toml: the choices an image builder pins, validated before anything is rendered.

Pure: `parse` takes TOML text. Every value that reaches chrony.conf is checked here, so that no
value can ever carry a second directive (no control characters, whitelisted words only).
"""

from __future__ import annotations

import ipaddress
import math
import re
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # Ubuntu 22.04's Python 3.10: the same parser, from its PyPI name
    import tomli as tomllib
from dataclasses import dataclass, field, replace
from typing import Any

from chronyctl6 import defaults
from chronyctl6.errors import BadInput

SETTINGS_PATH = "/etc/chronyctl6/settings.toml"
MODES = ("auto", "on", "off")
SERVICE_MANAGERS = ("auto", "systemd", "direct")
POLL_RANGE = (-6, 24)

# Server/pool options chronyctl6 lets through: name -> (kind, low, high). kind "flag" takes no value.
OPTIONS: dict[str, tuple[str, float, float]] = {
    "iburst": ("flag", 0, 0), "burst": ("flag", 0, 0), "prefer": ("flag", 0, 0),
    "noselect": ("flag", 0, 0), "trust": ("flag", 0, 0), "require": ("flag", 0, 0),
    "xleave": ("flag", 0, 0), "nts": ("flag", 0, 0), "auto_offline": ("flag", 0, 0),
    "offline": ("flag", 0, 0),
    "minpoll": ("int", *POLL_RANGE), "maxpoll": ("int", *POLL_RANGE),
    "polltarget": ("int", 6, 60), "maxsources": ("int", 1, 16), "version": ("int", 1, 4),
    "port": ("int", 1, 65535), "key": ("int", 1, 2**32 - 1), "presend": ("int", -6, 24),
    "minsamples": ("int", 0, 64), "maxsamples": ("int", 0, 64), "filter": ("int", 1, 64),
    "maxdelay": ("float", 0, 1000), "maxdelayratio": ("float", 1, 1e6),
    "maxdelaydevratio": ("float", 0, 1e6), "mindelay": ("float", 0, 1000),
    "asymmetry": ("float", -1, 1), "offset": ("float", -1000, 1000),
}

# Extra directives an operator may add. Sources have their own tables; leapsectz cannot sit
# beside smeared sources; refclock and sourcedir are chronyctl6's to manage.
DIRECTIVES = frozenset({
    "acquisitionport", "allow", "bindacqaddress", "bindacqdevice", "bindaddress",
    "bindcmdaddress", "bindcmddevice", "binddevice", "broadcast", "clientloglimit", "clockprecision",
    "cmdallow", "cmddeny", "cmdport", "combinelimit", "corrtimeratio", "deny", "dscp", "dumpdir",
    "fallbackdrift", "hwclockfile", "hwtimestamp", "hwtstimeout", "include", "initstepslew",
    "keyfile", "local", "lock_all", "log", "logbanner", "logchange", "logdir", "mailonchange",
    "makestep", "manual", "maxchange", "maxclockerror", "maxdistance", "maxdrift", "maxjitter",
    "maxntsconnections", "maxsamples", "maxslewrate", "maxupdateskew", "minsamples",
    "minsources", "noclientlog", "ntpsigndsocket", "ntsdumpdir", "ntsntpserver", "ntsport",
    "ntsprocesses", "ntsrefresh", "ntsrotate", "ntsservercert", "ntsserverkey",
    "ntstrustedcerts", "nosystemcert", "port", "ptpport", "ratelimit", "reselectdist", "rtcautotrim",
    "rtcdevice", "rtcfile", "rtconutc", "rtcsync", "sched_priority", "smoothtime",
    "stratumweight", "tempcomp", "driftfile", "pidfile", "user",
})
# They would read files chronyctl6 never sees when it takes sources over: whatever the takeover
# disables could come back through them.
READS_FILES = frozenset({"include", "confdir", "sourcedir"})
MAX_BYTES = 256 * 1024  # a settings file is a few lines
# A Linux interface name, as the kernel's dev_valid_name() allows it (IFNAMSIZ 16 with the NUL).
_IFNAME = re.compile(r"^[A-Za-z0-9_.@+-]{1,15}$")

_HOSTNAME_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_PRINTABLE_WORD = re.compile(r"^[\x21-\x7e]+$")
_KNOWN_KEYS = {"distro", "ipv6", "phc", "at_boot", "service_manager", "wait", "timesync",
               "servers", "pools", "directives"}


@dataclass(frozen=True)
class ExtraSource:
    kind: str  # server | pool
    host: str
    options: tuple[str, ...] = ()

    @property
    def line(self) -> str:
        return " ".join((self.kind, self.host, *self.options))


@dataclass(frozen=True)
class Settings:
    distro: str | None = None
    ipv6: str = "auto"
    phc: str = "auto"
    at_boot: bool = False
    service_manager: str = "auto"
    wait: float = 0.0
    timesync_options: tuple[str, ...] = ("prefer", "iburst", "minpoll 4", "maxpoll 4")
    extra_sources: tuple[ExtraSource, ...] = ()
    directives: tuple[str, ...] = field(default=())

    def override(self, **flags: Any) -> Settings:
        """Command-line flags win over the file; None means the flag was not given."""
        given = {k: v for k, v in flags.items() if v is not None}
        for key in ("ipv6", "phc"):
            if key in given:
                _choice(f"--{key}", given[key], MODES)
        if "service_manager" in given:
            _choice("--service-manager", given["service_manager"], SERVICE_MANAGERS)
        return replace(self, **given)


def decode(data: bytes, *, where: str = SETTINGS_PATH) -> str:
    """settings.toml's bytes as text: bounded, UTF-8 (TOML's only encoding), or one clear line."""
    if len(data) > MAX_BYTES:
        raise BadInput(f"{where}: {len(data)} bytes, over the {MAX_BYTES} a settings file may hold")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{where}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})",
                       hint="TOML files are UTF-8; re-save the file as UTF-8") from None
    return text


def parse(text: str, *, where: str = SETTINGS_PATH) -> Settings:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{where}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - _KNOWN_KEYS)
    if unknown:
        raise BadInput(f"{where}: unknown key {unknown[0]!r}",
                       hint=f"known keys: {', '.join(sorted(_KNOWN_KEYS))}")
    s = Settings()
    timesync = _table(data, "timesync", where)
    return Settings(
        distro=_opt_str(data, "distro", where),
        ipv6=_choice("ipv6", data.get("ipv6", s.ipv6), MODES),
        phc=_choice("phc", data.get("phc", s.phc), MODES),
        at_boot=_bool(data, "at_boot", where),
        service_manager=_choice("service_manager", data.get("service_manager", s.service_manager),
                                SERVICE_MANAGERS),
        wait=_number(data.get("wait", 0), "wait", 0, defaults.WAIT_MAX),
        timesync_options=_timesync_options(timesync, where),
        extra_sources=tuple(
            _source(kind, entry, f"{table}[{i}]")
            for table, kind in (("servers", "server"), ("pools", "pool"))
            for i, entry in enumerate(_array(data, table, where))
        ),
        directives=tuple(validate_directive(d, f"directives[{i}]")
                         for i, d in enumerate(_array(data, "directives", where))),
    )


def explicit_keys(text: str) -> frozenset[str]:
    """The keys the file itself sets (call after `parse`, which reports bad TOML)."""
    try:
        return frozenset(tomllib.loads(text))
    except tomllib.TOMLDecodeError:
        return frozenset()


def _timesync_options(table: dict[str, Any], where: str) -> tuple[str, ...]:
    unknown = sorted(set(table) - {"minpoll", "maxpoll"})
    if unknown:
        raise BadInput(f"{where}: unknown key timesync.{unknown[0]}", hint="timesync takes minpoll, maxpoll")
    lo = int(_number(table.get("minpoll", 4), "timesync.minpoll", *POLL_RANGE, integer=True))
    hi = int(_number(table.get("maxpoll", 4), "timesync.maxpoll", *POLL_RANGE, integer=True))
    if lo > hi:
        raise BadInput(f"timesync.minpoll ({lo}) is above timesync.maxpoll ({hi})")
    return ("prefer", "iburst", f"minpoll {lo}", f"maxpoll {hi}")


def _source(kind: str, entry: Any, key: str) -> ExtraSource:
    if not isinstance(entry, dict):
        raise BadInput(f"{key}: expected a table with host and options")
    unknown = sorted(set(entry) - {"host", "options"})
    if unknown:
        raise BadInput(f"{key}: unknown key {unknown[0]!r}", hint="a source takes host and options")
    host = validate_host(entry.get("host"), f"{key}.host")
    options = entry.get("options", [])
    if not isinstance(options, list):
        raise BadInput(f"{key}.options: expected a list of strings such as [\"iburst\", \"maxpoll 10\"]")
    return ExtraSource(kind, host, tuple(validate_option(o, f"{key}.options[{i}]")
                                         for i, o in enumerate(options)))


def validate_host(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise BadInput(f"{key}: expected a host name or IP address")
    _no_control(value, key)
    try:
        address = str(ipaddress.ip_address(value))
    except ValueError:
        pass
    else:
        scope = value.partition("%")[2]
        if "%" in value and (not _IFNAME.match(scope) or scope in (".", "..")):
            raise BadInput(f"{key}: {value!r}: the scope after % must be an interface name such as eth0 "
                           "(up to 15 letters, digits or ._@+-)")
        return address
    name = value[:-1] if value.endswith(".") else value
    if len(name) > 253 or not all(_HOSTNAME_LABEL.match(label) for label in name.split(".")):
        raise BadInput(f"{key}: {value!r} is neither an IP address nor a valid host name (RFC 1123)")
    return name.lower()


def validate_option(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise BadInput(f"{key}: expected a string such as \"iburst\" or \"maxpoll 10\"")
    _no_control(value, key)
    words = value.split()
    if not words or words[0] not in OPTIONS:
        raise BadInput(f"{key}: {value!r} is not a server option chronyctl6 allows",
                       hint=f"allowed: {', '.join(sorted(OPTIONS))}")
    kind, lo, hi = OPTIONS[words[0]]
    if kind == "flag":
        if len(words) != 1:
            raise BadInput(f"{key}: {words[0]} takes no value")
        return words[0]
    if len(words) != 2:
        raise BadInput(f"{key}: {words[0]} takes one value")
    number = _number(_to_number(words[1], key), key, lo, hi, integer=kind == "int")
    return f"{words[0]} {number:g}" if kind == "float" else f"{words[0]} {int(number)}"


def validate_directive(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise BadInput(f"{key}: expected a string such as \"maxclockerror 50\"")
    _no_control(value, key)
    words = value.split()
    if not words:
        raise BadInput(f"{key}: empty directive")
    kw = words[0].lower()
    if kw in ("server", "pool", "peer"):
        raise BadInput(f"{key}: sources go in [[servers]] or [[pools]], not in directives")
    if kw in ("leapsectz", "leapseclist"):
        raise BadInput(f"{key}: {kw} cannot be used with Time Sync's leap-smeared time",
                       hint=f"see chrony.conf(5), {kw}")
    if kw in READS_FILES:
        raise BadInput(f"{key}: {kw} is not allowed: it would read files in which chronyctl6 cannot take "
                       "conflicting sources over", hint="put the directives themselves in directives")
    if kw not in DIRECTIVES:
        raise BadInput(f"{key}: {words[0]!r} is not a chrony directive chronyctl6 lets through")
    if not all(_PRINTABLE_WORD.match(w) for w in words):
        raise BadInput(f"{key}: only printable ASCII is allowed")
    for w in words[1:]:
        if _not_finite(w):
            raise BadInput(f"{key}: {w!r} is not a finite number")
    return " ".join([kw, *words[1:]])


def _not_finite(word: str) -> bool:
    try:
        return not math.isfinite(float(word))
    except ValueError:
        return False


def _no_control(value: str, key: str) -> None:
    if any(ord(c) < 0x20 or ord(c) == 0x7F or c in "\u2028\u2029\x85" for c in value):
        raise BadInput(f"{key}: control characters (such as a line break) are not allowed")


def _to_number(word: str, key: str) -> float:
    try:
        return float(word)
    except ValueError:
        raise BadInput(f"{key}: {word!r} is not a number") from None


def _number(value: Any, key: str, lo: float, hi: float, *, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadInput(f"{key}: expected a number")
    if not math.isfinite(value):
        raise BadInput(f"{key}: {value} is not a finite number")
    if integer and value != int(value):
        raise BadInput(f"{key}: expected a whole number")
    if not lo <= value <= hi:
        raise BadInput(f"{key}: {value} is out of range ({lo:g} to {hi:g})")
    return float(value)


def _choice(key: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise BadInput(f"{key}: {value!r} is not one of {', '.join(allowed)}")
    return str(value)


def _bool(data: dict[str, Any], key: str, where: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise BadInput(f"{where}: {key} must be true or false")
    return value


def _opt_str(data: dict[str, Any], key: str, where: str) -> str | None:
    value = data.get(key)
    if value is not None and (not isinstance(value, str) or not _PRINTABLE_WORD.match(value)):
        raise BadInput(f"{where}: {key} must be a single word")
    return value


def _table(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise BadInput(f"{where}: {key} must be a table")
    return value


def _array(data: dict[str, Any], key: str, where: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise BadInput(f"{where}: {key} must be an array")
    return value
