"""Probes a test runs ON the instance: `python -m sandbox.probe http|tcp ...`, one JSON line out.

They show what a program on the instance sees (a status, a time-out, an errno), with the
instance's own routes and addresses, without depending on chronyctl6's own clients.
"""

from __future__ import annotations

import argparse
import errno
import http.client
import json
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any


def _errno_name(exc: OSError) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "TIMEOUT"
    return errno.errorcode.get(exc.errno or 0, type(exc).__name__)


def http_request(method: str, host: str, path: str, headers: dict[str, str], timeout: float) -> dict[str, Any]:
    started = time.monotonic()
    conn = http.client.HTTPConnection(host, 80, timeout=timeout)
    try:
        conn.request(method, path, headers=headers)
        resp = conn.getresponse()
        body = resp.read().decode("utf-8", "replace")
        return {"status": resp.status, "body": body, "headers": dict(resp.getheaders()),
                "error": None, "elapsed": time.monotonic() - started}
    except OSError as exc:
        return {"status": None, "body": None, "headers": {}, "error": _errno_name(exc),
                "elapsed": time.monotonic() - started}
    finally:
        conn.close()


class Probes:
    """What a program sees from a place in the sandbox (the instance, a container on it)."""

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 60.0,
        check: bool = False,
        env: Mapping[str, str] | None = None,
        input_text: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        raise NotImplementedError

    def ntp_query(
        self, address: str, *, count: int = 1, interval: float = 0.2, timeout: float = 1.0
    ) -> list[dict[str, Any]]:
        """NTP exchanges made from here (sandbox.ntp query): reply, kiss, time-out or errno."""
        argv = [sys.executable, "-m", "sandbox.ntp", "query", address, "--count", str(count),
                "--interval", str(interval), "--timeout", str(timeout)]
        done = self.run(argv, timeout=count * (interval + timeout) + 20, check=True)
        return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]

    def http(
        self, method: str, host: str, path: str, headers: Mapping[str, str] | None = None,
        *, timeout: float = 2.0,
    ) -> dict[str, Any]:
        """One HTTP request made from here (sandbox.probe http): status, body, or errno."""
        argv = [sys.executable, "-m", "sandbox.probe", "http", method, host, path,
                "--timeout", str(timeout)]
        for name, value in (headers or {}).items():
            argv += ["-H", f"{name}: {value}"]
        done = self.run(argv, timeout=timeout + 20, check=True)
        result: dict[str, Any] = json.loads(done.stdout)
        return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.probe")
    sub = parser.add_subparsers(dest="command", required=True)
    h = sub.add_parser("http")
    h.add_argument("method")
    h.add_argument("host")
    h.add_argument("path")
    h.add_argument("-H", "--header", action="append", default=[])
    h.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args(argv)
    headers = dict(item.split(":", 1) for item in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    print(json.dumps(http_request(args.method, args.host, args.path, headers, args.timeout)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
