"""A validated NTP client exchange: the measurement behind `chronyctl6 check`.

ntplib builds and parses the packets; the exchange is our own, because ntplib's `request`
accepts whatever comes back (no origin check, no mode/stratum/leap checks), times the round
trip on the wall clock, and restarts its timeout for every stray packet. Here a request's
transmit timestamp is a random nonce, a reply must echo it, and one deadline bounds the whole
measurement. Every reply we refuse is counted with its reason.

Offsets are positive when the local clock is behind the server (the server's time is later).
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import re
import select
import socket
import struct
import time
from collections import Counter

import ntplib

from chronyctl6.errors import ChronyCtlError
from chronyctl6.plain import Frozen, Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: check's start-up (mypy reads it so)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Final

NTP_PORT = 123
PACKET_LEN = 48
MODE_CLIENT = 3
MODE_SERVER = 4
# Time Sync, like chronyd's default `ratelimit`, lets a client send a burst of 8 quickly.
MAX_SAMPLES = 8
DEFAULT_SAMPLES = 6
DEFAULT_SPACING = 0.001  # seconds the burst waits for the probe's reply, at most
# chrony's `maxdistance` default: a reply whose root distance (root delay / 2 + root dispersion)
# exceeds this cannot say anything useful about UTC.
DEFAULT_MAX_DISTANCE = 3.0
_STRAGGLER_SLACK = 0.001  # seconds; see _Exchange.straggler_cutoff
# What an ICMP error for one of our requests looks like on the socket.
_ICMP_ERRORS = frozenset({errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH,
                          errno.EHOSTDOWN, errno.ENETDOWN, errno.EACCES, errno.EPERM})
# Kiss codes after which RFC 5905 says to stop (DENY, RSTR) or slow down (RATE): for a
# one-shot check both mean "send nothing more to this server".
KISS_STOP = frozenset({"RATE", "DENY", "RSTR"})

_NS = 1_000_000_000
_ERA = 1 << 32  # seconds in one NTP era; timestamps wrap in 2036
_NTP_DELTA = int(ntplib.NTP.NTP_DELTA)  # seconds from 1900 (NTP epoch) to 1970
# Python only names these on some builds; the values are Linux's.
_IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
_IPV6_RECVERR = getattr(socket, "IPV6_RECVERR", 25)
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # also SCM_TIMESTAMPNS
_SO_TIMESTAMPING = getattr(socket, "SO_TIMESTAMPING", 37)  # also SCM_TIMESTAMPING
# Software transmit stamps (taken where the driver hands the packet to the device), numbered by
# the kernel per datagram (OPT_ID), without the packet itself looped back (OPT_TSONLY):
# SOF_TIMESTAMPING_TX_SOFTWARE | _SOFTWARE | _OPT_ID | _OPT_TSONLY.
_TX_STAMP_FLAGS = (1 << 1) | (1 << 4) | (1 << 7) | (1 << 11)
_TIMESPEC = struct.Struct("@qq")  # struct timespec on 64-bit Linux
# A reply's control data: its SCM_TIMESTAMPNS, and the SCM_TIMESTAMPING (three timespecs) the
# kernel adds beside it once transmit stamps are on; room for both, so neither is cut off.
_ANCILLARY = socket.CMSG_SPACE(_TIMESPEC.size) + socket.CMSG_SPACE(3 * _TIMESPEC.size)
# struct sock_extended_err: errno, origin, type, code, pad, info, data
_EXTENDED_ERR = struct.Struct("=IBBBBII")
_ORIGIN_ICMP = frozenset({2, 3})  # SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6
_ORIGIN_TIMESTAMPING = 4  # SO_EE_ORIGIN_TIMESTAMPING
# An error-queue message's control data: SCM_TIMESTAMPNS (every message carries it once arrival
# stamps are on), SCM_TIMESTAMPING, and IP(V6)_RECVERR's sock_extended_err with its address.
_ERRQUEUE_ANCILLARY = (socket.CMSG_SPACE(_TIMESPEC.size) + socket.CMSG_SPACE(3 * _TIMESPEC.size)
                       + socket.CMSG_SPACE(64))


class Reject:
    """Why a reply was refused (the keys of Measurement.rejected)."""

    TRUNCATED = "truncated"
    WRONG_SOURCE = "wrong_source"
    WRONG_ORIGIN = "wrong_origin"
    BAD_MODE = "bad_mode"
    BAD_VERSION = "bad_version"
    KISS_OF_DEATH = "kiss_of_death"
    UNSYNCHRONISED = "unsynchronised"  # leap indicator 3
    BAD_STRATUM = "bad_stratum"
    ZERO_TIMESTAMP = "zero_timestamp"
    NEGATIVE_DELAY = "negative_delay"
    # root delay / 2 + root dispersion over the limit (not "root_distance": the JSON schema refuses
    # a bare quantity's name as a key anywhere, and this one is a key of `rejected`)
    ROOT_DISTANCE = "root_distance_too_large"
    ZERO_REFERENCE = "zero_reference"  # the server never synchronised (reference time 0)
    REFERENCE_IN_FUTURE = "reference_in_future"  # last synchronised after it transmitted
    UNREACHABLE = "icmp_unreachable"  # not a reply: an ICMP error for one of our requests


class NtpError(ChronyCtlError):
    """The measurement could not start (bad name, no route)."""


class Target(Frozen):
    __slots__ = ("family", "server", "sockaddr")
    server: Final[str]  # as the user gave it
    family: Final[int]
    sockaddr: Final[tuple[str, int] | tuple[str, int, int, int]]

    def __init__(self, server: str, family: int, sockaddr: tuple[str, int] | tuple[str, int, int, int]) -> None:
        self.server = server
        self.family = family
        self.sockaddr = sockaddr

    @property
    def address(self) -> str:
        return self.sockaddr[0]

    @property
    def port(self) -> int:
        return self.sockaddr[1]

    @property
    def resolved(self) -> bool:
        return self.family != socket.AF_UNSPEC


class Sample(Frozen):
    """One accepted exchange. Times in seconds."""

    __slots__ = ("delay", "leap", "offset", "path_bound", "precision", "ref_id", "root_delay",
                 "root_dispersion", "stratum", "taken", "version")
    offset: Final[float]  # > 0: the local clock is behind the server
    delay: Final[float]  # round trip less the server's own processing time
    stratum: Final[int]
    leap: Final[int]
    version: Final[int]
    ref_id: Final[str]
    root_delay: Final[float]
    root_dispersion: Final[float]
    taken: Final[float]  # monotonic seconds when its request left (orders a burst in time); default 0
    # How far the timestamps themselves may be off, seconds: the server's stated precision (chronyd
    # fills the bits below it with random noise) plus our nanosecond readings. RFC 5905 counts
    # both precisions into a sample's dispersion; a bound without them fails on a path of a few
    # hundred nanoseconds (clknetsim's ground truth found it). Default 0.
    precision: Final[float]
    # A burst's combined estimate (see `combine`) bounds the path term itself, tighter than
    # delay / 2; None (the default) for one exchange, whose bound is half its round trip.
    path_bound: Final[float | None]

    def __init__(self, offset: float, delay: float, stratum: int, leap: int, version: int, ref_id: str,
                 root_delay: float, root_dispersion: float, taken: float = 0.0, precision: float = 0.0,
                 path_bound: float | None = None) -> None:
        self.offset = offset
        self.delay = delay
        self.stratum = stratum
        self.leap = leap
        self.version = version
        self.ref_id = ref_id
        self.root_delay = root_delay
        self.root_dispersion = root_dispersion
        self.taken = taken
        self.precision = precision
        self.path_bound = path_bound

    def combined(self, *, offset: float, path_bound: float, root_delay: float, root_dispersion: float) -> Sample:
        """This sample with a burst's estimate in its place (what `combine` returns): the rest,
        its delay, stratum, timing and precision, as they are."""
        return Sample(offset, self.delay, self.stratum, self.leap, self.version, self.ref_id, root_delay,
                      root_dispersion, self.taken, self.precision, path_bound)

    @property
    def root_distance(self) -> float:
        """The server's own bound against UTC, as chrony defines it."""
        return self.root_delay / 2 + self.root_dispersion

    @property
    def error_bound(self) -> float:
        """The true offset against UTC lies within offset +- this: half our round trip (path
        asymmetry is unknowable; a burst's estimate: what its samples together leave) plus the
        server's root distance."""
        path = self.delay / 2 + self.precision if self.path_bound is None else self.path_bound
        return path + self.root_distance

    @property
    def max_error(self) -> float:
        """The verdict's quantity: the largest this clock's error against UTC can be,
        |offset| + delay / 2 + root delay / 2 + root dispersion."""
        return abs(self.offset) + self.error_bound


class Measurement(Record):
    """Everything one server's burst produced."""

    __slots__ = ("details", "error", "kiss_code", "rejected", "samples", "send_errno", "sent", "target")
    target: Target
    sent: int
    samples: list[Sample]
    rejected: Counter[str]
    details: list[str]  # first few rejections, for people
    kiss_code: str | None
    error: str | None  # the burst could not be sent at all
    send_errno: int | None

    def __init__(self, target: Target, sent: int = 0, samples: list[Sample] | None = None,
                 rejected: Counter[str] | None = None, details: list[str] | None = None,
                 kiss_code: str | None = None, error: str | None = None, send_errno: int | None = None) -> None:
        self.target = target
        self.sent = sent
        self.samples = [] if samples is None else samples
        self.rejected = Counter() if rejected is None else rejected
        self.details = [] if details is None else details
        self.kiss_code = kiss_code
        self.error = error
        self.send_errno = send_errno

    @property
    def best(self) -> Sample | None:
        """The burst's estimate: its samples weighed together (`combine`)."""
        return combine(self.samples)

    @property
    def fastest(self) -> Sample | None:
        """The minimum-delay sample: the one least distorted by queueing on the path."""
        return min(self.samples, key=lambda s: s.delay) if self.samples else None

    def reject(self, reason: str, detail: str) -> None:
        self.rejected[reason] += 1
        if len(self.details) < 10:
            self.details.append(f"{reason}: {detail}")


# chrony's default `maxdrift`: the furthest a clock's frequency may be off. Over a burst of a few
# milliseconds it moves the offset by a microsecond or so at most, and the estimate allows for it.
MAX_DRIFT = 500e-6


def combine(samples: Sequence[Sample], max_drift: float = MAX_DRIFT) -> Sample | None:
    """One burst's samples weighed together: the estimate `check` reports.

    Each exchange proves the true offset lies in [offset - delay/2, offset + delay/2] (one-way
    delays are never negative), which is [true - down, true + up] for that exchange's up and
    down delays. All of a burst's samples hold at once (the offset moves by at most max_drift
    times the time between them, which widens each interval), so the truth lies in their
    intersection: [true - min down, true + min up]. Where does it lie within it?

    - Queueing jitter is one-sided (a packet is delayed, never advanced): then the least-queued
      leg of each direction is the best evidence, and the intersection's midpoint, which takes
      each from whichever sample had it, is the estimate (a sample far above the minimum delay
      cannot move it: outliers weigh nothing).
    - Jitter that is symmetric about a typical delay (a hypervisor hop's, a path's normal noise)
      says nothing through the delay (the sum and difference of two such legs are independent):
      then every sample weighs the same, and the mean of the offsets is the estimate.

    Which one the burst shows is judged from its own legs (`_one_sided`, at least 3 samples). The
    mean is kept inside the intersection, so the truth is still proven within the reported path
    bound: the distance from the estimate to the intersection's farther end (half its width for
    the midpoint; at most its width, so at most the fastest sample's delay plus the drift
    allowance).

    Samples that contradict each other (an empty intersection: a clock stepped, or a server
    that is not one clock) leave the minimum-delay sample, as one exchange alone would."""
    if not samples:
        return None
    fastest = min(samples, key=lambda s: s.delay)
    low, high = -float("inf"), float("inf")
    for s in samples:
        drift = max_drift * (abs(s.taken - fastest.taken) + s.delay + fastest.delay) + s.precision
        low = max(low, s.offset - s.delay / 2 - drift)
        high = min(high, s.offset + s.delay / 2 + drift)
    half = (high - low) / 2
    alone = fastest.delay / 2 + fastest.precision  # the fastest sample's own path bound
    if not 0 <= half <= alone + max_drift * 2 * fastest.delay:  # contradictory, or NaN
        return fastest
    estimate = (low + high) / 2
    if len(samples) >= 3 and not _one_sided(samples):
        estimate = min(max(math.fsum(s.offset for s in samples) / len(samples), low), high)
    elif half >= alone:  # no tighter than one sample: that sample, unaltered
        return fastest
    return fastest.combined(
        offset=estimate,
        path_bound=max(estimate - low, high - estimate),
        # The server's own bound against UTC: the largest its samples state.
        root_delay=max(s.root_delay for s in samples),
        root_dispersion=max(s.root_dispersion for s in samples),
    )


# How much better (in nats, over both directions' legs) the one-sided model must explain a burst
# before its minimum legs are trusted over the mean: 1 keeps the mean on a symmetric path a little
# more often than an even choice would, at almost no cost on a queueing one (benchmarks/README.md).
_ONE_SIDED_MARGIN = 1.0


def _one_sided(samples: Sequence[Sample]) -> bool:
    """Do the burst's legs look like queueing (a sharp floor and a tail above it: a shifted
    exponential) rather than noise about a typical delay (a normal)? Each sample's legs, up to the
    unknown true offset, are offset + delay/2 (up) and delay/2 - offset (down); both fits have two
    parameters, so their maximised log-likelihoods compare as they stand."""
    ups = [s.offset + s.delay / 2 for s in samples]
    downs = [s.delay / 2 - s.offset for s in samples]
    exp_fit = _exponential_loglik(ups) + _exponential_loglik(downs)
    normal_fit = _normal_loglik(ups) + _normal_loglik(downs)
    return not exp_fit <= normal_fit + _ONE_SIDED_MARGIN  # NaN: one-sided, the midpoint's way


_TINY = 1e-15  # seconds: a spread of zero (equal legs) must not take a log of zero


def _exponential_loglik(values: Sequence[float]) -> float:
    n, floor = len(values), min(values)
    scale = max(math.fsum(values) / n - floor, _TINY)
    return -n * math.log(scale) - n


def _normal_loglik(values: Sequence[float]) -> float:
    n = len(values)
    mean = math.fsum(values) / n
    var = max(math.fsum((v - mean) ** 2 for v in values) / n, _TINY * _TINY)
    return -n / 2 * math.log(2 * math.pi * var) - n / 2


_READING_RESOLUTION = 2e-9  # our t1 and t4: two readings of nanosecond clocks


def server_precision(exponent: int) -> float:
    """The precision field (log2 seconds, signed) in seconds; one outside any real clock's range
    (a second or worse, or below 2^-32: the timestamp's own resolution) counts as a second or as
    that resolution, so a hostile field can neither vanish from the bound nor overflow it."""
    return 2.0 ** min(max(exponent, -32), 0)


_HOST_CHARS = re.compile(r"[A-Za-z0-9._:%-]+")


def shown(server: str, limit: int = 40) -> str:
    """A server argument as it is safe to print: escaped, and cut short when long."""
    text = ascii(server[:limit])[1:-1]
    return text + (f"... ({len(server)} characters)" if len(server) > limit else "")


def check_server(server: str) -> str:
    """The host part of a --server argument, or NtpError saying what is wrong with it: over
    253 characters, a label over 63, anything but letters, digits and `.-_:%`."""
    host = server[1:-1] if server.startswith("[") and server.endswith("]") else server
    hint = "give an IP address: --server fd00:ec2::123 (or --server 169.254.169.123)"
    if not host:
        raise NtpError("an empty NTP server name", hint=hint)
    if len(host) > 253:
        raise NtpError(f"NTP server '{shown(server)}': a host name has at most 253 characters",
                       hint=hint)
    if not _HOST_CHARS.fullmatch(host):
        raise NtpError(f"NTP server '{shown(server)}': only letters, digits and . - _ : % may "
                       "make up an address or host name", hint=hint)
    if ":" not in host and any(len(label) > 63 for label in host.split(".")):
        raise NtpError(f"NTP server '{shown(server)}': a host name's labels have at most 63 "
                       "characters", hint=hint)
    return host


def resolve(server: str, port: int = NTP_PORT) -> list[Target]:
    """Every address a server name gives (an IP literal gives itself, without DNS)."""
    host = check_server(server)
    # A colon cannot be in a host name: such a server is an IPv6 literal, never looked up.
    flags = socket.AI_NUMERICHOST if ":" in host else 0
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM, proto=socket.IPPROTO_UDP,
                                   flags=flags)
    except (socket.gaierror, UnicodeError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
        raise NtpError(
            f"cannot resolve NTP server '{shown(server)}': {why}",
            hint="give an IP address: --server fd00:ec2::123 (or --server 169.254.169.123)",
        ) from exc
    targets: list[Target] = []
    for family, _type, _proto, _name, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        target = Target(server, family, sockaddr)  # type: ignore[arg-type]
        if target not in targets:
            targets.append(target)
    if not targets:
        raise NtpError(f"NTP server {server!r} has no IPv4 or IPv6 address")
    return targets


def unresolved(server: str, port: int, why: str) -> Measurement:
    """The record of a server whose name gave no address: nothing was sent."""
    return Measurement(Target(server, socket.AF_UNSPEC, (server, port)), error=why)


def request_packet(nonce: bytes) -> bytes:
    """An NTPv4 client request whose transmit timestamp is the nonce, not our clock: it
    tells the server nothing about us, and a reply must echo it as its origin timestamp."""
    return bytes(ntplib.NTPPacket(version=4, mode=MODE_CLIENT).to_data()[:40]) + nonce


def ntp_to_unix_ns(raw: bytes, near_ns: int) -> int:
    """A 64-bit NTP timestamp in ns since 1970, in the NTP era nearest near_ns.

    Integer maths: ntplib's float conversion keeps only about 0.5 us at today's values.
    """
    value = int.from_bytes(raw, "big")
    secs, frac = value >> 32, value & 0xFFFFFFFF
    ns = (secs - _NTP_DELTA) * _NS + ((frac * _NS) >> 32)
    era_ns = _ERA * _NS
    return ns + round((near_ns - ns) / era_ns) * era_ns


def ref_id_text(ref_id: int, stratum: int) -> str:
    """Stratum 0/1 carry four ASCII letters (a kiss code or a clock type); others an address
    or a hash, shown as 8 hex digits like `chronyc tracking` does."""
    raw = ref_id.to_bytes(4, "big")
    if stratum <= 1:
        text = raw.rstrip(b"\0").decode("ascii", "replace")
        if text and text.isprintable() and text.isascii():
            return text
    return f"{ref_id:08X}"


def _same_endpoint(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    host_a, host_b = str(a[0]).split("%")[0], str(b[0]).split("%")[0]
    family = socket.AF_INET6 if ":" in host_a else socket.AF_INET
    try:
        same_host = socket.inet_pton(family, host_a) == socket.inet_pton(family, host_b)
    except OSError:
        same_host = host_a == host_b
    return same_host and a[1] == b[1]


def _read_latency_ns(ancillary: list[tuple[int, int, bytes]], now: int | None = None) -> int:
    """How long before `now` (the wall clock; read now if not given) the kernel received the
    datagram (its SCM_TIMESTAMPNS stamp, on the wall clock); 0 without a stamp, or if the wall
    clock stepped since (a latency not between 0 and 1 s cannot be a read latency)."""
    now = time.time_ns() if now is None else now
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = _TIMESPEC.unpack_from(data)
            latency = now - (sec * _NS + nsec)
            return latency if 0 <= latency < _NS else 0
    return 0


def _stepped_forward(wall: int, mono: int, wall_now: int, mono_now: int) -> bool:
    """Has the wall clock stepped forward between the readings (wall, mono), taken monotonic
    first, and (wall_now, mono_now), taken wall first? Without a step the later gap between the
    two clocks can only look smaller (pauses between readings fall that way); larger, it
    stepped (or was set) forward."""
    return wall_now - mono_now > wall - mono


class ErrQueueEntry:
    """What one message on a socket's error queue says: an ICMP error for one of our requests
    (`icmp_errno`, e.g. ECONNREFUSED for a closed port), or the kernel's transmit stamp
    (`stamp_ns`, wall clock) of the datagram numbered `key` (0 for the socket's first send)."""

    __slots__ = ("icmp_errno", "key", "stamp_ns")

    def __init__(self, icmp_errno: int | None = None, key: int | None = None,
                 stamp_ns: int | None = None) -> None:
        self.icmp_errno, self.key, self.stamp_ns = icmp_errno, key, stamp_ns


def errqueue_entry(ancillary: list[tuple[int, int, bytes]]) -> ErrQueueEntry:
    """Read one error-queue message's control data (pure: the kernel's bytes in, plain data out;
    anything short or unknown reads as neither an ICMP error nor a stamp)."""
    origin, code, key, stamp = None, 0, None, None
    for level, kind, data in ancillary:
        if (level, kind) in ((socket.IPPROTO_IP, _IP_RECVERR), (socket.IPPROTO_IPV6, _IPV6_RECVERR)):
            if len(data) >= _EXTENDED_ERR.size:
                code, origin, _type, _code, _pad, _info, key = _EXTENDED_ERR.unpack_from(data)
        elif level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPING and len(data) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(data)  # ts[0]: the software stamp
            if sec or nsec:
                stamp = sec * _NS + nsec
    if origin == _ORIGIN_TIMESTAMPING and stamp is not None:
        return ErrQueueEntry(key=key, stamp_ns=stamp)
    return ErrQueueEntry(icmp_errno=code if origin in _ORIGIN_ICMP else None)


class _Exchange:
    """One server's burst: sends spaced requests, matches replies to them by nonce."""

    def __init__(self, target: Target, samples: int, spacing: float,
                 max_distance: float = DEFAULT_MAX_DISTANCE) -> None:
        self.m = Measurement(target)
        self.samples = samples
        self.spacing = spacing
        self.max_distance = max_distance
        self.outstanding: dict[bytes, tuple[int, int]] = {}  # nonce -> (wall ns, monotonic ns)
        self.keys: dict[int, bytes] = {}  # the kernel's number for each datagram sent -> nonce
        self.icmp_seen = False  # an ICMP error has been read from the error queue
        self.last_send = -1.0  # monotonic seconds
        self.stopped = False  # kiss-of-death or a send error: nothing more goes out
        self.sock = socket.socket(target.family, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        # Deliver ICMP errors (port unreachable) on this unconnected socket too, so a server
        # that is not listening is seen at once rather than at the deadline.
        if target.family == socket.AF_INET6:
            self.sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVERR, 1)
        else:
            self.sock.setsockopt(socket.IPPROTO_IP, _IP_RECVERR, 1)
        # The kernel's arrival time of each reply: t4 then leaves out our own wake-up and
        # read latency (as chrony's kernel timestamps do), which on EC2 is of the order of the
        # whole round trip to Time Sync.
        with contextlib.suppress(OSError):  # without, t4 is taken when we read the reply
            self.sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        # And the kernel's departure time of each request: t1 then leaves out our own send path
        # (Python, the system call, the UDP/IP stack), which lengthens the outbound leg alone
        # and so biases the offset by half of it: the ground-truth benchmark saw +2 us on a
        # 20-100 us hop. Both stamps are taken inside [departure, arrival], so the interval
        # [t1, t4] still holds the server's [t2, t3] and the error bound stays a bound.
        self.tx_stamps = False
        with contextlib.suppress(OSError):  # without, t1 is read just before sendto
            self.sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPING, _TX_STAMP_FLAGS)
            self.tx_stamps = True

    def next_send(self) -> float | None:
        """When the next request may go (monotonic seconds), or None if no more will.

        The first request is a probe: the others wait for its reply, or `spacing` at most, so
        a kiss-of-death (or an ICMP error) stops the burst after one packet. Then the rest go
        back-to-back, each with its own nonce, all in flight together: the burst ends one round
        trip later, not one per sample. Six packets in a millisecond or two are far inside
        Time Sync's burst allowance (8) and EC2's 1024 packets per second per interface."""
        if self.stopped or self.m.sent >= self.samples:
            return None
        if self.m.sent == 1 and self.outstanding:
            return self.last_send + self.spacing
        return self.last_send

    def straggler_cutoff(self) -> float | None:
        """When waiting for the replies still out stops being worth it: once the youngest has
        been out for twice the best delay, a reply could no longer be the minimum-delay
        sample. None while there is no valid sample (then only the deadline ends the wait)."""
        best = self.m.fastest
        if best is None or not self.outstanding:
            return None
        youngest = max(mono for _wall, mono in self.outstanding.values()) / _NS
        return youngest + 2 * best.delay + _STRAGGLER_SLACK

    def finished(self, now: float) -> bool:
        if self.next_send() is not None:
            return False
        if not self.outstanding or self.stopped:
            return True
        cutoff = self.straggler_cutoff()
        return cutoff is not None and now >= cutoff

    def send(self) -> None:
        nonce = os.urandom(8)
        data = request_packet(nonce)
        if self.m.sent and not self._take_pending_error():
            return
        # Monotonic first: t4 = t1 + round trip then errs late, never early, so the interval
        # [t1, t4] always holds the server's [t2, t3] and the error bound stays a bound.
        mono = time.monotonic_ns()
        wall = time.time_ns()
        try:
            self.sock.sendto(data, self.m.target.sockaddr)
        except OSError as exc:
            self.m.error = exc.strerror or str(exc)
            self.m.send_errno = exc.errno
            self.stopped = True
            return
        self.outstanding[nonce] = (wall, mono)
        if self.tx_stamps:
            self.keys[self.m.sent] = nonce  # the kernel numbers this socket's datagrams from 0
        self.m.sent += 1
        self.last_send = mono / _NS
        if self.tx_stamps:
            self.read_errqueue()  # a software stamp is usually there before sendto returns

    def _take_pending_error(self) -> bool:
        """An ICMP error that came in since our last read is pending on the socket, and the next
        sendto would fail with it as if our own kernel could not send: take it as the ICMP error
        it is (counted from the error queue). Returns whether the burst goes on: not if the
        socket held another error, with which it stops, as recvmsg would have."""
        try:
            pending = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)  # and clears it
        except OSError:
            return True
        if pending in _ICMP_ERRORS:
            self._icmp_error(OSError(pending, os.strerror(pending)))
        elif pending:
            self.m.error = os.strerror(pending)
            self.stopped = True
            return False
        return True

    def read_errqueue(self) -> int:
        """Take every message on the error queue: transmit stamps move their request's t1 to
        the moment the kernel sent it; ICMP errors are counted. Returns how many ICMP errors.

        Read only where there is reason to: stamps were asked for, or recvmsg reported an ICMP
        error. What comes back without the MSG_ERRQUEUE flag is an ordinary datagram (chrony's
        simulator, clknetsim, answers MSG_ERRQUEUE with the next one once its queue is empty;
        Linux never does): it is judged as a reply, not lost."""
        icmp = 0
        for _ in range(4 * MAX_SAMPLES + 4):  # bounded: the queue holds one per send at most
            try:
                data, ancillary, flags, peer = self.sock.recvmsg(
                    1024, _ERRQUEUE_ANCILLARY, socket.MSG_ERRQUEUE)
            except OSError:  # empty (EAGAIN), or no error queue on this system
                break
            if not flags & socket.MSG_ERRQUEUE:
                self._arrived(data, ancillary, peer)
                continue
            entry = errqueue_entry(ancillary)
            if entry.icmp_errno is not None and entry.icmp_errno not in _ICMP_ERRORS:
                # Not "unreachable" (a parameter problem, a packet too big): the burst stops with
                # it, as it does when recvmsg reports one.
                self.m.error = os.strerror(entry.icmp_errno)
                self.stopped = True
            elif entry.icmp_errno is not None:
                icmp += 1
                self.icmp_seen = True
                self.m.reject(Reject.UNREACHABLE, os.strerror(entry.icmp_errno))
                # Its payload is the request it answers, nonce and all.
                self._answered_by_error(bytes(data[40:48]) if len(data) >= PACKET_LEN else b"")
            elif entry.key is not None and entry.stamp_ns is not None:
                self._stamp_sent(self.keys.pop(entry.key, None), entry.stamp_ns)
        return icmp

    def _stamp_sent(self, nonce: bytes | None, stamp_ns: int) -> None:
        """Move a request's t1 to the kernel's transmit stamp, if that stamp is credible: after
        our own reading (a stamp before it is another clock's, or the wall clock stepped back),
        no later than the monotonic time elapsed since, and with the wall clock not stepped
        forward since our reading (a step between our reading and the stamp would move t1 late
        by the step and shorten the round trip: the bound would miss the truth)."""
        if nonce is None or (sent := self.outstanding.get(nonce)) is None:
            return
        wall, mono = sent
        latency = stamp_ns - wall
        wall_now = time.time_ns()  # the wall clock first: a pause between the two readings
        mono_now = time.monotonic_ns()  # then makes the clocks' gap look smaller, never a step
        if _stepped_forward(wall, mono, wall_now, mono_now):
            return
        if 0 <= latency <= mono_now - mono:
            self.outstanding[nonce] = (wall + latency, mono + latency)

    def receive(self, deadline: float) -> None:
        """Read every datagram waiting and judge each; a flood cannot hold us past the
        deadline. Transmit stamps first, so a reply is judged with its request's."""
        if self.tx_stamps:
            self.read_errqueue()
        while time.monotonic() < deadline:
            try:
                data, ancillary, _flags, peer = self.sock.recvmsg(1024, _ANCILLARY)
            except BlockingIOError:
                # What woke us may be the error queue alone (a late transmit stamp): empty it,
                # or select() would keep saying "readable".
                if self.tx_stamps:
                    self.read_errqueue()
                return
            except OSError as exc:
                if exc.errno not in _ICMP_ERRORS:
                    self.m.error = exc.strerror or str(exc)
                    self.stopped = True
                    return
                self._icmp_error(exc)
                continue
            self._arrived(data, ancillary, peer)

    def _arrived(self, data: bytes, ancillary: list[tuple[int, int, bytes]],
                 peer: tuple[object, ...]) -> None:
        """A datagram just read: judged with its arrival time (the kernel's stamp, if any)."""
        # The wall clock first, then the monotonic one: a pause between the two readings then
        # makes the latency look shorter and t4 later, never earlier. (Read the other way round,
        # a pause shortened the round trip: with t1 the kernel's stamp too, a few microseconds
        # of loopback left no slack and a delay came out negative.) The send reads them in the
        # opposite order for the same reason, so the round trip can only err long, and the
        # bound stays a bound.
        wall4 = time.time_ns()
        read = time.monotonic_ns()
        self._judge(data, peer, read, _read_latency_ns(ancillary, wall4), wall4)

    def _icmp_error(self, exc: OSError) -> None:
        """recvmsg reported an ICMP error. Each one is a message on the error queue, counted
        when it is read there; only where the queue has none (no IP_RECVERR) is this one counted
        by itself."""
        if self.read_errqueue() == 0 and not self.icmp_seen:
            self.m.reject(Reject.UNREACHABLE, exc.strerror or str(exc))
            self._answered_by_error()

    def _answered_by_error(self, nonce: bytes = b"") -> None:
        """An ICMP error answers one of our requests: stop waiting for the one it quotes, else
        (its payload unknown) for the oldest."""
        if nonce in self.outstanding:
            del self.outstanding[nonce]
        elif self.outstanding:
            del self.outstanding[next(iter(self.outstanding))]

    def _judge(self, data: bytes, peer: tuple[object, ...], mono4: int, latency: int = 0,
               wall4: int | None = None) -> None:
        """One datagram read at monotonic mono4 (and wall4), which the kernel received
        `latency` before that."""
        m, target = self.m, self.m.target
        where = f"[{peer[0]}]:{peer[1]}" if ":" in str(peer[0]) else f"{peer[0]}:{peer[1]}"
        if not _same_endpoint(peer, target.sockaddr):
            m.reject(Reject.WRONG_SOURCE, f"reply from {where}, not the server's address and port")
            return
        if len(data) < PACKET_LEN:
            m.reject(Reject.TRUNCATED, f"{len(data)} bytes, an NTP header is {PACKET_LEN}")
            return
        sent = self.outstanding.get(bytes(data[24:32]))
        if sent is None:
            m.reject(Reject.WRONG_ORIGIN, "origin timestamp is no nonce we sent (or a duplicate)")
            return
        p = ntplib.NTPPacket()
        p.from_data(data)
        if p.mode != MODE_SERVER:
            m.reject(Reject.BAD_MODE, f"mode {p.mode}, a server reply is mode {MODE_SERVER}")
            return
        if not 1 <= p.version <= 4:
            m.reject(Reject.BAD_VERSION, f"version {p.version}")
            return
        del self.outstanding[bytes(data[24:32])]  # answered, whatever we make of it now
        if p.stratum == 0:
            code = ref_id_text(p.ref_id, 0)
            m.reject(Reject.KISS_OF_DEATH, f"kiss code {code}")
            m.kiss_code = code
            if code in KISS_STOP:
                self.stopped = True
            return
        if p.leap == 3:
            m.reject(Reject.UNSYNCHRONISED, "leap indicator 3: the server is not synchronised")
            return
        if p.stratum > 15:
            m.reject(Reject.BAD_STRATUM, f"stratum {p.stratum}: the server is not synchronised")
            return
        if data[32:40] == bytes(8) or data[40:48] == bytes(8):
            m.reject(Reject.ZERO_TIMESTAMP, "receive or transmit timestamp is zero")
            return
        if data[16:24] == bytes(8):
            m.reject(Reject.ZERO_REFERENCE, "reference timestamp is zero: never synchronised")
            return
        root_distance = p.root_delay / 2 + p.root_dispersion
        # `not <=`: a NaN limit (never from the CLI) refuses everything rather than nothing.
        if not root_distance <= self.max_distance:
            m.reject(Reject.ROOT_DISTANCE, f"root distance {root_distance:.6f} s (root delay / 2 "
                     f"+ root dispersion) exceeds {self.max_distance:.6f} s")
            return
        wall1, mono1 = sent
        # The arrival stamp is on the wall clock: if that stepped forward since the request
        # left, the latency would take the step in and t4 would err early; the reading's own
        # time, late but never early, stands instead.
        if wall4 is not None and not _stepped_forward(wall1, mono1, wall4, mono4):
            mono4 -= latency
        ref = ntp_to_unix_ns(data[16:24], wall1)
        t3 = ntp_to_unix_ns(data[40:48], wall1)
        if ref > t3:
            m.reject(Reject.REFERENCE_IN_FUTURE,
                     "reference timestamp is later than the transmit timestamp")
            return
        # t4 from the monotonic round trip, so a clock step mid-exchange cannot skew it.
        rtt = mono4 - mono1
        t1, t4 = wall1, wall1 + rtt
        t2 = ntp_to_unix_ns(data[32:40], t1)
        delay = rtt - (t3 - t2)
        if delay < 0:
            m.reject(Reject.NEGATIVE_DELAY, "the server's processing time exceeds the round trip")
            return
        m.samples.append(
            Sample(
                offset=((t2 - t1) + (t3 - t4)) / 2 / _NS,
                delay=delay / _NS,
                stratum=p.stratum,
                leap=p.leap,
                version=p.version,
                ref_id=ref_id_text(p.ref_id, p.stratum),
                root_delay=p.root_delay,
                root_dispersion=p.root_dispersion,
                taken=mono1 / _NS,
                precision=server_precision(p.precision) + _READING_RESOLUTION,
            )
        )


def measure(
    targets: list[Target],
    *,
    samples: int = DEFAULT_SAMPLES,
    timeout: float = 2.0,
    spacing: float = DEFAULT_SPACING,
    max_distance: float = DEFAULT_MAX_DISTANCE,
) -> list[Measurement]:
    """Run a burst against every target at once; return within `timeout` seconds whatever
    arrives (stray packets only cost their own handling, never extend the wait)."""
    deadline = time.monotonic() + timeout
    exchanges: list[_Exchange] = []
    try:
        for target in targets:
            exchanges.append(_Exchange(target, samples, spacing, max_distance))
        while True:
            now = time.monotonic()
            for ex in exchanges:
                due = ex.next_send()
                if due is not None and due <= now:
                    ex.send()
            now = time.monotonic()
            active = [ex for ex in exchanges if not ex.finished(now)]
            if not active or now >= deadline:
                break
            wake = deadline
            for ex in active:
                due = ex.next_send()
                cutoff = ex.straggler_cutoff()
                if due is not None:
                    wake = min(wake, due)
                elif cutoff is not None:
                    wake = min(wake, cutoff)
            readable, _, _ = select.select([ex.sock for ex in active], [], [], max(0.0, wake - now))
            for ex in active:
                if ex.sock in readable:
                    ex.receive(deadline)
    finally:
        for ex in exchanges:
            ex.sock.close()
    return [ex.m for ex in exchanges]


def unreachable(measurement: Measurement) -> bool:
    """The kernel refused to send: no route or no source address for that family."""
    return measurement.send_errno in (
        errno.ENETUNREACH,
        errno.EHOSTUNREACH,
        errno.EADDRNOTAVAIL,
    )
