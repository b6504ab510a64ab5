"""JupyterLab on loopback + headless Chromium through Playwright, for real-browser tests.

`LabServer` starts ``jupyter lab`` in a temporary root with its own Jupyter config / data / runtime
folders: the k2nb kernelspec is written there, and this checkout's built extension
(k2nb/labextension) is linked there, so the test sees exactly this code whatever is installed.
The app is exposed as ``window.jupyterapp`` so tests can run commands and read the notebook model.

`browser_page` opens Chromium with the flags this machine needs (see MACHINE_NOTES). Never run
``playwright install``: the system's /usr/bin/chromium is used.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = os.environ.get("K2NB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


def chromium_missing_reason() -> str | None:
    """Why a browser test cannot run here, or None."""
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium; never 'playwright install')"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed"
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        return "jupyterlab is not installed"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabServer:
    """A JupyterLab server for one test module. `url(path)` gives an authenticated URL."""

    def __init__(self, root: Path | None = None):
        self.tmp = Path(tempfile.mkdtemp(prefix="k2nb-lab-"))
        self.root = root or (self.tmp / "root")
        self.root.mkdir(parents=True, exist_ok=True)
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = self.tmp / "server.log"
        self.env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(self.tmp / "config"),
            "JUPYTER_DATA_DIR": str(self.tmp / "data"),
            "JUPYTER_RUNTIME_DIR": str(self.tmp / "runtime"),
            "JUPYTERLAB_WORKSPACES_DIR": str(self.tmp / "workspaces"),
            "K2NB_WARM": "0",
        }
        self._prepare()

    def _prepare(self) -> None:
        from k2nb.kernels.install import kernelspec_dict, labextension_source

        data = self.tmp / "data"
        spec = data / "kernels" / "k2nb"
        spec.mkdir(parents=True)
        k = kernelspec_dict()
        k["env"]["K2NB_WARM"] = "0"  # no model load in tests
        (spec / "kernel.json").write_text(json.dumps(k))
        ext = data / "labextensions"
        ext.mkdir(parents=True)
        os.symlink(labextension_source(), ext / "k2nb", target_is_directory=True)
        # No news / update toasts over the screenshots.
        labconfig = self.tmp / "config" / "labconfig"
        labconfig.mkdir(parents=True)
        (labconfig / "page_config.json").write_text(
            json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
        )

    def start(self, timeout_s: float = 60) -> None:
        cmd = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",
            f"--ServerApp.token={self.token}",
            "--ServerApp.ip=127.0.0.1",
            f"--port={self.port}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={self.root}",
            "--LabApp.expose_app_in_browser=True",
            "--ServerApp.disable_check_xsrf=False",
        ]
        log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.root, start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited ({self.proc.returncode}); log:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url("api/status"), timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise TimeoutError(f"jupyter lab did not answer within {timeout_s} s; log:\n{self.log()}")

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"http://127.0.0.1:{self.port}/{path}{sep}token={self.token}"

    def log(self) -> str:
        try:
            return self.log_path.read_text()[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def write_notebook(self, name: str, cells: list[tuple[str, str]], kernel: str = "python3") -> Path:
        """A notebook of (cell_type, source) cells, with its kernelspec set so no dialog asks."""
        import nbformat

        nb = nbformat.v4.new_notebook()
        for kind, source in cells:
            nb.cells.append(
                nbformat.v4.new_code_cell(source) if kind == "code" else nbformat.v4.new_markdown_cell(source)
            )
        names = {"python3": "Python 3 (ipykernel)", "k2nb": "Python 3 (k2nb)"}
        nb.metadata["kernelspec"] = {
            "name": kernel,
            "display_name": names.get(kernel, kernel),
            "language": "python",
        }
        path = self.root / name
        nbformat.write(nb, path)
        return path


@contextmanager
def lab_server() -> Iterator[LabServer]:
    server = LabServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@contextmanager
def browser_page(width: int = 1280, height: int = 1400) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()


# ---------------------------------------------------------------------------------------------
# JupyterLab helpers (run in the page; the app is window.jupyterapp)

JS_NOTEBOOK_CELLS = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const model = panel.content.model;
  const out = [];
  for (let i = 0; i < model.cells.length; i++) {
    const c = model.cells.get(i);
    const j = c.toJSON();
    out.push({id: c.id, type: j.cell_type, source: j.source, outputs: j.outputs || [],
              execution_count: j.execution_count ?? null, metadata: j.metadata,
              tagged: panel.content.widgets[i].hasClass('k2nb-tool-cell')});
  }
  return out;
}"""

JS_KERNEL_IDLE = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const k = panel && panel.sessionContext.session && panel.sessionContext.session.kernel;
  return !!k && k.status === 'idle' && !panel.sessionContext.pendingInput;
}"""


def open_notebook(page: Any, server: LabServer, name: str) -> None:
    """Open `name` in JupyterLab and wait until its kernel is idle (accepting a kernel dialog)."""
    # ?reset: a clean workspace, so notebooks of earlier tests are not restored around this one
    page.goto(server.url(f"lab/tree/{name}?reset"))
    page.wait_for_function(
        """(name) => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                       return !!w && !!w.context && w.context.path === name && !!w.content.model; }""",
        arg=name,
        timeout=180_000,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        select = page.locator(".jp-Dialog button.jp-mod-accept")
        if select.count() > 0 and select.first.is_visible():
            select.first.click()
        if page.evaluate(JS_KERNEL_IDLE):
            return
        time.sleep(0.25)
    raise TimeoutError(f"the kernel of {name} did not become idle")


def run_all(page: Any) -> None:
    """Start Run All Cells without waiting for it (the test watches the run as it goes)."""
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")


def wait_idle(page: Any, timeout_s: float = 120) -> None:
    time.sleep(0.5)  # let the kernel report busy first
    page.wait_for_function(JS_KERNEL_IDLE, timeout=timeout_s * 1000)


def cells(page: Any) -> list[dict[str, Any]]:
    return page.evaluate(JS_NOTEBOOK_CELLS)


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def heatmap_pixels(page: Any, scope: str = ".k2nb-dashboard") -> dict[str, int]:
    """Width, height and number of distinct colours drawn on the first routing-heatmap canvas in
    `scope` (a blank or failed canvas has none)."""
    return page.evaluate("""(scope) => {
        const c = document.querySelector(scope + ' .k2nb-hm-grid');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const colours = new Set();
        for (let i = 0; i < d.length; i += 4 * 7)
            if (d[i + 3]) colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
        return {w: c.width, h: c.height, colours: colours.size};
    }""", scope)
