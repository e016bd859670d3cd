"""``matchstream dashboard``: the page and its data over HTTP on a local address.

Standard library only (``ThreadingHTTPServer``): three kinds of GET, each answered from the
package or from one database session of its own (kept between refreshes: sessions.py), so a
slow query holds up only its own request and a database that goes away shows up on the page
instead of stopping the server.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import sys
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from matchstream.dashboard.errors import DashboardCannotListen
from matchstream.dashboard.page import SERVED_POLICY, STATIC_FILES, page_html, static_bytes
from matchstream.dashboard.sessions import SessionPool
from matchstream.dashboard.snapshot import Reuse, collect

__all__ = ["DashboardServer", "serve"]


class DashboardServer(ThreadingHTTPServer):
    daemon_threads = True  # a browser's open connection must not keep Ctrl-C waiting

    def __init__(self, host: str, port: int, snapshot: Callable[[], dict[str, Any]]) -> None:
        if ":" in host:
            self.address_family = socket.AF_INET6
        try:
            super().__init__((host, port), _Handler)
        except OSError as exc:
            raise DashboardCannotListen(host, port, exc.strerror or str(exc)) from exc
        self.snapshot = snapshot
        bound = self.server_address[1]
        # On a loopback address, the names a browser may use for this server: anything else in
        # Host is refused, so a web page elsewhere cannot read the data through a DNS name it
        # points at 127.0.0.1. Listening on another address (--host) means being reached by
        # whatever name the network gives this machine: no list then (None).
        self.allowed_hosts: set[str] | None = None
        if _loopback(host):
            self.allowed_hosts = {f"{_url_host(host)}:{bound}", f"localhost:{bound}",
                                  f"127.0.0.1:{bound}", f"[::1]:{bound}"}

    @property
    def url(self) -> str:
        return f"http://{_url_host(str(self.server_address[0]))}:{self.server_address[1]}/"


def _loopback(host: str) -> bool:
    """
    >>> _loopback("127.0.0.1"), _loopback("::1"), _loopback("localhost"), _loopback("0.0.0.0")
    (True, True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class _Handler(BaseHTTPRequestHandler):
    server: DashboardServer
    server_version = "matchstream-dashboard"

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        allowed = self.server.allowed_hosts
        if allowed is not None and self.headers.get("Host") not in allowed:
            self._send(HTTPStatus.MISDIRECTED_REQUEST, b"unknown Host\n", "text/plain")
            return
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, page_html().encode("utf-8"), "text/html; charset=utf-8")
        elif path == "/data.json":
            body = json.dumps(self.server.snapshot(), allow_nan=False, default=str)
            self._send(HTTPStatus.OK, body.encode("utf-8"), "application/json")
        elif path.startswith("/static/") and path[len("/static/"):] in STATIC_FILES:
            name = path[len("/static/"):]
            self._send(HTTPStatus.OK, static_bytes(name), STATIC_FILES[name])
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", SERVED_POLICY)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # A page polls every 2 s: only refused and failed requests are worth a line.
        if not str(int(code) if isinstance(code, int) else code).startswith(("2", "3")):
            super().log_request(code, size)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        # As the base class does: a request line's control characters never reach the terminal.
        message = (format % args).translate(self._control_char_table)  # type: ignore[attr-defined]
        sys.stderr.write(f"dashboard: {self.address_string()} {message}\n")


def serve(host: str, port: int, connect: Callable[[], Any], *, database: str,
          catalog: str, ready: Callable[[str], None] = print) -> None:
    """Serve until interrupted; ``ready`` gets the URL once the socket listens."""
    pool, reuse = SessionPool(connect), Reuse()
    server = DashboardServer(host, port, lambda: collect(
        pool.session, database=database, catalog=catalog, reuse=reuse))
    try:
        ready(server.url)
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
        pool.close()
