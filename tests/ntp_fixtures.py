"""A small, configurable (and when asked, hostile) NTP server on loopback, for tests and the
benchmark. It runs in a thread; a behaviour function decides what each request gets back.

Timestamps are built with integer maths so the server's clock offset is exactly what the test
says it is: any error the client reports is the client's.
"""

from __future__ import annotations

import heapq
import random
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import ntplib

_NS = 1_000_000_000
_NTP_DELTA = int(ntplib.NTP.NTP_DELTA)


def require_isolated_netns() -> None:
    """Tests that send packets (even to loopback or an unroutable address) must run inside a
    fresh network namespace: `unshare -n -- bash -c 'ip link set lo up; python -m pytest ...'`.
    """
    import pytest

    links = sorted(name for _index, name in socket.if_nameindex())  # this namespace's links
    if links != ["lo"]:
        pytest.fail(
            f"not in a fresh network namespace (links: {links}); run the suite under unshare -n"
        )


def unix_ns_to_ntp(ns: int) -> bytes:
    secs, rem = divmod(ns, _NS)
    return (((secs + _NTP_DELTA) % (1 << 32)) << 32 | (rem << 32) // _NS).to_bytes(8, "big")


@dataclass
class ServerState:
    """What an honest server says about itself; a behaviour may tamper with any of it."""

    offset: float = 0.0  # the server's clock minus the real clock, seconds
    stratum: int = 2
    leap: int = 0
    version: int = 4
    mode: int = 4
    ref_id: bytes = b"\xa9\xfe\xa9\x7b"
    root_delay: float = 0.000_125
    root_dispersion: float = 0.000_250
    ref_age: float | None = 8.0  # seconds since the server last synchronised; None: never (0)


def reply_header(state: ServerState) -> bytes:
    """Bytes 0..23 of a reply, built with ntplib's own packer."""
    p = ntplib.NTPPacket(version=state.version, mode=state.mode)
    p.leap = state.leap
    p.stratum = state.stratum
    p.poll = 4
    p.precision = -20
    p.root_delay = state.root_delay
    p.root_dispersion = state.root_dispersion
    p.ref_id = int.from_bytes(state.ref_id, "big")
    if state.ref_age is None:
        return bytes(p.to_data()[:16]) + bytes(8)
    return bytes(p.to_data()[:16]) + unix_ns_to_ntp(time.time_ns() - round(state.ref_age * _NS))


def server_now(state: ServerState) -> bytes:
    return unix_ns_to_ntp(time.time_ns() + round(state.offset * _NS))


@dataclass
class Reply:
    data: bytes
    from_other_port: bool = False


# A behaviour gets the request and the server's receive timestamp (taken on arrival, after any
# simulated request-path delay) and returns what to send; transmit timestamps are stamped at
# the moment of sending by `Responder` when a reply's bytes 40..47 are the placeholder.
TX_PLACEHOLDER = b"\xff" * 8
Behaviour = Callable[[bytes, bytes, ServerState], list[Reply]]


def honest(request: bytes, rx: bytes, state: ServerState) -> list[Reply]:
    return [Reply(reply_header(state) + request[40:48] + rx + TX_PLACEHOLDER)]


class Responder:
    """An NTP server on loopback, port chosen by the kernel unless given."""

    def __init__(
        self,
        behaviour: Behaviour = honest,
        state: ServerState | None = None,
        *,
        host: str = "::1",
        port: int = 0,
        request_delay: Callable[[], float] | None = None,
        spray_for: float = 0.0,
    ) -> None:
        self.behaviour = behaviour
        self.state = state or ServerState()
        self.request_delay = request_delay
        self.spray_for = spray_for  # keep re-sending each answer for this long (a flood)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.other = socket.socket(family, socket.SOCK_DGRAM)  # for replies from another port
        self.other.bind((host, 0))
        self.host = host
        self.port: int = self.sock.getsockname()[1]
        self.requests: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> Responder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()
        self.other.close()

    def _serve(self) -> None:
        # Requests wait out their own path delay independently (a heap of due times), as
        # packets on a network path do; the server answers each when it "arrives".
        due: list[tuple[float, int, bytes, tuple[object, ...]]] = []
        count = 0
        while not self._stop.is_set():
            wait = 0.05 if not due else max(0.0, min(0.05, due[0][0] - time.monotonic()))
            readable, _, _ = select.select([self.sock], [], [], wait)
            if readable:
                request, peer = self.sock.recvfrom(1024)
                delay = self.request_delay() if self.request_delay is not None else 0.0
                count += 1
                heapq.heappush(due, (time.monotonic() + delay, count, request, peer))
            while due and due[0][0] <= time.monotonic():
                _, _, request, peer = heapq.heappop(due)
                self._answer(request, peer)

    def _answer(self, request: bytes, peer: tuple[object, ...]) -> None:
        rx = server_now(self.state)
        self.requests.append(request)
        replies = self.behaviour(request, rx, self.state)
        until = time.monotonic() + self.spray_for
        while True:
            for reply in replies:
                data = reply.data
                sock = self.other if reply.from_other_port else self.sock
                if data[40:48] == TX_PLACEHOLDER:
                    data = data[:40] + server_now(self.state) + data[48:]
                sock.sendto(data, peer)
            if time.monotonic() >= until or self._stop.is_set():
                break
            time.sleep(0.002)


def exponential_delay(mean: float, seed: int | None = None) -> Callable[[], float]:
    rng = random.Random(seed)
    return lambda: rng.expovariate(1 / mean)


# ---- hostile servers: each function answers a request with one bad reply --------------------


def _tamper(**changes: object) -> Behaviour:
    def behaviour(request: bytes, rx: bytes, state: ServerState) -> list[Reply]:
        bad = ServerState(**{**state.__dict__, **changes})
        return [Reply(reply_header(bad) + request[40:48] + rx + TX_PLACEHOLDER)]

    return behaviour


def kiss(code: str) -> Behaviour:
    return _tamper(stratum=0, leap=3, ref_id=code.encode())


def wrong_origin(request: bytes, rx: bytes, state: ServerState) -> list[Reply]:
    other = bytes(b ^ 0x5A for b in request[40:48])
    return [Reply(reply_header(state) + other + rx + TX_PLACEHOLDER)]


def zero_transmit(request: bytes, rx: bytes, state: ServerState) -> list[Reply]:
    return [Reply(reply_header(state) + request[40:48] + rx + bytes(8))]


def zero_receive(request: bytes, rx: bytes, state: ServerState) -> list[Reply]:
    return [Reply(reply_header(state) + request[40:48] + bytes(8) + TX_PLACEHOLDER)]


def truncated(request: bytes, rx: bytes, state: ServerState) -> list[Reply]:
    return [Reply((reply_header(state) + request[40:48] + rx)[:44])]


def from_other_port(request: bytes, rx: bytes, state: ServerState) -> list[Reply]:
    return [Reply(reply_header(state) + request[40:48] + rx + TX_PLACEHOLDER, True)]


def silent(request: bytes, rx: bytes, state: ServerState) -> list[Reply]:
    return []


def stray_then_honest(request: bytes, rx: bytes, state: ServerState) -> list[Reply]:
    """Garbage first (the client must keep waiting, not give up), then the real answer."""
    return [*wrong_origin(request, rx, state), *truncated(request, rx, state),
            *honest(request, rx, state)]


def flood(request: bytes, rx: bytes, state: ServerState) -> list[Reply]:
    """No answer, only stray packets (with Responder(spray_for=...), a stream of them)."""
    return wrong_origin(request, rx, state) * 20


HOSTILE: dict[str, tuple[Behaviour, str]] = {
    "wrong origin": (wrong_origin, "wrong_origin"),
    "mode 3": (_tamper(mode=3), "bad_mode"),
    "version 0": (_tamper(version=0), "bad_version"),
    "version 5": (_tamper(version=5), "bad_version"),
    "leap 3": (_tamper(leap=3), "unsynchronised"),
    "stratum 0 RATE": (kiss("RATE"), "kiss_of_death"),
    "stratum 0 DENY": (kiss("DENY"), "kiss_of_death"),
    "stratum 0 RSTR": (kiss("RSTR"), "kiss_of_death"),
    "stratum 16": (_tamper(stratum=16), "bad_stratum"),
    "zero transmit timestamp": (zero_transmit, "zero_timestamp"),
    "zero receive timestamp": (zero_receive, "zero_timestamp"),
    "truncated packet": (truncated, "truncated"),
    "reply from another port": (from_other_port, "wrong_source"),
    # chrony's maxdistance (3 s) on root delay / 2 + root dispersion, as a 16.16 field allows.
    "root delay and dispersion 65535 s": (_tamper(root_delay=65535.0, root_dispersion=65535.0),
                                          "root_distance_too_large"),
    "root dispersion 3.01 s": (_tamper(root_dispersion=3.01), "root_distance_too_large"),
    "root delay 6.1 s": (_tamper(root_delay=6.1), "root_distance_too_large"),
    "zero reference timestamp": (_tamper(ref_age=None), "zero_reference"),
    "reference timestamp in the future": (_tamper(ref_age=-5.0), "reference_in_future"),
}
