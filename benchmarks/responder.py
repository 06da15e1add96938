"""An NTP server whose clock is the host's plus a configured offset, behind an emulated path.

Run by `benchmarks.ground_truth` in a network namespace of its own, at [fd00:ec2::123]:123
(an address that exists only there). Both namespaces read one kernel clock, so the true offset
of the client's clock against this server is exactly the configured offset.

The path: this kernel has no `tc netem` (CONFIG_NET_SCH_NETEM is not set), so the one-way delays
are applied here, at the server's edge, where a delay on the wire is indistinguishable from one
in the server's own queue:
  - a request's receive timestamp t2 is its kernel arrival stamp (SO_TIMESTAMPNS) plus the drawn
    up-path delay;
  - its reply is sent no earlier than t2 plus the drawn down-path delay, and its transmit
    timestamp t3 is the server clock's reading that down-path delay before the moment of sending
    (the reply has been "on the path" since).
Every timestamp the server writes is a true reading of its clock at the moment it names (the
clock is the kernel's plus a constant), so no scheduling error of ours can move the truth: a late
send is more down-path delay, which every client sees alike.

Start-up: it says `netns` (its namespace exists), waits for the harness's `addressed` (the
veth end and the address are in place), binds and says `ready`.
Control, then, one JSON object a line on stdin, each answered `ok` on stdout:
    {"offset_ns": int, "up": [base_s, jitter_kind, jitter_s, loss], "down": [...], "seed": int}
or {"report": true}, answered by one JSON line: {"excess_ns": [...]}, every reply's send latency
less the credit its t3 took for it since the last report (see SendLatency), then forgotten.
jitter_kind: "none", "normal" (sigma jitter_s) or "exp" (mean jitter_s, one-sided, as queues
are). A direction's delay is max(0, base + jitter); a lost packet is dropped silently.
"""

from __future__ import annotations

import heapq
import json
import os
import random
import select
import socket
import struct
import sys
import time
from dataclasses import dataclass, field

import ntplib

ADDRESS = "fd00:ec2::123"
PORT = 123
_NS = 1_000_000_000
_NTP_DELTA = int(ntplib.NTP.NTP_DELTA)
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("@qq")
_SO_TIMESTAMPING = getattr(socket, "SO_TIMESTAMPING", 37)
# SOF_TIMESTAMPING_TX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_OPT_TSONLY
_TX_STAMPS = (1 << 1) | (1 << 4) | (1 << 11)
_SPIN_NS = 300_000  # the last stretch of a hold is spun, not slept: select() overshoots by ~0.1 ms


def to_ntp(ns: int) -> bytes:
    secs, rem = divmod(ns, _NS)
    return (((secs + _NTP_DELTA) % (1 << 32)) << 32 | (rem << 32) // _NS).to_bytes(8, "big")


@dataclass(frozen=True)
class Direction:
    base: float = 0.0  # seconds
    jitter_kind: str = "none"
    jitter: float = 0.0  # seconds
    loss: float = 0.0  # probability

    def draw(self, rng: random.Random) -> float | None:
        """This packet's added delay in seconds, or None if the path loses it."""
        if self.loss and rng.random() < self.loss:
            return None
        extra = 0.0
        if self.jitter_kind == "normal":
            extra = rng.gauss(0.0, self.jitter)
        elif self.jitter_kind == "exp" and self.jitter > 0:
            extra = rng.expovariate(1.0 / self.jitter)
        return max(0.0, self.base + extra)


@dataclass
class Config:
    offset_ns: int = 0
    up: Direction = field(default_factory=Direction)
    down: Direction = field(default_factory=Direction)
    rng: random.Random = field(default_factory=random.Random)

    @classmethod
    def parse(cls, line: str) -> Config:
        raw = json.loads(line)
        return cls(int(raw["offset_ns"]), Direction(*raw["up"]), Direction(*raw["down"]),
                   random.Random(int(raw["seed"])))


def reply(request: bytes, t2: int, t3: int) -> bytes:
    """A stratum-1 reply with root delay and dispersion 0: a client's bound then holds only its
    own path term, the strictest test of it."""
    version = (request[0] >> 3) & 7 or 4
    head = bytes([(version << 3) | 4, 1, request[2], 0xEC]) + bytes(8) + b"GPS\0"
    return head + to_ntp(t2 - 8 * _NS) + request[40:48] + to_ntp(t2) + to_ntp(t3)


def _kernel_stamp(ancillary: list[tuple[int, int, bytes]]) -> int:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = _TIMESPEC.unpack_from(data)
            return int(sec * _NS + nsec)
    return time.time_ns()


class SendLatency:
    """How long our sendto takes to put a reply on the wire: the kernel's transmit stamp less
    our reading just before the call. Its recent median moves t3 to the moment the reply
    typically leaves, so a client that stamps its own packets in the kernel (chronyd, check) is
    not charged with our Python's send path.

    What is left, each send's latency less the credit taken (`excess`), is a down-leg delay the
    path model did not draw; every client sees it alike, and the harness prints it. The median,
    not the minimum: crediting the minimum left a one-sided excess (median +5 us here) that made
    the "symmetric" hop asymmetric and put -2.5 us of bias on every client. A send can be
    quicker than the median, so the credit is never more than the drawn down delay (see serve):
    t3 then names a moment at or before our reading, before the reply left."""

    def __init__(self) -> None:
        self.recent: list[int] = []
        self.credit = 0  # what the last reply's t3 took
        self.excess: list[int] = []

    @property
    def typical(self) -> int:
        return sorted(self.recent)[(len(self.recent) - 1) // 2] if self.recent else 0

    def sent(self, sock: socket.socket, before: int) -> None:
        try:
            _data, anc, _flags, _addr = sock.recvmsg(64, 256, socket.MSG_ERRQUEUE)
        except OSError:
            return
        for level, kind, raw in anc:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPING and len(raw) >= 16:
                sec, nsec = _TIMESPEC.unpack_from(raw)
                latency = sec * _NS + nsec - before
                if 0 < latency < 1_000_000:  # a stamp from another send, or a stepped clock
                    self.recent = [*self.recent[-63:], latency]
                    if len(self.excess) < 100_000:
                        self.excess.append(latency - self.credit)


def bind() -> socket.socket:
    """The server socket, on the address the harness has given this namespace (it said so)."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.bind((ADDRESS, PORT))
    sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPING, _TX_STAMPS)
    sock.setblocking(False)
    return sock


def say(line: str) -> None:
    """One line to the harness, sent at once."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def read_line(fd: int) -> bytes:
    """One line from fd, a byte at a time: nothing past it is taken from what serve() reads."""
    line = b""
    while not line.endswith(b"\n") and len(line) < 64:  # the harness's one word, nothing longer
        byte = os.read(fd, 1)
        if not byte:
            break
        line += byte
    return line.strip()


def serve(sock: socket.socket) -> None:
    config = Config()
    # (due ns on the wall clock, sequence, reply less its transmit timestamp, peer, down delay ns)
    events: list[tuple[int, int, bytes, tuple[object, ...], int]] = []
    seq = 0
    latency = SendLatency()
    stdin = sys.stdin.fileno()
    pending = b""
    while True:
        now = time.time_ns()
        wait = None if not events else max(0, events[0][0] - now - _SPIN_NS) / _NS
        readable, _, _ = select.select([sock, stdin], [], [], wait)
        if stdin in readable:
            chunk = os.read(stdin, 65536)
            if not chunk:
                return
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                if json.loads(line).get("report"):
                    say(json.dumps({"excess_ns": latency.excess}))
                    latency.excess = []
                    continue
                config = Config.parse(line.decode())
                events.clear()  # a new trial: nothing of the last one is still on the path
                say("ok")
        if sock in readable:
            while True:
                try:
                    data, anc, _flags, peer = sock.recvmsg(1024, 256)
                except BlockingIOError:
                    break
                arrived = _kernel_stamp(anc)
                up, down = config.up.draw(config.rng), config.down.draw(config.rng)
                if len(data) < 48 or (data[0] & 7) != 3 or up is None or down is None:
                    continue
                t2 = arrived + int(up * _NS)
                seq += 1
                heapq.heappush(events, (t2 + int(down * _NS), seq,
                                        reply(data, t2 + config.offset_ns, 0)[:40], peer,
                                        int(down * _NS)))
        while events and events[0][0] - time.time_ns() <= _SPIN_NS:
            # Spun on the monotonic clock: at real-time priority, a wall clock stepped back
            # must not turn a few hundred microseconds into seconds.
            spin_until = time.monotonic_ns() + max(0, events[0][0] - time.time_ns())
            while time.monotonic_ns() < spin_until:
                pass
            _due, _seq, head, peer, down_ns = heapq.heappop(events)
            # The reply leaves the server about latency.typical from now; its transmit timestamp
            # is the server clock's true reading down_ns before that (it has been "on the path"
            # since), never before t2: the send was due at t2 + down. Stamping here, just before
            # sendto, keeps our own processing out of the down path. The credit for the send
            # latency is at most down_ns: this send may be quicker than the recent median, and t3
            # must never name a moment after the reply really left (a negative leg would break
            # every client's bound, not by their fault).
            before = time.time_ns()
            credit = latency.credit = min(latency.typical, down_ns)
            sock.sendto(head + to_ntp(before + credit - down_ns + config.offset_ns), peer)
            latency.sent(sock, before)


def main() -> None:
    # A handshake, not a timer: unshare made this network namespace before it exec'd us, so
    # "netns" tells the harness it may move its veth end in; it answers "addressed" once the
    # server's address is in place here, and only then is there anything to bind.
    say("netns")
    answer = read_line(sys.stdin.fileno())
    if answer != b"addressed":
        sys.exit(f"responder: the harness said {answer!r}, not b'addressed'")
    sock = bind()
    say("ready")
    serve(sock)


if __name__ == "__main__":
    main()
