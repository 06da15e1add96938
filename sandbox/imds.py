"""A stand-in for the EC2 instance metadata service (IMDSv2 and v1), run inside the EC2 namespace.

    python -m sandbox.imds --config CONFIG.json

CONFIG holds `binds` (addresses to serve on port 80), `tokens` ("required" or "optional"),
`metadata` (path under /latest/ -> text; directories are listed from the paths), `log` (a
file that gets one JSON line per request) and `ready_file`. The log never holds a token: it
records only whether a request carried a valid one.
"""

from __future__ import annotations

import argparse
import json
import secrets
import socket
import sys
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN_PATH = "/latest/api/token"  # noqa: S105 (a URL path, not a secret)
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"  # noqa: S105
MAX_TTL = 21600


class Metadata:
    """The metadata tree and the live tokens; shared by the handler threads."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.tokens_required = config["tokens"] == "required"
        self.hop_limit = int(config.get("hop_limit", 1))
        self.files: dict[str, str] = dict(config["metadata"])
        self.log_path: str = config["log"]
        self._tokens: dict[str, float] = {}
        self._lock = threading.Lock()

    def issue(self, ttl: int) -> str:
        token = secrets.token_urlsafe(42)
        with self._lock:
            self._tokens[token] = time.monotonic() + ttl
        return token

    def token_state(self, token: str | None) -> str:
        if token is None:
            return "none"
        with self._lock:
            expiry = self._tokens.get(token)
        return "valid" if expiry is not None and expiry > time.monotonic() else "invalid"

    def lookup(self, path: str) -> str | None:
        """A file's text, or a directory listing (children one a line, subdirectories with '/')."""
        key = path.removeprefix("/latest/")
        if key in self.files:
            return self.files[key]
        prefix = key if key.endswith("/") or key == "" else key + "/"
        children: list[str] = []
        for name in self.files:
            if name.startswith(prefix) and name != prefix:
                rest = name[len(prefix):]
                child = rest.split("/", 1)[0] + ("/" if "/" in rest else "")
                if child not in children:
                    children.append(child)
        return "\n".join(children) if children else None

    def record(self, entry: dict[str, Any]) -> None:
        with self._lock, open(self.log_path, "a") as log:
            log.write(json.dumps(entry) + "\n")


class Handler(BaseHTTPRequestHandler):
    server_version = "EC2ws"
    protocol_version = "HTTP/1.1"
    meta: Metadata  # set on the subclass made per server

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        pass  # requests are recorded by _reply, without headers

    def _reply(self, status: int, body: str, token_state: str, extra: dict[str, str] | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.meta.record({
            "time": time.time(), "client": self.client_address[0], "method": self.command,
            "path": self.path, "status": status, "token": token_state,
        })

    def do_PUT(self) -> None:
        if self.path != TOKEN_PATH:
            self._reply(403, "Forbidden", "none")
            return
        # IMDS refuses token requests that went through a proxy.
        if self.headers.get("X-Forwarded-For") is not None:
            self._reply(403, "Forbidden", "none")
            return
        raw = self.headers.get(TTL_HEADER)
        try:
            ttl = int(raw) if raw is not None else 0
        except ValueError:
            ttl = 0
        if not 1 <= ttl <= MAX_TTL:
            self._reply(400, "Bad Request", "none")
            return
        # HttpPutResponseHopLimit: the token's reply leaves with this TTL / hop limit, so a
        # container one routed hop behind the instance never receives it (a time-out).
        if self.connection.family == socket.AF_INET6:
            self.connection.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, self.meta.hop_limit)
        else:
            self.connection.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, self.meta.hop_limit)
        self._reply(200, self.meta.issue(ttl), "issued", {TTL_HEADER: str(ttl)})

    def do_GET(self) -> None:
        state = self.meta.token_state(self.headers.get(TOKEN_HEADER))
        if self.path == TOKEN_PATH:
            self._reply(405, "Method Not Allowed", state)
            return
        # An invalid token is refused even when tokens are optional, as on EC2.
        if state == "invalid" or (state == "none" and self.meta.tokens_required):
            self._reply(401, "Unauthorized", state)
            return
        body = self.meta.lookup(self.path) if self.path.startswith("/latest/") else None
        if body is None:
            self._reply(404, "Not Found", state)
        else:
            self._reply(200, body, state)


class Server6(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True


class Server4(ThreadingHTTPServer):
    daemon_threads = True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.imds")
    parser.add_argument("--config", required=True)
    args = parser.parse_args(argv)
    with open(args.config) as f:
        config = json.load(f)
    meta = Metadata(config)
    handler = type("BoundHandler", (Handler,), {"meta": meta})
    servers: list[ThreadingHTTPServer] = []
    for address in config["binds"]:
        cls = Server6 if ":" in address else Server4
        servers.append(cls((address, 80), handler))
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    with open(config["ready_file"], "w") as ready:
        ready.write("ready\n")
    for thread in threads:
        thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
