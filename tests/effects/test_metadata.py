"""The IMDS client against a real HTTP server on loopback: tokens, IMDSv1 only when asked and
allowed, failures told apart (time-out, no answer, refusal, no route), the token never shown."""

from __future__ import annotations

import errno
import logging
import pickle
import re
import secrets
import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from chronyctl6.effects import metadata
from chronyctl6.effects.metadata import Client, Failure, ImdsError, Token
from tests.helpers import wait_for


@dataclass
class Behaviour:
    tokens_required: bool = True
    put: str = "ok"  # ok | hang (the hop-limit symptom) | 403
    hang_all: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
    issued: list[str] = field(default_factory=list)
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path, token header


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    b: Behaviour

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _hang(self) -> None:
        time.sleep(3)  # longer than any client time-out in these tests

    def do_PUT(self) -> None:
        self.b.seen.append(("PUT", self.path, None))
        if self.b.hang_all or self.b.put == "hang":
            self._hang()
            return
        if self.b.put == "403":
            self._send(403, "Forbidden")
            return
        if self.headers.get(metadata.TTL_HEADER) is None:
            self._send(400, "Bad Request")
            return
        token = secrets.token_urlsafe(42)
        self.b.issued.append(token)
        self._send(200, token)

    def do_GET(self) -> None:
        token = self.headers.get(metadata.TOKEN_HEADER)
        self.b.seen.append(("GET", self.path, token))
        if self.b.hang_all:
            self._hang()
            return
        if (token is None and self.b.tokens_required) or (token is not None and token not in self.b.issued):
            self._send(401, "Unauthorized")
            return
        body = self.b.metadata.get(self.path.removeprefix("/latest/"))
        self._send(200, body) if body is not None else self._send(404, "Not Found")


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


@pytest.fixture(params=["127.0.0.1", "::1"])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, int, Behaviour]]:
    b = Behaviour(metadata={
        "meta-data/instance-id": "i-0123456789abcdef0", "meta-data/instance-type": "m7i.large",
        "meta-data/system": "nitro", "meta-data/mac": "0e:11:22:33:44:55",
        "meta-data/placement/region": "eu-west-1",
        "meta-data/network/interfaces/macs/0e:11:22:33:44:55/interface-id": "eni-0aa",
        "meta-data/network/interfaces/macs/0e:11:22:33:44:55/subnet-id": "subnet-0bb",
        "meta-data/network/interfaces/macs/0e:11:22:33:44:55/vpc-id": "vpc-0cc",
        "meta-data/network/interfaces/macs/0e:11:22:33:44:55/ipv6s": "2001:db8::10\n2001:db8::11\n",
    })
    host = request.param
    cls = _Server6 if ":" in host else _Server
    handler = type("H", (_Handler,), {"b": b})
    srv = cls((host, 0), handler)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield host, srv.server_address[1], b
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


def test_imdsv2_token_then_gets_carry_it(server: tuple[str, int, Behaviour]) -> None:
    host, port, b = server
    client = Client(host, port=port).open()
    assert client.version == "v2"
    assert client.get("meta-data/instance-id") == "i-0123456789abcdef0"
    assert client.get("meta-data/nothing-here") is None  # 404
    [token] = b.issued
    assert [s for s in b.seen if s[0] == "GET"] == [
        ("GET", "/latest/meta-data/instance-id", token), ("GET", "/latest/meta-data/nothing-here", token)]


def test_read_metadata_and_reach(server: tuple[str, int, Behaviour]) -> None:
    host, port, _ = server
    result = metadata.reach(host, port=port)
    assert result.ok and result.failure is None
    md = result.metadata
    assert md is not None
    assert (md.instance_id, md.system, md.interface_id, md.subnet_id, md.vpc_id, md.region) == (
        "i-0123456789abcdef0", "nitro", "eni-0aa", "subnet-0bb", "vpc-0cc", "eu-west-1")
    assert md.ipv6s == ("2001:db8::10", "2001:db8::11")
    assert md.subnet_ipv6_cidrs == () and md.version == "v2"


def test_a_lost_token_answer_is_no_response_with_the_hop_limit_hint_and_no_imdsv1(
        server: tuple[str, int, Behaviour]) -> None:
    host, port, b = server
    b.put = "hang"
    started = time.monotonic()
    with pytest.raises(ImdsError) as err:
        Client(host, port=port, timeout=0.3).open()
    assert time.monotonic() - started < 1.5
    assert err.value.kind is Failure.NO_RESPONSE
    assert err.value.hint is not None and "--http-put-response-hop-limit 2" in err.value.hint
    assert [s[0] for s in b.seen] == ["PUT"]  # IMDSv1 was not asked for, so not tried


def test_imdsv1_when_asked_and_the_instance_refuses_it(server: tuple[str, int, Behaviour]) -> None:
    host, port, b = server
    b.put = "hang"
    result = metadata.reach(host, port=port, allow_v1=True, timeout=0.3)
    assert not result.ok and result.failure is Failure.V1_REFUSED
    assert "HttpTokens=required" in result.detail and result.v1_status == 401
    assert [(m, t) for m, _, t in b.seen] == [("PUT", None), ("GET", None)]


def test_imdsv1_when_asked_and_allowed(server: tuple[str, int, Behaviour]) -> None:
    host, port, b = server
    b.put, b.tokens_required = "403", False
    client = Client(host, port=port, allow_v1=True).open()
    assert client.version == "v1"
    assert client.get("meta-data/system") == "nitro"
    assert all(token is None for _, _, token in b.seen)


def test_a_refused_token_request_without_imdsv1_says_how_to_allow_it(server: tuple[str, int, Behaviour]) -> None:
    host, port, b = server
    b.put = "403"
    with pytest.raises(ImdsError) as err:
        Client(host, port=port).open()
    assert (err.value.kind, err.value.http_status) == (Failure.HTTP, 403)
    assert err.value.hint is not None and "--imdsv1" in err.value.hint


def test_probe_v1_reports_what_a_tokenless_request_gets(server: tuple[str, int, Behaviour]) -> None:
    host, port, b = server
    assert metadata.reach(host, port=port, allow_v1=True).v1_status == 401
    b.tokens_required = False
    assert metadata.reach(host, port=port, allow_v1=True).v1_status == 200
    assert metadata.reach(host, port=port).v1_status is None  # not asked: not probed


def test_the_whole_client_is_bounded_by_its_total(server: tuple[str, int, Behaviour]) -> None:
    host, port, b = server
    b.put, b.tokens_required = "403", False
    b.hang_all = True
    started = time.monotonic()
    result = metadata.reach(host, port=port, timeout=4.0, total=4.5, allow_v1=True)
    # The token request waits out its 4 s, the IMDSv1 fallback is cut at 4.5 s in all; unbounded it
    # would wait 4 s too (8 s). The margins both ways (2 s, 1.5 s) are for a loaded machine.
    assert time.monotonic() - started < 6.5
    assert result.failure is Failure.NO_RESPONSE


def test_the_token_is_never_shown(server: tuple[str, int, Behaviour], caplog: pytest.LogCaptureFixture) -> None:
    host, port, b = server
    caplog.set_level(logging.DEBUG, logger="chronyctl6")
    client = Client(host, port=port).open()
    client.get("meta-data/instance-id")
    b.hang_all = True
    with pytest.raises(ImdsError) as err:
        client.timeout = 0.2
        client.get("meta-data/system")
    [token] = b.issued
    shown = [repr(client), str(client), repr(client._token), str(client._token), str(err.value),
             repr(err.value), str(err.value.hint), caplog.text]
    assert caplog.text.count("token received") == 1  # the log does speak of it...
    for text in shown:
        assert token not in text  # ...but never shows it
    assert repr(client._token) == "Token(<redacted>)"
    with pytest.raises(TypeError):
        pickle.dumps(client._token)


def test_refused_timeout_and_unreachable_are_told_apart() -> None:
    # A closed port on loopback: a TCP reset.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with pytest.raises(ImdsError) as err:
        Client("127.0.0.1", port=closed).open()
    assert err.value.kind is Failure.REFUSED

    # A listener whose accept queue is full drops SYNs silently: a connect time-out, as from an
    # endpoint that is switched off.
    with socket.socket() as full:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        port = full.getsockname()[1]
        fillers = []
        try:
            for _ in range(4):
                f = socket.socket()
                f.setblocking(False)
                f.connect_ex(("127.0.0.1", port))
                fillers.append(f)
            # Full once one handshake is done (the kernel queues backlog + 1): waited on, not slept.
            wait_for(lambda: select.select([], fillers, [], 0)[1], what="a filler connected, the queue full",
                     timeout=10, every=0.01)
            started = time.monotonic()
            with pytest.raises(ImdsError) as err:
                Client("127.0.0.1", port=port, timeout=2.0).open()
            assert err.value.kind is Failure.TIMEOUT
            # The time-out given (not the 1 s default, not a refusal at once), and not the kernel's SYN
            # retries (over a minute): no load can make it shorter, and the upper bound is far.
            assert 1.9 < time.monotonic() - started < 20.0
        finally:
            for f in fillers:
                f.close()

    # This namespace has only loopback: no route to either IMDS address, refused at once.
    for host in (metadata.IMDS_V6, metadata.IMDS_V4):
        started = time.monotonic()
        result = metadata.reach(host, timeout=10.0, total=20.0)
        assert result.failure is Failure.UNREACHABLE, result
        assert time.monotonic() - started < 5.0  # refused at once, not waited out (10 s)


@pytest.mark.parametrize(("exc", "connected", "kind"), [
    (TimeoutError(), False, Failure.TIMEOUT),
    (TimeoutError(), True, Failure.NO_RESPONSE),
    (OSError(errno.ECONNREFUSED, "refused"), False, Failure.REFUSED),
    (OSError(errno.ENETUNREACH, "x"), False, Failure.UNREACHABLE),
    (OSError(errno.EHOSTUNREACH, "x"), False, Failure.UNREACHABLE),
    (OSError(errno.EADDRNOTAVAIL, "x"), False, Failure.UNREACHABLE),
    (OSError(errno.ECONNRESET, "x"), True, Failure.ERROR),
    (ValueError(), True, Failure.ERROR),
])
def test_classify(exc: BaseException, connected: bool, kind: Failure) -> None:
    assert metadata.classify(exc, connected=connected) is kind


def test_token_redacts_itself() -> None:
    t = Token("s3cr3t-value", 60)
    assert "s3cr3t" not in f"{t!r} {t!s} {t}"
    assert t.headers() == {metadata.TOKEN_HEADER: "s3cr3t-value"}


# ---- one deadline, whatever the server trickles -------------------------------------------------


class _Trickler:
    """A raw TCP server on loopback that answers every request a byte at a time, every 0.5 s:
    the head (status line and headers) or, after a whole head, the body."""

    def __init__(self, host: str, what: str) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(8)
        self.port: int = self.sock.getsockname()[1]
        self.what = what
        self.sent = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
            if self.what == "body":
                conn.sendall(head)
                drip = b"x" * 1000
            else:
                drip = head + b"x" * 1000
            for byte in drip:
                if self.stop.wait(0.5):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return
                self.sent += 1

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
@pytest.mark.parametrize("what", ["head", "body"])
def test_a_trickling_server_is_cut_off_at_the_request_deadline(host: str, what: str) -> None:
    server = _Trickler(host, what)
    try:
        started = time.monotonic()
        with pytest.raises(ImdsError) as err:
            Client(host, port=server.port, timeout=1.2, total=10.0).open()
        elapsed = time.monotonic() - started
    finally:
        server.close()
    assert err.value.kind is Failure.NO_RESPONSE
    assert server.sent >= 1  # it did trickle: each byte restarted a per-read time-out
    # Without the watchdog this takes 500 s (a byte per 0.5 s); the bound is generous for load.
    assert 1.1 <= elapsed < 1.2 + 1.0, elapsed


def test_a_trickling_server_cannot_outlast_the_clients_total() -> None:
    server = _Trickler("127.0.0.1", "body")
    try:
        started = time.monotonic()
        result = metadata.reach("127.0.0.1", port=server.port, timeout=5.0, total=1.0)
        elapsed = time.monotonic() - started
    finally:
        server.close()
    assert result.failure is Failure.NO_RESPONSE and elapsed < 1.0 + 1.0, elapsed


# ---- hostile tokens and values --------------------------------------------------------------------

HOSTILE_TOKENS = [
    "AQAEAB\nX-Injected: yes",
    "AQAEAB\r\nHost: evil.example",
    "AQAE\u00e9\u20ac-not-latin-1",
    "AQAE\u2028AB",
    "AQAE AB",
    "\x1b[2JAQAEAB",
    "A" * 5000,
]


class _TokenHandler(_Handler):
    token = ""

    def do_PUT(self) -> None:
        self.b.seen.append(("PUT", self.path, None))
        self.b.issued.append(self.token)
        self._send(200, self.token)


@pytest.mark.parametrize("token", HOSTILE_TOKENS, ids=range(len(HOSTILE_TOKENS)))
def test_a_hostile_token_is_refused_and_never_shown(
        token: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG, logger="chronyctl6")
    b = Behaviour()
    handler = type("H", (_TokenHandler,), {"b": b, "token": token})
    srv = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        port = srv.server_address[1]
        with pytest.raises(ImdsError) as err:
            Client("127.0.0.1", port=port).open()
        result = metadata.reach("127.0.0.1", port=port)
        result_v1 = metadata.reach("127.0.0.1", port=port, allow_v1=True)
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)
    assert err.value.kind is Failure.HTTP and "no usable token" in err.value.message
    assert not result.ok and not result_v1.ok
    assert all(method == "PUT" or tok is None for method, _, tok in b.seen)  # never sent back
    out = capsys.readouterr()
    shown = [str(err.value), repr(err.value), str(err.value.hint), result.detail, result_v1.detail,
             repr(result), caplog.text, out.out, out.err]
    parts = [p for p in re.split("[\\s\x1b\u2028]+", token) if len(p) >= 4]
    for text in shown:
        assert token not in text
        for part in parts:  # not even a piece of it
            assert part not in text, part


def test_metadata_values_are_sanitised(server: tuple[str, int, Behaviour]) -> None:
    host, port, b = server
    mac = "0e:11:22:33:44:55"
    b.metadata.update({
        "meta-data/instance-id": "i-0123\x1b[31m456\x1b]0;owned\x07789",
        "meta-data/placement/region": "eu-west-1\r\nX: y",
        "meta-data/system": "nitro\u202e",
        f"meta-data/network/interfaces/macs/{mac}/ipv6s": "2001:db8::10\u2028rm -rf /\n2001:db8::11\n",
    })
    md = metadata.reach(host, port=port).metadata
    assert md is not None
    # Through the one sanitiser (chronyctl6.text.shown): visible escapes, never the raw control.
    assert md.instance_id == "i-0123\\e[31m456\\e]0;owned\\x07789"
    assert md.region == "eu-west-1\\r\\nX: y" and md.system == "nitro\\u202e"
    assert md.ipv6s == ("2001:db8::10\\u2028rm -rf /", "2001:db8::11")
    for value in (md.instance_id, md.region, md.system, *md.ipv6s):
        assert value is not None and value.isprintable()


def test_a_mac_that_is_not_one_never_reaches_a_request_path(server: tuple[str, int, Behaviour]) -> None:
    host, port, b = server
    b.metadata["meta-data/mac"] = "../../api/token\r\nX: y"
    md = metadata.reach(host, port=port).metadata
    assert md is not None and md.mac is None and md.interface_id is None and md.ipv6s == ()
    assert not any("interfaces" in path for _, path, _ in b.seen)
