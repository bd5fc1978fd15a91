"""Headless Chromium with the network blocked, driven over the DevTools protocol: load a page from
``file://``, record every request it makes and every console error, read computed styles, take a
screenshot.

Chromium is found on PATH (``chromium-headless-shell``, ``chromium``, ``google-chrome``) or at
``$REASONINGREC_CHROMIUM``; tests skip when there is none (CI installs pip packages only; on Debian
``apt-get install chromium-headless-shell``). ``$REASONINGREC_SCREENSHOTS`` keeps the screenshots.
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
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CANDIDATES = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome", "chrome")


def chromium() -> str:
    """The Chromium binary, or skip the test."""
    found = os.environ.get("REASONINGREC_CHROMIUM") or next(filter(None, map(shutil.which, CANDIDATES)), None)
    if not found:
        pytest.skip("no headless Chromium (apt-get install chromium-headless-shell, or set REASONINGREC_CHROMIUM)")
    return found


@dataclass
class PageLoad:
    """What loading one page did."""

    url: str
    requests: list[str] = field(default_factory=list)  # every URL the page asked for
    failed: list[str] = field(default_factory=list)  # "url: error" of each request that failed
    errors: list[str] = field(default_factory=list)  # console errors and uncaught exceptions
    facts: dict[str, Any] = field(default_factory=dict)  # the value of the probe expression
    screenshot: Path | None = None

    @property
    def remote(self) -> list[str]:
        """Requests that would leave the machine (not file:, data: or blob:)."""
        return [u for u in self.requests if not u.startswith(("file:", "data:", "blob:", "about:"))]


class Browser:
    """One headless Chromium process (``with Browser() as browser: browser.load(path, probe)``)."""

    def __init__(self, width: int = 1280, height: int = 900) -> None:
        self.binary = chromium()
        self.size = (width, height)
        self._ids = itertools.count(1)

    def __enter__(self) -> Browser:
        from websockets.sync.client import connect

        self._profile = tempfile.mkdtemp(prefix="reasoningrec-chromium-")
        args = [
            self.binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            # No network: every host name fails to resolve and every proxied request goes nowhere.
            "--proxy-server=127.0.0.1:9",
            "--proxy-bypass-list=<-loopback>",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--allow-file-access-from-files",
            f"--window-size={self.size[0]},{self.size[1]}",
            "--remote-debugging-port=0",
            f"--user-data-dir={self._profile}",
            "about:blank",
        ]
        # Its own process group: Debian's chromium* commands are shell scripts that run the browser as a
        # child, which outlives the script when only the script is stopped.
        self._process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        port_file = Path(self._profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.is_file() and len(port_file.read_text().split()) == 2):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError(f"{self.binary} did not start: {self._process.stderr.read()[-2000:]}")
            time.sleep(0.05)
        port, path = port_file.read_text().split()
        self._socket = connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=30)
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(Exception):
            self._send("Browser.close", timeout=5)
        with contextlib.suppress(Exception):
            self._socket.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGTERM)  # the group this class started, nothing else
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=10)
        shutil.rmtree(self._profile, ignore_errors=True)

    # -- the protocol: commands with ids, events in between
    def _send(
        self,
        method: str,
        params: dict | None = None,
        session: str | None = None,
        events: list | None = None,
        timeout: float = 30,
    ) -> dict:
        message_id = next(self._ids)
        message = {"id": message_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self._socket.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(self._socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if events is not None and "method" in reply:
                events.append(reply)

    def _drain(self, events: list, until: float, quiet: float = 0.5) -> None:
        """Collect events until ``quiet`` seconds pass without one (or ``until``)."""
        last = time.monotonic()
        while time.monotonic() < until and time.monotonic() - last < quiet:
            try:
                events.append(json.loads(self._socket.recv(timeout=0.1)))
                last = time.monotonic()
            except TimeoutError:
                continue

    def load(
        self, page: str | Path, probe: str = "({})", screenshot: Path | None = None, timeout: float = 30
    ) -> PageLoad:
        """Open ``page`` in a fresh tab, wait for the load and a quiet network, evaluate ``probe``
        (a JavaScript expression returning a JSON-able value) and take a full-page screenshot."""
        url = Path(page).resolve().as_uri()
        target = self._send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self._send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        events: list[dict] = []
        for domain in ("Network", "Page", "Runtime", "Log"):
            self._send(f"{domain}.enable", session=session, events=events)
        self._send("Page.navigate", {"url": url}, session=session, events=events)
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == "Page.loadEventFired" for e in events) and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                events.append(json.loads(self._socket.recv(timeout=0.2)))
        self._drain(events, deadline)
        result = self._send(
            "Runtime.evaluate",
            {"expression": f"JSON.stringify({probe})", "returnByValue": True},
            session=session,
            events=events,
        )
        load = PageLoad(url, facts=json.loads(result["result"].get("value") or "null"))
        if screenshot is not None:
            metrics = self._send("Page.getLayoutMetrics", session=session, events=events)
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            shot = self._send(
                "Page.captureScreenshot",
                {
                    "format": "png",
                    "captureBeyondViewport": True,
                    "clip": {
                        "x": 0,
                        "y": 0,
                        "width": max(self.size[0], size["width"]),
                        "height": min(max(self.size[1], size["height"]), 8000),
                        "scale": 1,
                    },
                },
                session=session,
                events=events,
            )
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            load.screenshot = screenshot
            keep = os.environ.get("REASONINGREC_SCREENSHOTS")
            if keep:
                Path(keep).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(screenshot, Path(keep) / screenshot.name)
        self._send("Target.closeTarget", {"targetId": target})
        urls: dict[str, str] = {}
        for event in events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Network.requestWillBeSent":
                urls[params["requestId"]] = params["request"]["url"]
                load.requests.append(params["request"]["url"])
            elif method == "Network.loadingFailed":
                load.failed.append(f"{urls.get(params['requestId'], '?')}: {params.get('errorText')}")
            elif method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                load.errors.append(details.get("exception", {}).get("description") or details.get("text", ""))
            elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                load.errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                load.errors.append(f"{params['entry'].get('url', '')}: {params['entry'].get('text')}")
        return load


def blank_share(png: Path) -> float:
    """The share of the screenshot's pixels that have its most common colour (1.0: a blank page)."""
    from PIL import Image

    with Image.open(png) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 24)
    return max(count for count, _ in colours) / sum(count for count, _ in colours)
