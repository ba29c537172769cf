"""The workbook as an interactive reader meets it (issue 17, section 6): JupyterLab on 127.0.0.1 with a token, over
a temporary copy of notebooks/; its REST API lists the notebooks; notebook 02 runs cell by cell in a live kernel
started through the server (its sessions API and the kernel's websocket; no papermill), so the ipywidgets
explorers (report/widgets.py) build their sliders instead of the static note; and a screenshot of notebook 02 open
in JupyterLab, taken with headless Chromium (report/browser.py), goes to outputs/smoke/screens/ for review
(git-ignored). Skips, saying why, without JupyterLab (requirements.txt pins it) or, for the screenshot, Chromium.

The kernel inherits the server's environment with SSMREC_PROGRESS, PAPERMILL_EXECUTION and CI removed: those mark
a run nobody watches (utils.is_interactive), and a pytest run under the workbook tests sets PAPERMILL_EXECUTION.
"""

import asyncio
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from ssmrec_lib.report.workbook import NOTEBOOKS, ROOT

pytest.importorskip("jupyterlab", reason="JupyterLab is not installed (requirements.txt pins jupyterlab)")
pytestmark = pytest.mark.slow  # a server, a kernel running notebook 02, a browser: about 1-3 minutes on 2 cores

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
STATIC_NOTE = "interactive sliders appear when this notebook runs in a live Jupyter kernel"
SCREEN = ROOT / "outputs" / "smoke" / "screens" / "jupyterlab_02_ssm_theory.png"
START_TIMEOUT_S, CELL_TIMEOUT_S = 120, 300


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A JupyterLab server process and a tiny client of its REST API (token in the Authorization header)."""

    def __init__(self, root: Path, home: Path):
        self.port, self.token = _free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k not in ("SSMREC_PROGRESS", "PAPERMILL_EXECUTION", "CI")}
        env.update(PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])]),
                   JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
                   OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"))
        self.log = home / "jupyterlab.log"
        news = home / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
        news.parent.mkdir(parents=True)
        news.write_text(json.dumps({"fetchNews": "false"}))  # no "official Jupyter news?" toast over the screenshot
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}",
               "--ServerApp.allow_root=True", f"--LabApp.workspaces_dir={home / 'workspaces'}",
               f"--LabApp.user_settings_dir={home / 'settings'}",
               "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        self.proc = subprocess.Popen(cmd, env=env, cwd=root, stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                self.api("GET", "/api/status")
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"JupyterLab did not start:\n{self.log.read_text()[-3000:]}")
                time.sleep(0.5)

    def api(self, method: str, path: str, body: dict | None = None):
        req = urllib.request.Request(self.url + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"token {self.token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read()
        return json.loads(text) if text else None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab_notebooks")
    for nb in NOTEBOOKS.glob("*.ipynb"):
        shutil.copy(nb, root / nb.name)
    server = Lab(root, tmp_path_factory.mktemp("lab_home"))
    yield server
    server.stop()


def run_cells(lab: Lab, kernel_id: str, sources: list[str]) -> list[dict]:
    """Execute `sources` one after the other on the kernel's websocket (Jupyter messaging protocol 5.3, JSON
    frames); -> per cell {"status", "outputs" (iopub display_data / execute_result / stream / error contents)}."""
    from tornado.httpclient import HTTPRequest
    from tornado.ioloop import IOLoop
    from tornado.websocket import websocket_connect

    session = uuid.uuid4().hex

    async def run():
        ws = await websocket_connect(HTTPRequest(
            f"ws://127.0.0.1:{lab.port}/api/kernels/{kernel_id}/channels?session_id={session}",
            headers={"Authorization": f"token {lab.token}"}))
        results = []
        for code in sources:
            msg_id = uuid.uuid4().hex
            ws.write_message(json.dumps({
                "header": {"msg_id": msg_id, "msg_type": "execute_request", "session": session, "username": "test",
                           "version": "5.3", "date": ""},
                "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
                "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                            "allow_stdin": False, "stop_on_error": True}}))
            outputs, status, idle = [], None, False
            deadline = time.monotonic() + CELL_TIMEOUT_S
            while status is None or not idle:  # the reply on shell, then the kernel idle again on iopub
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"cell did not finish within {CELL_TIMEOUT_S} s:\n{code[:200]}")
                raw = await asyncio.wait_for(ws.read_message(), timeout=left)
                if raw is None:
                    raise ConnectionError("the kernel's websocket closed")
                msg = json.loads(raw)
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = msg["header"]["msg_type"]
                if msg["channel"] == "shell" and kind == "execute_reply":
                    status = msg["content"]["status"]
                elif kind in ("display_data", "execute_result", "stream", "error"):
                    outputs.append({"type": kind, **msg["content"]})
                elif kind == "status" and msg["content"]["execution_state"] == "idle":
                    idle = True
            results.append({"status": status, "outputs": outputs})
        ws.close()
        return results

    return IOLoop.current().run_sync(run, timeout=CELL_TIMEOUT_S * len(sources))


def test_jupyterlab_lists_the_notebooks(lab):
    listed = {c["name"] for c in lab.api("GET", "/api/contents/")["content"] if c["type"] == "notebook"}
    assert {p.name for p in NOTEBOOKS.glob("*.ipynb")} <= listed
    assert len(listed) == 5


def test_notebook_02_runs_in_a_live_kernel_with_its_widgets(lab):
    nb = lab.api("GET", "/api/contents/02_ssm_theory.ipynb")["content"]
    sources = ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
               for c in nb["cells"] if c["cell_type"] == "code"]
    session = lab.api("POST", "/api/sessions", {"path": "02_ssm_theory.ipynb", "type": "notebook",
                                                 "name": "02_ssm_theory.ipynb", "kernel": {"name": "python3"}})
    try:
        cells = run_cells(lab, session["kernel"]["id"], sources)
    finally:
        lab.api("DELETE", f"/api/sessions/{session['id']}")
    errors = [(i, o.get("ename"), o.get("evalue")) for i, c in enumerate(cells) for o in c["outputs"]
              if o["type"] == "error"]
    assert not errors and all(c["status"] == "ok" for c in cells), errors
    widget_cells = [i for i, src in enumerate(sources) if "widgets." in src and "_explorer()" in src]
    assert len(widget_cells) == 2  # discretization_explorer and matrix_explorer
    for i in widget_cells:  # the sliders, not the static note papermill's run shows
        shown = cells[i]["outputs"]
        assert any(WIDGET_MIME in o.get("data", {}) for o in shown), (i, shown)
        assert not any(STATIC_NOTE in o.get("text", "") for o in shown)
    figures = [o for c in cells for o in c["outputs"] if "image/png" in o.get("data", {})]
    assert len(figures) >= 6
    assert all(len(o["metadata"]["image/png"]["alt"]) > 10 for o in figures)  # plotting.ReportFigure's alt text


def test_a_screenshot_of_notebook_02_open_in_jupyterlab(lab):
    from ssmrec_lib.report.browser import Chromium, find_browser

    if not find_browser():
        pytest.skip("no Chromium on PATH: `make browser` installs Debian's chromium where apt-get is usable as root")
    # "localhost", not 127.0.0.1: the browser resolves every other name (IP literals too) to nothing (browser.py)
    url = f"http://localhost:{lab.port}/lab/tree/02_ssm_theory.ipynb?token={lab.token}"
    title = "document.querySelector('.jp-Notebook .jp-MarkdownCell h1')"  # drawn once the notebook is open
    with Chromium(timeout=180, width=1400, height=1000) as chrome:
        try:
            chrome.open(url, ready=f"{title} && document.querySelector('.jp-Notebook mjx-container')",  # maths
                        timeout=180)                                        # typeset by JupyterLab's own MathJax
        finally:  # also what the page showed when it was not ready, for the failure's story
            chrome.screenshot(SCREEN, full_page=False)
        shown = chrome.evaluate(f"{title}.textContent")
        tabs = chrome.evaluate("Array.from(document.querySelectorAll('.lm-TabBar-tabLabel')).map(e => e.textContent)")
    assert "State-space models" in shown and "02_ssm_theory.ipynb" in tabs
    assert SCREEN.stat().st_size > 20_000
