"""A loopback JSON-RPC forwarder that holds a fork URL's secrets so they never reach anvil's argv or logs.

anvil only reads its fork URL from `--fork-url` (visible to every user in `ps` and /proc/PID/cmdline), and a
hosted RPC URL usually carries a key (`https://user:pass@host/v2/KEY?key=...`). `trader chain up --fork-url`
therefore starts this script (standard library only, run with `python -I`, a clean environment and no
arguments), hands it the URL on stdin, and gives anvil `http://127.0.0.1:PORT` instead.

Protocol on stdin/stdout: read the upstream URL (one line); print the loopback port (one line); read the pid of
the anvil it serves (one line), then exit as soon as that process is gone (or when stdin closes without one).
It never prints or logs the URL, only error class names.
"""

from __future__ import annotations

import base64
import http.client
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


class Upstream:
    """The upstream endpoint, parsed once; one keep-alive connection per forwarding thread."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the fork URL must be an http(s) URL")
        self.https = parts.scheme == "https"
        self.host, self.port = parts.hostname, parts.port
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.headers = {"Content-Type": "application/json"}
        if parts.username is not None:
            creds = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            self.headers["Authorization"] = "Basic " + base64.b64encode(creds).decode()
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            conn = self._local.conn = cls(self.host, self.port, timeout=60)
        return conn

    def post(self, body: bytes) -> tuple[int, bytes]:
        for attempt in (0, 1):  # one retry: a keep-alive connection the server closed while idle
            try:
                conn = self._connection()
                conn.request("POST", self.path, body, self.headers)
                response = conn.getresponse()
                return response.status, response.read()
            except (OSError, http.client.HTTPException):
                self._local.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


def _make_handler(upstream: Upstream):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive towards anvil

        def do_POST(self):  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                status, data = upstream.post(body)
            except Exception as exc:  # report the class only: a message may carry the host or path
                status = 502
                data = (b'{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"fork upstream unreachable ('
                        + type(exc).__name__.encode() + b')"}}')
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):  # request lines hold nothing secret, but there is no need for them
            pass

    return Handler


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie (dead, not yet reaped) counts as gone
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _watch(server: ThreadingHTTPServer) -> None:
    line = sys.stdin.readline().strip()
    if not line.isdigit():
        server.shutdown()
        return
    pid = int(line)
    while _alive(pid):
        time.sleep(0.5)
    server.shutdown()


def main() -> None:
    url = sys.stdin.readline().strip()
    try:
        upstream = Upstream(url)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    del url
    server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(upstream))
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    threading.Thread(target=_watch, args=(server,), daemon=True).start()
    server.serve_forever(poll_interval=0.2)


if __name__ == "__main__":
    main()
