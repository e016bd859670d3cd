"""The dashboard's pure parts: its SQL, its assets, its page, its server's refusals, its port
setting. The page in a browser against a real database is tests/integration/test_dashboard.py."""

from __future__ import annotations

import hashlib
import http.client
import re
import socket
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlglot

from matchstream.config import Config
from matchstream.dashboard.errors import DashboardCannotListen
from matchstream.dashboard.page import STATIC_FILES, page_html
from matchstream.dashboard.queries import CATALOG_QUERIES, QUERIES, catalog_query
from matchstream.dashboard.server import DashboardServer

REPO = Path(__file__).resolve().parents[2]
STATIC = REPO / "matchstream" / "dashboard" / "static"


def every_query() -> list[tuple[str, str]]:
    return [*QUERIES.items(), *((n, catalog_query(n, "information_schema"))
                               for n in CATALOG_QUERIES)]


def filled(query: str) -> str:
    """The text the server sends: pymysql's parameters filled in."""
    return query % {"database": "'speed_dating'", "window": 600}


@pytest.mark.parametrize(("name", "query"), every_query(), ids=[n for n, _ in every_query()])
def test_every_query_is_one_select_that_singlestore_parses(name: str, query: str) -> None:
    text = filled(query)
    parsed = sqlglot.parse(text, read="singlestore")
    assert len(parsed) == 1 and isinstance(parsed[0], sqlglot.exp.Select), name
    assert re.search(r"\b(INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER|SET|CALL)\b",
                     text.upper().replace("OFFSET", "")) is None, name


def test_the_vendored_library_is_the_version_and_files_recorded() -> None:
    notes = (STATIC / "VENDORED.md").read_text()
    for name in ("uPlot.iife.min.js", "uPlot.min.css"):
        digest = hashlib.sha256((STATIC / name).read_bytes()).hexdigest()
        assert f"`{digest}`" in notes, f"{name} changed: update static/VENDORED.md"
    version = re.search(r"\| `uPlot.iife.min.js` \| .*? \| ([0-9.]+) \|", notes)
    assert version is not None
    assert f"(v{version.group(1)})" in (STATIC / "uPlot.iife.min.js").read_text()[:200]
    assert "MIT License" in (STATIC / "uPlot.LICENSE").read_text()


def test_the_package_ships_every_static_file() -> None:
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["matchstream.dashboard"]
    for path in STATIC.iterdir():
        assert any(path.match(pattern) for pattern in package_data), path.name
    assert set(STATIC_FILES) <= {p.name for p in STATIC.iterdir()}


def test_no_page_or_asset_names_another_host() -> None:
    """Offline by construction: no http(s) or protocol-relative URL in what the page loads."""
    external = re.compile(r"""(src|href)\s*=\s*["']?(https?:)?//""", re.IGNORECASE)
    for html in (page_html(), page_html({"database": "d"})):
        assert not external.search(html)
    assert "http" not in (STATIC / "dashboard.js").read_text()
    assert not re.search(r"url\(|@import", (STATIC / "dashboard.css").read_text())


@pytest.fixture
def server() -> Iterator[DashboardServer]:
    srv = DashboardServer("127.0.0.1", 0, lambda: {"errors": {}})
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def get(srv: DashboardServer, path: str, host: str | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=10)
    try:
        headers = {"Host": host} if host else {}
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_the_server_hands_out_the_page_its_assets_and_data_only(
        server: DashboardServer) -> None:
    assert get(server, "/")[0] == 200
    assert get(server, "/data.json") == (200, b'{"errors": {}}')
    assert get(server, "/static/uPlot.iife.min.js")[0] == 200
    for path in ("/static/VENDORED.md", "/static/../queries.py", "/static/dashboard.html",
                 "/etc/passwd"):
        assert get(server, path)[0] == 404, path


def test_a_request_for_another_host_name_is_refused(server: DashboardServer) -> None:
    """A page elsewhere that points a DNS name at 127.0.0.1 must not read the data."""
    assert get(server, "/data.json", host="attacker.example:80")[0] == 421


def test_a_taken_port_is_an_error_naming_the_port_and_the_setting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(DashboardCannotListen) as caught:
            DashboardServer("127.0.0.1", port, dict)
    assert caught.value.port == port
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert "--port or MATCHSTREAM_DASHBOARD_PORT" in str(caught.value)


def test_listening_on_all_addresses_takes_any_host_name() -> None:
    """--host 0.0.0.0 is for being reached from elsewhere, by whatever name."""
    srv = DashboardServer("0.0.0.0", 0, lambda: {"errors": {}})
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        assert get(srv, "/data.json", host="dashboard.lan:8765")[0] == 200
    finally:
        srv.shutdown()
        srv.server_close()


def test_ipv6_loopback_is_served_with_a_bracketed_url() -> None:
    import socket

    # Skipped only where the kernel itself has no ::1; where it has one the server must listen.
    probe = socket.socket(socket.AF_INET6)
    try:
        probe.bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback on this machine: {exc}")
    finally:
        probe.close()
    srv = DashboardServer("::1", 0, lambda: {"errors": {}})
    try:
        assert srv.url == f"http://[::1]:{srv.server_address[1]}/"
    finally:
        srv.server_close()


def test_the_port_comes_from_the_argument_then_the_environment_then_the_default(
        tmp_path: Path) -> None:
    env = {"MATCHSTREAM_DASHBOARD_PORT": "9001"}
    assert Config.from_env({}, state_dir=tmp_path).dashboard_port == 8765
    assert Config.from_env(env, state_dir=tmp_path).dashboard_port == 9001
    assert Config.from_env(env, state_dir=tmp_path, dashboard_port=9002).dashboard_port == 9002
