"""Headless Chromium over the DevTools protocol, with the standard library only.

Used to check that ``reports/index.html`` renders (every image decodes, every
table has rows, nothing is logged as an error, nothing is fetched from outside
the page) and to take its screenshot. Chromium speaks the protocol on a pipe
(``--remote-debugging-pipe``: commands on fd 3, replies on fd 4, each message
JSON followed by a NUL byte), so neither a network port nor a websocket client
is needed. Network access is switched off: a proxy that does not exist and a
host resolver that resolves nothing.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BINARIES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-extensions", "--disable-sync", "--disable-default-apps", "--no-first-run",
         "--no-default-browser-check", "--mute-audio", "--hide-scrollbars",
         "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND")
INSTALL_HINT = ("install it with `apt-get install chromium` (Debian) or point AUGBENCH_CHROMIUM "
                "at a Chromium/Chrome binary")


class BrowserError(RuntimeError):
    """Chromium could not be started, or a DevTools command failed or timed out."""


def find_chromium() -> str | None:
    """``$AUGBENCH_CHROMIUM``, else the first Chromium/Chrome binary on PATH, else None."""
    explicit = os.environ.get("AUGBENCH_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    return next((path for path in map(shutil.which, BINARIES) if path), None)


@dataclass
class PageCheck:
    """What the browser saw while loading a page."""

    probe: Any = None                      # the value of the probe expression
    errors: list[str] = field(default_factory=list)    # console errors, exceptions, error log entries
    requests: list[str] = field(default_factory=list)  # every URL the page asked for
    screenshot: bytes | None = None


class Chromium:
    """One headless Chromium process driven over ``--remote-debugging-pipe``.

    >>> with Chromium() as browser:                      # doctest: +SKIP
    ...     check = browser.check(Path("reports/index.html"), probe="document.title")
    """

    def __init__(self, binary: str | None = None, timeout: float = 60.0):
        self.binary = binary or find_chromium()
        if not self.binary:
            raise BrowserError(f"no Chromium binary found; {INSTALL_HINT}")
        self.timeout = timeout
        self._next_id = 0
        self._messages: queue.Queue[dict | None] = queue.Queue()
        self._events: list[dict] = []

    def __enter__(self) -> Chromium:
        self._profile = tempfile.TemporaryDirectory(prefix="augbench-chromium-")
        cmd_r, self._cmd_w = os.pipe()
        self._res_r, res_w = os.pipe()

        def as_fd_3_and_4() -> None:  # runs in the child, before exec
            import fcntl

            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (cmd_r, res_w)]
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        args = [self.binary, *FLAGS, "--remote-debugging-pipe", f"--user-data-dir={self._profile.name}",
                "about:blank"]
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, close_fds=False, preexec_fn=as_fd_3_and_4)
        os.close(cmd_r)
        os.close(res_w)
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._proc.stderr.read, daemon=True).start()  # keep the pipe drained
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(BrowserError):
            self.send("Browser.close", timeout=5)
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        os.close(self._cmd_w)
        os.close(self._res_r)
        self._profile.cleanup()

    def _read(self) -> None:
        buffer = b""
        while chunk := os.read(self._res_r, 1 << 16):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for message in messages:
                self._messages.put(json.loads(message))
        self._messages.put(None)  # the browser closed its end

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float | None = None) -> dict:
        """Send one command and wait for its reply; events that arrive meanwhile are kept."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {},
                   **({"sessionId": session} if session else {})}
        data = json.dumps(message).encode() + b"\0"
        try:
            while data:
                data = data[os.write(self._cmd_w, data):]
        except OSError as exc:  # the browser is gone
            raise BrowserError(f"cannot send {method} to Chromium ({exc})") from None
        return self._wait(lambda m: m.get("id") == self._next_id, timeout, method)["result"]

    def wait_event(self, method: str, timeout: float | None = None) -> dict:
        for i, event in enumerate(self._events):
            if event["method"] == method:
                return self._events.pop(i)
        event = self._wait(lambda m: m.get("method") == method, timeout, method)
        self._events.remove(event)
        return event

    def _wait(self, matches, timeout: float | None, what: str) -> dict:
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            try:
                message = self._messages.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise BrowserError(f"Chromium did not answer {what} within {timeout or self.timeout:.0f} s") from None
            if message is None:
                raise BrowserError(f"Chromium exited while waiting for {what} (exit code {self._proc.poll()})")
            if "method" in message:
                self._events.append(message)
            if matches(message):
                if "error" in message:
                    raise BrowserError(f"{what}: {message['error'].get('message')}")
                return message

    def check(self, page: Path, probe: str | None = None, width: int = 1280, height: int = 900,
              screenshot_height: int | None = None) -> PageCheck:
        """Load ``page`` from disk, evaluate ``probe`` (a JavaScript expression whose value is
        returned as JSON) after the load event, and collect errors and requests; with
        ``screenshot_height`` also a PNG of the page's top that many pixels (0: the whole page)."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=session)
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session)
        self._events.clear()
        self.send("Page.navigate", {"url": page.resolve().as_uri()}, session)
        self.wait_event("Page.loadEventFired")
        result = PageCheck()
        if screenshot_height is not None:  # first: the page as loaded, before the probe touches it
            result.screenshot = self._screenshot(session, width, screenshot_height)
        if probe:
            value = self.send("Runtime.evaluate", {"expression": probe, "returnByValue": True,
                                                   "awaitPromise": True}, session)
            if "exceptionDetails" in value:
                raise BrowserError(f"probe failed: {value['exceptionDetails'].get('text')}")
            result.probe = value["result"].get("value")
        self.send("Runtime.evaluate", {"expression": "0"}, session)  # flush pending events
        result.errors, result.requests = _errors(self._events), _requests(self._events)
        self.send("Target.closeTarget", {"targetId": target})
        return result

    def _screenshot(self, session: str, width: int, height: int) -> bytes:
        content = self.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
        full = int(content["height"])
        clip = {"x": 0, "y": 0, "width": width, "height": min(full, height) if height else full, "scale": 1}
        shot = self.send("Page.captureScreenshot", {"format": "png", "clip": clip,
                                                    "captureBeyondViewport": True}, session)
        return base64.b64decode(shot["data"])


def _errors(events: list[dict]) -> list[str]:
    out = []
    for event in events:
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            out.append("console." + params["type"] + ": " + " ".join(
                str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            out.append("exception: " + str(details.get("exception", {}).get("description") or details.get("text")))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            out.append(f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}".strip())
    return out


def _requests(events: list[dict]) -> list[str]:
    return [e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"]


def screenshot(page: Path, out: Path, width: int = 1280, height: int = 4000) -> Path:
    """Write a PNG of ``page``'s top ``height`` pixels (0: the whole page) at ``width``."""
    from bench.io import atomic_path

    with Chromium() as browser:
        shot = browser.check(page, width=width, screenshot_height=height).screenshot
    with atomic_path(out) as tmp:
        tmp.write_bytes(shot)
    return out
