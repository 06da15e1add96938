"""The instance metadata service (IMDS): IMDSv2 tokens, over IPv6 and IPv4, with short time-outs.

stdlib http.client only: no proxy from the environment ever sees a metadata request, and
`chronyctl6 doctor` pays for no HTTP library at start-up.

How a failure looks tells what is wrong, so it is classified rather than reported as "failed":
- `timeout`: the connection never completed. The endpoint is not there: IMDS over IPv6 is off
  (the default), or the instance is not Nitro. EC2 answers neither with a refusal nor an ICMP
  error: it is silent.
- `no-response`: connected, the request went out, the answer never came. The token PUT's
  answer is sent with the instance's hop limit (HttpPutResponseHopLimit, default 1 on some
  AMIs); a container behind a bridge is one hop too far and sees exactly this.
- `unreachable`: the kernel refused at once (ENETUNREACH, EHOSTUNREACH, EADDRNOTAVAIL): this
  host has no address or route of that family, e.g. no IPv6 address for fd00:ec2::254.
- `refused`: something answered with a TCP reset: not EC2's IMDS.

The token is a credential for the whole metadata tree: it lives only in a `Token`, whose repr
and str are redacted, and never goes into a message, an exception or a log line. A token that
could not be a header value (control characters, non-ASCII, over 4096 characters) is refused
without being shown.

Time: each request has one deadline (`timeout`: connect, send and the whole answer together),
and a client one more (`total`) over all its requests. A server that trickles its answer a byte
at a time is cut off at the deadline: a watchdog shuts the socket, whatever the per-read time-outs.

Metadata values reach people and fix commands only through the one sanitiser (chronyctl6.text.shown):
control characters and terminal escape sequences become visible escapes, never raw.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import logging
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from enum import Enum

from chronyctl6.effects.host import HostNetwork, InstanceHint
from chronyctl6.errors import ChronyCtlError
from chronyctl6.text import shown

IMDS_V6 = "fd00:ec2::254"
IMDS_V4 = "169.254.169.254"
TOKEN_PATH = "/latest/api/token"  # noqa: S105 (a URL path, not a secret)
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"  # noqa: S105 (a header name)
TOKEN_TTL = 60  # seconds: a doctor run is short, and a leaked short-lived token is worth less
DEFAULT_TIMEOUT = 1.0  # each request, from connect to the answer's last byte
DEFAULT_TOTAL = 3.0  # everything one client does
MAX_BODY = 64 * 1024
MAX_TOKEN = 4096
_TOKEN = re.compile(rf"[\x21-\x7e]{{1,{MAX_TOKEN}}}")  # visible ASCII: a valid header value
_MAC = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")
MAX_VALUE = 256  # characters of one metadata value shown (an id, a CIDR, a region)

log = logging.getLogger(__name__)


class Failure(str, Enum):
    TIMEOUT = "timeout"
    NO_RESPONSE = "no-response"
    UNREACHABLE = "unreachable"
    REFUSED = "refused"
    HTTP = "http"  # an HTTP status that was not what we asked for
    V1_REFUSED = "v1-refused"  # a request without a token got 401: HttpTokens=required
    ERROR = "error"

    def __str__(self) -> str:  # as StrEnum (3.11+) would print it
        return str(self.value)


_UNREACHABLE = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL})


def classify(exc: BaseException, *, connected: bool) -> Failure:
    """What an exception from a connect (connected=False) or an exchange (True) means."""
    if isinstance(exc, TimeoutError | socket.timeout):
        return Failure.NO_RESPONSE if connected else Failure.TIMEOUT
    if isinstance(exc, OSError):
        if exc.errno == errno.ECONNREFUSED:
            return Failure.REFUSED
        if exc.errno in _UNREACHABLE:
            return Failure.UNREACHABLE
    return Failure.ERROR


class ImdsError(ChronyCtlError):
    def __init__(self, message: str, *, kind: Failure, host: str, http_status: int | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.kind = kind
        self.host = host
        self.http_status = http_status


class Token:
    """An IMDSv2 session token. Its value leaves this object only as a request header."""

    __slots__ = ("_value", "expires")

    def __init__(self, value: str, ttl: float) -> None:
        self._value = value
        self.expires = time.monotonic() + ttl

    def headers(self) -> dict[str, str]:
        return {TOKEN_HEADER: self._value}

    def __repr__(self) -> str:
        return "Token(<redacted>)"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("an IMDS token is not to be pickled")


def endpoint_name(host: str) -> str:
    return f"[{host}]:80" if ":" in host else f"{host}:80"


@dataclass
class Client:
    """One IMDS endpoint. `open()` gets a token (IMDSv2); `get()` reads a path.

    IMDSv1 (no token) is used only when allow_v1 is set (the user's `--imdsv1`) and the token
    request itself failed, and only if the instance answers a token-less request.
    """

    host: str
    port: int = 80
    timeout: float = DEFAULT_TIMEOUT
    total: float = DEFAULT_TOTAL
    allow_v1: bool = False
    version: str | None = None  # "v2" or "v1" once open
    token_failure: Failure | None = None  # why the token request failed, when IMDSv1 took over
    requests: int = 0
    _token: Token | None = field(default=None, repr=False)
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.total

    @property
    def name(self) -> str:
        return endpoint_name(self.host)

    def open(self) -> Client:
        try:
            status, body = self._request("PUT", TOKEN_PATH, {TTL_HEADER: str(TOKEN_TTL)})
        except ImdsError as exc:
            if not self.allow_v1 or exc.kind in (Failure.TIMEOUT, Failure.UNREACHABLE, Failure.REFUSED):
                raise self._token_hint(exc) from None
            return self._open_v1(exc)
        if status == 200 and not _TOKEN.fullmatch(body.strip()):
            # Never shown, not even in part: it may be a real token with a stray byte.
            failure = ImdsError(
                f"IMDS at {self.name} answered the token request with no usable token "
                f"({len(body.strip())} characters, not visible ASCII)",
                kind=Failure.HTTP, host=self.host, http_status=status)
            if not self.allow_v1:
                raise failure
            return self._open_v1(failure)
        if status == 200:
            self._token = Token(body.strip(), TOKEN_TTL)
            self.version = "v2"
            log.debug("IMDS %s: IMDSv2 token received (%d characters, ttl %d s)", self.name,
                      len(body.strip()), TOKEN_TTL)
            return self
        failure = ImdsError(f"IMDS at {self.name} answered the token request with HTTP {status}",
                            kind=Failure.HTTP, host=self.host, http_status=status)
        if not self.allow_v1:
            raise self._token_hint(failure)
        return self._open_v1(failure)

    def _token_hint(self, exc: ImdsError) -> ImdsError:
        if exc.kind is Failure.NO_RESPONSE:
            exc.hint = ("the token's answer did not come back: in a container, raise the hop limit "
                        "(aws ec2 modify-instance-metadata-options --http-put-response-hop-limit 2)")
        elif exc.kind is Failure.HTTP and not self.allow_v1:
            exc.hint = "pass --imdsv1 to try IMDSv1 where the instance allows it"
        return exc

    def _open_v1(self, why: ImdsError) -> Client:
        status, _ = self._request("GET", "/latest/meta-data/instance-id", {})
        if status == 401:
            raise ImdsError(
                f"IMDS at {self.name}: the token request failed ({why.message}) and the instance "
                "refuses IMDSv1 (HttpTokens=required)",
                kind=Failure.V1_REFUSED, host=self.host, http_status=401, hint=why.hint)
        if status != 200:
            raise ImdsError(f"IMDS at {self.name} answered IMDSv1 with HTTP {status}", kind=Failure.HTTP,
                            host=self.host, http_status=status)
        self.version = "v1"
        self.token_failure = why.kind
        log.debug("IMDS %s: token request failed (%s); using IMDSv1 as asked (--imdsv1)", self.name, why.kind)
        return self

    def probe_v1(self) -> int:
        """The HTTP status of one token-less request: 200 IMDSv1 allowed, 401 tokens required."""
        status, _ = self._request("GET", "/latest/meta-data/instance-id", {})
        return status

    def get(self, path: str) -> str | None:
        """The text at /latest/<path>, or None when IMDS has no such entry (404)."""
        if self.version is None:
            self.open()
        headers = self._token.headers() if self._token is not None else {}
        status, body = self._request("GET", "/latest/" + path.lstrip("/"), headers)
        if status == 404:
            return None
        if status != 200:
            raise ImdsError(f"IMDS at {self.name}: GET {path} answered HTTP {status}", kind=Failure.HTTP,
                            host=self.host, http_status=status)
        return body

    def _remaining(self) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise ImdsError(f"IMDS at {self.name}: no time left ({self.total:g} s in all)", kind=Failure.TIMEOUT,
                            host=self.host)
        return min(self.timeout, left)

    def _request(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, str]:
        started = time.monotonic()
        budget = self._remaining()  # this request's one deadline: connect to last byte
        conn = http.client.HTTPConnection(self.host, self.port, timeout=budget)
        connected = False
        expired = threading.Event()

        def cut_off() -> None:
            # Per-read time-outs restart with every byte: only shutting the socket stops a
            # server that trickles. The reader then sees the connection end at once.
            expired.set()
            sock = conn.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

        watchdog = threading.Timer(budget, cut_off)
        watchdog.daemon = True
        watchdog.start()
        try:
            conn.connect()
            connected = True
            conn.request(method, path, headers=headers)
            resp = conn.getresponse()
            body = resp.read(MAX_BODY).decode("utf-8", "replace")
            if expired.is_set():  # a body cut short by the watchdog is no answer
                raise TimeoutError
        except (OSError, http.client.HTTPException, ValueError, UnicodeError) as exc:
            kind = classify(exc, connected=connected)
            if expired.is_set():
                kind = Failure.NO_RESPONSE if connected else Failure.TIMEOUT
            what = ("connected, no answer within the time-out" if kind is Failure.NO_RESPONSE else
                    "no connection within the time-out" if kind is Failure.TIMEOUT else
                    _describe(exc))
            log.debug("IMDS %s: %s %s -> %s after %.3f s", self.name, method, path, kind,
                      time.monotonic() - started)
            # Only the method, path and errno: never the request's headers.
            raise ImdsError(f"IMDS at {self.name}: {method} {path}: {what}", kind=kind, host=self.host) from None
        finally:
            watchdog.cancel()
            conn.close()
        self.requests += 1
        log.debug("IMDS %s: %s %s -> HTTP %d after %.3f s", self.name, method, path, resp.status,
                  time.monotonic() - started)
        return resp.status, body


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{errno.errorcode.get(exc.errno, str(exc.errno))} ({exc.strerror})"
    return type(exc).__name__


@dataclass(frozen=True)
class InstanceMetadata:
    """What doctor needs to know about this instance, and where it learnt it."""

    endpoint: str
    version: str  # v2 or v1
    instance_id: str | None
    instance_type: str | None
    system: str | None  # nitro | xen; None on instance types that predate the entry
    region: str | None
    mac: str | None
    interface_id: str | None
    subnet_id: str | None
    vpc_id: str | None
    ipv6s: tuple[str, ...]
    subnet_ipv6_cidrs: tuple[str, ...]
    vpc_ipv6_cidrs: tuple[str, ...]


def read_metadata(client: Client) -> InstanceMetadata:
    def get(path: str) -> str | None:
        value = client.get("meta-data/" + path)
        return shown(value.strip(), MAX_VALUE) if value is not None else None

    def lines(path: str) -> tuple[str, ...]:
        value = client.get("meta-data/" + path)
        if value is None:
            return ()
        return tuple(shown(ln.strip(), MAX_VALUE) for ln in value.split("\n") if ln.strip())

    mac = get("mac")
    if mac is not None and not _MAC.fullmatch(mac):
        log.debug("IMDS %s: ignoring a MAC address that is not one", client.name)
        mac = None  # it goes into request paths: only a real MAC address may
    base = f"network/interfaces/macs/{mac}/"
    return InstanceMetadata(
        endpoint=client.name,
        version=client.version or "v2",
        instance_id=get("instance-id"),
        instance_type=get("instance-type"),
        system=get("system"),
        region=get("placement/region"),
        mac=mac,
        interface_id=get(base + "interface-id") if mac else None,
        subnet_id=get(base + "subnet-id") if mac else None,
        vpc_id=get(base + "vpc-id") if mac else None,
        ipv6s=lines(base + "ipv6s") if mac else (),
        subnet_ipv6_cidrs=lines(base + "subnet-ipv6-cidr-blocks") if mac else (),
        vpc_ipv6_cidrs=lines(base + "vpc-ipv6-cidr-blocks") if mac else (),
    )


@dataclass(frozen=True)
class Reach:
    """One endpoint tried: its metadata, or how it failed."""

    host: str
    metadata: InstanceMetadata | None
    failure: Failure | None
    detail: str  # one line for people
    seconds: float
    v1_status: int | None = None  # the token-less probe's HTTP status, when --imdsv1 asked for it
    token_failure: Failure | None = None  # the token request failed and IMDSv1 (asked for) took over

    @property
    def ok(self) -> bool:
        return self.metadata is not None


def reach(host: str, *, allow_v1: bool = False, timeout: float = DEFAULT_TIMEOUT,
          total: float = DEFAULT_TOTAL, port: int = 80) -> Reach:
    """Try one endpoint: open a session and read the instance's metadata; never raises."""
    started = time.monotonic()
    client = Client(host, port=port, timeout=timeout, total=total, allow_v1=allow_v1)
    try:
        client.open()
        metadata = read_metadata(client)
        v1_status = 200 if client.version == "v1" else None
        if allow_v1 and client.version == "v2":
            try:
                v1_status = client.probe_v1()
            except ImdsError:
                v1_status = None
    except ImdsError as exc:
        detail = exc.message + (f" ({exc.hint})" if exc.hint else "")
        v1 = 401 if exc.kind is Failure.V1_REFUSED else None
        return Reach(host, None, exc.kind, detail, round(time.monotonic() - started, 3), v1)
    via = f"IMDS{metadata.version}"
    if client.token_failure is not None:
        via += f": the token request got {client.token_failure}"
    return Reach(host, metadata, None, f"{client.name} answered ({via})", round(time.monotonic() - started, 3),
                 v1_status, client.token_failure)


def instance_hint(network: HostNetwork, *, total: float = 2.0) -> InstanceHint:
    """Nitro or Xen, and whether EC2 gave the interface an IPv6 address: over IPv4 IMDS where
    the host has IPv4, else over IPv6. Bounded by `total`; never raises."""
    host = IMDS_V4 if network.has_ipv4 else IMDS_V6
    found = reach(host, total=total, timeout=min(DEFAULT_TIMEOUT, total))
    if found.metadata is None:
        return InstanceHint()
    return InstanceHint(system=found.metadata.system, ipv6_assigned=bool(found.metadata.ipv6s))
