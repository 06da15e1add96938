"""A wall-clock step forward between our reading before sendto and the kernel's transmit stamp
must not get into t1 (it would shorten the round trip by the step, and the bound would hold neither
the old clock's offset nor the new one's); and an error-queue message must fit its control buffer
(found in review)."""

from __future__ import annotations

import socket
import time
import types

import pytest

from chronyctl6.measure import exchange

US = 1_000


def _ntp(ns: int) -> bytes:
    secs, rest = divmod(ns, 1_000_000_000)
    return ((secs + exchange._NTP_DELTA) << 32 | (rest << 32) // 1_000_000_000).to_bytes(8, "big")


def test_a_step_forward_before_the_transmit_stamp_leaves_no_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    target = exchange.Target("::1", socket.AF_INET6, ("::1", 123, 0, 0))
    ex = exchange._Exchange(target, 1, 0.01)
    try:
        nonce = b"\x01" * 8
        mono0 = time.monotonic_ns() - 100 * US  # our readings before sendto, 100 us ago
        wall0 = time.time_ns() - 100 * US
        ex.outstanding[nonce] = (wall0, mono0)
        step = 60 * US  # the wall clock steps forward between our reading and the kernel's stamp
        clocks = types.SimpleNamespace(time_ns=lambda: time.time_ns() + step, monotonic_ns=time.monotonic_ns,
                                       monotonic=time.monotonic)
        monkeypatch.setattr(exchange, "time", clocks)  # from here on the wall clock reads `step` ahead
        ex._stamp_sent(nonce, wall0 + 20 * US + step)  # sent 20 us after our reading
        # Taken today: its 80 us are no more than the 100 us elapsed since our reading.
        # A server with the old clock's time (offset 0) receives at +50 us, answers at +60 us;
        # the reply arrives at +90 us (monotonic).
        reply = (bytes([0x24, 2, 4, 0xE7]) + bytes(8) + b"GPS\0" + _ntp(wall0 - 10**9) + nonce
                 + _ntp(wall0 + 50 * US) + _ntp(wall0 + 60 * US))
        ex._judge(reply, target.sockaddr, mono0 + 90 * US)
    finally:
        ex.sock.close()
    (s,) = ex.m.samples
    before, after = 0.0, -step / 1e9  # the true offset against the clock before and after the step
    assert abs(s.offset - before) <= s.error_bound or abs(s.offset - after) <= s.error_bound, (
        f"offset {s.offset * 1e6:+.1f} us +- {s.error_bound * 1e6:.1f} us holds neither "
        f"{before * 1e6:+.1f} nor {after * 1e6:+.1f} us")


def test_an_error_queue_message_fits_its_control_buffer() -> None:
    """Every error-queue message also carries SCM_TIMESTAMPNS (SO_TIMESTAMPNS is on), which
    _ERRQUEUE_ANCILLARY does not count: the IPV6_RECVERR cmsg, last, comes back cut (MSG_CTRUNC),
    its sock_extended_err readable today only because it is the cmsg's first 16 bytes."""
    target = exchange.Target("::1", socket.AF_INET6, ("::1", 9, 0, 0))  # a closed port
    ex = exchange._Exchange(target, 1, 0.01)
    try:
        ex.sock.sendto(exchange.request_packet(b"\x02" * 8), target.sockaddr)
        time.sleep(0.05)  # the transmit stamp and the ICMP error are queued by now
        truncated = []
        for _ in range(2):
            _data, _anc, flags, _peer = ex.sock.recvmsg(1024, exchange._ERRQUEUE_ANCILLARY,
                                                        socket.MSG_ERRQUEUE)
            truncated.append(bool(flags & socket.MSG_CTRUNC))
    finally:
        ex.sock.close()
    assert truncated == [False, False]


def test_a_step_forward_before_a_reply_is_read_does_not_take_its_arrival_stamp_early() -> None:
    """The arrival stamp's latency is measured on the wall clock too: a step forward between the
    request and our reading of the reply must not be taken into it (t4 would err early)."""
    target = exchange.Target("::1", socket.AF_INET6, ("::1", 123, 0, 0))
    ex = exchange._Exchange(target, 1, 0.01)
    try:
        nonce = b"\x03" * 8
        mono0 = time.monotonic_ns() - 1000 * US
        wall0 = time.time_ns() - 1000 * US
        ex.outstanding[nonce] = (wall0, mono0)
        step = 60 * US
        # The server (the old clock's time) receives at +40 us, answers at +45 us; the kernel
        # stamps the reply's arrival at +90 us; we read it at +190 us, after the step.
        reply = (bytes([0x24, 2, 4, 0xE7]) + bytes(8) + b"GPS\0" + _ntp(wall0 - 10**9) + nonce
                 + _ntp(wall0 + 40 * US) + _ntp(wall0 + 45 * US))
        wall4 = wall0 + 190 * US + step
        ex._judge(reply, target.sockaddr, mono0 + 190 * US, wall4 - (wall0 + 90 * US), wall4)
    finally:
        ex.sock.close()
    (s,) = ex.m.samples
    assert abs(s.offset) <= s.error_bound or abs(s.offset + step / 1e9) <= s.error_bound, s
