"""Open the rendered reports in headless Chromium, as a reader would, with the network cut off.

For each page: LaTeX left as raw text (`$...$`, `$$`, `\\(`, `\\[`, `\\begin{`) in what the page shows, images
that did not load (naturalWidth 0), console errors and uncaught exceptions, and any request for something outside
the page's folder (http(s) or other hosts: an offline reader would never get it). A full-page screenshot of each
page goes to `screens` when given. `open(url, ready)` + `screenshot(path)` do the same for a page served on
localhost (JupyterLab: tests/notebooks/test_jupyterlab.py).

Chromium is driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: JSON messages ending in NUL
on file descriptors 3 and 4), so no port and no extra package. Network: every host name resolves to nothing
(`--host-resolver-rules`) and every request goes to a dead proxy.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
RAW_LATEX = re.compile(r"\$\$|\$[^$\s][^$\n]{0,200}?\$|\\\(|\\\[|\\begin\{")
MAX_SHOT_HEIGHT = 16000  # px: a screenshot of a longer page stops there


def find_browser() -> str | None:
    """The first Chromium-family browser on PATH (Debian's package is `chromium`), or None."""
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


@dataclass
class PageCheck:
    page: str  # file name under the checked folder
    raw_latex: list[str] = field(default_factory=list)  # snippets of LaTeX shown as text
    broken_images: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    screenshot: str = ""

    def problems(self) -> list[str]:
        return ([f"{self.page}: raw LaTeX {s!r}" for s in self.raw_latex[:5]]
                + [f"{self.page}: image not loaded {s[:80]}" for s in self.broken_images]
                + [f"{self.page}: console error {s[:200]}" for s in self.console_errors]
                + [f"{self.page}: request outside the report folder {s[:120]}" for s in self.external_requests])


class Chromium:
    """A headless Chromium with one tab, driven over the DevTools pipe. Use as a context manager."""

    def __init__(self, browser: str | None = None, timeout: float = 60.0, width: int = 1280, height: int = 900):
        self.browser = browser or find_browser()
        if not self.browser:
            raise UserError(f"no Chromium on PATH (looked for {', '.join(BROWSERS)}); Debian: apt-get install chromium")
        self.timeout, self.width, self.height = timeout, width, height
        self._id, self._buf, self.events = 0, b"", []

    def __enter__(self) -> "Chromium":
        self._profile = tempfile.TemporaryDirectory(prefix="ssmrec-chromium-")
        cmd_r, self._cmd_w = os.pipe()  # we write commands; the browser reads them on fd 3
        self._res_r, res_w = os.pipe()  # the browser writes replies and events on fd 4

        def on_fds_3_and_4():  # in the child, before exec: move the pipe ends to 3 and 4 (via fds >= 10, no clash)
            a, b = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10), fcntl.fcntl(res_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        args = [self.browser, "--headless", "--remote-debugging-pipe", "--disable-gpu", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--mute-audio",
                '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost', "--proxy-server=127.0.0.1:9",
                f"--window-size={self.width},{self.height}", f"--user-data-dir={self._profile.name}",
                "about:blank"]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to start as root with its sandbox
        self._proc = subprocess.Popen(args, pass_fds=(3, 4), preexec_fn=on_fds_3_and_4,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(cmd_r)
        os.close(res_w)
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=True)
        self.send("Emulation.setDeviceMetricsOverride", session=True, width=self.width, height=self.height,
                  deviceScaleFactor=1, mobile=False)
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.send("Browser.close")
        except (OSError, UserError):
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        os.close(self._cmd_w)
        os.close(self._res_r)
        self._profile.cleanup()

    # ------------------------------------------------------------------------------------------ protocol

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._res_r], [], [], left)[0]:
                raise UserError(f"Chromium did not answer within {self.timeout:.0f} s")
            chunk = os.read(self._res_r, 1 << 20)
            if not chunk:
                raise UserError(f"Chromium exited (code {self._proc.poll()})")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method: str, session: bool = False, **params) -> dict[str, Any]:
        """Send one command and return its result; events read meanwhile are kept in `self.events`."""
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise UserError(f"Chromium {method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev.get("method") == method:
                    return self.events.pop(i)
            self.events.append(self._read_message(deadline))

    # ------------------------------------------------------------------------------------------ pages

    def check(self, page: Path, screenshot: Path | None = None) -> PageCheck:
        """Load `page` (a local file) and report what a reader would miss; optionally save a full-page PNG."""
        page = Path(page).resolve()
        self.events.clear()
        self.send("Page.navigate", session=True, url=page.as_uri())
        self.wait_for("Page.loadEventFired")
        state = self.send("Runtime.evaluate", session=True, returnByValue=True, expression="""JSON.stringify({
            text: document.body ? document.body.innerText : "",
            prefixed: Array.from(document.querySelectorAll("*")).filter(e => e.tagName.includes(":"))
                           .map(e => e.tagName).slice(0, 5),
            images: Array.from(document.images).map(i => ({src: i.currentSrc || i.src,
                                                          ok: i.complete && i.naturalWidth > 0}))})""")
        state = json.loads(state["result"]["value"])
        result = PageCheck(page.name)
        result.raw_latex = [m.group(0) for m in RAW_LATEX.finditer(state["text"])]
        result.raw_latex += [f"<{t}> (namespaced maths shown as text)" for t in state["prefixed"]]
        result.broken_images = [i["src"] for i in state["images"] if not i["ok"]]
        folder = page.parent.as_uri()
        for ev in self.events:
            method, p = ev.get("method"), ev.get("params", {})
            if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                result.console_errors.append(" ".join(str(a.get("value", a.get("description", "")))
                                                      for a in p.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                result.console_errors.append(d.get("exception", {}).get("description") or d.get("text", ""))
            elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                e = p["entry"]
                result.console_errors.append(f"{e.get('text', '')} {e.get('url', '')}".strip())
            elif method == "Network.requestWillBeSent":
                url = p.get("request", {}).get("url", "")
                if not (url.startswith(folder) or url.startswith(("data:", "about:", "blob:"))):
                    result.external_requests.append(url)
        if screenshot is not None:
            result.screenshot = str(self.screenshot(screenshot))
        return result

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        """Save the page as a PNG: the whole page (up to MAX_SHOT_HEIGHT px) or the window only."""
        clip = {"x": 0, "y": 0, "width": self.width, "height": self.height, "scale": 1}
        if full_page:
            size = self.send("Page.getLayoutMetrics", session=True)["cssContentSize"]
            clip.update(width=max(self.width, int(size["width"])), height=min(MAX_SHOT_HEIGHT, int(size["height"])))
        png = self.send("Page.captureScreenshot", session=True, format="png", captureBeyondViewport=full_page,
                        clip=clip)["data"]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(png))
        return path

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-serialisable values)."""
        return self.send("Runtime.evaluate", session=True, expression=expression, returnByValue=True
                         )["result"].get("value")

    def open(self, url: str, ready: str = "true", timeout: float | None = None) -> float:
        """Navigate to `url` (a local server: the network rules above let only localhost through) and wait until
        the JavaScript expression `ready` is true (an app that draws after its load event, such as JupyterLab).
        Returns the seconds it took; UserError after `timeout` (default: the browser's)."""
        t0 = time.monotonic()
        self.events.clear()
        self.send("Page.navigate", session=True, url=url)
        self.wait_for("Page.loadEventFired")
        deadline = t0 + (timeout or self.timeout)
        while not self.evaluate(f"Boolean({ready})"):
            if time.monotonic() > deadline:
                raise UserError(f"{url}: the page was not ready ({ready}) within {timeout or self.timeout:.0f} s")
            time.sleep(0.5)
        return time.monotonic() - t0


def check_reports(folder: str | Path, screens: str | Path | None = None, browser: str | None = None
                  ) -> list[PageCheck]:
    """Check every *.html directly under `folder` (the reports and index.html of one profile); screenshots as
    <screens>/<page stem>.png when `screens` is given."""
    folder = Path(folder)
    pages = sorted(folder.glob("*.html"))
    with Chromium(browser) as chrome:
        return [chrome.check(p, Path(screens) / f"{p.stem}.png" if screens else None) for p in pages]
