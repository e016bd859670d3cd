"""A real headless Chromium driven over the DevTools protocol, standard library only.

``--remote-debugging-pipe`` makes Chromium read protocol messages on fd 3 and answer on fd 4,
each a JSON object ended by a NUL byte: no WebSocket client and no driver package needed. One
page (a target attached in flat mode) per :class:`Page`; every network request the page makes
and every uncaught script error is recorded so tests can assert on them.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# The page, its scripts and the protocol answer well within this on a loaded 2-core machine.
TIMEOUT_S = 30.0


def chromium_binary() -> str:
    """Debian's chromium; a test that needs it fails (never skips) when it is missing, so CI
    cannot go green without having looked at the page."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium is not installed: `apt-get install -y chromium` "
                    "(scripts/bootstrap.sh's bootstrap_test_tools does it for scripts/test.sh)")
    return found


class Chromium:
    def __init__(self, profile: Path, *, width: int = 1400, height: int = 1700) -> None:
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def fds_3_and_4() -> None:  # runs in the child, before exec
            # Moved above 10 first, so neither dup2 can overwrite the other pipe end.
            r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
            w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
            os.dup2(r, 3)
            os.dup2(w, 4)

        self.process = subprocess.Popen(
            [chromium_binary(), "--headless=new", "--no-sandbox", "--disable-gpu",
             "--remote-debugging-pipe", f"--user-data-dir={profile}", "--no-first-run",
             "--no-default-browser-check", "--disable-extensions",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--metrics-recording-only", "--mute-audio",
             f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(profile / "chromium.log", "wb"),  # closed with the process
            preexec_fn=fds_3_and_4, pass_fds=(3, 4), close_fds=True)
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        wanted = self._next_id
        reply = self._read_until(lambda m: m.get("id") == wanted, f"the answer to {method}")
        if "error" in reply:
            raise AssertionError(f"{method}: {reply['error']}")
        return dict(reply.get("result", {}))

    def wait_event(self, method: str, session: str, timeout: float = TIMEOUT_S) -> dict[str, Any]:
        for seen in self.events:
            if seen.get("method") == method and seen.get("sessionId") == session:
                self.events.remove(seen)
                return seen
        found = self._read_until(
            lambda m: m.get("method") == method and m.get("sessionId") == session,
            method, timeout)
        self.events.remove(found)
        return found

    def _read_until(self, match: Callable[[dict[str, Any]], bool], what: str,
                    timeout: float = TIMEOUT_S) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "id" not in message:
                    self.events.append(message)
                if match(message):
                    return dict(message)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"chromium: no {what} within {timeout:.0f} s")
            ready, _, _ = select.select([self._from_child], [], [], left)
            if ready:
                chunk = os.read(self._from_child, 1 << 20)
                if not chunk:
                    raise AssertionError(f"chromium exited (code {self.process.poll()}) "
                                         f"while waiting for {what}")
                self._buffer += chunk

    def new_page(self) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget",
                            {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Network"):
            self.send(f"{domain}.enable", session=session)
        return Page(self, session)

    def close(self) -> None:
        try:
            if self.process.poll() is None:
                self.send("Browser.close")
                self.process.wait(timeout=10)
        except (AssertionError, OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait(timeout=10)
        finally:
            os.close(self._to_child)
            os.close(self._from_child)


class Page:
    def __init__(self, browser: Chromium, session: str) -> None:
        self.browser, self.session = browser, session

    def _mine(self, method: str) -> list[dict[str, Any]]:
        return [e["params"] for e in self.browser.events
                if e.get("method") == method and e.get("sessionId") == self.session]

    def open(self, url: str) -> None:
        self.browser.send("Page.navigate", {"url": url}, self.session)
        self.browser.wait_event("Page.loadEventFired", self.session)

    def evaluate(self, expression: str) -> Any:
        reply = self.browser.send("Runtime.evaluate", {
            "expression": expression, "returnByValue": True, "awaitPromise": True,
        }, self.session)
        if "exceptionDetails" in reply:
            raise AssertionError(f"{expression}: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def wait_for(self, expression: str, what: str, timeout: float = TIMEOUT_S) -> Any:
        """Poll ``expression`` until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"page: {what} not seen within {timeout:.0f} s")
            # Reading the pipe here also collects the events that came meanwhile.
            time.sleep(0.2)

    def requests(self) -> list[str]:
        """Every URL the page asked the network stack for, in order."""
        self.evaluate("0")  # drain what is already in the pipe
        return [e["request"]["url"] for e in self._mine("Network.requestWillBeSent")]

    def navigations(self) -> int:
        """Main-frame navigations so far (a reload is one more)."""
        self.evaluate("0")
        return sum(1 for e in self._mine("Page.frameNavigated")
                   if not e["frame"].get("parentId"))

    def script_errors(self) -> list[str]:
        self.evaluate("0")
        return [json.dumps(e["exceptionDetails"])[:500] for e in
                self._mine("Runtime.exceptionThrown")]

    def screenshot(self, path: Path) -> Path:
        data = self.browser.send("Page.captureScreenshot",
                                 {"format": "png", "captureBeyondViewport": True},
                                 self.session)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path
