"""A real browser for UI checks: Debian's headless chromium, driven over the DevTools protocol.

Airflow 3's UI is a React app: the HTML the server sends is an empty shell, so a plain
`chromium --screenshot` often captures a blank page. Driving the browser through the
DevTools protocol (a WebSocket, `--remote-debugging-port`) lets a test wait until the
page *shows* something, read its text and take a screenshot. Playwright's own browser
download is not reachable from our machines; the protocol needs only `websockets`.

The browser runs in a process group of its own and is stopped by signalling that group.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

from devtools.postgres import free_port

#: Flags for a quiet, throwaway headless browser run as root (hence --no-sandbox).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--hide-scrollbars",
)


class BrowserError(RuntimeError):
    """The browser did not start, or a page did not show what was waited for."""


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Page:
    """One tab, over its DevTools WebSocket: navigate, wait for text, read, screenshot."""

    def __init__(self, ws_url: str) -> None:
        self._stack = contextlib.ExitStack()
        self._ws: ClientConnection = self._stack.enter_context(
            connect(ws_url, max_size=None, open_timeout=10)
        )
        self._ids = itertools.count(1)

    def send(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30) -> Any:
        """Send one command and return its result; events in between are dropped."""
        message_id = next(self._ids)
        self._ws.send(json.dumps({"id": message_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrowserError(f"{method}: no answer after {timeout:.0f}s")
            reply = json.loads(self._ws.recv(timeout=remaining))
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})[
            "result"
        ]
        return result.get("value")

    def goto(self, url: str) -> None:
        self.send("Page.navigate", {"url": url})

    def text(self) -> str:
        """What the page shows as text (`innerText`: rendered text only)."""
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def wait_for_text(self, *needles: str, timeout: float = 60) -> str:
        """Until every needle is in the page's visible text; that text."""
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.text()
            if all(needle in text for needle in needles):
                return text
            time.sleep(0.5)
        missing = [n for n in needles if n not in text]
        raise BrowserError(
            f"page does not show {missing} after {timeout:.0f}s; it shows:\n{text[:2000]}"
        )

    def click(self, label: str, timeout: float = 60) -> None:
        """Click the innermost button or link whose aria-label, title or own text is `label`
        (icon buttons have only a label: that is what a screen reader would announce),
        waiting for it as a user would, as long as `wait_for_text` waits: a UI may draw a
        button, or label it (Airflow's once its translations have loaded), well after the
        text around it; on a loaded machine the graph's "Expand all task groups" took over
        30 s."""
        script = (
            "(() => { const want = " + json.dumps(label) + ";"
            " const all = [...document.querySelectorAll('button, a, [role=button], [role=tab]')];"
            " const hit = all.reverse().find(e => e.getAttribute('aria-label') === want"
            "   || e.title === want || (e.innerText || '').trim() === want);"
            " if (!hit) return false; hit.click(); return true; })()"
        )
        deadline = time.monotonic() + timeout
        while not self.evaluate(script):
            if time.monotonic() > deadline:
                raise BrowserError(
                    f"no button or link labelled {label!r} on {self.evaluate('location.href')} "
                    f"after {timeout:.0f}s"
                )
            time.sleep(0.5)

    def screenshot(self, path: Path, width: int = 1400, height: int = 900) -> Path:
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        time.sleep(0.5)  # a re-layout after the resize
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        self._stack.close()


class Browser:
    """Headless chromium with a throwaway profile, in its own process group."""

    def __init__(self, profile_dir: Path, binary: str | None = None) -> None:
        self.binary = binary or chromium_binary()
        if self.binary is None:
            raise BrowserError("no chromium on PATH: run scripts/services/chromium.sh")
        self.profile_dir = profile_dir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._pages: list[Page] = []

    def start(self, timeout: float = 30) -> None:
        log = (self.profile_dir.parent / "chromium.log").open("ab")
        self.proc = subprocess.Popen(
            [
                self.binary,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={self.profile_dir}",
                f"--remote-debugging-port={self.port}",
                "--window-size=1400,900",
                "about:blank",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrowserError(f"chromium exited with code {self.proc.returncode}")
            try:
                httpx.get(
                    f"http://127.0.0.1:{self.port}/json/version", timeout=2
                ).raise_for_status()
                return
            except httpx.HTTPError:
                time.sleep(0.3)
        raise BrowserError(f"chromium's DevTools port did not answer after {timeout:.0f}s")

    def new_page(self) -> Page:
        """A new tab (`PUT /json/new`), connected."""
        target = httpx.put(f"http://127.0.0.1:{self.port}/json/new?about:blank", timeout=10)
        target.raise_for_status()
        page = Page(target.json()["webSocketDebuggerUrl"])
        self._pages.append(page)
        return page

    def stop(self, timeout: float = 10) -> None:
        for page in self._pages:
            page.close()
        self._pages.clear()
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=timeout)
        # Whatever is left of the group (renderers, zygote) goes too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=5)
        self.proc = None
