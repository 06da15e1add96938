"""NTP packets for the sandbox: a silent sink, a kiss-of-death responder, and a one-shot query.

`python -m sandbox.ntp serve --mode silent|kod --bind ADDR ...` runs in the EC2 namespace in
place of the Time Sync Service's chronyd (Debian 12's chrony 4.3 cannot send a RATE kiss).
`python -m sandbox.ntp query ADDR --count N` runs on the instance and prints one JSON object
per exchange, so tests can see what a client sees: a reply, a time-out, a kiss, or an errno.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import select
import socket
import struct
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 to 1970-01-01
PACKET = struct.Struct("!BBbbII4sQQQQ")  # 48 bytes, RFC 5905 header without extensions
MODE_CLIENT = 3
MODE_SERVER = 4
LEAP_UNSYNCHRONISED = 3


def to_ntp(seconds: float) -> int:
    return int((seconds + NTP_EPOCH_OFFSET) * 2**32) & 0xFFFFFFFFFFFFFFFF


def from_ntp(value: int) -> float:
    return value / 2**32 - NTP_EPOCH_OFFSET


@dataclass(frozen=True)
class Packet:
    leap: int
    version: int
    mode: int
    stratum: int
    poll: int
    precision: int
    root_delay: int
    root_dispersion: int
    refid: bytes
    reference: int
    origin: int
    receive: int
    transmit: int

    def pack(self) -> bytes:
        first = (self.leap << 6) | (self.version << 3) | self.mode
        return PACKET.pack(
            first, self.stratum, self.poll, self.precision, self.root_delay,
            self.root_dispersion, self.refid, self.reference, self.origin, self.receive,
            self.transmit,
        )

    @classmethod
    def unpack(cls, data: bytes) -> Packet:
        if len(data) < PACKET.size:
            raise ValueError(f"short NTP packet ({len(data)} bytes)")
        first, stratum, poll, prec, rdelay, rdisp, refid, ref, org, rec, xmt = PACKET.unpack_from(data)
        return cls(first >> 6, (first >> 3) & 7, first & 7, stratum, poll, prec, rdelay, rdisp,
                   refid, ref, org, rec, xmt)


def client_packet(transmit: int) -> Packet:
    return Packet(0, 4, MODE_CLIENT, 0, 0, 0, 0, 0, b"\0\0\0\0", 0, 0, 0, transmit)


def kiss_reply(request: Packet, code: bytes, received: float) -> Packet:
    """A kiss-of-death: stratum 0, the kiss code in refid, leap 3, origin = the client's transmit."""
    now = to_ntp(time.time())
    return Packet(LEAP_UNSYNCHRONISED, request.version or 4, MODE_SERVER, 0, request.poll, -20,
                  0, 0, code, 0, request.transmit, to_ntp(received), now)


# ---------------------------------------------------------------- serving

def _serve_socket(sock: socket.socket, mode: str, code: bytes, log: list[str]) -> None:
    while True:
        data, peer = sock.recvfrom(1024)
        received = time.time()
        try:
            request = Packet.unpack(data)
        except ValueError:
            continue
        if request.mode != MODE_CLIENT:
            continue
        log.append(peer[0])
        if mode == "kod":
            sock.sendto(kiss_reply(request, code, received).pack(), peer)
        # mode "silent": read and drop, like a service that never answers (no ICMP either)


def serve(binds: Sequence[str], mode: str, code: bytes, ready_file: str | None) -> None:
    threads = []
    log: list[str] = []
    for address in binds:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.bind((address, 123))
        threads.append(threading.Thread(target=_serve_socket, args=(sock, mode, code, log), daemon=True))
    for thread in threads:
        thread.start()
    if ready_file:
        with open(ready_file, "w") as ready:
            ready.write(str(os.getpid()))
    for thread in threads:
        thread.join()


# ---------------------------------------------------------------- querying

@dataclass
class Exchange:
    address: str
    outcome: str  # "reply", "kiss", "timeout" or "error"
    errno: str | None = None
    stratum: int | None = None
    leap: int | None = None
    refid: str | None = None
    offset: float | None = None
    delay: float | None = None
    elapsed: float = 0.0


def query(address: str, timeout: float) -> Exchange:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    started = time.monotonic()
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        transmit = int.from_bytes(os.urandom(8), "big")  # random, as chrony does: an unguessable origin
        try:
            sock.connect((address, 123))
            t1 = time.time()
            sock.send(client_packet(transmit).pack())
            deadline = started + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([sock], [], [], left)[0]:
                    return Exchange(address, "timeout", elapsed=time.monotonic() - started)
                data = sock.recv(1024)
                t4 = time.time()
                reply = Packet.unpack(data)
                if reply.origin == transmit and reply.mode == MODE_SERVER:
                    break
        except OSError as exc:
            name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
            return Exchange(address, "error", errno=name, elapsed=time.monotonic() - started)
    elapsed = time.monotonic() - started
    if reply.stratum == 0:
        code = reply.refid.decode("ascii", "replace").rstrip("\0")
        return Exchange(address, "kiss", stratum=0, leap=reply.leap, refid=code, elapsed=elapsed)
    t2, t3 = from_ntp(reply.receive), from_ntp(reply.transmit)
    return Exchange(
        address, "reply", stratum=reply.stratum, leap=reply.leap, refid=reply.refid.hex(),
        offset=((t2 - t1) + (t3 - t4)) / 2, delay=(t4 - t1) - (t3 - t2), elapsed=elapsed,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.ntp")
    sub = parser.add_subparsers(dest="command", required=True)
    srv = sub.add_parser("serve")
    srv.add_argument("--mode", choices=["silent", "kod"], required=True)
    srv.add_argument("--bind", action="append", required=True)
    srv.add_argument("--code", default="RATE")
    srv.add_argument("--ready-file")
    qry = sub.add_parser("query")
    qry.add_argument("address")
    qry.add_argument("--count", type=int, default=1)
    qry.add_argument("--interval", type=float, default=0.2)
    qry.add_argument("--timeout", type=float, default=1.0)
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.bind, args.mode, args.code.encode("ascii")[:4].ljust(4, b"\0"), args.ready_file)
        return 0
    for n in range(args.count):
        if n:
            time.sleep(args.interval)
        print(json.dumps(asdict(query(args.address, args.timeout))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
